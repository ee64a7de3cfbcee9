-- migrate: import keys by hash; the original plaintexts then verify
SET unkey.test_now = '2030-01-15 12:00:00+00';
SET timezone = 'UTC';
SELECT unkey.unkey_create_api('migrate') AS api \gset
SELECT unkey.unkey_create_role('migrated role', permissions => ARRAY['m.role']) IS NOT NULL AS role_created;
-- keys issued elsewhere, known here only by their SHA-256 (computed with pgcrypto, not by us)
CREATE TEMP TABLE legacy (label text PRIMARY KEY, plaintext text, hash text);
INSERT INTO legacy VALUES
	('a base64', 'legacy_live_aaaaaaaaaaaaaaaa', NULL),
	('b hex', 'legacy_live_bbbbbbbbbbbbbbbb', NULL),
	('c everything', 'sk_test_cccccccccccccccc', NULL),
	('d hex upper', 'no-prefix-at-all-dddd', NULL);
UPDATE legacy SET hash = CASE
	WHEN label LIKE '%base64' OR label LIKE 'c %' THEN encode(digest(plaintext, 'sha256'), 'base64')
	WHEN label LIKE '%upper' THEN upper(encode(digest(plaintext, 'sha256'), 'hex'))
	ELSE encode(digest(plaintext, 'sha256'), 'hex') END;
-- the hash we would compute is the one Unkey shows
SELECT bool_and(unkey.unkey_hash_key(plaintext) = encode(digest(plaintext, 'sha256'), 'base64')) AS same_hash FROM legacy;

SELECT unkey.unkey_migrate_keys(:'api', (
	SELECT jsonb_agg(CASE WHEN label LIKE 'c %' THEN jsonb_build_object('hash', hash,
		'name', 'imported', 'external_id', 'migrate-customer', 'meta', '{"from": "unkey"}'::jsonb,
		'roles', '["migrated role"]'::jsonb, 'permissions', '["m.direct"]'::jsonb,
		'expires', '2031-01-01T00:00:00Z', 'enabled', true, 'credits', 5,
		'refill_interval', 'daily', 'refill_amount', 5,
		'ratelimits', '[{"name": "requests", "limit": 2, "duration": 60000, "autoApply": true}]'::jsonb)
		ELSE jsonb_build_object('hash', hash) END ORDER BY label)
	  FROM legacy)) AS result \gset
-- migrated is [{hash, keyId}] in input order; nothing failed
SELECT jsonb_array_length((:'result'::unkey.migration_result).migrated) AS migrated,
	   (:'result'::unkey.migration_result).failed AS failed;
SELECT l.label, m ->> 'keyId' ~ '^key_' AS key_id_shape
  FROM jsonb_array_elements((:'result'::unkey.migration_result).migrated) WITH ORDINALITY e(m, n)
  JOIN legacy l ON l.hash = m ->> 'hash' ORDER BY e.n;

-- the original plaintexts verify VALID, with what was imported
SELECT l.label, v.code, v.key_id = m ->> 'keyId' AS same_key, v.name, v.external_id, v.meta, v.credits,
	   v.permissions, v.roles, v.expires, v.ratelimits -> 0 ->> 'remaining' AS rl_remaining
  FROM legacy l
  JOIN jsonb_array_elements((:'result'::unkey.migration_result).migrated) m ON m ->> 'hash' = l.hash,
	   unkey.unkey_verify_key(l.plaintext) v
 ORDER BY l.label;
-- a migrated key has no start or prefix (we never saw it), and is found by its hash
SELECT start, prefix, refill_interval, refill_amount, last_refill_at
  FROM unkey.unkey_get_key_by_hash((SELECT hash FROM legacy WHERE label LIKE 'c %'));
SELECT count(*) AS found_by_either_form FROM legacy l, unkey.unkey_get_key_by_hash(l.hash) g;
-- another plaintext of the same shape is still NOT_FOUND
SELECT code FROM unkey.unkey_verify_key('legacy_live_aaaaaaaaaaaaaaab');

-- a second import: hashes that exist (in either form, or twice in the list) and malformed ones fail alone
SELECT x.migrated_hashes, r.failed FROM unkey.unkey_migrate_keys(:'api', jsonb_build_array(
	jsonb_build_object('hash', (SELECT hash FROM legacy WHERE label LIKE 'a %')),
	jsonb_build_object('hash', encode(digest('legacy_live_aaaaaaaaaaaaaaaa', 'sha256'), 'hex')),
	jsonb_build_object('hash', 'not-a-hash'),
	jsonb_build_object('hash', 'AAAA'),
	jsonb_build_object('hash', encode(digest('x', 'sha256'), 'base64') || 'x'),
	jsonb_build_object('hash', encode(digest('fresh legacy key', 'sha256'), 'base64'), 'name', 'fresh'),
	jsonb_build_object('hash', encode(digest('fresh legacy key', 'sha256'), 'hex'), 'name', 'fresh twice'))) r
  CROSS JOIN LATERAL (SELECT jsonb_path_query_array(r.migrated, '$[*].hash') AS migrated_hashes) x;
SELECT code, name FROM unkey.unkey_verify_key('fresh legacy key');

-- a failed key writes nothing of its own: not even the identity it names,
-- nor, when no key of the call was migrated, an audit row
SELECT count(*) AS audit_before FROM unkey.audit_log \gset
SELECT x.failed FROM unkey.unkey_migrate_keys(:'api', jsonb_build_array(
	jsonb_build_object('hash', (SELECT hash FROM legacy WHERE label LIKE 'b %'), 'external_id', 'migrate-orphan'))) x;
SELECT count(*) AS orphan_identities FROM unkey.identities WHERE external_id = 'migrate-orphan';
SELECT count(*) - :audit_before AS audit_rows_added FROM unkey.audit_log;

-- errors raise, name the key at fault, and then nothing of the call is kept
SELECT count(*) AS keys_before FROM unkey.keys WHERE api_id = :'api' \gset
SELECT regress.err(format('SELECT unkey.unkey_migrate_keys(%L, %L)', :'api', k)) AS error
  FROM unnest(ARRAY[
	'[]', '{}', '[1]', '[{"name": "no hash"}]', '[{"hash": 5}]',
	'[{"hash": "' || encode(digest('e1', 'sha256'), 'hex') || '", "colour": "red"}]',
	'[{"hash": "' || encode(digest('e2', 'sha256'), 'hex') || '"}, {"hash": "' || encode(digest('e3', 'sha256'), 'hex') || '", "credits": -1}]',
	'[{"hash": "' || encode(digest('e4', 'sha256'), 'hex') || '", "roles": ["no such role"]}]',
	'[{"hash": "' || encode(digest('e5', 'sha256'), 'hex') || '", "refill_interval": "monthly", "refill_amount": 1, "credits": 1}]']) k;
SELECT regress.err($$SELECT unkey.unkey_migrate_keys('api_missing', '[{"hash": "x"}]')$$);
SELECT regress.err(format('SELECT unkey.unkey_migrate_keys(%L, NULL)', :'api'));
SELECT regress.err(format('SELECT unkey.unkey_migrate_keys(%L, %L)', :'api',
	(SELECT jsonb_agg(jsonb_build_object('hash', encode(digest(i::text, 'sha256'), 'hex'))) FROM generate_series(1, 1001) i)));
SELECT count(*) - :keys_before AS keys_added_by_errors FROM unkey.keys WHERE api_id = :'api';
SELECT code FROM unkey.unkey_verify_key('e2');
DROP TABLE legacy;
RESET unkey.test_now;
RESET timezone;
