-- apis: create, get, delete protection and soft delete

SELECT unkey.unkey_create_api('orders', ip_whitelist => '{10.0.0.0/8, " 192.168.1.7 ", ""}',
							  default_prefix => 'ord', default_byte_length => 24) AS api \gset
SELECT :'api' ~ '^api_[1-9A-HJ-NP-Za-km-z]{20,22}$' AS id_format;
SELECT name, ip_whitelist, delete_protection, default_prefix, default_byte_length,
	   created_at IS NOT NULL AS has_created_at
  FROM unkey.unkey_get_api(:'api');

-- defaults: no whitelist, no protection, no prefix, 16 bytes; an empty whitelist is none
SELECT unkey.unkey_create_api('plain', ip_whitelist => '{}') AS plain \gset
SELECT name, ip_whitelist, delete_protection, default_prefix, default_byte_length
  FROM unkey.unkey_get_api(:'plain');

-- invalid arguments
SELECT a, regress.err(format('SELECT unkey.unkey_create_api(%s)', a)) FROM unnest(ARRAY[
	'NULL',
	$$''$$,
	$$repeat('x', 256)$$,
	$$'x', delete_protection => NULL$$,
	$$'x', default_prefix => 'no-dash'$$,
	$$'x', default_prefix => repeat('p', 17)$$,
	$$'x', default_byte_length => 15$$,
	$$'x', default_byte_length => 256$$,
	$$'x', ip_whitelist => '{10.0.0.1, not-an-ip}'$$,
	$$'x', ip_whitelist => '{10.0.0.300}'$$
]) a;
SELECT regress.err($$SELECT unkey.unkey_create_api(repeat('x', 255))$$) AS name_255;

-- get: unknown ids are PT404
SELECT regress.err($$SELECT unkey.unkey_get_api('api_missing')$$);
SELECT regress.err($$SELECT unkey.unkey_get_api(NULL)$$);

-- delete protection blocks deletion (PT412) and nothing changes
SELECT unkey.unkey_create_api('protected', delete_protection => true) AS prot \gset
SELECT * FROM unkey.unkey_create_key(:'prot') \gset prot_
SELECT regress.err(format('SELECT unkey.unkey_delete_api(%L)', :'prot'));
SELECT deleted_at IS NULL AS still_live FROM unkey.apis WHERE id = :'prot';
SELECT code FROM unkey.unkey_verify_key(:'prot_key');
-- deleting the API's keys is not blocked by the protection
SELECT * FROM unkey.unkey_create_key(:'prot') \gset prot2_
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L)', :'prot2_key_id'));
-- switch protection off, then delete works
SELECT unkey.unkey_set_api_delete_protection(:'prot', false);
SELECT delete_protection FROM unkey.unkey_get_api(:'prot');
SELECT regress.err(format('SELECT unkey.unkey_delete_api(%L)', :'prot'));
SELECT regress.err(format('SELECT unkey.unkey_set_api_delete_protection(%L, NULL)', :'plain'));
SELECT regress.err($$SELECT unkey.unkey_set_api_delete_protection('api_missing', true)$$);

-- after a delete: get is PT404, its keys verify as NOT_FOUND, new keys are refused
SELECT regress.err(format('SELECT unkey.unkey_get_api(%L)', :'prot'));
SELECT valid, code, key_id IS NULL AS no_data FROM unkey.unkey_verify_key(:'prot_key');
SELECT regress.err(format('SELECT unkey.unkey_create_key(%L)', :'prot'));
-- the delete is soft: the row and its keys remain
SELECT deleted_at IS NOT NULL AS soft_deleted,
	   (SELECT count(*) FROM unkey.keys WHERE api_id = :'prot') AS keys_kept
  FROM unkey.apis WHERE id = :'prot';
-- deleting again, or deleting an unknown API, is PT404
SELECT regress.err(format('SELECT unkey.unkey_delete_api(%L)', :'prot'));
SELECT regress.err($$SELECT unkey.unkey_delete_api('api_missing')$$);
