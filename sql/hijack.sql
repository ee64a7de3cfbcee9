-- hijack: an unprivileged role plants look-alike functions, operators and
-- temp tables ahead of pg_catalog in its search_path; the extension's
-- SECURITY DEFINER functions, and its C functions that run as their caller
-- with no SET (unkey_ratelimit), must never use them

CREATE ROLE regress_attacker;
CREATE ROLE regress_hijack_admin;
-- the attacker holds the README verifier grants, and may create in public
GRANT USAGE ON SCHEMA unkey TO regress_attacker;
GRANT EXECUTE ON FUNCTION unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet) TO regress_attacker;
GRANT CREATE ON SCHEMA public TO regress_attacker;
-- pgcrypto already owns public.digest(text, text), so the attacker's digest
-- goes into a schema of its own, searched before public
CREATE SCHEMA regress_hijack AUTHORIZATION regress_attacker;
-- the admin holds the README admin grants
GRANT USAGE ON SCHEMA unkey TO regress_hijack_admin;
GRANT EXECUTE ON FUNCTION unkey.unkey_create_api(text, text[], boolean, text, integer), unkey.unkey_get_api(text), unkey.unkey_set_api_delete_protection(text, boolean), unkey.unkey_delete_api(text), unkey.unkey_create_key(text, text, integer, text, text, jsonb, timestamptz, bigint, text, bigint, integer, jsonb, text[], text[], boolean, boolean), unkey.unkey_delete_key(text, boolean), unkey.unkey_refill_keys(), unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet), unkey.unkey_hash_key(text) TO regress_hijack_admin;

----------------------------------------------------------------------------
-- the plants (every name qualified while planting)
----------------------------------------------------------------------------
SET ROLE regress_attacker;

-- every call of a plant is recorded here, whoever the caller is
CREATE TABLE public.hijack_calls (plant text NOT NULL);
GRANT SELECT, INSERT ON public.hijack_calls TO PUBLIC;
GRANT USAGE ON SCHEMA regress_hijack TO PUBLIC;

-- hashing look-alikes that return garbage
CREATE FUNCTION regress_hijack.digest(text, text) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('digest(text, text)');
	RETURN '\x00'::bytea;
END
$$;
CREATE FUNCTION regress_hijack.digest(bytea, text) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('digest(bytea, text)');
	RETURN '\x00'::bytea;
END
$$;
CREATE FUNCTION public.sha256(bytea) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('sha256(bytea)');
	RETURN '\x00'::bytea;
END
$$;
-- look-alikes of built-ins that unkey_create_key uses
CREATE FUNCTION public.left(text, integer) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('left(text, integer)');
	RETURN 'garbage';
END
$$;
CREATE FUNCTION public.char_length(text) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('char_length(text)');
	RETURN 0;
END
$$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('now()');
	RETURN '2000-01-01 00:00:00+00'::timestamptz;
END
$$;
-- equality that is always true, and a comparison that always passes
CREATE FUNCTION public.hijack_text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('=(text, text)');
	RETURN true;
END
$$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.hijack_text_eq);
CREATE FUNCTION public.hijack_bytea_eq(bytea, bytea) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('=(bytea, bytea)');
	RETURN true;
END
$$;
CREATE OPERATOR public.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = public.hijack_bytea_eq);
CREATE FUNCTION public.hijack_int8_ge(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('>=(bigint, bigint)');
	RETURN true;
END
$$;
CREATE OPERATOR public.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.hijack_int8_ge);

-- temp tables named like the extension's, with a decoy key in them
CREATE TEMP TABLE apis (id text, name text, ip_whitelist inet[], delete_protection boolean,
	default_prefix text, default_byte_length integer, created_at timestamptz,
	updated_at timestamptz, deleted_at timestamptz);
INSERT INTO pg_temp.apis (id, name, delete_protection, default_byte_length, created_at)
VALUES ('api_decoy', 'decoy', false, 16, '2020-01-01 00:00:00+00');
CREATE TEMP TABLE keys (key_hash bytea, id text, api_id text, start text, prefix text,
	name text, identity_id text, meta jsonb, expires timestamptz, enabled boolean,
	remaining bigint, refill_interval text, refill_amount bigint, refill_day integer,
	last_refill_at timestamptz, environment text, created_at timestamptz,
	updated_at timestamptz, deleted_at timestamptz);
INSERT INTO pg_temp.keys (key_hash, id, api_id, start, enabled, created_at)
VALUES (pg_catalog.sha256(pg_catalog.convert_to('hj_decoy_key', 'UTF8')), 'key_decoy',
		'api_decoy', 'hj_deco', true, '2020-01-01 00:00:00+00');
CREATE TEMP TABLE verification_events (time timestamptz, key_hash bytea, key_id text,
	api_id text, identity_id text, outcome text, spent_credits bigint, tags text[]);
-- temp tables named like the rate limiter's, with decoys: a namespace for
-- each name the limiter uses below, and overrides that would cut it to 1
CREATE TEMP TABLE ratelimit_namespaces (id text PRIMARY KEY, name text UNIQUE, created_at timestamptz,
	deleted_at timestamptz);
INSERT INTO pg_temp.ratelimit_namespaces (id, name, created_at) VALUES
	('rlns_decoy_ns', 'hijack-ns', '2020-01-01 00:00:00+00'),
	('rlns_decoy_new', 'hijack-new-ns', '2020-01-01 00:00:00+00'),
	('rlns_decoy_inline', 'hijack-inline-ns', '2020-01-01 00:00:00+00');
CREATE TEMP TABLE ratelimit_overrides (id text, namespace_id text, identifier text,
	"limit" bigint, duration_ms bigint, created_at timestamptz, updated_at timestamptz);
INSERT INTO pg_temp.ratelimit_overrides (id, namespace_id, identifier, "limit", duration_ms, created_at) VALUES
	('rlor_decoy_1', 'rlns_decoy_ns', 'vip-1', 1, 1000, '2020-01-01 00:00:00+00'),
	('rlor_decoy_2', 'rlns_decoy_ns', '*', 1, 1000, '2020-01-01 00:00:00+00'),
	('rlor_decoy_3', 'rlns_decoy_new', '*', 1, 1000, '2020-01-01 00:00:00+00'),
	('rlor_decoy_4', 'rlns_decoy_inline', '*', 1, 1000, '2020-01-01 00:00:00+00');
CREATE TEMP TABLE ratelimit_events (time timestamptz, request_id text, namespace_id text,
	namespace text, identifier text, passed boolean, "limit" bigint, remaining bigint,
	reset timestamptz, cost bigint, override_id text, latency double precision);
-- readable and writable by anyone, so that a lookup that reached them would
-- silently use them rather than fail
GRANT SELECT, INSERT, UPDATE, DELETE ON pg_temp.ratelimit_namespaces, pg_temp.ratelimit_overrides,
	pg_temp.ratelimit_events TO PUBLIC;
-- look-alikes of the helpers that the rate limiter's SQL calls
CREATE FUNCTION regress_hijack._new_id(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('_new_id(text)');
	RETURN 'rlns_planted';
END
$$;
CREATE FUNCTION regress_hijack._store_ratelimits(timestamptz[], double precision[], text[], text[], text[],
	text[], text[], boolean[], bigint[], bigint[], timestamptz[], bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('_store_ratelimits(...)');
END
$$;
CREATE FUNCTION regress_hijack._ensure_partitions(text, timestamptz[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('_ensure_partitions(text, timestamptz[])');
END
$$;

-- a fingerprint of the temp tables, to compare at the end
CREATE TEMP TABLE temp_before AS
SELECT 'apis' AS t, (SELECT pg_catalog.count(*) FROM pg_temp.apis) AS n,
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.apis x) AS rows
UNION ALL
SELECT 'keys', (SELECT pg_catalog.count(*) FROM pg_temp.keys),
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.keys x)
UNION ALL
SELECT 'verification_events', (SELECT pg_catalog.count(*) FROM pg_temp.verification_events),
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.verification_events x)
UNION ALL
SELECT 'ratelimit_namespaces', (SELECT pg_catalog.count(*) FROM pg_temp.ratelimit_namespaces),
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.ratelimit_namespaces x)
UNION ALL
SELECT 'ratelimit_overrides', (SELECT pg_catalog.count(*) FROM pg_temp.ratelimit_overrides),
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.ratelimit_overrides x)
UNION ALL
SELECT 'ratelimit_events', (SELECT pg_catalog.count(*) FROM pg_temp.ratelimit_events),
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.ratelimit_events x);
-- where the attacker keeps what verification told it
CREATE TEMP TABLE outcomes (n integer, label text, valid boolean, code text, key_id text, credits bigint);

-- the attacker cannot plant inside the extension's schema
SELECT regress.err('CREATE FUNCTION unkey.left(text, integer) RETURNS text LANGUAGE sql AS $f$SELECT $1$f$');
SELECT regress.err('CREATE OPERATOR unkey.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = public.hijack_bytea_eq)');
SELECT regress.err('CREATE TABLE unkey.keys_shadow (x int)');
RESET ROLE;

-- the plants resolve ahead of pg_catalog under the hostile search_path
SET search_path = regress_hijack, public, pg_temp, pg_catalog;
SELECT pg_catalog.to_regprocedure('digest(text, text)')
         OPERATOR(pg_catalog.=) 'regress_hijack.digest(text, text)'::pg_catalog.regprocedure AS digest_planted,
       pg_catalog.to_regprocedure('sha256(bytea)')
         OPERATOR(pg_catalog.=) 'public.sha256(bytea)'::pg_catalog.regprocedure AS sha256_planted,
       pg_catalog.to_regprocedure('left(text, integer)')
         OPERATOR(pg_catalog.=) 'public.left(text, integer)'::pg_catalog.regprocedure AS left_planted,
       pg_catalog.to_regoperator('=(text, text)')
         OPERATOR(pg_catalog.=) 'public.=(text, text)'::pg_catalog.regoperator AS text_eq_planted,
       pg_catalog.to_regoperator('=(bytea, bytea)')
         OPERATOR(pg_catalog.=) 'public.=(bytea, bytea)'::pg_catalog.regoperator AS bytea_eq_planted,
       pg_catalog.to_regclass('keys')
         OPERATOR(pg_catalog.=) 'pg_temp.keys'::pg_catalog.regclass AS keys_is_temp;
SELECT pg_catalog.to_regclass('ratelimit_namespaces')
         OPERATOR(pg_catalog.=) 'pg_temp.ratelimit_namespaces'::pg_catalog.regclass AS namespaces_is_temp,
       pg_catalog.to_regclass('ratelimit_overrides')
         OPERATOR(pg_catalog.=) 'pg_temp.ratelimit_overrides'::pg_catalog.regclass AS overrides_is_temp,
       pg_catalog.to_regprocedure('_new_id(text)')
         OPERATOR(pg_catalog.=) 'regress_hijack._new_id(text)'::pg_catalog.regprocedure AS new_id_planted;
RESET search_path;

----------------------------------------------------------------------------
-- the admin creates APIs and keys under the hostile search_path
----------------------------------------------------------------------------
SET ROLE regress_hijack_admin;
SET search_path = regress_hijack, public, pg_temp, pg_catalog;
SELECT unkey.unkey_create_api('hijack', default_prefix => 'hj') AS api_id \gset
SELECT unkey.unkey_create_api('hijack other') AS other_api_id \gset
SELECT key_id, key FROM unkey.unkey_create_key(:'api_id', name => 'hijack',
	meta => '{"plan": "pro"}', external_id => 'regress-hijack', credits => 5,
	permissions => ARRAY['hijack.read']) \gset
SELECT key_id AS expired_key_id, key AS expired_key FROM unkey.unkey_create_key(:'api_id',
	expires => '2000-01-01 00:00:00+00') \gset
SELECT key_id AS doomed_key_id FROM unkey.unkey_create_key(:'api_id', prefix => 'doomed') \gset
SELECT name, default_prefix, delete_protection FROM unkey.unkey_get_api(:'api_id');
SELECT unkey.unkey_delete_key(:'doomed_key_id');
RESET search_path;
RESET ROLE;

----------------------------------------------------------------------------
-- the attacker verifies under the hostile search_path
----------------------------------------------------------------------------
SET ROLE regress_attacker;
SET search_path = regress_hijack, public, pg_temp, pg_catalog;
-- the real key
INSERT INTO pg_temp.outcomes
SELECT 1, 'real key', v.valid, v.code, v.key_id, v.credits
  FROM unkey.unkey_verify_key(:'key', tags => '{hijack}') v;
-- the real key, with its API
INSERT INTO pg_temp.outcomes
SELECT 2, 'real key, its api', v.valid, v.code, v.key_id, v.credits
  FROM unkey.unkey_verify_key(:'key', :'api_id') v;
-- the real key, with another API
INSERT INTO pg_temp.outcomes
SELECT 3, 'real key, other api', v.valid, v.code, v.key_id, v.credits
  FROM unkey.unkey_verify_key(:'key', :'other_api_id') v;
-- a wrong key
INSERT INTO pg_temp.outcomes
SELECT 4, 'wrong key', v.valid, v.code, v.key_id, v.credits
  FROM unkey.unkey_verify_key('hj_3xV8nQ2mKpL7tR9wYbZc4d') v;
-- the decoy key that only the temp table knows
INSERT INTO pg_temp.outcomes
SELECT 5, 'decoy key', v.valid, v.code, v.key_id, v.credits
  FROM unkey.unkey_verify_key('hj_decoy_key') v;
-- an expired key
INSERT INTO pg_temp.outcomes
SELECT 6, 'expired key', v.valid, v.code, v.key_id, v.credits
  FROM unkey.unkey_verify_key(:'expired_key') v;
-- the real key once more, spending 2
INSERT INTO pg_temp.outcomes
SELECT 7, 'real key, cost 2', v.valid, v.code, v.key_id, v.credits
  FROM unkey.unkey_verify_key(:'key', cost => 2) v;
-- malformed arguments still raise the documented errors
SELECT regress.err($$SELECT unkey.unkey_verify_key('hj_x', cost => -1)$$);
SELECT regress.err($$SELECT unkey.unkey_verify_key('hj_x', tags => ARRAY[NULL::text])$$);
RESET search_path;
RESET ROLE;

----------------------------------------------------------------------------
-- unkey_ratelimit runs as its caller, with neither SECURITY DEFINER nor SET
-- search_path.  A role that may execute it and nothing else (no table, no
-- helper) calls it under the hostile search_path: on a namespace with an
-- override, and on new namespaces, whose INSERT runs SQL, as does an event
-- too large for the event buffer, written inline in the caller's transaction.
----------------------------------------------------------------------------
-- the superuser makes a namespace with an override for vip-1
SELECT success FROM unkey.unkey_ratelimit('hijack-ns', 'setup', 10, '1 minute');
SELECT unkey.unkey_set_override('hijack-ns', 'vip-1', 7, '1 minute') AS override_id \gset
CREATE ROLE regress_hijack_limiter;
GRANT USAGE ON SCHEMA unkey TO regress_hijack_limiter;
GRANT EXECUTE ON FUNCTION unkey.unkey_ratelimit(text, text, bigint, interval, bigint) TO regress_hijack_limiter;
SELECT count(*) AS audit_rows_before FROM unkey.audit_log \gset
SELECT inline_writes AS inline_before FROM unkey.unkey_events_info() WHERE database = current_database() \gset

SET ROLE regress_hijack_limiter;
SET search_path = regress_hijack, public, pg_temp, pg_catalog;
-- the override applies: 7, not the caller's 1000 nor a decoy's 1
SELECT success, "limit", remaining, override_id OPERATOR(pg_catalog.=) :'override_id' AS the_override
  FROM unkey.unkey_ratelimit('hijack-ns', 'vip-1', 1000, '1 minute');
-- another identifier there has none
SELECT success, "limit", remaining, override_id FROM unkey.unkey_ratelimit('hijack-ns', 'u1', 1000, '1 minute');
-- a new namespace is created on first use, after which the caller is itself
-- again, with its own search_path, within the same transaction ...
BEGIN;
SELECT success, "limit", remaining, override_id FROM unkey.unkey_ratelimit('hijack-new-ns', 'u1', 5, '1 minute');
SELECT current_user, pg_catalog.current_setting('search_path') AS search_path;
COMMIT;
-- ... and found the second time
SELECT success, "limit", remaining, override_id FROM unkey.unkey_ratelimit('hijack-new-ns', 'u1', 5, '1 minute');
RESET ROLE;

-- a request id longer than half the event buffer makes the event be written
-- inline; the pinned clock puts it on a day with no partition yet, so that
-- this SQL creates a table too
SELECT pg_catalog.set_config('unkey.request_id', pg_catalog.repeat('r', (buffer_bytes / 2 + 1)::integer), false)
         IS NOT NULL AS request_id_set
  FROM unkey.unkey_events_info() WHERE database = pg_catalog.current_database();
SET unkey.test_now = '2031-03-04 12:00:00+00';
SET ROLE regress_hijack_limiter;
SELECT success, "limit", remaining, override_id FROM unkey.unkey_ratelimit('hijack-inline-ns', 'u1', 5, '1 minute');
-- an error in the owner's part (a read-only transaction cannot create a
-- namespace), caught by a subtransaction or ending the transaction, leaves
-- the caller's user and search_path
BEGIN READ ONLY;
SELECT regress.err($$SELECT unkey.unkey_ratelimit('hijack-ro-ns', 'u1', 5, '1 minute')$$);
SELECT current_user, pg_catalog.current_setting('search_path') AS search_path;
ROLLBACK;
BEGIN READ ONLY;
SELECT unkey.unkey_ratelimit('hijack-ro-ns', 'u1', 5, '1 minute');
ROLLBACK;
SELECT current_user, pg_catalog.current_setting('search_path') AS search_path;
RESET search_path;
RESET ROLE;
RESET unkey.test_now;
RESET unkey.request_id;

-- the namespaces are in the extension's table with ids of its own (neither
-- a decoy's nor the planted _new_id's), the read-only one is not
SELECT n.name, n.id LIKE 'rlns\_%' AND n.id <> ALL ('{rlns_decoy_ns,rlns_decoy_new,rlns_decoy_inline,rlns_planted}')
         AS real_id, n.deleted_at IS NULL AS live
  FROM unkey.ratelimit_namespaces n WHERE n.name LIKE 'hijack-%' ORDER BY n.name;
-- the event written inline is there already, whole, and was counted as inline
SELECT e.namespace, e.identifier, e.passed, e."limit", e.remaining, e.override_id,
       e.namespace_id = n.id AS namespace_id_ok, e.time = '2031-03-04 12:00:00+00' AS pinned_time,
       e.request_id = repeat('r', (i.buffer_bytes / 2 + 1)::integer) AS whole_request_id
  FROM unkey.ratelimit_events e
  JOIN unkey.ratelimit_namespaces n ON n.name = e.namespace,
       unkey.unkey_events_info() i
 WHERE e.namespace = 'hijack-inline-ns' AND i.database = current_database();
SELECT inline_writes - :inline_before AS inline_writes
  FROM unkey.unkey_events_info() WHERE database = current_database();
-- the others came through the buffer, with the override where it applies
SELECT FROM unkey.unkey_flush_events();
SELECT e.namespace, e.identifier, e.passed, e."limit", e.remaining, e.override_id = :'override_id' AS the_override
  FROM unkey.ratelimit_events e
 WHERE e.namespace IN ('hijack-ns', 'hijack-new-ns') AND e.identifier <> 'setup'
 ORDER BY e.time;
-- the day partition that the inline write created belongs to the extension's
-- owner; the limiter owns nothing and wrote no audit row
SELECT c.relname, c.relowner = e.extowner AS owned_by_extension_owner
  FROM pg_class c, pg_extension e
 WHERE e.extname = 'unkey' AND c.relnamespace = 'unkey'::regnamespace AND c.relname LIKE '%\_p20310304'
 ORDER BY c.relname;
SELECT count(*) AS owned_by_limiter FROM pg_class WHERE relowner = 'regress_hijack_limiter'::regrole;
SELECT count(*) - :audit_rows_before AS new_audit_rows FROM unkey.audit_log;
DROP TABLE unkey.ratelimit_events_p20310304;

----------------------------------------------------------------------------
-- what happened (as superuser, with the normal search_path)
----------------------------------------------------------------------------
SELECT n, label, valid, code,
       CASE WHEN key_id IS NULL THEN 'none'
            WHEN key_id = :'key_id' THEN 'the key'
            WHEN key_id = :'expired_key_id' THEN 'the expired key'
            ELSE 'ANOTHER KEY' END AS key_id,
       credits
  FROM pg_temp.outcomes ORDER BY n;

-- no plant was ever called
SELECT count(*) AS plant_calls FROM public.hijack_calls;
SELECT plant, count(*) FROM public.hijack_calls GROUP BY plant ORDER BY plant;

-- the temp tables are untouched
SELECT b.t, b.n AS rows_before, a.n AS rows_after, a.rows IS NOT DISTINCT FROM b.rows AS unchanged
  FROM pg_temp.temp_before b
  JOIN (SELECT 'apis' AS t, (SELECT count(*) FROM pg_temp.apis) AS n,
               (SELECT string_agg(x::text, '|') FROM pg_temp.apis x) AS rows
        UNION ALL
        SELECT 'keys', (SELECT count(*) FROM pg_temp.keys),
               (SELECT string_agg(x::text, '|') FROM pg_temp.keys x)
        UNION ALL
        SELECT 'verification_events', (SELECT count(*) FROM pg_temp.verification_events),
               (SELECT string_agg(x::text, '|') FROM pg_temp.verification_events x)
        UNION ALL
        SELECT 'ratelimit_namespaces', (SELECT count(*) FROM pg_temp.ratelimit_namespaces),
               (SELECT string_agg(x::text, '|') FROM pg_temp.ratelimit_namespaces x)
        UNION ALL
        SELECT 'ratelimit_overrides', (SELECT count(*) FROM pg_temp.ratelimit_overrides),
               (SELECT string_agg(x::text, '|') FROM pg_temp.ratelimit_overrides x)
        UNION ALL
        SELECT 'ratelimit_events', (SELECT count(*) FROM pg_temp.ratelimit_events),
               (SELECT string_agg(x::text, '|') FROM pg_temp.ratelimit_events x)) a
    ON a.t = b.t
 ORDER BY b.t;

-- what the extension stored is right: the real SHA-256, the real start,
-- the identity, the permission, and the real clock
SELECT k.key_hash = public.digest(:'key', 'sha256') AS hash_is_sha256,
       k.start = pg_catalog.left(:'key', 7) AS start_ok,
       k.prefix, k.name, k.meta, k.remaining,
       i.external_id,
       abs(extract(epoch FROM k.created_at - clock_timestamp())) < 600 AS created_now
  FROM unkey.keys k LEFT JOIN unkey.identities i ON i.id = k.identity_id
 WHERE k.id = :'key_id';
SELECT p.slug FROM unkey.key_permissions kp JOIN unkey.permissions p ON p.id = kp.permission_id
  JOIN unkey.keys k ON k.key_hash = kp.key_hash WHERE k.id = :'key_id';
SELECT k.deleted_at IS NOT NULL AS doomed_deleted FROM unkey.keys k WHERE k.id = :'doomed_key_id';
SELECT key_hash = public.digest(:'expired_key', 'sha256') AS expired_hash_is_sha256,
       expires = '2000-01-01 00:00:00+00' AS expires_ok
  FROM unkey.keys WHERE id = :'expired_key_id';

-- the verifications were recorded in the extension's table
SELECT FROM unkey.unkey_flush_events();
SELECT outcome, count(*), sum(spent_credits) AS spent,
       count(*) FILTER (WHERE key_id = :'key_id') AS of_the_key
  FROM unkey.verification_events
 WHERE key_hash IN (public.digest(:'key', 'sha256'), public.digest(:'expired_key', 'sha256'),
                    public.digest('hj_3xV8nQ2mKpL7tR9wYbZc4d', 'sha256'),
                    public.digest('hj_decoy_key', 'sha256'))
 GROUP BY outcome ORDER BY outcome;

-- still no plant called
SELECT count(*) AS plant_calls FROM public.hijack_calls;

----------------------------------------------------------------------------
-- overloads inside schema unkey: a role that may create there (a grant no one
-- should give, and CREATE EXTENSION refuses) plants a look-alike of every
-- private helper: the exact shape of 0.1.0's hole (four text arguments for
-- the VARIADIC _audit), and for every helper, one argument at a time, the
-- type an untyped literal there would prefer (text) or a near type (varchar
-- for text, integer for bigint, smallint for integer, numeric for float8),
-- and the helper without its defaulted arguments, all with the same argument
-- names.  Our functions call helpers with exact types and every argument, so
-- none of them is ever called.
----------------------------------------------------------------------------
GRANT CREATE ON SCHEMA unkey TO regress_attacker;
SET ROLE regress_attacker;
CREATE FUNCTION unkey._audit(text, text, text, text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hijack_calls VALUES ('unkey._audit(text, text, text, text)');
END
$$;
DO $$
DECLARE
	f record;
	args text;
	planted integer := 0;
BEGIN
	FOR f IN SELECT p.oid, p.proname, p.pronargs, p.pronargdefaults, p.prorettype, p.proretset,
					pg_catalog.pg_get_function_result(p.oid) AS result,
					p.proargtypes::regtype[]::text[] AS types,
					coalesce(p.proargnames, '{}') AS names
			   FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace = 'unkey'::regnamespace AND p.prokind = 'f'
				AND p.proowner <> 'regress_attacker'::regrole
				AND (p.proname LIKE '\_%' OR p.proname IN ('unkey_get_role', 'unkey_get_permission'))
	LOOP
		-- one argument at a time: what an untyped literal there could resolve
		-- to (text for anything but text), or a near type; then, with the
		-- defaulted arguments left out; all with the same argument names
		FOR args IN
			SELECT (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', pg_catalog.quote_ident(f.names[n]),
					 CASE WHEN n <> i THEN t
						  ELSE CASE t WHEN 'text' THEN 'varchar' WHEN 'text[]' THEN 'varchar[]' WHEN 'bigint' THEN 'integer'
									  WHEN 'integer' THEN 'smallint' WHEN 'double precision' THEN 'numeric'
									  ELSE 'text' END END), ', ' ORDER BY n)
					  FROM pg_catalog.unnest(f.types) WITH ORDINALITY u(t, n))
			  FROM pg_catalog.generate_series(1, f.pronargs) i
			UNION ALL
			SELECT (SELECT coalesce(pg_catalog.string_agg(pg_catalog.concat_ws(' ', pg_catalog.quote_ident(f.names[n]), t),
														  ', ' ORDER BY n), '')
					  FROM pg_catalog.unnest(f.types) WITH ORDINALITY u(t, n)
					 WHERE n <= f.pronargs - f.pronargdefaults)
			 WHERE f.pronargdefaults > 0
		LOOP
			BEGIN
				EXECUTE pg_catalog.format(
					'CREATE FUNCTION unkey.%I(%s) RETURNS %s LANGUAGE plpgsql AS $b$'
					' BEGIN INSERT INTO public.hijack_calls VALUES (%L); RETURN%s; END $b$',
					f.proname, args, f.result, pg_catalog.format('unkey.%s(%s)', f.proname, args),
					CASE WHEN f.proretset OR f.prorettype = 'void'::regtype THEN '' ELSE ' NULL' END);
				planted := planted + 1;
			EXCEPTION WHEN duplicate_function OR invalid_function_definition THEN
				NULL;
			END;
		END LOOP;
	END LOOP;
	RAISE NOTICE 'planted % look-alikes', planted;
END
$$;
RESET ROLE;
REVOKE CREATE ON SCHEMA unkey FROM regress_attacker;
-- a plant records its call (so an empty record below means something)
SELECT unkey._audit('a', 'b', 'c', 'd');
SELECT plant FROM public.hijack_calls;
DELETE FROM public.hijack_calls;

-- every function that calls a helper, as the admin would call it
DO $$
DECLARE
	api text := unkey.unkey_create_api('overloads', ARRAY['10.0.0.0/8'], false, 'ov', 16);
	k unkey.created_key;
	k2 unkey.created_key;
	iid text;
BEGIN
	PERFORM unkey.unkey_get_api(api);
	PERFORM unkey.unkey_set_api_delete_protection(api, false);
	PERFORM unkey.unkey_set_api_recoverable(api, true);
	PERFORM unkey.unkey_create_permission('Overload read', 'ov.read', 'read');
	PERFORM unkey.unkey_get_permission('ov.read');
	PERFORM unkey.unkey_list_permissions();
	PERFORM unkey.unkey_create_role('ov-reader', 'reads', ARRAY['ov.read', 'ov.list']);
	PERFORM unkey.unkey_create_role('ov-writer');
	PERFORM unkey.unkey_get_role('ov-reader');
	PERFORM unkey.unkey_list_roles();
	PERFORM unkey.unkey_set_role_permissions('ov-writer', ARRAY['ov.write']);
	k := unkey.unkey_create_key(api, 'ov', 16, 'overload', 'ov-identity', '{"a": 1}', NULL, 10, 'monthly', 10, 31,
								'[{"name": "requests", "limit": 100, "duration": 60000, "autoApply": true}]',
								ARRAY['ov-reader'], ARRAY['ov.extra'], true, true);
	PERFORM unkey.unkey_add_key_permissions(k.key_id, ARRAY['ov.more']);
	PERFORM unkey.unkey_remove_key_permissions(k.key_id, ARRAY['ov.more']);
	PERFORM unkey.unkey_set_key_permissions(k.key_id, ARRAY['ov.extra']);
	PERFORM unkey.unkey_add_key_roles(k.key_id, ARRAY['ov-writer']);
	PERFORM unkey.unkey_remove_key_roles(k.key_id, ARRAY['ov-writer']);
	PERFORM unkey.unkey_set_key_roles(k.key_id, ARRAY['ov-reader']);
	PERFORM unkey.unkey_set_key_ratelimit(k.key_id, 'tokens', 1000, '1 hour', false);
	PERFORM unkey.unkey_get_key_ratelimits(k.key_id);
	PERFORM unkey.unkey_delete_key_ratelimit(k.key_id, 'tokens');
	PERFORM unkey.unkey_set_identity_ratelimit('ov-identity', 'daily', 5000, '1 day', true);
	PERFORM unkey.unkey_get_identity_ratelimits('ov-identity');
	PERFORM unkey.unkey_delete_identity_ratelimit('ov-identity', 'daily');
	PERFORM unkey.unkey_verify_key(k.key, api, 'ov.read OR ov.extra', 1, '[{"name": "requests"}]', ARRAY['t'], '10.1.2.3');
	PERFORM unkey.unkey_ratelimit('ov-ns', 'u1', 10, '1 minute', 1);
	PERFORM unkey.unkey_ratelimit_many('[{"namespace": "ov-ns", "identifier": "u2", "limit": 5, "duration": 60000}]');
	PERFORM unkey.unkey_set_override('ov-ns', 'vip*', 100, '1 minute');
	PERFORM unkey.unkey_get_override('ov-ns', 'vip*');
	PERFORM unkey.unkey_list_overrides('ov-ns');
	PERFORM unkey.unkey_delete_override('ov-ns', 'vip*');
	PERFORM unkey.unkey_list_namespaces();
	PERFORM unkey.unkey_delete_namespace('ov-ns');
	PERFORM unkey.unkey_get_key(k.key_id);
	PERFORM unkey.unkey_whoami(k.key);
	PERFORM unkey.unkey_get_key_by_hash(unkey.unkey_hash_key(k.key));
	PERFORM unkey.unkey_list_keys(api, 10, NULL, 'ov-identity');
	PERFORM unkey.unkey_get_key(k.key_id, true);
	PERFORM unkey.unkey_list_keys(api, 10, NULL, 'ov-identity', true);
	PERFORM unkey.unkey_update_key(k.key_id, '{"name": "renamed", "external_id": "ov-other", "meta": {"b": 2},
		"expires": 4102444800000, "enabled": true, "credits": 20, "refill_interval": "daily", "refill_amount": 20,
		"refill_day": null, "ratelimits": [], "roles": ["ov-writer"], "permissions": ["ov.read"]}');
	PERFORM unkey.unkey_update_credits(k.key_id, 'increment', 5);
	PERFORM unkey.unkey_update_credits(k.key_id, 'decrement', 1);
	PERFORM unkey.unkey_update_credits(k.key_id, 'set', 7);
	k2 := unkey.unkey_reroll_key(k.key_id, '1 hour');
	PERFORM unkey.unkey_migrate_keys(api, '[{"hash": "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", "name": "m",
		"external_id": "ov-migrated", "credits": 3, "roles": ["ov-reader"], "ratelimits": []}]');
	PERFORM unkey.unkey_migrate_keys(api, '[{"plaintext": "ov_migrated_plaintext_0123456789", "name": "p"}]');
	PERFORM unkey.unkey_vault_rotate(10);
	PERFORM unkey.unkey_gateway_configure(api, 'x-api-key', 'api_key', true, 0, 1, '{}', 'role');
	PERFORM unkey.unkey_gateway_set_route('GET', '/rpc/ov', 'ov.read', 0, NULL);
	PERFORM set_config('request.method', 'GET', true), set_config('request.path', '/rpc/ov', true),
			set_config('request.headers', json_build_object('x-api-key', k2.key, 'x-forwarded-for', '192.0.2.1, 10.1.2.3')::text, true);
	PERFORM unkey.pre_request();
	PERFORM unkey.unkey_gateway_delete_route('GET', '/rpc/ov');
	iid := unkey.unkey_create_identity('ov-new', '{"c": 3}', '[{"name": "burst", "limit": 5, "duration": 1000}]');
	PERFORM unkey.unkey_get_identity(iid);
	PERFORM unkey.unkey_list_identities(10, NULL);
	PERFORM unkey.unkey_update_identity('ov-new', '{}', '[]');
	PERFORM unkey.unkey_delete_identity(iid);
	PERFORM unkey.unkey_flush_events();
	PERFORM unkey.unkey_get_verifications(api, unkey.now() - interval '1 day', NULL, ARRAY['day', 'key'],
										  NULL, NULL, NULL, 'total', 'desc', 10);
	PERFORM unkey.unkey_set_retention('30 days');
	PERFORM unkey.unkey_apply_retention();
	PERFORM unkey.unkey_set_retention(NULL);
	PERFORM unkey.unkey_refill_keys();
	PERFORM unkey.unkey_delete_key(k2.key_id, false);
	PERFORM unkey.unkey_delete_key(k.key_id, true);
	PERFORM unkey.unkey_delete_permission('ov.list');
	PERFORM unkey.unkey_delete_role('ov-writer');
	PERFORM unkey.unkey_delete_api(api);
END
$$;
-- and the limiter, creating a namespace and writing its event inline
SELECT pg_catalog.set_config('unkey.request_id', pg_catalog.repeat('r', (buffer_bytes / 2 + 1)::integer), false)
         IS NOT NULL AS request_id_set
  FROM unkey.unkey_events_info() WHERE database = pg_catalog.current_database();
SET ROLE regress_hijack_limiter;
SET search_path = regress_hijack, public, pg_temp, pg_catalog;
SELECT success, "limit", remaining, override_id FROM unkey.unkey_ratelimit('ov-limiter-ns', 'u1', 5, '1 minute');
RESET search_path;
RESET ROLE;
RESET unkey.request_id;
SELECT count(*) AS inline_event FROM unkey.ratelimit_events WHERE namespace = 'ov-limiter-ns';
-- and the errors, which go through the helpers too
SELECT regress.err($$SELECT unkey.unkey_create_api('')$$);
SELECT regress.err($$SELECT unkey.unkey_get_key('key_none')$$);
SELECT regress.err($$SELECT unkey.unkey_update_key('key_none', '{}')$$);
SELECT regress.err($$SELECT unkey.unkey_set_identity_ratelimit('nobody', 'x', 1, '1 minute')$$);
SELECT count(*) AS plant_calls FROM public.hijack_calls;
SELECT plant, count(*) FROM public.hijack_calls GROUP BY plant ORDER BY plant;
-- the ownership rule holds again once the plants are dropped (below)

-- clean up: DROP OWNED removes the plants, the temp tables and the grants
DROP OWNED BY regress_attacker, regress_hijack_admin, regress_hijack_limiter;
SELECT count(*) AS plants_left
  FROM pg_proc p WHERE p.proowner = 'regress_attacker'::regrole;
SELECT to_regnamespace('regress_hijack') IS NULL AS schema_gone,
       to_regclass('public.hijack_calls') IS NULL AS table_gone,
       to_regoperator('public.=(text, text)') IS NULL AS operator_gone;
DROP ROLE regress_attacker, regress_hijack_admin, regress_hijack_limiter;
