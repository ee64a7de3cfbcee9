-- key_read: unkey_get_key, unkey_whoami, unkey_get_key_by_hash and unkey_list_keys
SET unkey.test_now = '2030-01-15 12:00:00+00';
SET timezone = 'UTC';
SELECT unkey.unkey_create_api('read', default_prefix => 'rd') AS api \gset
SELECT unkey.unkey_create_api('read other') AS other_api \gset
SELECT unkey.unkey_create_role('key reader', permissions => ARRAY['docs.read']) IS NOT NULL AS role_created;
SELECT key_id, key FROM unkey.unkey_create_key(:'api', prefix => 'sk_live', name => 'full',
	external_id => 'read-customer', meta => '{"plan": "pro"}', expires => '2031-01-01 00:00:00+00',
	credits => 10, refill_interval => 'monthly', refill_amount => 20, refill_day => 31,
	ratelimits => '[{"name": "tokens", "limit": 100, "duration": 60000}, {"name": "requests", "limit": 5, "duration": 1000, "autoApply": true}]',
	roles => ARRAY['key reader'], permissions => ARRAY['docs.write', 'billing.read']) \gset
SELECT unkey.unkey_update_identity('read-customer', meta => '{"tier": 2}') IS NOT NULL AS identity_meta_set;

-- every field; permissions are the key's direct ones, roles and permissions sorted
SELECT key_id = :'key_id' AS same_id, api_id = :'api' AS same_api, start = left(:'key', 12) AS start_ok,
	   prefix, name, meta, external_id, identity_meta, enabled, expires, credits,
	   refill_interval, refill_amount, refill_day, last_refill_at, ratelimits, roles, permissions,
	   created_at, updated_at, last_used_at
  FROM unkey.unkey_get_key(:'key_id');
-- the same row by plaintext and by hash (base64 as Unkey shows it, or hex)
SELECT (SELECT row(g.*)::text FROM unkey.unkey_get_key(:'key_id') g)
	 = (SELECT row(w.*)::text FROM unkey.unkey_whoami(:'key') w) AS whoami_same,
	   (SELECT row(g.*)::text FROM unkey.unkey_get_key(:'key_id') g)
	 = (SELECT row(h.*)::text FROM unkey.unkey_get_key_by_hash(encode(digest(:'key', 'sha256'), 'base64')) h) AS base64_same,
	   (SELECT row(g.*)::text FROM unkey.unkey_get_key(:'key_id') g)
	 = (SELECT row(h.*)::text FROM unkey.unkey_get_key_by_hash(encode(digest(:'key', 'sha256'), 'hex')) h) AS hex_same;

-- credits are shown as of now: a due refill is applied in the answer, without a write
SET unkey.test_now = '2030-01-31 00:00:01+00';
SELECT credits, last_refill_at FROM unkey.unkey_get_key(:'key_id');
SELECT remaining AS stored FROM unkey.keys WHERE id = :'key_id';
SET unkey.test_now = '2030-01-15 12:00:00+00';

-- last_used_at comes from the verification events: NULL until the first one
SELECT key_id AS fresh_id, key AS fresh_key FROM unkey.unkey_create_key(:'api', name => 'fresh') \gset
SELECT last_used_at FROM unkey.unkey_get_key(:'fresh_id');
SET unkey.test_now = '2030-01-16 08:30:00+00';
SELECT code FROM unkey.unkey_verify_key(:'fresh_key');
-- (the event is buffered: last_used_at shows it once the event writer has written it)
SELECT FROM unkey.unkey_flush_events();
SELECT last_used_at, name FROM unkey.unkey_get_key(:'fresh_id');
-- a failed verification is a use too; a NOT_FOUND for another API is not (D4 hides the key)
SET unkey.test_now = '2030-01-17 09:00:00+00';
SELECT code FROM unkey.unkey_verify_key(:'fresh_key', permissions => 'nope');
SET unkey.test_now = '2030-01-18 10:00:00+00';
SELECT code FROM unkey.unkey_verify_key(:'fresh_key', api_id => :'other_api');
SELECT FROM unkey.unkey_flush_events();
SELECT last_used_at FROM unkey.unkey_get_key(:'fresh_id');
SET unkey.test_now = '2030-01-15 12:00:00+00';

-- a key with nothing set: NULLs and empty sets, never a missing column
SELECT key_id AS bare_id FROM unkey.unkey_create_key(:'other_api') \gset
SELECT prefix, name, meta, identity_id, external_id, identity_meta, enabled, expires, credits,
	   refill_interval, ratelimits, roles, permissions, start ~ '^[1-9A-HJ-NP-Za-km-z]{4}$' AS start_is_4_chars
  FROM unkey.unkey_get_key(:'bare_id');

-- deleted keys and keys of deleted APIs are not found
SELECT key_id AS gone_id, key AS gone_key FROM unkey.unkey_create_key(:'api', name => 'gone') \gset
SELECT unkey.unkey_delete_key(:'gone_id');
SELECT regress.err(format('SELECT unkey.unkey_get_key(%L)', :'gone_id'));
SELECT regress.err(format('SELECT unkey.unkey_whoami(%L)', :'gone_key'));
SELECT regress.err(format('SELECT unkey.unkey_get_key_by_hash(%L)', unkey.unkey_hash_key(:'gone_key')));
SELECT unkey.unkey_create_api('read doomed') AS doomed_api \gset
SELECT key_id AS doomed_id, key AS doomed_key FROM unkey.unkey_create_key(:'doomed_api') \gset
SELECT unkey.unkey_delete_api(:'doomed_api');
SELECT regress.err(format('SELECT unkey.unkey_get_key(%L)', :'doomed_id'));
SELECT regress.err(format('SELECT unkey.unkey_whoami(%L)', :'doomed_key'));

-- errors: a miss is PT404 and the message never repeats the key or the hash
SELECT regress.err($$SELECT unkey.unkey_get_key('key_missing')$$);
SELECT regress.err($$SELECT unkey.unkey_get_key(NULL)$$);
SELECT regress.err($$SELECT unkey.unkey_whoami('rd_not_a_real_key')$$);
SELECT regress.err($$SELECT unkey.unkey_whoami(NULL)$$);
SELECT regress.err($$SELECT unkey.unkey_get_key_by_hash('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')$$);
SELECT regress.err($$SELECT unkey.unkey_get_key_by_hash('not a hash')$$);
SELECT regress.err($$SELECT unkey.unkey_get_key_by_hash('AAAA')$$);
SELECT regress.err($$SELECT unkey.unkey_get_key_by_hash(NULL)$$);

----------------------------------------------------------------------------
-- unkey_list_keys: keyset pagination in id order
----------------------------------------------------------------------------
SELECT unkey.unkey_create_api('list') AS list_api \gset
SELECT count(*) AS created FROM generate_series(1, 7) i,
	LATERAL unkey.unkey_create_key(:'list_api', name => 'list ' || i,
		external_id => CASE WHEN i % 3 = 0 THEN 'list-customer' END) k;
SELECT key_id AS list_gone FROM unkey.unkey_create_key(:'list_api', name => 'list deleted') \gset
SELECT unkey.unkey_delete_key(:'list_gone');

-- pages of 3: 3 + 3 + 1, each cursor the last id of its page, has_more false at the end
CREATE TEMP TABLE pages AS
WITH RECURSIVE walk(page, result) AS (
	SELECT 1, unkey.unkey_list_keys(:'list_api', "limit" => 3)
	UNION ALL
	SELECT page + 1, unkey.unkey_list_keys(:'list_api', "limit" => 3, cursor => (result).cursor)
	  FROM walk WHERE (result).has_more
)
SELECT page, result FROM walk;
SELECT page, cardinality((result).keys) AS keys, (result).has_more,
	   (result).cursor = ((result).keys)[cardinality((result).keys)].key_id AS cursor_is_last_id,
	   (result).cursor IS NULL AS no_cursor
  FROM pages ORDER BY page;
-- together the pages hold every live key once, in id order, and not the deleted one
SELECT count(*) AS listed, count(DISTINCT k.key_id) AS distinct_ids,
	   array_agg(k.key_id ORDER BY p.page, k.ordinality) = array_agg(k.key_id ORDER BY k.key_id) AS in_id_order,
	   bool_and(k.key_id <> :'list_gone') AS deleted_not_listed,
	   array_agg(k.name ORDER BY k.name) AS names
  FROM pages p, unnest((p.result).keys) WITH ORDINALITY k;
-- the rows are full key_info rows
SELECT k.name, k.api_id = :'list_api' AS right_api, k.roles, k.permissions, k.ratelimits
  FROM pages p, unnest((p.result).keys) k WHERE k.name = 'list 1';
-- the default page size holds them all
SELECT cardinality(keys) AS keys, cursor, has_more FROM unkey.unkey_list_keys(:'list_api');
-- filtered by external id: only that identity's keys; an unknown one gives an empty page
SELECT array(SELECT k.name FROM unnest(keys) k ORDER BY k.name) AS names, has_more
  FROM unkey.unkey_list_keys(:'list_api', external_id => 'list-customer');
SELECT cardinality(keys) AS keys, cursor, has_more
  FROM unkey.unkey_list_keys(:'list_api', external_id => 'nobody');
-- a cursor past the end gives an empty page
SELECT cardinality(keys) AS keys, has_more FROM unkey.unkey_list_keys(:'list_api', cursor => 'key_zzzz');
-- the listing uses the (api_id, id) index
SET enable_seqscan = off;
-- and no plan that sorts afterwards: the stats autovacuum may have gathered must not decide
SET enable_bitmapscan = off;
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT k.key_hash FROM unkey.keys k
 WHERE k.api_id = 'api_x' AND k.deleted_at IS NULL AND k.id > 'key_a' ORDER BY k.id LIMIT 4;
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET enable_sort;

-- errors
SELECT regress.err($$SELECT unkey.unkey_list_keys('api_missing')$$);
SELECT regress.err(format('SELECT unkey.unkey_list_keys(%L, "limit" => 0)', :'list_api'));
SELECT regress.err(format('SELECT unkey.unkey_list_keys(%L, "limit" => 101)', :'list_api'));
SELECT regress.err(format('SELECT unkey.unkey_list_keys(%L, "limit" => NULL)', :'list_api'));
SELECT regress.err(format('SELECT unkey.unkey_list_keys(%L)', :'doomed_api'));
DROP TABLE pages;
RESET unkey.test_now;
RESET timezone;
