-- plaintext: no key, nor the random part of one, is ever stored in any
-- column of any table of the extension; a scanner looks through all of them

-- the clock is pinned so that credits and refills print the same every run
SET unkey.test_now = '2030-01-15 12:00:00+00';

-- every key this test sees, and the random part after its prefix
CREATE TEMP TABLE plaintexts (label text PRIMARY KEY, key_id text, prefix text, key text NOT NULL,
	random text GENERATED ALWAYS AS (
		CASE WHEN prefix IS NULL THEN key ELSE substr(key, char_length(prefix) + 2) END) STORED);

SELECT unkey.unkey_create_api('plaintext', default_prefix => 'pt', default_byte_length => 24) AS api_id \gset
SELECT unkey.unkey_create_api('plaintext raw') AS raw_api_id \gset
INSERT INTO unkey.roles (id, name, created_at)
VALUES ('role_regress_plaintext', 'regress_plaintext_role', unkey.now());

-- keys of different prefixes and lengths, with everything a key can carry
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k1 default prefix, 24 bytes', key_id, 'pt', key
  FROM unkey.unkey_create_key(:'api_id', name => 'k1', meta => '{"tier": "gold"}',
	external_id => 'regress-plaintext', permissions => ARRAY['pt.read', 'pt.write'],
	credits => 10, ratelimits => '[{"name": "requests", "limit": 10, "duration": 60000}]');
INSERT INTO unkey.role_permissions (role_id, permission_id)
SELECT 'role_regress_plaintext', id FROM unkey.permissions WHERE slug = 'pt.read';
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k2 prefix sk_live, 16 bytes', key_id, 'sk_live', key
  FROM unkey.unkey_create_key(:'api_id', prefix => 'sk_live', byte_length => 16,
	external_id => 'regress-plaintext', credits => 5, refill_interval => 'daily',
	refill_amount => 5);
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k3 prefix x, 255 bytes', key_id, 'x', key
  FROM unkey.unkey_create_key(:'api_id', prefix => 'x', byte_length => 255,
	meta => '{"nested": {"list": [1, 2, 3]}}', credits => 100,
	refill_interval => 'monthly', refill_amount => 50, refill_day => 1);
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k4 no prefix, 32 bytes', key_id, NULL, key
  FROM unkey.unkey_create_key(:'raw_api_id', byte_length => 32,
	roles => ARRAY['regress_plaintext_role'], expires => '2031-01-01 00:00:00+00');
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k5 soft deleted', key_id, 'pt', key
  FROM unkey.unkey_create_key(:'api_id', name => 'k5', permissions => ARRAY['pt.read']);
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k6 permanently deleted', key_id, 'del', key
  FROM unkey.unkey_create_key(:'api_id', prefix => 'del', credits => 3,
	permissions => ARRAY['pt.write'], ratelimits => '[{"name": "burst", "limit": 1, "duration": 1000}]');
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k7 disabled', key_id, 'pt', key
  FROM unkey.unkey_create_key(:'api_id', enabled => false, external_id => 'regress-plaintext-2');
-- a presented key that is one character off k1: it must not be stored either
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k8 near miss of k1', NULL, 'pt',
       left(key, -1) || CASE WHEN right(key, 1) = 'z' THEN 'y' ELSE 'z' END
  FROM plaintexts WHERE label LIKE 'k1 %';
-- error cases create nothing
SELECT regress.err(format('SELECT unkey.unkey_create_key(%L, prefix => %L)', :'api_id', 'bad prefix'));
SELECT regress.err(format('SELECT unkey.unkey_create_key(%L, byte_length => 15)', :'api_id'));

-- the keys are well formed (nothing random printed)
SELECT label, prefix, starts_with(key, coalesce(prefix || '_', '')) AS has_prefix,
       random ~ '^[1-9A-HJ-NP-Za-km-z]+$' AS random_is_base58,
       char_length(random) >= 16 AS random_is_long
  FROM plaintexts ORDER BY label;

-- rate-limit configs, a namespace and an override, so that no table is empty
SELECT unkey.unkey_set_identity_ratelimit('regress-plaintext', 'tokens', 100, '1 hour');
SELECT success FROM unkey.unkey_ratelimit('regress-plaintext', 'user_1', 10, '1 minute');
SELECT unkey.unkey_set_override('regress-plaintext', 'user_*', 20, '1 minute') IS NOT NULL AS override_set;

-- the lifecycle functions: a reroll, an update, an import by hash, an identity
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k9 reroll of k1', r.key_id, 'pt', r.key
  FROM plaintexts p, unkey.unkey_reroll_key(p.key_id, '1 hour') r WHERE p.label LIKE 'k1 %';
SELECT name FROM plaintexts p, unkey.unkey_update_key(p.key_id, '{"name": "k2 updated", "credits": 4}') u
 WHERE p.label LIKE 'k2 %';
SELECT jsonb_array_length(migrated) AS migrated FROM unkey.unkey_migrate_keys(:'raw_api_id',
	jsonb_build_array(jsonb_build_object('hash', encode(digest('pt_imported_plaintext_key_0123456789', 'sha256'), 'hex'))));
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k10 imported by hash', key_id, 'pt', 'pt_imported_plaintext_key_0123456789'
  FROM unkey.unkey_whoami('pt_imported_plaintext_key_0123456789');
SELECT unkey.unkey_create_identity('regress-plaintext-3', meta => '{"k": "v"}') IS NOT NULL AS identity_created;
-- recoverable keys: a ciphertext beside the hash (created, rerolled, imported as plaintext)
SELECT unkey.unkey_create_api('plaintext vault') AS vault_api_id \gset
SELECT unkey.unkey_set_api_recoverable(:'vault_api_id', true);
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k11 recoverable', key_id, 'rc', key
  FROM unkey.unkey_create_key(:'vault_api_id', prefix => 'rc', recoverable => true, credits => 7);
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k12 reroll of k11', r.key_id, 'rc', r.key
  FROM plaintexts p, unkey.unkey_reroll_key(p.key_id, '1 hour') r WHERE p.label LIKE 'k11 %';
SELECT jsonb_array_length(migrated) AS migrated FROM unkey.unkey_migrate_keys(:'vault_api_id',
	'[{"plaintext": "rc_migrated_plaintext_key_0123456789", "name": "k13"}]');
INSERT INTO plaintexts (label, key_id, prefix, key)
SELECT 'k13 imported as plaintext', key_id, 'rc', 'rc_migrated_plaintext_key_0123456789'
  FROM unkey.unkey_whoami('rc_migrated_plaintext_key_0123456789');
SELECT p.label, g.plaintext = p.key AS recovered
  FROM plaintexts p, unkey.unkey_get_key(p.key_id, decrypt => true) g WHERE p.label ~ '^k1[123] ' ORDER BY p.label;
-- the gateway: its settings, a route, and a request through it (cost 0: no credit moves)
SELECT unkey.unkey_gateway_configure(:'api_id');
SELECT unkey.unkey_gateway_set_route('*', '/rpc/plaintext', cost => 0);
BEGIN;
SELECT set_config('request.method', 'POST', true), set_config('request.path', '/rpc/plaintext', true),
	   set_config('request.headers', json_build_object('x-api-key', key)::text, true) IS NOT NULL AS request_set
  FROM plaintexts WHERE label LIKE 'k2 %' \gset
SELECT unkey.pre_request();
SELECT current_setting('request.unkey.external_id') AS gateway_caller;
COMMIT;
-- a retention far enough back to drop nothing, so that its table is not empty either
SELECT unkey.unkey_set_retention('100 years');

-- verify every key
SELECT p.label, v.valid, v.code, v.key_id IS NOT DISTINCT FROM p.key_id AS same_id,
       v.credits, v.external_id, v.meta, v.permissions, v.roles
  FROM plaintexts p, unkey.unkey_verify_key(p.key, tags => ARRAY['plaintext', left(p.label, 2)]) v
 ORDER BY p.label;

-- delete one key softly and one permanently; both then verify as NOT_FOUND
SELECT unkey.unkey_delete_key(key_id) FROM plaintexts WHERE label LIKE 'k5 %';
SELECT unkey.unkey_delete_key(key_id, permanent => true) FROM plaintexts WHERE label LIKE 'k6 %';
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L)', key_id)) FROM plaintexts WHERE label LIKE 'k5 %';
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L, true)', key_id)) FROM plaintexts WHERE label LIKE 'k6 %';
SELECT p.label, v.valid, v.code, v.key_id IS NULL AS no_key_id
  FROM plaintexts p, unkey.unkey_verify_key(p.key, tags => ARRAY['plaintext', 'deleted']) v
 WHERE p.label LIKE 'k5 %' OR p.label LIKE 'k6 %'
 ORDER BY p.label;

-- the verifications were recorded (once the buffered events are written)
SELECT FROM unkey.unkey_flush_events();
SELECT outcome, count(*) FROM unkey.verification_events
 WHERE 'plaintext' = ANY (tags) GROUP BY outcome ORDER BY outcome;

----------------------------------------------------------------------------
-- the scanner: for every column of every table in a schema, how many rows
-- hold a plaintext key or its random part, in the column's text form or,
-- for bytea, as bytes inside the value
----------------------------------------------------------------------------
CREATE FUNCTION pg_temp.plaintext_scan(nsp regnamespace)
RETURNS TABLE (tab text, col text, typ text, row_count bigint, hits bigint)
LANGUAGE plpgsql AS $$
DECLARE
	c record;
	bytes_test text;
BEGIN
	FOR c IN
		SELECT cl.oid::regclass AS relid, cl.relname::text AS relname,
			   a.attname::text AS attname, format_type(a.atttypid, a.atttypmod) AS typname,
			   a.atttypid = 'bytea'::regtype AS is_bytea
		  FROM pg_class cl
		  JOIN pg_attribute a ON a.attrelid = cl.oid
		 WHERE cl.relnamespace = nsp
		   AND cl.relkind IN ('r', 'p') AND NOT cl.relispartition	-- a parent's scan covers its partitions
		   AND a.attnum > 0 AND NOT a.attisdropped
		 ORDER BY cl.relname, a.attnum
	LOOP
		bytes_test := CASE WHEN c.is_bytea THEN format(
			' OR position(convert_to(p.key, ''UTF8'') IN t.%1$I) > 0'
			' OR position(convert_to(p.random, ''UTF8'') IN t.%1$I) > 0', c.attname) ELSE '' END;
		tab := c.relname;
		col := c.attname;
		typ := c.typname;
		EXECUTE format(
			'SELECT count(*), count(*) FILTER (WHERE EXISTS (
				SELECT FROM pg_temp.plaintexts p
				 WHERE strpos(t.%1$I::text, p.key) > 0
				    OR strpos(t.%1$I::text, p.random) > 0%2$s))
			   FROM %3$s t',
			c.attname, bytes_test, c.relid)
		INTO row_count, hits;
		RETURN NEXT;
	END LOOP;
END
$$;

-- positive control: a scratch schema whose columns do hold keys
CREATE SCHEMA regress_plaintext_scratch;
CREATE TABLE regress_plaintext_scratch.sink (id integer, note text, blob bytea, doc jsonb, list text[]);
INSERT INTO regress_plaintext_scratch.sink (id, note)
SELECT 1, 'the key ' || key || ' in a sentence' FROM plaintexts WHERE label LIKE 'k1 %';
INSERT INTO regress_plaintext_scratch.sink (id, blob)
SELECT 2, convert_to('<<' || random || '>>', 'UTF8') FROM plaintexts WHERE label LIKE 'k2 %';
INSERT INTO regress_plaintext_scratch.sink (id, blob)
SELECT 3, '\x00ff'::bytea || convert_to(key, 'UTF8') || '\x00'::bytea FROM plaintexts WHERE label LIKE 'k3 %';
INSERT INTO regress_plaintext_scratch.sink (id, doc)
SELECT 4, jsonb_build_object('token', random) FROM plaintexts WHERE label LIKE 'k4 %';
INSERT INTO regress_plaintext_scratch.sink (id, list)
SELECT 5, ARRAY['x', key] FROM plaintexts WHERE label LIKE 'k8 %';
-- what the extension does store, the key's start, is not a hit
INSERT INTO regress_plaintext_scratch.sink (id, note)
SELECT 6, left(key, char_length(prefix) + 5) FROM plaintexts WHERE label LIKE 'k1 %';
INSERT INTO regress_plaintext_scratch.sink VALUES (7, 'nothing here', '\x00', '{}', '{}');
SELECT tab, col, typ, row_count, hits
  FROM pg_temp.plaintext_scan('regress_plaintext_scratch') ORDER BY tab, col;

-- the extension's tables: every column of every table, and no hit at all
SELECT count(DISTINCT tab) AS tables_scanned,
       count(*) AS columns_scanned,
       count(DISTINCT tab) FILTER (WHERE row_count = 0) AS empty_tables,
       sum(hits) AS hits
  FROM pg_temp.plaintext_scan('unkey');
SELECT count(*) AS columns_in_catalog
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND a.attnum > 0 AND NOT a.attisdropped;
SELECT tab, col, hits FROM pg_temp.plaintext_scan('unkey') WHERE hits > 0 ORDER BY tab, col;
-- the bytea columns are among them
SELECT tab, col FROM pg_temp.plaintext_scan('unkey') WHERE typ = 'bytea' ORDER BY tab, col;

-- clean up
SELECT unkey.unkey_set_retention(NULL);
DROP SCHEMA regress_plaintext_scratch CASCADE;
DROP FUNCTION pg_temp.plaintext_scan(regnamespace);
DROP TABLE plaintexts;
RESET unkey.test_now;
