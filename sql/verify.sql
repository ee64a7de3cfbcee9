-- verify: every outcome, the order of checks, the IP whitelist, the result row
SET timezone = 'UTC';
-- start from no events: write what earlier tests buffered, then empty the table
SELECT FROM unkey.unkey_flush_events();
TRUNCATE unkey.verification_events;
SET unkey.test_now = '2026-03-10 12:00:00+00';

SELECT unkey.unkey_create_api('verify') AS api \gset
SELECT unkey.unkey_create_api('other') AS other \gset
SELECT unkey.unkey_create_api('walled', ip_whitelist => '{10.0.0.0/8, 192.168.1.7, 2001:db8::/32}') AS walled \gset

CREATE TEMP TABLE k (label text PRIMARY KEY, key_id text, key text);
INSERT INTO k SELECT 'valid', * FROM unkey.unkey_create_key(:'api', prefix => 'vk', name => 'good', external_id => 'cust_1',
	meta => '{"tier": "gold"}', expires => '2026-03-10 12:00:00+00', credits => 5, permissions => '{b.read, a.read}');
INSERT INTO k SELECT 'disabled', * FROM unkey.unkey_create_key(:'api', enabled => false, credits => 0,
	expires => '2026-01-01', name => 'disabled and expired and out of credits');
INSERT INTO k SELECT 'expired', * FROM unkey.unkey_create_key(:'api', expires => '2026-03-10 11:59:59.999999+00', credits => 0);
INSERT INTO k SELECT 'walled', * FROM unkey.unkey_create_key(:'walled', credits => 0);
INSERT INTO k SELECT 'walled_ok', * FROM unkey.unkey_create_key(:'walled');
INSERT INTO k SELECT 'empty', * FROM unkey.unkey_create_key(:'api', credits => 0);
INSERT INTO k SELECT 'unlimited', * FROM unkey.unkey_create_key(:'api');

-- every outcome this release can produce; only NOT_FOUND hides the key's data
SELECT k.label, v.valid, v.code, v.key_id = k.key_id AS right_key, v.credits
  FROM k, LATERAL unkey.unkey_verify_key(k.key, ip => '172.16.0.1') v ORDER BY k.label;
SELECT * FROM unkey.unkey_verify_key('vk_not_a_key');

-- the full row of a valid key: permissions sorted, credits after this call
SELECT valid, code, key_id = (SELECT key_id FROM k WHERE label = 'valid') AS key_id_ok,
	   api_id = :'api' AS api_id_ok, name, external_id, identity_id ~ '^id_' AS identity_ok,
	   meta, expires, enabled, credits, permissions, roles, ratelimits
  FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'valid'));

-- permissions come directly and through roles, de-duplicated and sorted bytewise
INSERT INTO unkey.roles (id, name, created_at) VALUES ('role_v1', 'viewer', now()), ('role_v2', 'Editor', now());
INSERT INTO unkey.permissions (id, name, slug, created_at)
VALUES ('perm_v1', 'x', 'z.write', now()), ('perm_v2', 'x', 'B.read', now());
INSERT INTO unkey.role_permissions (role_id, permission_id)
SELECT 'role_v1', id FROM unkey.permissions WHERE slug IN ('a.read', 'z.write')
UNION ALL SELECT 'role_v2', id FROM unkey.permissions WHERE slug IN ('B.read', 'z.write');
INSERT INTO k SELECT 'granted', * FROM unkey.unkey_create_key(:'api', roles => '{viewer, Editor}', permissions => '{a.read}');
SELECT code, permissions, roles FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'granted'));

-- order of checks: DISABLED before EXPIRED before FORBIDDEN before USAGE_EXCEEDED
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'disabled'));
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'expired'));
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'walled'), ip => '8.8.8.8');
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'walled'), ip => '10.1.2.3');
-- a key of another API, or of a deleted one, is NOT_FOUND before anything else
SELECT code, key_id IS NULL AS no_data FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'disabled'), api_id => :'other');
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'unlimited'), api_id => :'api');
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'unlimited'), api_id => 'api_missing');

-- expiry is strict: valid at exactly expires, expired a microsecond later
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'valid'), cost => 0);
SET unkey.test_now = '2026-03-10 12:00:00.000001+00';
SELECT code, credits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'valid'));
SET unkey.test_now = '2026-03-10 12:00:00+00';

-- the IP whitelist holds addresses and CIDR ranges, v4 and v6; no IP is FORBIDDEN
SELECT ip, (unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'walled_ok'), ip => ip::inet)).code
  FROM unnest(ARRAY['10.0.0.1', '10.255.255.255', '11.0.0.1', '192.168.1.7', '192.168.1.8',
					'2001:db8::1', '2001:db9::1', '::1', '::ffff:10.0.0.1']) ip;
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'walled_ok'));
-- an API without a whitelist ignores the IP
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'unlimited'), ip => '8.8.8.8');

-- invalid arguments raise (with the SQLSTATE) instead of answering
SELECT a, regress.err(format('SELECT unkey.unkey_verify_key(%s)', a)) FROM unnest(ARRAY[
	$$NULL$$,
	$$''$$,
	$$repeat('k', 513)$$,
	$$'k', cost => -1$$,
	$$'k', cost => NULL$$,
	$$'k', tags => array_fill('t'::text, ARRAY[21])$$,
	$$'k', tags => ARRAY['']$$,
	$$'k', tags => ARRAY[repeat('t', 513)]$$,
	$$'k', tags => ARRAY['a', NULL]$$,
	$$'k', tags => ARRAY[ARRAY['a'], ARRAY['b']]$$,
	$$'k', permissions => 'a.read AND'$$,
	$$'k', ratelimits => '{}'$$
]) a;
-- the boundaries themselves are accepted
SELECT code FROM unkey.unkey_verify_key(repeat('k', 512), tags => array_fill(repeat('t', 512), ARRAY[20]));
-- lengths are in characters, not bytes: 512 two-byte characters pass, 513 do not
SELECT code FROM unkey.unkey_verify_key(repeat('é', 512), tags => ARRAY[repeat('é', 512)]);
SELECT regress.err($$SELECT unkey.unkey_verify_key(repeat('é', 513))$$);
SELECT regress.err($$SELECT unkey.unkey_verify_key('k', tags => ARRAY[repeat('é', 513)])$$);

-- every verification is recorded with its outcome, tags and the hash of what was presented
SELECT code FROM unkey.unkey_verify_key('nope', tags => '{path=/v1/x, region=eu}');
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'unlimited'), tags => '{first}');
SELECT FROM unkey.unkey_flush_events();
SELECT outcome, key_id IS NULL AS no_key_id, api_id IS NULL AS no_api_id, tags, spent_credits,
	   key_hash = digest('nope', 'sha256') AS hash_of_presented,
	   time = '2026-03-10 12:00:00+00' AS pinned_time
  FROM unkey.verification_events
 WHERE key_hash = digest('nope', 'sha256') OR tags = '{first}' ORDER BY outcome;
SELECT outcome, count(*) FROM unkey.verification_events GROUP BY outcome ORDER BY outcome;
RESET unkey.test_now;
