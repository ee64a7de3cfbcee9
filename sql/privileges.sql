-- privileges: nothing in the extension is usable by PUBLIC, the README
-- grants give each kind of role exactly what it needs, and the test clock
-- is for superusers only

-- every function that belongs to the extension
CREATE TEMP VIEW ext_functions AS
SELECT p.oid::regprocedure::text AS func, p.proname, p.proacl, p.prosecdef,
       l.lanname, p.proconfig, p.prokind
  FROM pg_depend d
  JOIN pg_extension e ON e.oid = d.refobjid
  JOIN pg_proc p ON p.oid = d.objid
  JOIN pg_language l ON l.oid = p.prolang
 WHERE d.classid = 'pg_proc'::regclass
   AND d.refclassid = 'pg_extension'::regclass
   AND d.deptype = 'e'
   AND e.extname = 'unkey';

-- how many functions the checks below look at (a check of nothing shows 0)
SELECT count(*) AS functions_checked,
       count(*) FILTER (WHERE prosecdef) AS security_definer,
       count(*) FILTER (WHERE lanname = 'plpgsql') AS plpgsql,
       count(*) FILTER (WHERE lanname = 'c') AS c
  FROM ext_functions;

-- no function has the default ACL (NULL = EXECUTE for PUBLIC) ...
SELECT func AS default_acl FROM ext_functions WHERE proacl IS NULL ORDER BY func;
-- ... nor an explicit grant to PUBLIC (grantee 0)
SELECT DISTINCT func AS executable_by_public
  FROM ext_functions, aclexplode(proacl) a
 WHERE a.grantee = 0
 ORDER BY func;
-- so PUBLIC cannot execute any of them
SELECT func AS public_can_execute
  FROM ext_functions
 WHERE has_function_privilege('public', func::regprocedure, 'EXECUTE')
 ORDER BY func;

-- every function is in C, SQL or PL/pgSQL (an aggregate's functions are)
SELECT func AS other_language, lanname FROM ext_functions
 WHERE lanname NOT IN ('c', 'sql', 'plpgsql') AND prokind <> 'a' ORDER BY func;
-- the rule: every SECURITY DEFINER function and every SQL or PL/pgSQL
-- function pins its search_path (and sets nothing else but jit, work_mem and
-- plan_cache_mode) ...
SELECT func AS unpinned_search_path, proconfig
  FROM ext_functions
 WHERE (prosecdef OR lanname IN ('plpgsql', 'sql'))
   AND (proconfig IS NULL OR proconfig[1] IS DISTINCT FROM 'search_path=pg_catalog, pg_temp'
		OR EXISTS (SELECT FROM unnest(proconfig[2:]) c
				   WHERE c NOT IN ('jit=off', 'work_mem=64MB', 'plan_cache_mode=force_custom_plan')))
 ORDER BY func;
-- the analytics function compiles nothing (JIT costs more than its query),
-- sorts and groups its tens of thousands of rows in memory, and plans each
-- call with its arguments as constants
SELECT func, proconfig FROM ext_functions WHERE proconfig <> '{"search_path=pg_catalog, pg_temp"}'::text[];
-- ... and the C functions that run as their caller set nothing, so that a
-- call pays no GUC save and restore.  They run no SQL as the caller and
-- resolve no name through its search_path: they read tables by OID from C
-- (tables.c) or shared memory, and the SQL of their rare paths (a namespace
-- created on first use, an event written inline) runs as the extension's
-- owner with a pinned search_path (the hijack test calls unkey_ratelimit
-- under a hostile search_path).  unkey_get_key and unkey_list_keys check
-- as their caller that one who asks to decrypt is a member of
-- unkey_decrypt, then run their PL/pgSQL body (unkey._get_key, _list_keys)
-- as the owner, the same way; the _vault_ functions are for the owner
-- only.  This is the exact list: a C function that appears here must have
-- been checked for that, or be SECURITY DEFINER
SELECT func AS c_as_caller, proconfig IS NULL AS sets_nothing
  FROM ext_functions WHERE lanname = 'c' AND NOT prosecdef ORDER BY func COLLATE "C";

-- no function can be captured by an overload: none is VARIADIC, and none
-- takes a polymorphic or pseudo type (anyelement, "any", unknown, ...)
SELECT p.oid::regprocedure AS capturable
  FROM pg_proc p
 WHERE p.pronamespace = 'unkey'::regnamespace
   AND (p.provariadic <> 0
		OR EXISTS (SELECT FROM unnest(p.proargtypes::oid[]) a JOIN pg_type t ON t.oid = a WHERE t.typtype = 'p'))
 ORDER BY 1;

-- the entry points that run with the owner's rights
SELECT func AS security_definer, lanname
  FROM ext_functions WHERE prosecdef ORDER BY func COLLATE "C";

-- schema unkey: PUBLIC can neither look up nor create anything in it
SELECT has_schema_privilege('public', 'unkey', 'USAGE') AS public_usage,
       has_schema_privilege('public', 'unkey', 'CREATE') AS public_create;
SELECT count(*) AS public_schema_acl_entries
  FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE n.nspname = 'unkey' AND a.grantee = 0;

-- no relation in unkey grants anything to PUBLIC, on the table or a column
-- (the event partitions, created as events arrive, are checked too, but not counted)
SELECT count(*) FILTER (WHERE NOT c.relispartition) AS relations_checked,
       count(*) FILTER (WHERE c.relispartition) > 0 AS partitions_checked
  FROM pg_class c WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f');
SELECT c.oid::regclass AS public_table_privilege
  FROM pg_class c
 WHERE c.relnamespace = 'unkey'::regnamespace
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND (has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
        OR has_any_column_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))
 ORDER BY 1;

----------------------------------------------------------------------------
-- the README grants
----------------------------------------------------------------------------
CREATE ROLE regress_verifier;
CREATE ROLE regress_admin;
CREATE ROLE regress_nobody;

GRANT USAGE ON SCHEMA unkey TO regress_verifier;
GRANT EXECUTE ON FUNCTION unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet) TO regress_verifier;

GRANT USAGE ON SCHEMA unkey TO regress_admin;
GRANT EXECUTE ON FUNCTION unkey.unkey_create_api(text, text[], boolean, text, integer), unkey.unkey_get_api(text), unkey.unkey_set_api_delete_protection(text, boolean), unkey.unkey_delete_api(text), unkey.unkey_create_key(text, text, integer, text, text, jsonb, timestamptz, bigint, text, bigint, integer, jsonb, text[], text[], boolean, boolean), unkey.unkey_delete_key(text, boolean), unkey.unkey_refill_keys(), unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet), unkey.unkey_hash_key(text) TO regress_admin;

-- the admin manages APIs and keys through the functions alone
SET ROLE regress_admin;
SELECT unkey.unkey_create_api('privileges') AS api_id \gset
SELECT name, delete_protection FROM unkey.unkey_get_api(:'api_id');
SELECT unkey.unkey_set_api_delete_protection(:'api_id', true);
SELECT regress.err(format('SELECT unkey.unkey_delete_api(%L)', :'api_id'));
SELECT key_id, key FROM unkey.unkey_create_key(:'api_id', prefix => 'priv', credits => 10) \gset
SELECT key_id AS doomed_key_id FROM unkey.unkey_create_key(:'api_id') \gset
SELECT unkey.unkey_hash_key(:'key') = encode(sha256(convert_to(:'key', 'UTF8')), 'base64') AS hash_key_ok;
SELECT unkey.unkey_refill_keys() >= 0 AS refill_ok;
SELECT valid, code, credits FROM unkey.unkey_verify_key(:'key', cost => 0);
SELECT unkey.unkey_delete_key(:'doomed_key_id');
-- but not the tables, nor the private helpers
SELECT regress.err('SELECT count(*) FROM unkey.keys');
SELECT regress.err('SELECT count(*) FROM unkey.apis');
SELECT regress.err($$SELECT unkey._generate_key('x', 16)$$);
SELECT regress.err('SELECT unkey.now()');
RESET ROLE;

-- the verifier verifies ...
SET ROLE regress_verifier;
SELECT valid, code, key_id = :'key_id' AS same_key, api_id = :'api_id' AS same_api, credits
  FROM unkey.unkey_verify_key(:'key');
SELECT valid, code, key_id = :'key_id' AS same_key, credits
  FROM unkey.unkey_verify_key(:'key', :'api_id', tags => ARRAY['privileges']);
SELECT valid, code FROM unkey.unkey_verify_key(:'key' || 'x', :'api_id');
-- ... and can do nothing else
SELECT regress.err($$SELECT unkey.unkey_create_api('verifier')$$);
SELECT regress.err(format('SELECT unkey.unkey_get_api(%L)', :'api_id'));
SELECT regress.err(format('SELECT unkey.unkey_create_key(%L)', :'api_id'));
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L)', :'key_id'));
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L, true)', :'key_id'));
SELECT regress.err(format('SELECT unkey.unkey_set_api_delete_protection(%L, false)', :'api_id'));
SELECT regress.err(format('SELECT unkey.unkey_delete_api(%L)', :'api_id'));
SELECT regress.err('SELECT unkey.unkey_refill_keys()');
SELECT regress.err($$SELECT unkey.unkey_hash_key('x')$$);
SELECT regress.err('SELECT count(*) FROM unkey.keys');
SELECT regress.err('SELECT key_hash FROM unkey.keys');
SELECT regress.err('SELECT count(*) FROM unkey.verification_events');
SELECT regress.err($$UPDATE unkey.keys SET remaining = 1000000$$);
SELECT regress.err($$INSERT INTO unkey.verification_events (time, key_hash, outcome)
                     VALUES (now(), sha256('forged'), 'VALID')$$);
SELECT regress.err('DELETE FROM unkey.verification_events');
SELECT regress.err('TRUNCATE unkey.verification_events');
SELECT regress.err($$SELECT unkey._generate_key('x', 16)$$);
SELECT regress.err($$SELECT unkey._key_hash('x')$$);
SELECT regress.err($$SELECT unkey._new_id('key')$$);
SELECT regress.err($$SELECT unkey._upsert_identity('acme')$$);
SELECT regress.err($$SELECT unkey._credits_now(0, 10, NULL, now() - interval '2 days', now())$$);
SELECT regress.err('SELECT unkey.now()');
SELECT regress.err('CREATE TABLE unkey.planted (x int)');
SELECT regress.err('CREATE FUNCTION unkey.planted() RETURNS int LANGUAGE sql AS $f$SELECT 1$f$');
RESET ROLE;

-- the admin deletes the key; the verifier then finds nothing
SET ROLE regress_admin;
SELECT unkey.unkey_delete_key(:'key_id', permanent => true);
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L)', :'key_id'));
RESET ROLE;
SET ROLE regress_verifier;
SELECT valid, code, key_id IS NULL AS no_key_id FROM unkey.unkey_verify_key(:'key', :'api_id');
RESET ROLE;

-- a role without the grants cannot even verify
SET ROLE regress_nobody;
SELECT regress.err(format('SELECT unkey.unkey_verify_key(%L)', :'key'));
SELECT regress.err($$SELECT unkey.unkey_create_api('nobody')$$);
SELECT regress.err('SELECT count(*) FROM unkey.keys');
RESET ROLE;
-- nor with schema USAGE but no EXECUTE
GRANT USAGE ON SCHEMA unkey TO regress_nobody;
SET ROLE regress_nobody;
SELECT regress.err(format('SELECT unkey.unkey_verify_key(%L)', :'key'));
SELECT regress.err('SELECT unkey.now()');
RESET ROLE;

----------------------------------------------------------------------------
-- the C functions that run as their caller need EXECUTE alone: a role with
-- no other right (no table, no helper) rate-limits, which creates the
-- namespace on first use, reads the limiter's counters and matches
-- permission queries, and stays itself throughout
----------------------------------------------------------------------------
CREATE ROLE regress_limiter;
GRANT USAGE ON SCHEMA unkey TO regress_limiter;
GRANT EXECUTE ON FUNCTION unkey.unkey_ratelimit(text, text, bigint, interval, bigint),
	unkey.unkey_ratelimit_info(), unkey.unkey_permissions_match(text, text[]),
	unkey.unkey_normalize_permission_query(text), unkey.unkey_hash_key(text) TO regress_limiter;
SELECT count(*) AS namespace_before FROM unkey.ratelimit_namespaces WHERE name = 'privileges-ns';
SET ROLE regress_limiter;
SELECT success, "limit", remaining, override_id FROM unkey.unkey_ratelimit('privileges-ns', 'u1', 2, '1 minute');
SELECT success, "limit", remaining, override_id FROM unkey.unkey_ratelimit('privileges-ns', 'u1', 2, '1 minute');
SELECT success, "limit", remaining, override_id FROM unkey.unkey_ratelimit('privileges-ns', 'u1', 2, '1 minute');
SELECT entries > 0 AS counted, max_entries FROM unkey.unkey_ratelimit_info();
SELECT unkey.unkey_permissions_match('a.read OR b.write', ARRAY['b.write']) AS matches,
       unkey.unkey_normalize_permission_query('a.read AND (b OR c)') AS normalized,
       unkey.unkey_hash_key('x') = encode(sha256('x'), 'base64') AS hash_ok;
SELECT current_user AS still_the_caller;
-- it could not have created the namespace itself, nor use anything else
SELECT regress.err('SELECT count(*) FROM unkey.ratelimit_namespaces');
SELECT regress.err($$INSERT INTO unkey.ratelimit_namespaces VALUES ('rlns_x', 'x', now())$$);
SELECT regress.err($$SELECT unkey._new_id('rlns')$$);
SELECT regress.err($$SELECT unkey.unkey_ratelimit_many('[]')$$);
SELECT regress.err($$SELECT unkey.unkey_verify_key('x')$$);
RESET ROLE;
-- the namespace is in the extension's table, created by the owner's INSERT
SELECT n.id LIKE 'rlns\_%' AS id_ok, n.deleted_at IS NULL AS live,
       abs(extract(epoch FROM n.created_at - clock_timestamp())) < 600 AS created_now
  FROM unkey.ratelimit_namespaces n WHERE n.name = 'privileges-ns';
DROP OWNED BY regress_limiter;
DROP ROLE regress_limiter;

----------------------------------------------------------------------------
-- the test clock unkey.test_now: superuser only, and hidden from others
----------------------------------------------------------------------------
SET ROLE regress_verifier;
SELECT regress.err($$SET unkey.test_now = '2030-01-01'$$);
SELECT regress.err($$SET LOCAL unkey.test_now = '2030-01-01'$$);
SELECT regress.err($$SELECT set_config('unkey.test_now', '2030-01-01', false)$$);
SELECT regress.err('RESET unkey.test_now');
SELECT regress.err('SHOW unkey.test_now');
SELECT regress.err($$SELECT current_setting('unkey.test_now')$$);
SELECT regress.err($$SELECT current_setting('unkey.test_now', true)$$);
SELECT count(*) AS visible_in_pg_settings FROM pg_settings WHERE name = 'unkey.test_now';
SELECT regress.err($$ALTER ROLE regress_verifier SET unkey.test_now = '2030-01-01'$$);
RESET ROLE;

-- the superuser pins the clock and unpins it
SHOW unkey.test_now;
SET unkey.test_now = '2030-01-01 00:00:00+00';
SHOW unkey.test_now;
SELECT unkey.now() = '2030-01-01 00:00:00+00'::timestamptz AS pinned;
-- still hidden from the verifier while set
SET ROLE regress_verifier;
SELECT regress.err('SHOW unkey.test_now');
RESET ROLE;
SELECT regress.err($$SET unkey.test_now = 'tomorrow-ish'$$);
SELECT unkey.now() = '2030-01-01 00:00:00+00'::timestamptz AS still_pinned;
RESET unkey.test_now;
SHOW unkey.test_now;
SELECT unkey.now() <> '2030-01-01 00:00:00+00'::timestamptz AS unpinned,
       abs(extract(epoch FROM unkey.now() - clock_timestamp())) < 60 AS real_clock;

-- clean up
DROP OWNED BY regress_verifier, regress_admin, regress_nobody;
DROP ROLE regress_verifier, regress_admin, regress_nobody;
DROP VIEW ext_functions;
