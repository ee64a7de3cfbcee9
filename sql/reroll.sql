-- reroll: a new key with the old key's settings; the old one expires
SET unkey.test_now = '2030-01-15 12:00:00+00';
SET timezone = 'UTC';
SELECT unkey.unkey_create_api('reroll', default_byte_length => 24) AS api \gset
SELECT unkey.unkey_create_role('reroller', permissions => ARRAY['r.read']) IS NOT NULL AS role_created;
SELECT key_id AS old_id, key AS old_key FROM unkey.unkey_create_key(:'api', prefix => 'sk_live', name => 'original',
	external_id => 'reroll-customer', meta => '{"plan": "pro"}', expires => '2031-01-01 00:00:00+00',
	credits => 10, refill_interval => 'monthly', refill_amount => 20, refill_day => 1,
	ratelimits => '[{"name": "requests", "limit": 5, "duration": 60000, "autoApply": true}]',
	roles => ARRAY['reroller'], permissions => ARRAY['r.write']) \gset
SELECT unkey.unkey_set_identity_ratelimit('reroll-customer', 'tokens', 100, '1 hour');
SELECT code, credits FROM unkey.unkey_verify_key(:'old_key', cost => 3);

SELECT key_id AS new_id, key AS new_key FROM unkey.unkey_reroll_key(:'old_id', '1 hour') \gset
-- the new key: new id and secret, the whole prefix kept (D14), the API's byte length
SELECT :'new_id' <> :'old_id' AS new_id, :'new_key' <> :'old_key' AS new_secret,
	   starts_with(:'new_key', 'sk_live_') AS prefix_kept,
	   char_length(:'new_key') BETWEEN 8 + 32 AND 8 + 33 AS base58_of_24_bytes;
-- everything else is copied, the credits as a full copy (7 after the spend of 3)
SELECT g.name, g.prefix, g.start = left(:'new_key', 12) AS start_ok, g.meta, g.external_id, g.expires,
	   g.credits, g.refill_interval, g.refill_amount, g.refill_day, g.ratelimits, g.roles, g.permissions,
	   g.created_at, g.updated_at
  FROM unkey.unkey_get_key(:'new_id') g;
-- the old key expires in an hour and still works until then
SELECT expires, credits FROM unkey.unkey_get_key(:'old_id');
SELECT code, credits FROM unkey.unkey_verify_key(:'old_key');
SELECT code, credits, permissions, roles FROM unkey.unkey_verify_key(:'new_key', permissions => 'r.read AND r.write');
-- the credits are duplicated, not shared: each key spends its own
SELECT (SELECT credits FROM unkey.unkey_get_key(:'old_id')) AS old_credits,
	   (SELECT credits FROM unkey.unkey_get_key(:'new_id')) AS new_credits;
SET unkey.test_now = '2030-01-15 13:00:00.001+00';
SELECT code FROM unkey.unkey_verify_key(:'old_key');
SELECT code FROM unkey.unkey_verify_key(:'new_key');
SET unkey.test_now = '2030-01-15 12:00:00+00';

-- expiration 0: the old key expires at once; rerolling an expired key still works
SELECT key_id AS b_id, key AS b_key FROM unkey.unkey_create_key(:'api', credits => 2) \gset
SELECT key_id AS b2_id, key AS b2_key FROM unkey.unkey_reroll_key(:'b_id', '0') \gset
-- expires is now, and a key is valid up to its expires instant: one microsecond later it is not
SELECT expires FROM unkey.unkey_get_key(:'b_id');
SET unkey.test_now = '2030-01-15 12:00:00.000001+00';
SELECT code FROM unkey.unkey_verify_key(:'b_key');
SELECT code, credits, starts_with(:'b2_key', 'sk_') AS has_prefix FROM unkey.unkey_verify_key(:'b2_key');
SELECT key_id IS NOT NULL AS rerolled_again FROM unkey.unkey_reroll_key(:'b_id', '0');
-- the expiry is overwritten, even when that extends an earlier one
SELECT key_id AS c_id FROM unkey.unkey_create_key(:'api', expires => '2030-01-15 12:30:00+00') \gset
SELECT count(*) FROM unkey.unkey_reroll_key(:'c_id', '2 hours');
SELECT expires FROM unkey.unkey_get_key(:'c_id');
-- a key without prefix stays without one
SELECT unkey.unkey_create_api('reroll raw') AS raw_api \gset
SELECT key_id AS raw_id FROM unkey.unkey_create_key(:'raw_api') \gset
SELECT key ~ '^[1-9A-HJ-NP-Za-km-z]+$' AS no_prefix FROM unkey.unkey_reroll_key(:'raw_id', '0');

-- errors
SELECT regress.err(format('SELECT unkey.unkey_reroll_key(%L, %L)', :'old_id', '-1 second'));
SELECT regress.err(format('SELECT unkey.unkey_reroll_key(%L, NULL)', :'old_id'));
SELECT regress.err($$SELECT unkey.unkey_reroll_key('key_missing', '0')$$);
SELECT unkey.unkey_delete_key(:'c_id');
SELECT regress.err(format('SELECT unkey.unkey_reroll_key(%L, %L)', :'c_id', '0'));
-- the errors made no key: 3 created + 4 rerolled (the deleted one still holds its hash)
SELECT count(*) AS keys_in_api FROM unkey.keys WHERE api_id = :'api';
RESET unkey.test_now;
RESET timezone;
