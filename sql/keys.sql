-- keys: unkey_create_key, every parameter and every invalid argument
SET timezone = 'UTC';

SELECT unkey.unkey_create_api('keys') AS api \gset
INSERT INTO unkey.roles (id, name, created_at) VALUES ('role_reader', 'reader', now()), ('role_writer', 'writer', now());

-- every parameter at once
SELECT * FROM unkey.unkey_create_key(:'api',
	prefix => 'sk_test', byte_length => 20, name => 'full', external_id => 'user_1',
	meta => '{"plan": "pro", "seats": 3}', expires => '2099-01-01 00:00:00+00',
	credits => 100, refill_interval => 'monthly', refill_amount => 100, refill_day => 15,
	ratelimits => '[{"name": "requests", "limit": 10, "duration": 60000, "autoApply": true},
					{"name": "tokens", "limit": 1000, "duration": 3600000}]',
	roles => '{reader, writer, reader}', permissions => '{documents.read, documents.write}',
	enabled => true, recoverable => false) \gset full_
SELECT k.start = left(:'full_key', 12) AS start_ok, k.prefix, k.name, i.external_id, k.meta,
	   k.expires, k.enabled, k.remaining, k.refill_interval, k.refill_amount, k.refill_day,
	   k.last_refill_at = k.created_at AS refill_clock_starts_at_creation, k.deleted_at
  FROM unkey.keys k JOIN unkey.identities i ON i.id = k.identity_id
 WHERE k.id = :'full_key_id';
SELECT r.name, r."limit", r.duration_ms, r.auto_apply FROM unkey.key_ratelimits r
  JOIN unkey.keys k USING (key_hash) WHERE k.id = :'full_key_id' ORDER BY name;
SELECT r.name AS role FROM unkey.key_roles kr JOIN unkey.roles r ON r.id = kr.role_id
  JOIN unkey.keys k USING (key_hash) WHERE k.id = :'full_key_id' ORDER BY 1;
SELECT p.slug, p.name, p.id ~ '^perm_' AS id_format FROM unkey.key_permissions kp
  JOIN unkey.permissions p ON p.id = kp.permission_id
  JOIN unkey.keys k USING (key_hash) WHERE k.id = :'full_key_id' ORDER BY 1;
SELECT code, external_id, meta, credits, roles, permissions
  FROM unkey.unkey_verify_key(:'full_key', cost => 0);

-- only the given arguments: an unlimited, enabled key with nothing else
SELECT * FROM unkey.unkey_create_key(:'api') \gset min_
SELECT name, identity_id, meta, expires, enabled, remaining, refill_interval, last_refill_at
  FROM unkey.keys WHERE id = :'min_key_id';

-- external_id upserts the identity: a second key shares it; existing permissions are reused
SELECT * FROM unkey.unkey_create_key(:'api', external_id => 'user_1', permissions => '{documents.read, admin}') \gset second_
SELECT count(DISTINCT identity_id) AS identities_used
  FROM unkey.keys WHERE id IN (:'full_key_id', :'second_key_id');
SELECT count(*) AS identities_named_user_1 FROM unkey.identities WHERE external_id = 'user_1';
SELECT slug, count(*) FROM unkey.permissions WHERE slug IN ('documents.read', 'admin') GROUP BY slug ORDER BY slug;
-- a daily refill has no refill_day; credits without refill are fine; so is an expiry in the past
SELECT regress.err(format($$SELECT unkey.unkey_create_key(%L, credits => 5, refill_interval => 'daily', refill_amount => 5)$$, :'api')) AS daily;
SELECT regress.err(format($$SELECT unkey.unkey_create_key(%L, credits => 0)$$, :'api')) AS zero_credits;
SELECT regress.err(format($$SELECT unkey.unkey_create_key(%L, expires => '2000-01-01')$$, :'api')) AS past_expiry;
SELECT regress.err(format($$SELECT unkey.unkey_create_key(%L, name => repeat('n', 255), permissions => '{}', roles => '{}', ratelimits => '[]')$$, :'api')) AS edges;

-- invalid arguments: each raises its SQLSTATE and writes nothing
SELECT count(*) AS keys_before FROM unkey.keys \gset
SELECT a, regress.err(format('SELECT unkey.unkey_create_key(%L, %s)', :'api', a)) FROM unnest(ARRAY[
	$$name => ''$$,
	$$name => repeat('n', 256)$$,
	$$external_id => ''$$,
	$$external_id => 'has space'$$,
	$$external_id => repeat('e', 256)$$,
	$$meta => '[1, 2]'$$,
	$$meta => '"text"'$$,
	$$meta => jsonb_build_object('big', repeat('x', 1048576))$$,
	$$credits => -1$$,
	$$refill_interval => 'weekly', refill_amount => 1, credits => 1$$,
	$$refill_interval => 'daily', credits => 1$$,
	$$refill_amount => 5, credits => 1$$,
	$$refill_interval => 'daily', refill_amount => 5$$,
	$$refill_interval => 'daily', refill_amount => 0, credits => 1$$,
	$$refill_interval => 'monthly', refill_amount => 5, credits => 1$$,
	$$refill_interval => 'daily', refill_amount => 5, credits => 1, refill_day => 3$$,
	$$refill_day => 3, credits => 1$$,
	$$refill_interval => 'monthly', refill_amount => 5, credits => 1, refill_day => 0$$,
	$$refill_interval => 'monthly', refill_amount => 5, credits => 1, refill_day => 32$$,
	$$ratelimits => '{"name": "requests"}'$$,
	$$ratelimits => '[1]'$$,
	$$ratelimits => '[{"name": "rq", "limit": 1, "duration": 1000}]'$$,
	$$ratelimits => '[{"limit": 1, "duration": 1000}]'$$,
	$$ratelimits => '[{"name": "requests", "limit": 0, "duration": 1000}]'$$,
	$$ratelimits => '[{"name": "requests", "limit": 1.5, "duration": 1000}]'$$,
	$$ratelimits => '[{"name": "requests", "limit": "10", "duration": 1000}]'$$,
	$$ratelimits => '[{"name": "requests", "limit": 1, "duration": 999}]'$$,
	$$ratelimits => '[{"name": "requests", "limit": 1, "duration": 2592000001}]'$$,
	$$ratelimits => '[{"name": "requests", "limit": 1, "duration": 1000, "autoApply": "yes"}]'$$,
	$$ratelimits => '[{"name": "requests", "limit": 1, "duration": 1000, "extra": 1}]'$$,
	$$ratelimits => '[{"name": "requests", "limit": 1, "duration": 1000}, {"name": "requests", "limit": 2, "duration": 1000}]'$$,
	$$roles => '{reader, ghost}'$$,
	$$roles => ARRAY[NULL]::text[]$$,
	$$permissions => '{"has space"}'$$,
	$$permissions => ARRAY['p' || repeat('.', 128)]$$,
	$$permissions => ARRAY['ok', NULL]$$,
	$$enabled => NULL$$,
	$$recoverable => true$$
]) a;
SELECT regress.err($$SELECT unkey.unkey_create_key('api_missing')$$) AS unknown_api;
SELECT regress.err($$SELECT unkey.unkey_create_key(NULL)$$) AS null_api;
SELECT count(*) = :keys_before AS nothing_written FROM unkey.keys;
SELECT count(*) AS no_stray_identity FROM unkey.identities WHERE external_id IN ('has space', '');
SELECT count(*) AS no_stray_permission FROM unkey.permissions WHERE slug = 'ok';
