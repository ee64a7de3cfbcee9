-- hijack: an unprivileged role plants look-alike functions, operators and
-- temp tables ahead of pg_catalog in its search_path; the extension's
-- SECURITY DEFINER functions must never use them

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

-- a fingerprint of the temp tables, to compare at the end
CREATE TEMP TABLE temp_before AS
SELECT 'apis' AS t, (SELECT pg_catalog.count(*) FROM pg_temp.apis) AS n,
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.apis x) AS rows
UNION ALL
SELECT 'keys', (SELECT pg_catalog.count(*) FROM pg_temp.keys),
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.keys x)
UNION ALL
SELECT 'verification_events', (SELECT pg_catalog.count(*) FROM pg_temp.verification_events),
       (SELECT pg_catalog.string_agg(x::text, '|') FROM pg_temp.verification_events x);
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
               (SELECT string_agg(x::text, '|') FROM pg_temp.verification_events x)) a
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

-- clean up: DROP OWNED removes the plants, the temp tables and the grants
DROP OWNED BY regress_attacker, regress_hijack_admin;
SELECT count(*) AS plants_left
  FROM pg_proc p WHERE p.proowner = 'regress_attacker'::regrole;
SELECT to_regnamespace('regress_hijack') IS NULL AS schema_gone,
       to_regclass('public.hijack_calls') IS NULL AS table_gone,
       to_regoperator('public.=(text, text)') IS NULL AS operator_gone;
DROP ROLE regress_attacker, regress_hijack_admin;
