/* unkey--0.4.0--0.5.0.sql: from release 0.4.0 to 0.5.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION unkey UPDATE TO '0.5.0'" to load this file. \quit

-- the schema must still be ours alone (see unkey._check_schema)
SELECT unkey._check_schema();

/*
 * unkey_migrate_keys: a call that migrates no key (every one malformed or
 * taken, or an empty list) writes no audit row (issue 17's input fuzzer found
 * it writing "Migrated 0 keys").
 */
CREATE OR REPLACE FUNCTION unkey.unkey_migrate_keys(api_id text, keys jsonb)
RETURNS unkey.migration_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ts timestamptz := unkey.now();
	live_api text;
	recoverable boolean;
	item jsonb;
	plain text;
	shown text;
	ciphertext bytea;
	n integer;
	k unkey.keys;
	migrated jsonb[] := '{}';
	failed text[] := '{}';
	ids text[] := '{}';
	state text;
	msg text;
	hint text;
BEGIN
	SELECT a.id, a.recoverable INTO live_api, recoverable
	  FROM unkey.apis a WHERE a.id = unkey_migrate_keys.api_id AND a.deleted_at IS NULL;
	IF live_api IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	IF jsonb_typeof(keys) IS DISTINCT FROM 'array' OR jsonb_array_length(keys) NOT BETWEEN 1 AND 1000 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'keys must be a JSON array of 1 to 1000 keys'::text,
							 'Split the keys into calls of at most 1,000.'::text);
	END IF;
	-- by index, in expressions: no query (nor its plan, for auto_explain) ever holds a plaintext
	FOR n IN 0 .. jsonb_array_length(keys) - 1 LOOP
		item := keys -> n;
		BEGIN
			IF jsonb_typeof(item) IS DISTINCT FROM 'object'
			   OR (item ? 'hash') = (item ? 'plaintext')
			   OR jsonb_typeof(coalesce(item -> 'hash', item -> 'plaintext')) <> 'string' THEN
				PERFORM unkey._raise('invalid_parameter_value'::text, 'must be an object with either a hash or a plaintext string'::text,
									 'Each key takes "hash" (its SHA-256) or "plaintext" (the key itself), and optionally the fields of unkey_update_key.'::text);
			END IF;
			k := NULL;
			-- a plaintext is hashed here, shown only by its hash, and stored only encrypted
			plain := item ->> 'plaintext';
			IF plain IS NOT NULL THEN
				IF char_length(plain) NOT BETWEEN 1 AND 512 THEN
					PERFORM unkey._raise('invalid_parameter_value'::text, 'plaintext must be 1 to 512 characters'::text,
										 'Pass the whole key, as the verification will present it.'::text);
				END IF;
				k.key_hash := unkey._key_hash(plain);
				shown := encode(k.key_hash, 'base64');
			ELSE
				k.key_hash := unkey._decode_hash(item ->> 'hash');
				shown := item ->> 'hash';
			END IF;
			-- a malformed or taken hash fails alone, before anything of it is written
			IF k.key_hash IS NULL OR EXISTS (SELECT FROM unkey.keys kk WHERE kk.key_hash = k.key_hash) THEN
				failed := failed || shown;
				CONTINUE;
			END IF;
			k.id := unkey._new_id('key'::text);
			k.api_id := live_api;
			-- Unkey's migration shows the first 4 characters; we do only of a key of 16 or more
			k.start := CASE WHEN char_length(plain) >= 16 THEN left(plain, 4) ELSE '' END;
			k.enabled := true;
			k.created_at := ts;
			k := unkey._apply_key_changes(k, item - 'hash' - 'plaintext', ts);
			ciphertext := CASE WHEN plain IS NOT NULL AND recoverable THEN unkey._encrypt_key(live_api, k.id, plain) END;
			-- a concurrent import of the same hash: the first one wins
			INSERT INTO unkey.keys VALUES (k.*) ON CONFLICT (key_hash) DO NOTHING;
			IF NOT FOUND THEN
				failed := failed || shown;
				CONTINUE;
			END IF;
			IF ciphertext IS NOT NULL THEN
				INSERT INTO unkey.encrypted_keys (key_hash, api_id, ciphertext, created_at)
				VALUES (k.key_hash, live_api, ciphertext, ts);
			END IF;
			PERFORM unkey._apply_key_links(k.key_hash, item - 'plaintext');
		EXCEPTION WHEN OTHERS THEN
			-- say which key was wrong, keeping the SQLSTATE
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
			RAISE EXCEPTION 'keys[%]: %', n, msg USING ERRCODE = state, HINT = hint;
		END;
		migrated := migrated || jsonb_build_object('hash', shown, 'keyId', k.id);
		ids := ids || ARRAY['key', k.id];
	END LOOP;
	-- a call that migrated nothing changed nothing: no audit row
	IF cardinality(ids) > 0 THEN
		PERFORM unkey._audit('key.create'::text, format('Migrated %s keys into API %s', cardinality(ids) / 2, live_api),
							 ARRAY['api', live_api] || ids);
	END IF;
	RETURN ROW(to_jsonb(migrated), to_jsonb(failed))::unkey.migration_result;
END
$$;

/*
 * The audit log's actor can be the v2 API's root key (unkey._set_v2_actor,
 * src/sql/utils.sql).
 */
COMMENT ON FUNCTION unkey._actor() IS 'private: the calling role (current_user outside our SECURITY DEFINER functions), or the v2 API''s root key';
CREATE FUNCTION unkey._set_v2_actor(actor text) RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_set_v2_actor' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._set_v2_actor(text) IS 'private: the v2 API''s root key is the actor of this transaction''s audit rows';

/*
 * unkey.now() is the statement's start, and STABLE, as Citus needs of a
 * function in a statement it distributes (src/sql/utils.sql).
 */
ALTER FUNCTION unkey.now() STABLE;
COMMENT ON FUNCTION unkey.now() IS 'the clock used for expiry and refill: the statement''s start (unkey.test_now pins it in tests)';

/*
 * Cached configuration (rate-limit namespaces and overrides, the gateway's
 * settings) carries a version, so that on Citus every node's caches see a
 * change made on another (src/sql/utils.sql).
 */
CREATE TABLE unkey.config_version (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	version				bigint NOT NULL
);
COMMENT ON TABLE unkey.config_version IS 'reference: a counter of the changes to cached configuration, for the caches of every Citus node';
-- no row is version 0; pg_dump carries it, as the configuration it counts
SELECT pg_catalog.pg_extension_config_dump('unkey.config_version', '');
REVOKE ALL ON unkey.config_version FROM PUBLIC;

CREATE FUNCTION unkey._send_invalidation(rel regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_invalidate' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._send_invalidation(regclass) IS 'private: at commit, make every backend of this server drop its caches of this table';

CREATE OR REPLACE FUNCTION unkey._invalidate(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO unkey.config_version AS v (version) VALUES (1)
	ON CONFLICT (singleton) DO UPDATE SET version = v.version + 1;
	PERFORM unkey._send_invalidation(rel);
END
$$;
COMMENT ON FUNCTION unkey._invalidate(regclass) IS 'private: at commit, make every backend drop its caches of this table (on Citus, of every node)';

/*
 * Keys are read and locked by their hash, one statement per table, and the
 * functions that read a key's tables are PL/pgSQL: Citus routes a statement
 * by the distribution column and cannot plan a SQL function's parameter
 * over a distributed table (src/sql/keys.sql, lifecycle.sql, ratelimit.sql).
 */
CREATE OR REPLACE FUNCTION unkey._store_key(k unkey.keys)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE unkey.keys kk
	   SET (name, identity_id, meta, expires, enabled, remaining, refill_interval, refill_amount,
			refill_day, last_refill_at, updated_at)
		 = (k.name, k.identity_id, k.meta, k.expires, k.enabled, k.remaining, k.refill_interval,
			k.refill_amount, k.refill_day, k.last_refill_at, unkey.now())
	 WHERE kk.key_hash = k.key_hash;
END
$$;
COMMENT ON FUNCTION unkey._store_key(unkey.keys) IS 'private: write back a changed key row';

CREATE OR REPLACE FUNCTION unkey._lock_key(key_id text)
RETURNS unkey.keys
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k unkey.keys;
	h bytea := (SELECT kk.key_hash FROM unkey.keys kk WHERE kk.id = key_id AND kk.deleted_at IS NULL);
BEGIN
	SELECT kk.* INTO k FROM unkey.keys kk
	  JOIN unkey.apis a ON a.id = kk.api_id AND a.deleted_at IS NULL
	 WHERE kk.key_hash = h AND kk.id = key_id AND kk.deleted_at IS NULL
	   FOR UPDATE OF kk;
	IF k.key_hash IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'key not found'::text,
							 'Check the key id (key_...); a deleted key, or a key of a deleted API, cannot be used.'::text);
	END IF;
	RETURN k;
END
$$;
COMMENT ON FUNCTION unkey._lock_key(text) IS 'private: lock a key for a change';

CREATE OR REPLACE FUNCTION unkey._get_ratelimits(key_hash bytea, identity_id text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- PL/pgSQL, not SQL: Citus plans a parameter of a SQL function over a distributed table as it cannot
	RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('name', r.name, 'limit', r."limit", 'duration', r.duration_ms,
														 'autoApply', r.auto_apply) ORDER BY r.name COLLATE "C"), '[]')
			  FROM (SELECT k.name, k."limit", k.duration_ms, k.auto_apply FROM unkey.key_ratelimits k
					 WHERE k.key_hash = _get_ratelimits.key_hash
					UNION ALL
					SELECT i.name, i."limit", i.duration_ms, i.auto_apply FROM unkey.identity_ratelimits i
					 WHERE i.identity_id = _get_ratelimits.identity_id) r);
END
$$;
COMMENT ON FUNCTION unkey._get_ratelimits(bytea, text) IS 'private: the named rate limits of a key or identity, as JSON';

CREATE OR REPLACE FUNCTION unkey._key_grants(h bytea, kind text)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- PL/pgSQL, not SQL: Citus plans a parameter of a SQL function over a distributed table as it cannot
	IF kind = 'roles' THEN
		RETURN ARRAY(SELECT r.name FROM unkey.key_roles kr JOIN unkey.roles r ON r.id = kr.role_id
					  WHERE kr.key_hash = h ORDER BY r.name COLLATE "C");
	END IF;
	RETURN ARRAY(SELECT p.slug FROM unkey.key_permissions kp JOIN unkey.permissions p ON p.id = kp.permission_id
				  WHERE kp.key_hash = h ORDER BY p.slug COLLATE "C");
END
$$;
COMMENT ON FUNCTION unkey._key_grants(bytea, text) IS 'private: the roles or direct permissions of a key';

CREATE OR REPLACE FUNCTION unkey._key_info(h bytea)
RETURNS unkey.key_info
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k unkey.keys;
	i unkey.identities;
	last_used timestamptz;
BEGIN
	SELECT kk.* INTO k FROM unkey.keys kk JOIN unkey.apis a ON a.id = kk.api_id AND a.deleted_at IS NULL
	 WHERE kk.key_hash = h AND kk.deleted_at IS NULL;
	IF k.key_hash IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'key not found'::text,
							 'Check the key id (key_...); a deleted key, or a key of a deleted API, cannot be used.'::text);
	END IF;
	SELECT ii.* INTO i FROM unkey.identities ii WHERE ii.id = k.identity_id;
	-- from the rollups of the verification events, not written by verification
	SELECT max(r.last_time) INTO last_used FROM unkey.verification_rollups r WHERE r.key_hash = h AND r.key_id = k.id;
	RETURN ROW(k.id, k.api_id, k.start, k.prefix, k.name, k.meta, k.identity_id, i.external_id, i.meta,
			   k.enabled, k.expires,
			   unkey._credits_now(k.remaining, k.refill_amount, k.refill_day, k.last_refill_at, unkey.now()),
			   k.refill_interval, k.refill_amount, k.refill_day, k.last_refill_at,
			   unkey._get_ratelimits(h, NULL::text), unkey._key_grants(h, 'roles'::text), unkey._key_grants(h, 'permissions'::text),
			   k.created_at, k.updated_at, last_used, NULL::text)::unkey.key_info;
END
$$;
COMMENT ON FUNCTION unkey._key_info(bytea) IS 'private: the key_info of a key hash';


/*
 * unkey_create_postgrest_roles: the admin role gets every unkey_ function
 * but the owner's, and the root keys of the v2 API are the owner's too.
 */
CREATE OR REPLACE FUNCTION unkey.unkey_create_postgrest_roles(
	authenticator		text DEFAULT 'authenticator',
	anon				text DEFAULT 'unkey_anon',
	verifier			text DEFAULT 'unkey_verifier',
	admin				text DEFAULT 'unkey_admin')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	f regprocedure;
	r text;
BEGIN
	IF authenticator IS NULL OR anon IS NULL OR verifier IS NULL OR admin IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'every role name must be given'::text,
							 'Leave an argument out for its default name.'::text);
	END IF;
	IF to_regrole(quote_ident(authenticator)) IS NULL THEN
		EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT', authenticator);
	END IF;
	IF to_regrole(quote_ident(anon)) IS NULL THEN
		EXECUTE format('CREATE ROLE %I NOLOGIN', anon);
	END IF;
	IF to_regrole(quote_ident(verifier)) IS NULL THEN
		EXECUTE format('CREATE ROLE %I NOLOGIN', verifier);
	END IF;
	IF to_regrole(quote_ident(admin)) IS NULL THEN
		EXECUTE format('CREATE ROLE %I NOLOGIN', admin);
	END IF;
	FOR r IN SELECT x FROM unnest(ARRAY[anon, verifier, admin]) x WHERE NOT pg_has_role(authenticator, x, 'MEMBER') LOOP
		EXECUTE format('GRANT %I TO %I', r, authenticator);
	END LOOP;
	EXECUTE format('GRANT USAGE ON SCHEMA unkey TO %I, %I, %I', anon, verifier, admin);
	-- every request role passes the gateway
	EXECUTE format('GRANT EXECUTE ON FUNCTION unkey.pre_request(), unkey.gateway_check() TO %I, %I, %I',
				   anon, verifier, admin);
	EXECUTE format('GRANT EXECUTE ON FUNCTION unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet),
					unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet),
					unkey.unkey_ratelimit(text, text, bigint, interval, bigint), unkey.unkey_ratelimit_many(jsonb) TO %I',
				   verifier);
	-- the admin: every unkey_ function but the owner's (rotation, these
	-- roles, the v2 API's root keys)
	FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace = 'unkey'::regnamespace AND p.proname LIKE 'unkey\_%'
				AND p.proname NOT IN ('unkey_vault_rotate', 'unkey_create_postgrest_roles')
				AND p.proname NOT LIKE '%\_root\_key%'
			  ORDER BY 1 LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, admin);
	END LOOP;
	EXECUTE format('GRANT SELECT ON unkey.audit_trail, unkey.verifications, unkey.verifications_hourly,
					unkey.verifications_daily, unkey.verifications_monthly, unkey.key_usage, unkey.ratelimits_hourly,
					unkey.ratelimits_daily, unkey.ratelimits_monthly TO %I', admin);
END
$$;

/*
 * 0.5.0 adds Unkey's v2 HTTP API (schema unkey_v2) and its root keys
 * (src/sql/v2.sql, copied here whole until 0.5.0 is released).
 */

-- Unkey's v2 HTTP API (issue 16): one function per endpoint in schema
-- unkey_v2, which PostgREST exposes; a reverse proxy maps POST /v2/<name> to
-- POST /rpc/<name> and moves the SDK's "Authorization: Bearer <root key>" to
-- the header X-Unkey-Root-Key (PostgREST would read it as a JWT).  Each
-- endpoint takes Unkey's request body as its one unnamed jsonb argument and
-- returns Unkey's envelope.  unkey._v2_call runs every endpoint: the body is
-- checked as Unkey's OpenAPI schema says, the root key authenticated and its
-- permissions checked, the work done by the same functions as the SQL API;
-- an error becomes Unkey's error body, with response.status set and the
-- endpoint's writes undone (the exception block is a subtransaction).

CREATE SCHEMA unkey_v2;
COMMENT ON SCHEMA unkey_v2 IS 'Unkey''s v2 HTTP API, for PostgREST: one function per endpoint';

-- Root keys: keys of the API unkey.root_api_id(), whose grants are Unkey's
-- root-key permissions (api.<apiId|*>.create_key, ...), kept apart from the
-- application's permissions and roles so that no endpoint can change them
CREATE TABLE unkey.root_keys (
	key_hash			bytea PRIMARY KEY REFERENCES unkey.keys (key_hash) ON DELETE CASCADE,
	permissions			text[] NOT NULL DEFAULT '{}',
	-- disabling is recorded here too, where only the owner's functions write:
	-- re-enabling the key row through the SQL API does not re-enable it
	enabled				boolean NOT NULL DEFAULT true
);
COMMENT ON TABLE unkey.root_keys IS 'per-key: the Unkey root-key permissions of a root key';
SELECT pg_catalog.pg_extension_config_dump('unkey.root_keys', '');

-- The API that holds the root keys: a fixed id, created with the first root key
CREATE FUNCTION unkey.root_api_id() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'api_unkey_root_keys'::text $$;
COMMENT ON FUNCTION unkey.root_api_id() IS 'private: the API that holds the root keys: a fixed id, created with the first root key';

-- Raise a root-key permission that Unkey does not define
CREATE FUNCTION unkey._check_root_permissions(permissions text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p text;
BEGIN
	IF permissions IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'permissions must not be null'::text,
							 'Pass an array of root-key permissions, such as api.*.verify_key.'::text);
	END IF;
	FOREACH p IN ARRAY permissions LOOP
		IF p IS NULL OR p !~ ('^(api\.([*]|[A-Za-z0-9_]{1,255})\.(read_api|create_api|delete_api|update_api|create_key'
							 '|update_key|delete_key|encrypt_key|decrypt_key|read_key|verify_key|read_analytics)'
							 '|ratelimit\.([*]|[A-Za-z0-9_]{1,255})\.(limit|create_namespace|read_namespace|update_namespace'
							 '|delete_namespace|set_override|read_override|delete_override|list_overrides|read_analytics)'
							 '|rbac\.[*]\.(create_permission|update_permission|delete_permission|read_permission|create_role'
							 '|update_role|delete_role|read_role|add_permission_to_key|remove_permission_from_key'
							 '|add_role_to_key|remove_role_from_key|add_permission_to_role|remove_permission_from_role)'
							 '|identity\.([*]|[A-Za-z0-9_]{1,255})\.(create_identity|read_identity|update_identity|delete_identity))$') THEN
			PERFORM unkey._raise('invalid_parameter_value'::text,
								 format('permissions: %s is not a root-key permission', coalesce(p, 'null')),
								 'Use Unkey''s names: <api|ratelimit|identity>.<id or *>.<action>, or rbac.*.<action>.'::text);
		END IF;
	END LOOP;
	RETURN ARRAY(SELECT DISTINCT unnest(permissions) ORDER BY 1);
END
$$;
COMMENT ON FUNCTION unkey._check_root_permissions(text[]) IS 'private: raise a root-key permission that Unkey does not define';

CREATE TYPE unkey.root_key AS (
	key_id				text,
	name				text,
	start				text,
	permissions			text[],
	enabled				boolean,
	expires				timestamptz,
	created_at			timestamptz
);

-- A root key: shown once, like any key
CREATE FUNCTION unkey.unkey_create_root_key(name text, permissions text[], expires timestamptz DEFAULT NULL)
RETURNS unkey.created_key
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	granted text[] := unkey._check_root_permissions(permissions);
	created unkey.created_key;
BEGIN
	IF NOT EXISTS (SELECT FROM unkey.apis a WHERE a.id = unkey.root_api_id() AND a.deleted_at IS NULL) THEN
		INSERT INTO unkey.apis (id, name, delete_protection, default_prefix, created_at)
		VALUES (unkey.root_api_id(), 'unkey root keys', true, 'unkey', unkey.now());
	END IF;
	created := unkey.unkey_create_key(unkey.root_api_id(), name => unkey_create_root_key.name,
									  expires => unkey_create_root_key.expires);
	INSERT INTO unkey.root_keys (key_hash, permissions)
	SELECT k.key_hash, granted FROM unkey.keys k WHERE k.id = created.key_id;
	RETURN created;
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_root_key(text, text[], timestamptz) IS 'create a root key for the v2 API with Unkey''s root-key permissions; the plaintext is shown once';

-- The root keys, without their plaintext or hash
CREATE FUNCTION unkey.unkey_list_root_keys()
RETURNS SETOF unkey.root_key
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT k.id, k.name, k.start, r.permissions, k.enabled AND r.enabled, k.expires, k.created_at
	  FROM unkey.root_keys r JOIN unkey.keys k ON k.key_hash = r.key_hash
	 WHERE k.deleted_at IS NULL
	 ORDER BY k.id
$$;
COMMENT ON FUNCTION unkey.unkey_list_root_keys() IS 'the root keys of the v2 API';

-- Replace a root key's permissions, or enable or disable it (NULL keeps)
CREATE FUNCTION unkey.unkey_update_root_key(key_id text, permissions text[] DEFAULT NULL, enabled boolean DEFAULT NULL)
RETURNS unkey.root_key
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h bytea;
	result unkey.root_key;
BEGIN
	SELECT k.key_hash INTO h FROM unkey.keys k JOIN unkey.root_keys r ON r.key_hash = k.key_hash
	 WHERE k.id = unkey_update_root_key.key_id AND k.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM unkey._raise('not_found'::text, 'root key not found'::text,
							 'Check the key id (unkey_list_root_keys()).'::text);
	END IF;
	IF permissions IS NOT NULL THEN
		UPDATE unkey.root_keys r SET permissions = unkey._check_root_permissions(unkey_update_root_key.permissions)
		 WHERE r.key_hash = h;
	END IF;
	IF enabled IS NOT NULL THEN
		UPDATE unkey.root_keys r SET enabled = unkey_update_root_key.enabled WHERE r.key_hash = h;
		PERFORM unkey.unkey_update_key(unkey_update_root_key.key_id, jsonb_build_object('enabled', enabled));
	END IF;
	SELECT * INTO result FROM unkey.unkey_list_root_keys() l WHERE l.key_id = unkey_update_root_key.key_id;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey.unkey_update_root_key(text, text[], boolean) IS 'replace a root key''s permissions, or enable or disable it';

-- Revoke a root key: refused from the next request on
CREATE FUNCTION unkey.unkey_delete_root_key(key_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM unkey.unkey_update_root_key(key_id);
	PERFORM unkey.unkey_delete_key(key_id, permanent => true);
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_root_key(text) IS 'revoke a root key';

-- An error of the v2 API: its HTTP status, Unkey's code and detail; for a
-- 400, the location in the request that is at fault
CREATE FUNCTION unkey._v2_fail(status integer, code text, detail text, location text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = 'PT' || status, MESSAGE = detail, DETAIL = code, HINT = coalesce(location, '');
END
$$;
COMMENT ON FUNCTION unkey._v2_fail(integer, text, text, text) IS 'private: an error of the v2 API: its HTTP status, Unkey''s code and detail; for a 400, the location in the request that is at fault';

-- Unkey's error body for an error raised while running an endpoint: a
-- _v2_fail error as it says; the SQL API's errors by their SQLSTATE (22023
-- and the other input errors 400, PT404 404, 23505 409, PT412 412, 42501
-- 403); anything else 500.  Sets response.status and the content type
-- (application/problem+json for 429, and when problem is set).
CREATE FUNCTION unkey._v2_error(state text, message text, detail text, hint text, problem boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	status integer;
	code text;
	noun text;
	title text;
	body jsonb;
BEGIN
	status := CASE WHEN state ~ '^PT[1-5][0-9][0-9]$' THEN substr(state, 3)::integer
				   WHEN state IN ('22023', '22P02', '22003', '22007', '22008', '2202E', '22004', '22P05', '42601', '54000')
					   THEN 400
				   WHEN state = '23505' THEN 409
				   WHEN state = '42501' THEN 403
				   ELSE 500 END;
	noun := lower(substring(message FROM '^(?:an? )?([A-Za-z -]+?) (?:named |with [a-z ]+ )?(?:"[^"]*" )?(?:not found|already exists|is gone)'));
	code := CASE WHEN detail ~ '^(unkey|user)/[a-z_]+/[a-z_]+$' THEN detail
				 WHEN state = '42601' THEN 'user/bad_request/permissions_query_syntax_error'
				 WHEN status = 400 THEN 'unkey/application/invalid_input'
				 WHEN status = 404 THEN 'unkey/data/' || coalesce(replace(noun, ' ', '_'), 'resource') || '_not_found'
				 WHEN status = 409 THEN 'unkey/data/' || coalesce(replace(noun, ' ', '_'), 'resource') || '_already_exists'
				 WHEN status = 410 THEN 'unkey/data/ratelimit_namespace_gone'
				 WHEN status = 412 THEN 'unkey/application/precondition_failed'
				 WHEN status = 403 THEN 'unkey/authorization/forbidden'
				 WHEN status = 429 THEN 'user/too_many_requests/workspace_rate_limited'
				 ELSE 'unkey/application/unexpected_error' END;
	title := CASE WHEN code = 'unkey/authorization/insufficient_permissions' THEN 'Insufficient Permissions'
				  WHEN code = 'unkey/authorization/key_disabled' THEN 'Key is disabled'
				  WHEN code = 'unkey/application/protected_resource' THEN 'Resource is protected'
				  ELSE CASE status WHEN 400 THEN 'Bad Request' WHEN 401 THEN 'Unauthorized' WHEN 403 THEN 'Forbidden'
						  WHEN 404 THEN 'Not Found' WHEN 409 THEN 'Conflicting Resource' WHEN 410 THEN 'Resource Gone'
						  WHEN 412 THEN 'Precondition Failed' WHEN 422 THEN 'Unprocessable Entity' WHEN 429 THEN 'Too Many Requests'
						  WHEN 501 THEN 'Not Implemented'
						  ELSE 'Internal Server Error' END END;
	IF status = 500 THEN
		RAISE LOG 'unkey v2: unexpected error %: %', state, message;
		message := 'Something unexpected went wrong: the server log has the details.';
	END IF;
	body := jsonb_build_object('title', title, 'detail', message, 'status', status,
							   'type', 'https://unkey.com/docs/errors/' || code);
	-- a _v2_fail error's hint is its location; an SQL API error's, the fix
	-- (a permission query is verifyKey's permissions)
	IF status = 400 THEN
		body := body || jsonb_build_object('errors', jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
			'location', CASE WHEN detail = code THEN coalesce(nullif(hint, ''), 'body')
							 WHEN state = '42601' THEN 'body.permissions' ELSE 'body' END,
			'message', message, 'fix', CASE WHEN detail IS DISTINCT FROM code THEN nullif(hint, '') END))));
	END IF;
	PERFORM set_config('response.status', status::text, true),
			set_config('response.headers', jsonb_build_array(jsonb_build_object('Content-Type',
				CASE WHEN status = 429 OR problem THEN 'application/problem+json' ELSE 'application/json' END))::text, true);
	RETURN jsonb_build_object('meta', unkey._v2_meta(), 'error', body);
END
$$;
COMMENT ON FUNCTION unkey._v2_error(text, text, text, text, boolean) IS 'private: unkey''s error body for an error raised while running an endpoint: a _v2_fail error as it says; the SQL API''s errors by their SQLSTATE (22023 and the other input errors 400, PT404 404, 23505 409, PT412 412, 42501 403); anything else 500.  Sets response.status and the content type.';

-- {requestId}: the request's unkey.request_id, else its X-Request-Id header
-- (printable, at most 128 characters), else a new one
CREATE FUNCTION unkey._v2_meta() RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	id text := nullif(current_setting('unkey.request_id', true), '');
BEGIN
	IF id IS NULL THEN
		BEGIN
			id := substring(nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-request-id'
							FROM '^[!-~]{1,128}$');
		EXCEPTION WHEN invalid_text_representation THEN
			id := NULL;
		END;
	END IF;
	RETURN jsonb_build_object('requestId', coalesce(id, unkey._new_id('req'::text)));
END
$$;
COMMENT ON FUNCTION unkey._v2_meta() IS 'private: {requestId}: the request''s unkey.request_id, else its X-Request-Id header (printable, at most 128 characters), else a new one';

-- The request body as an object with only the fields its schema names, and
-- those it requires (Unkey's additionalProperties: false)
CREATE FUNCTION unkey._v2_body(body jsonb, fields text[], required text[] DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	f text;
BEGIN
	IF body IS NULL OR jsonb_typeof(body) <> 'object' THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'The request body must be a JSON object.', 'body');
	END IF;
	SELECT k INTO f FROM jsonb_object_keys(body) k WHERE k <> ALL (fields) ORDER BY 1 LIMIT 1;
	IF FOUND THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
							   format('The request body has a property %s that the schema does not allow.', f),
							   'body.' || f);
	END IF;
	FOREACH f IN ARRAY required LOOP
		IF NOT body ? f OR jsonb_typeof(body -> f) = 'null' THEN
			PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
								   format('The request body is missing the required property %s.', f), 'body.' || f);
		END IF;
	END LOOP;
	RETURN body;
END
$$;
COMMENT ON FUNCTION unkey._v2_body(jsonb, text[], text[]) IS 'private: the request body as an object with only the fields its schema names, and those it requires (Unkey''s additionalProperties: false)';

-- A string field of the body (NULL when absent), within Unkey's bounds
CREATE FUNCTION unkey._v2_string(body jsonb, field text, min_length integer, max_length integer, pattern text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v text;
BEGIN
	IF NOT body ? field THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(body -> field) <> 'string' THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', format('%s must be a string.', field), 'body.' || field);
	END IF;
	v := body ->> field;
	IF char_length(v) NOT BETWEEN min_length AND max_length OR v !~ coalesce(pattern, '') THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
							   format('%s must be %s to %s characters%s.', field, min_length, max_length,
									  CASE WHEN pattern IS NOT NULL THEN ' matching ' || pattern ELSE '' END),
							   'body.' || field);
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION unkey._v2_string(jsonb, text, integer, integer, text) IS 'private: A string field of the body (NULL when absent), within Unkey''s bounds';

-- The root key of the request (header X-Unkey-Root-Key: "Bearer <key>"),
-- authenticated as Unkey does: missing or malformed 400, unknown 401,
-- disabled or expired 403; returns its permissions
CREATE FUNCTION unkey._v2_root() RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	header text;
	token text;
	live boolean;
	until timestamptz;
	granted text[];
	root_id text;
BEGIN
	BEGIN
		header := nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-unkey-root-key';
	EXCEPTION WHEN invalid_text_representation THEN
		header := NULL;
	END;
	IF header IS NULL THEN
		PERFORM unkey._v2_fail(400, 'unkey/authentication/missing',
							   'Authorization header is missing: send "Authorization: Bearer <root key>".', 'header.Authorization');
	END IF;
	token := substring(header FROM '^[Bb]earer +(\S+)\s*$');
	IF token IS NULL THEN
		PERFORM unkey._v2_fail(400, 'unkey/authentication/malformed',
							   'You must provide a valid root key in the Authorization header in the format ''Bearer ROOT_KEY''.',
							   'header.Authorization');
	END IF;
	-- one index read, not a verification: a root key has no credits, limits
	-- or events, and a revocation or a change is seen by the next request
	SELECT k.enabled AND r.enabled, k.expires, r.permissions, k.id INTO live, until, granted, root_id
	  FROM unkey.keys k JOIN unkey.root_keys r ON r.key_hash = k.key_hash
	 WHERE k.key_hash = unkey._key_hash(token) AND k.api_id = unkey.root_api_id() AND k.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM unkey._v2_fail(401, 'unkey/authentication/key_not_found',
							   'The provided root key is invalid. We could not find the requested key.');
	ELSIF NOT live THEN
		PERFORM unkey._v2_fail(403, 'unkey/authorization/key_disabled', 'The root key is disabled.');
	ELSIF until <= unkey.now() THEN
		PERFORM unkey._v2_fail(403, 'unkey/authorization/forbidden', 'The root key has expired.');
	END IF;
	-- the audit rows of this request name the root key, as Unkey's do
	PERFORM unkey._set_v2_actor('root_key:' || root_id);
	RETURN granted;
END
$$;
COMMENT ON FUNCTION unkey._v2_root() IS 'private: the root key of the request (header X-Unkey-Root-Key: "Bearer <key>"), authenticated as Unkey does: missing or malformed 400, unknown 401, disabled or expired 403; returns its permissions';

-- Whether the root key's permissions satisfy a query of Unkey's root-key
-- permissions (api.*.read_api OR api.api_123.read_api): each is matched
-- literally, as Unkey does, so api.*.x is the grant for every API
CREATE FUNCTION unkey._v2_allowed(granted text[], query text) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(unkey.unkey_permissions_match(query, granted), false) $$;
COMMENT ON FUNCTION unkey._v2_allowed(text[], text) IS 'private: whether the root key''s permissions satisfy a query of Unkey''s root-key permissions (api.*.read_api OR api.api_123.read_api): each is matched literally, as Unkey does, so api.*.x is the grant for every API';

-- Raise 403 unless the root key's permissions satisfy the query
CREATE FUNCTION unkey._v2_require(granted text[], query text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT unkey._v2_allowed(granted, query) THEN
		PERFORM unkey._v2_fail(403, 'unkey/authorization/insufficient_permissions',
							   format('Missing one of these permissions: %s', replace(query, ' OR ', ' or ')));
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._v2_require(text[], text) IS 'private: raise 403 unless the root key''s permissions satisfy the query';

-- A live API of the application (never the root keys' own): 404 otherwise
CREATE FUNCTION unkey._v2_api(api_id text) RETURNS unkey.apis
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	a unkey.apis;
BEGIN
	SELECT * INTO a FROM unkey.apis x WHERE x.id = api_id AND x.deleted_at IS NULL AND x.id <> unkey.root_api_id();
	IF NOT FOUND THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/api_not_found', 'The requested API does not exist or has been deleted.');
	END IF;
	RETURN a;
END
$$;
COMMENT ON FUNCTION unkey._v2_api(text) IS 'private: A live API of the application (never the root keys'' own): 404 otherwise';

-- POST /v2/apis.createApi {name}
CREATE FUNCTION unkey._v2_apis_create_api(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{name}', '{name}');
	name text := unkey._v2_string(b, 'name', 3, 256);
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'api.*.create_api');
	RETURN jsonb_build_object('data', jsonb_build_object('apiId', unkey.unkey_create_api(left(name, 255))));
END
$$;
COMMENT ON FUNCTION unkey._v2_apis_create_api(jsonb) IS 'private: POST /v2/apis.createApi {name}';

-- POST /v2/apis.getApi {apiId}
CREATE FUNCTION unkey._v2_apis_get_api(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{apiId}', '{apiId}');
	api_id text := unkey._v2_string(b, 'apiId', 8, 255, '^[a-zA-Z0-9_]+$');
	a unkey.apis;
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), format('api.*.read_api OR api.%s.read_api', api_id));
	a := unkey._v2_api(api_id);
	RETURN jsonb_build_object('data', jsonb_build_object('id', a.id, 'name', a.name));
END
$$;
COMMENT ON FUNCTION unkey._v2_apis_get_api(jsonb) IS 'private: POST /v2/apis.getApi {apiId}';

-- POST /v2/apis.deleteApi {apiId}
CREATE FUNCTION unkey._v2_apis_delete_api(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{apiId}', '{apiId}');
	api_id text := unkey._v2_string(b, 'apiId', 8, 255, '^[a-zA-Z0-9_]+$');
	a unkey.apis;
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), format('api.*.delete_api OR api.%s.delete_api', api_id));
	a := unkey._v2_api(api_id);
	IF a.delete_protection THEN
		PERFORM unkey._v2_fail(412, 'unkey/application/protected_resource',
							   'This API has delete protection enabled. Disable it before attempting to delete.');
	END IF;
	PERFORM unkey.unkey_delete_api(api_id);
	RETURN jsonb_build_object('data', '{}'::jsonb);
END
$$;
COMMENT ON FUNCTION unkey._v2_apis_delete_api(jsonb) IS 'private: POST /v2/apis.deleteApi {apiId}';

-- An array of strings within Unkey's bounds (NULL when absent)
CREATE FUNCTION unkey._v2_strings(body jsonb, field text, max_items integer, min_length integer, max_length integer)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT body ? field THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(body -> field) <> 'array' OR jsonb_array_length(body -> field) > max_items
	   OR EXISTS (SELECT FROM jsonb_array_elements(body -> field) e
				   WHERE jsonb_typeof(e) <> 'string' OR char_length(e #>> '{}') NOT BETWEEN min_length AND max_length) THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
							   format('%s must be an array of at most %s strings of %s to %s characters.',
									  field, max_items, min_length, max_length), 'body.' || field);
	END IF;
	RETURN ARRAY(SELECT jsonb_array_elements_text(body -> field));
END
$$;
COMMENT ON FUNCTION unkey._v2_strings(jsonb, text, integer, integer, integer) IS 'private: an array of strings within Unkey''s bounds (NULL when absent)';

-- An integer field of the body (NULL when absent), within Unkey's bounds
CREATE FUNCTION unkey._v2_integer(body jsonb, field text, minimum bigint, maximum bigint, location text)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT body ? field THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(body -> field) <> 'number' OR (body ->> field)::numeric <> trunc((body ->> field)::numeric)
	   OR (body ->> field)::numeric NOT BETWEEN minimum AND maximum THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
							   format('%s must be an integer from %s to %s.', field, minimum, maximum), location);
	END IF;
	RETURN (body ->> field)::bigint;
END
$$;
COMMENT ON FUNCTION unkey._v2_integer(jsonb, text, bigint, bigint, text) IS 'private: an integer field of the body (NULL when absent), within Unkey''s bounds';

-- A boolean field of the body (NULL when absent)
CREATE FUNCTION unkey._v2_boolean(body jsonb, field text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT body ? field THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(body -> field) <> 'boolean' THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', format('%s must be true or false.', field),
							   'body.' || field);
	END IF;
	RETURN (body -> field)::boolean;
END
$$;
COMMENT ON FUNCTION unkey._v2_boolean(jsonb, text) IS 'private: A boolean field of the body (NULL when absent)';

-- Unix milliseconds of a time (NULL stays NULL)
CREATE FUNCTION unkey._v2_ms(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (extract(epoch FROM t) * 1000)::bigint $$;
COMMENT ON FUNCTION unkey._v2_ms(timestamptz) IS 'private: unix milliseconds of a time (NULL stays NULL)';

-- Unkey's RatelimitResponse items of a key's or an identity's limits, with
-- ids derived from the owner and the name (ours are named, not numbered)
CREATE FUNCTION unkey._v2_limits(owner text, limits jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_agg(jsonb_build_object('id', 'rl_' || left(md5(owner || '/' || (r ->> 'name')), 22), 'name', r -> 'name',
										'limit', r -> 'limit', 'duration', r -> 'duration', 'autoApply', r -> 'autoApply'))
	  FROM jsonb_array_elements(coalesce(limits, '[]')) r
$$;
COMMENT ON FUNCTION unkey._v2_limits(text, jsonb) IS 'private: Unkey''s RatelimitResponse items of a key''s or an identity''s limits, ids derived from owner and name';

-- Unkey's KeyResponseData of a key: optional fields left out when empty;
-- a rate limit's id is derived from the key and the name (ours have none)
CREATE FUNCTION unkey._v2_key_data(k unkey.key_info) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object(
		'keyId', k.key_id, 'start', k.start, 'enabled', k.enabled, 'name', k.name,
		'createdAt', unkey._v2_ms(k.created_at), 'updatedAt', unkey._v2_ms(k.updated_at),
		'lastUsedAt', unkey._v2_ms(k.last_used_at), 'expires', unkey._v2_ms(k.expires),
		-- direct and role permissions, as Unkey's KeyResponseData has them
		'permissions', (SELECT jsonb_agg(DISTINCT x ORDER BY x) FROM (
			SELECT unnest(k.permissions) UNION
			SELECT p.slug FROM unkey.roles r JOIN unkey.role_permissions rp ON rp.role_id = r.id
			  JOIN unkey.permissions p ON p.id = rp.permission_id WHERE r.name = ANY (k.roles)) y(x)),
		'roles', CASE WHEN cardinality(k.roles) > 0 THEN to_jsonb(k.roles) END,
		'identity', CASE WHEN k.identity_id IS NOT NULL THEN
			jsonb_build_object('id', k.identity_id, 'externalId', k.external_id) END,
		'plaintext', k.plaintext,
		'ratelimits', unkey._v2_limits(k.key_id, k.ratelimits)))
		-- user meta and identity meta may hold nulls, and credits.remaining is null when unlimited
		|| CASE WHEN k.meta IS NOT NULL THEN jsonb_build_object('meta', k.meta) ELSE '{}' END
		|| CASE WHEN k.credits IS NOT NULL THEN jsonb_build_object('credits', jsonb_build_object('remaining', k.credits)
			|| CASE WHEN k.refill_interval IS NOT NULL THEN jsonb_build_object('refill', jsonb_strip_nulls(jsonb_build_object(
				'interval', k.refill_interval, 'amount', k.refill_amount, 'refillDay', k.refill_day))) ELSE '{}' END)
			ELSE '{}' END
		|| CASE WHEN k.identity_id IS NOT NULL AND k.identity_meta IS NOT NULL AND k.identity_meta <> '{}' THEN
			jsonb_build_object('identity', jsonb_build_object('id', k.identity_id, 'externalId', k.external_id,
															  'meta', k.identity_meta)) ELSE '{}' END
$$;
COMMENT ON FUNCTION unkey._v2_key_data(unkey.key_info) IS 'private: unkey''s KeyResponseData of a key: optional fields left out when empty; a rate limit''s id is derived from the key and the name (ours have none)';

-- The API of a live key of the application: 404 key_not_found otherwise
CREATE FUNCTION unkey._v2_key_api(key_id text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	api text;
BEGIN
	SELECT k.api_id INTO api FROM unkey.keys k JOIN unkey.apis a ON a.id = k.api_id
	 WHERE k.id = key_id AND k.deleted_at IS NULL AND a.deleted_at IS NULL AND a.id <> unkey.root_api_id();
	IF api IS NULL THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/key_not_found', 'The specified key was not found.');
	END IF;
	RETURN api;
END
$$;
COMMENT ON FUNCTION unkey._v2_key_api(text) IS 'private: the API of a live key of the application: 404 key_not_found otherwise';

-- POST /v2/keys.createKey: Unkey's fields, camelCase, times in ms, credits nested
CREATE FUNCTION unkey._v2_keys_create_key(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{apiId,prefix,name,byteLength,externalId,meta,roles,permissions,expires,credits,ratelimits,enabled,recoverable}', '{apiId}');
	api text := unkey._v2_string(b, 'apiId', 3, 255, '^[a-zA-Z0-9_]+$');
	prefix text := unkey._v2_string(b, 'prefix', 1, 16, '^[a-zA-Z0-9_]+$');
	name text := unkey._v2_string(b, 'name', 1, 255);
	byte_length bigint := unkey._v2_integer(b, 'byteLength', 16, 255, 'body.byteLength');
	external_id text := unkey._v2_string(b, 'externalId', 1, 255, '^[a-zA-Z0-9_.-]+$');
	roles text[] := unkey._v2_strings(b, 'roles', 100, 1, 128);
	perms text[] := unkey._v2_strings(b, 'permissions', 1000, 1, 128);
	expires bigint := unkey._v2_integer(b, 'expires', 0, 4102444800000, 'body.expires');
	enabled boolean := unkey._v2_boolean(b, 'enabled');
	recoverable boolean := unkey._v2_boolean(b, 'recoverable');
	c jsonb := b -> 'credits';
	r jsonb;
	remaining bigint;
	created unkey.created_key;
BEGIN
	IF b ? 'meta' AND jsonb_typeof(b -> 'meta') <> 'object' THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'meta must be an object.', 'body.meta');
	END IF;
	IF c IS NOT NULL THEN
		c := unkey._v2_body(c, '{remaining,refill}', '{}');
		IF NOT c ? 'remaining' THEN
			PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'credits.remaining is required (null for unlimited).',
								   'body.credits.remaining');
		END IF;
		IF jsonb_typeof(c -> 'remaining') <> 'null' THEN
			remaining := unkey._v2_integer(c, 'remaining', 0, 9223372036854775807, 'body.credits.remaining');
		END IF;
		IF c ? 'refill' THEN
			r := unkey._v2_body(c -> 'refill', '{interval,amount,refillDay}', '{interval,amount}');
			PERFORM unkey._v2_string(r, 'interval', 5, 7, '^(daily|monthly)$');
			PERFORM unkey._v2_integer(r, 'amount', 1, 9223372036854775807, 'body.credits.refill.amount');
			PERFORM unkey._v2_integer(r, 'refillDay', 1, 31, 'body.credits.refill.refillDay');
			IF remaining IS NULL THEN
				PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
									   '`credits.remaining` must be provided when `credits.refill` is set.', 'body.credits.remaining');
			END IF;
			IF r ->> 'interval' = 'monthly' AND NOT r ? 'refillDay' THEN
				PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
									   '`refillDay` must be provided when the refill interval is `monthly`.', 'body.credits.refill.refillDay');
			END IF;
		END IF;
	END IF;
	IF NOT unkey._v2_allowed(unkey._v2_root(), format('(api.*.create_key OR api.%1$s.create_key)%2$s', api,
			CASE WHEN recoverable THEN format(' AND (api.*.encrypt_key OR api.%s.encrypt_key)', api) ELSE '' END)) THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/api_not_found', 'The specified API was not found.');
	END IF;
	PERFORM unkey._v2_api(api);
	created := unkey.unkey_create_key(api, prefix, byte_length::integer, name, external_id, b -> 'meta',
									  to_timestamp(expires / 1000.0), remaining, r ->> 'interval', (r ->> 'amount')::bigint,
									  CASE WHEN r ->> 'interval' = 'monthly' THEN (r ->> 'refillDay')::integer END,
									  b -> 'ratelimits', roles, perms, coalesce(enabled, true), coalesce(recoverable, false));
	RETURN jsonb_build_object('data', jsonb_build_object('keyId', created.key_id, 'key', created.key));
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_create_key(jsonb) IS 'private: POST /v2/keys.createKey: Unkey''s fields, camelCase, times in ms, credits nested';

-- decrypt: true needs decrypt_key on the API, and an API that keeps its
-- keys (412 otherwise, as Unkey answers)
CREATE FUNCTION unkey._v2_require_decrypt(granted text[], api text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM unkey._v2_require(granted, format('api.*.decrypt_key OR api.%s.decrypt_key', api));
	IF NOT (SELECT a.recoverable FROM unkey.apis a WHERE a.id = api) THEN
		PERFORM unkey._v2_fail(412, 'unkey/application/precondition_failed', 'This API does not support key encryption.');
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._v2_require_decrypt(text[], text) IS 'private: decrypt needs decrypt_key on the API and a recoverable API';

-- POST /v2/keys.getKey {keyId, decrypt?}
CREATE FUNCTION unkey._v2_keys_get_key(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{keyId,decrypt}', '{keyId}');
	key_id text := unkey._v2_string(b, 'keyId', 3, 255, '^[a-zA-Z0-9_]+$');
	decrypt boolean := coalesce(unkey._v2_boolean(b, 'decrypt'), false);
	granted text[] := unkey._v2_root();
	api text := unkey._v2_key_api(key_id);
BEGIN
	PERFORM unkey._v2_require(granted, format('api.*.read_key OR api.%s.read_key', api));
	IF decrypt THEN
		PERFORM unkey._v2_require_decrypt(granted, api);
	END IF;
	RETURN jsonb_build_object('data', unkey._v2_key_data(unkey.unkey_get_key(key_id, decrypt)));
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_get_key(jsonb) IS 'private: POST /v2/keys.getKey {keyId, decrypt?}';

-- POST /v2/keys.whoami {key}: a key the root key may not read is not found
CREATE FUNCTION unkey._v2_keys_whoami(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{key}', '{key}');
	key text := unkey._v2_string(b, 'key', 1, 512);
	granted text[] := unkey._v2_root();
	k unkey.key_info;
BEGIN
	BEGIN
		k := unkey.unkey_whoami(key);
	EXCEPTION WHEN SQLSTATE 'PT404' THEN
		k := NULL;
	END;
	IF k.key_id IS NULL OR k.api_id = unkey.root_api_id()
	   OR NOT unkey._v2_allowed(granted, format('api.*.read_key OR api.%s.read_key', k.api_id)) THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/key_not_found', 'The specified key was not found.');
	END IF;
	RETURN jsonb_build_object('data', unkey._v2_key_data(k));
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_whoami(jsonb) IS 'private: POST /v2/keys.whoami {key}: a key the root key may not read is not found';

-- POST /v2/keys.deleteKey {keyId, permanent?}
CREATE FUNCTION unkey._v2_keys_delete_key(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{keyId,permanent}', '{keyId}');
	key_id text := unkey._v2_string(b, 'keyId', 3, 255, '^[a-zA-Z0-9_]+$');
	permanent boolean := coalesce(unkey._v2_boolean(b, 'permanent'), false);
	granted text[] := unkey._v2_root();
	api text := unkey._v2_key_api(key_id);
BEGIN
	PERFORM unkey._v2_require(granted, format('api.*.delete_key OR api.%s.delete_key', api));
	PERFORM unkey.unkey_delete_key(key_id, permanent);
	RETURN jsonb_build_object('data', '{}'::jsonb);
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_delete_key(jsonb) IS 'private: POST /v2/keys.deleteKey {keyId, permanent?}';

-- POST /v2/apis.listKeys {apiId, limit?, cursor?, externalId?, decrypt?, revalidateKeysCache?}:
-- without read_key and read_api on the API, the API is not found
CREATE FUNCTION unkey._v2_apis_list_keys(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{apiId,limit,cursor,externalId,decrypt,revalidateKeysCache}', '{apiId}');
	api text := unkey._v2_string(b, 'apiId', 1, 255);
	lim bigint := coalesce(unkey._v2_integer(b, 'limit', 1, 100, 'body.limit'), 100);
	cursor text := unkey._v2_string(b, 'cursor', 0, 1024);
	ext_id text := unkey._v2_string(b, 'externalId', 1, 255);
	decrypt boolean := coalesce(unkey._v2_boolean(b, 'decrypt'), false);
	granted text[];
	page unkey.key_page;
BEGIN
	PERFORM unkey._v2_boolean(b, 'revalidateKeysCache');
	granted := unkey._v2_root();
	-- no API has another id: and only such ids go into a permission query
	IF api !~ '^[a-zA-Z0-9_]+$' THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/api_not_found', 'The requested API does not exist or has been deleted.');
	END IF;
	IF NOT unkey._v2_allowed(granted, format('(api.*.read_key OR api.%1$s.read_key) AND (api.*.read_api OR api.%1$s.read_api)', api)) THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/api_not_found', 'The requested API does not exist or has been deleted.');
	END IF;
	PERFORM unkey._v2_api(api);
	IF decrypt THEN
		PERFORM unkey._v2_require_decrypt(granted, api);
	END IF;
	IF ext_id IS NOT NULL AND NOT EXISTS (SELECT FROM unkey.identities i WHERE i.external_id = ext_id) THEN
		RETURN jsonb_build_object('data', '[]'::jsonb, 'pagination', jsonb_build_object('hasMore', false));
	END IF;
	page := unkey.unkey_list_keys(api, lim::integer, nullif(cursor, ''), ext_id, decrypt);
	RETURN jsonb_build_object(
		'data', coalesce((SELECT jsonb_agg(unkey._v2_key_data(page.keys[i]) ORDER BY i)
							FROM generate_subscripts(page.keys, 1) i), '[]'),
		'pagination', jsonb_strip_nulls(jsonb_build_object('cursor', CASE WHEN page.has_more THEN page.cursor END,
														   'hasMore', page.has_more)));
END
$$;
COMMENT ON FUNCTION unkey._v2_apis_list_keys(jsonb) IS 'private: POST /v2/apis.listKeys {apiId, limit?, cursor?, externalId?, decrypt?, revalidateKeysCache?}: without read_key and read_api on the API, the API is not found';

-- A page of rows matching a search, in id order, from a query that yields
-- (id, answer jsonb, haystack text); the cursor is the last id of the page
CREATE FUNCTION unkey._v2_page(b jsonb, rows_sql text, default_limit integer) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	lim bigint := coalesce(unkey._v2_integer(b, 'limit', 1, 100, 'body.limit'), default_limit);
	cursor text := nullif(unkey._v2_string(b, 'cursor', 0, 1024), '');
	search text := nullif(btrim(unkey._v2_string(b, 'search', 0, 256)), '');
	rows jsonb;
	ids text[];
BEGIN
	-- the answers are computed after the limit (PostgreSQL postpones costly output expressions past it)
	EXECUTE format('SELECT coalesce(jsonb_agg(x.answer ORDER BY x.id), ''[]''), array_agg(x.id ORDER BY x.id)
					  FROM (SELECT r.id, r.answer FROM (%s) r
							 WHERE ($1 IS NULL OR r.id > $1) AND ($2 IS NULL OR strpos(lower(r.haystack), lower($2)) > 0)
							 ORDER BY r.id LIMIT $3 + 1) x', rows_sql)
	   INTO rows, ids USING cursor, search, lim;
	IF jsonb_array_length(rows) > lim THEN
		RETURN jsonb_build_object('data', rows - (-1), 'pagination', jsonb_build_object('cursor', ids[lim], 'hasMore', true));
	END IF;
	RETURN jsonb_build_object('data', rows, 'pagination', jsonb_build_object('hasMore', false));
END
$$;
COMMENT ON FUNCTION unkey._v2_page(jsonb, text, integer) IS 'private: a page of a list endpoint: limit, cursor and search over (id, answer, haystack) rows';

-- Unkey's Identity: meta and ratelimits left out when empty
CREATE FUNCTION unkey._v2_identity_data(i unkey.identity) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_build_object('id', i.identity_id, 'externalId', i.external_id)
		|| CASE WHEN i.meta IS NOT NULL AND i.meta <> '{}' THEN jsonb_build_object('meta', i.meta) ELSE '{}' END
		|| CASE WHEN jsonb_array_length(coalesce(i.ratelimits, '[]')) > 0
				THEN jsonb_build_object('ratelimits', unkey._v2_limits(i.identity_id, i.ratelimits)) ELSE '{}' END
$$;
COMMENT ON FUNCTION unkey._v2_identity_data(unkey.identity) IS 'private: Unkey''s Identity: meta and ratelimits left out when empty';

-- The meta and ratelimits of an identity request, checked
CREATE FUNCTION unkey._v2_identity_fields(b jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF b ? 'meta' AND jsonb_typeof(b -> 'meta') <> 'object' THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'meta must be an object.', 'body.meta');
	END IF;
	IF b ? 'ratelimits' AND (jsonb_typeof(b -> 'ratelimits') <> 'array' OR jsonb_array_length(b -> 'ratelimits') > 50) THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'ratelimits must be an array of at most 50 limits.',
							   'body.ratelimits');
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._v2_identity_fields(jsonb) IS 'private: the meta and ratelimits of an identity request, checked';

-- POST /v2/identities.createIdentity {externalId, meta?, ratelimits?}
CREATE FUNCTION unkey._v2_identities_create_identity(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{externalId,meta,ratelimits}', '{externalId}');
	ext text := unkey._v2_string(b, 'externalId', 1, 255, '^[a-zA-Z0-9_.-]+$');
BEGIN
	PERFORM unkey._v2_identity_fields(b);
	PERFORM unkey._v2_require(unkey._v2_root(), 'identity.*.create_identity');
	IF EXISTS (SELECT FROM unkey.identities i WHERE i.external_id = ext) THEN
		PERFORM unkey._v2_fail(409, 'unkey/data/identity_already_exists',
							   format('Identity with externalId ''%s'' already exists in this workspace.', ext));
	END IF;
	RETURN jsonb_build_object('data', jsonb_build_object('identityId',
		unkey.unkey_create_identity(ext, b -> 'meta', b -> 'ratelimits')));
END
$$;
COMMENT ON FUNCTION unkey._v2_identities_create_identity(jsonb) IS 'private: POST /v2/identities.createIdentity';

-- The identity a request names (id or external id): 404 identity_not_found
CREATE FUNCTION unkey._v2_identity(b jsonb) RETURNS unkey.identity
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN unkey.unkey_get_identity(unkey._v2_string(b, 'identity', 1, 255));
EXCEPTION WHEN SQLSTATE 'PT404' THEN
	PERFORM unkey._v2_fail(404, 'unkey/data/identity_not_found', 'This identity does not exist.');
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION unkey._v2_identity(jsonb) IS 'private: the identity a request names (id or external id), or 404 identity_not_found';

-- POST /v2/identities.getIdentity {identity}
CREATE FUNCTION unkey._v2_identities_get_identity(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{identity}', '{identity}');
	granted text[] := unkey._v2_root();
	i unkey.identity := unkey._v2_identity(b);
BEGIN
	PERFORM unkey._v2_require(granted, format('identity.*.read_identity OR identity.%s.read_identity', i.identity_id));
	RETURN jsonb_build_object('data', unkey._v2_identity_data(i));
END
$$;
COMMENT ON FUNCTION unkey._v2_identities_get_identity(jsonb) IS 'private: POST /v2/identities.getIdentity';

-- POST /v2/identities.listIdentities {limit?, cursor?, search?}: the
-- identities the root key may read (identity.*.read_identity: all of them)
CREATE FUNCTION unkey._v2_identities_list_identities(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{limit,cursor,search}', '{}');
	granted text[] := unkey._v2_root();
	everything boolean := 'identity.*.read_identity' = ANY (granted);
BEGIN
	IF NOT everything AND NOT EXISTS (SELECT FROM unnest(granted) g WHERE g ~ '^identity\.[^.]+\.read_identity$') THEN
		PERFORM unkey._v2_fail(403, 'unkey/authorization/insufficient_permissions',
							   'Missing one of these permissions: identity.*.read_identity');
	END IF;
	RETURN unkey._v2_page(b, format($q$SELECT i.id, unkey._v2_identity_data(unkey.unkey_get_identity(i.id)) AS answer,
										concat_ws(' ', i.id, i.external_id) AS haystack
								   FROM unkey.identities i
								  WHERE %L OR format('identity.%%s.read_identity', i.id) = ANY (%L::text[])$q$,
									everything, granted), 100);
END
$$;
COMMENT ON FUNCTION unkey._v2_identities_list_identities(jsonb) IS 'private: POST /v2/identities.listIdentities, with search';

-- POST /v2/identities.updateIdentity {identity, meta?, ratelimits?}
CREATE FUNCTION unkey._v2_identities_update_identity(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{identity,meta,ratelimits}', '{identity}');
	i unkey.identity;
BEGIN
	PERFORM unkey._v2_identity_fields(b);
	PERFORM unkey._v2_require(unkey._v2_root(), 'identity.*.update_identity');
	i := unkey._v2_identity(b);
	IF (SELECT count(*) <> count(DISTINCT r ->> 'name') FROM jsonb_array_elements(coalesce(b -> 'ratelimits', '[]')) r) THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'Each rate limit of the request must have its own name.',
							   'body.ratelimits');
	END IF;
	RETURN jsonb_build_object('data', unkey._v2_identity_data(
		unkey.unkey_update_identity(i.identity_id, b -> 'meta', b -> 'ratelimits')));
END
$$;
COMMENT ON FUNCTION unkey._v2_identities_update_identity(jsonb) IS 'private: POST /v2/identities.updateIdentity';

-- POST /v2/identities.deleteIdentity {identity}: answers {meta} only
CREATE FUNCTION unkey._v2_identities_delete_identity(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{identity}', '{identity}');
	i unkey.identity;
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'identity.*.delete_identity');
	i := unkey._v2_identity(b);
	PERFORM unkey.unkey_delete_identity(i.identity_id);
	RETURN '{}'::jsonb;
END
$$;
COMMENT ON FUNCTION unkey._v2_identities_delete_identity(jsonb) IS 'private: POST /v2/identities.deleteIdentity';

-- A live rate-limit namespace by name or id (NULL when there is none)
CREATE FUNCTION unkey._v2_namespace(name_or_id text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT n.id FROM unkey.ratelimit_namespaces n
	 WHERE (n.name = name_or_id OR n.id = name_or_id) AND n.deleted_at IS NULL
	 ORDER BY n.name = name_or_id DESC LIMIT 1
$$;
COMMENT ON FUNCTION unkey._v2_namespace(text) IS 'private: a live rate-limit namespace by name or id';

-- One limit request of ratelimit.limit or multiLimit, checked; the root key
-- needs limit on its namespace, and create_namespace for a new one
CREATE FUNCTION unkey._v2_limit_request(r jsonb, granted text[], location text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(r, '{namespace,identifier,limit,duration,cost}', '{namespace,identifier,limit,duration}');
	ns text := unkey._v2_string(b, 'namespace', 1, 512);
	ns_id text;
BEGIN
	PERFORM unkey._v2_string(b, 'identifier', 1, 512);
	PERFORM unkey._v2_integer(b, 'limit', 1, 9223372036854775807, location || '.limit');
	PERFORM unkey._v2_integer(b, 'duration', 1000, 2592000000, location || '.duration');
	PERFORM unkey._v2_integer(b, 'cost', 0, 9223372036854775807, location || '.cost');
	ns_id := unkey._v2_namespace(ns);
	IF ns_id IS NULL AND EXISTS (SELECT FROM unkey.ratelimit_namespaces n WHERE n.name = ns OR n.id = ns) THEN
		PERFORM unkey._v2_fail(410, 'unkey/data/ratelimit_namespace_gone', 'This namespace has been deleted. Contact support to restore.');
	END IF;
	PERFORM unkey._v2_require(granted, format('ratelimit.*.limit%s',
		CASE WHEN ns_id IS NOT NULL THEN format(' OR ratelimit.%s.limit', ns_id) ELSE '' END));
	IF ns_id IS NULL THEN
		PERFORM unkey._v2_require(granted, 'ratelimit.*.create_namespace');
	END IF;
	RETURN b;
END
$$;
COMMENT ON FUNCTION unkey._v2_limit_request(jsonb, text[], text) IS 'private: one limit request of ratelimit.limit or multiLimit, checked with its permissions';

-- POST /v2/ratelimit.limit {namespace, identifier, limit, duration (ms), cost?}
CREATE FUNCTION unkey._v2_ratelimit_limit(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{namespace,identifier,limit,duration,cost}', '{}');
	r unkey.ratelimit_result;
BEGIN
	b := unkey._v2_limit_request(b, unkey._v2_root(), 'body');
	r := unkey.unkey_ratelimit(b ->> 'namespace', b ->> 'identifier', (b ->> 'limit')::bigint,
							   ((b ->> 'duration')::bigint * interval '1 millisecond'), coalesce((b ->> 'cost')::bigint, 1));
	RETURN jsonb_build_object('data', jsonb_strip_nulls(jsonb_build_object('success', r.success, 'limit', r."limit",
		'remaining', r.remaining, 'reset', unkey._v2_ms(r.reset), 'overrideId', r.override_id)));
END
$$;
COMMENT ON FUNCTION unkey._v2_ratelimit_limit(jsonb) IS 'private: POST /v2/ratelimit.limit';

-- POST /v2/ratelimit.multiLimit [{namespace, identifier, limit, duration, cost?}, ...]: all or nothing
CREATE FUNCTION unkey._v2_ratelimit_multi_limit(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	granted text[];
	checked jsonb := '[]';
	n integer := 0;
	item jsonb;
BEGIN
	IF body IS NULL OR jsonb_typeof(body) <> 'array' OR jsonb_array_length(body) NOT BETWEEN 1 AND 100 THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'The request body must be an array of 1 to 100 limits.', 'body');
	END IF;
	granted := unkey._v2_root();
	FOR item IN SELECT e FROM jsonb_array_elements(body) e LOOP
		checked := checked || jsonb_build_array(unkey._v2_limit_request(item, granted, format('body[%s]', n)));
		n := n + 1;
	END LOOP;
	RETURN jsonb_build_object('data', unkey.unkey_ratelimit_many(checked));
END
$$;
COMMENT ON FUNCTION unkey._v2_ratelimit_multi_limit(jsonb) IS 'private: POST /v2/ratelimit.multiLimit';

-- The namespace an override request names (by its name), with the permission it needs: 404 when missing
CREATE FUNCTION unkey._v2_override_namespace(b jsonb, action text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	granted text[] := unkey._v2_root();
	ns_id text := unkey._v2_namespace(unkey._v2_string(b, 'namespace', 1, 512));
BEGIN
	IF ns_id IS NULL THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/ratelimit_namespace_not_found', 'This namespace does not exist.');
	END IF;
	PERFORM unkey._v2_require(granted, format('ratelimit.*.%1$s OR ratelimit.%2$s.%1$s', action, ns_id));
	-- its name: the SQL API looks a namespace up by name first
	RETURN (SELECT n.name FROM unkey.ratelimit_namespaces n WHERE n.id = ns_id);
END
$$;
COMMENT ON FUNCTION unkey._v2_override_namespace(jsonb, text) IS 'private: the name of the namespace an override request names, with the permission it needs';

-- Unkey's RatelimitOverride
CREATE FUNCTION unkey._v2_override_data(o unkey.override) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_build_object('overrideId', o.override_id, 'identifier', o.identifier, 'limit', o."limit",
							  'duration', (extract(epoch FROM o.duration) * 1000)::bigint)
$$;
COMMENT ON FUNCTION unkey._v2_override_data(unkey.override) IS 'private: Unkey''s RatelimitOverride';

-- POST /v2/ratelimit.setOverride {namespace, identifier, limit, duration}
CREATE FUNCTION unkey._v2_ratelimit_set_override(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{namespace,identifier,limit,duration}', '{namespace,identifier,limit,duration}');
	ident text := unkey._v2_string(b, 'identifier', 1, 512);
	lim bigint := unkey._v2_integer(b, 'limit', 0, 9223372036854775807, 'body.limit');
	dur bigint := unkey._v2_integer(b, 'duration', 1000, 2592000000, 'body.duration');
	ns_id text := unkey._v2_override_namespace(b, 'set_override');
BEGIN
	RETURN jsonb_build_object('data', jsonb_build_object('overrideId',
		unkey.unkey_set_override(ns_id, ident, lim, dur * interval '1 millisecond')));
END
$$;
COMMENT ON FUNCTION unkey._v2_ratelimit_set_override(jsonb) IS 'private: POST /v2/ratelimit.setOverride';

-- POST /v2/ratelimit.getOverride {namespace, identifier}: the exact one
CREATE FUNCTION unkey._v2_ratelimit_get_override(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{namespace,identifier}', '{namespace,identifier}');
	ident text := unkey._v2_string(b, 'identifier', 1, 512);
	ns_id text := unkey._v2_override_namespace(b, 'read_override');
	o unkey.override;
BEGIN
	BEGIN
		o := unkey.unkey_get_override(ns_id, ident);
	EXCEPTION WHEN SQLSTATE 'PT404' THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/ratelimit_override_not_found', 'This override does not exist.');
	END;
	RETURN jsonb_build_object('data', unkey._v2_override_data(o));
END
$$;
COMMENT ON FUNCTION unkey._v2_ratelimit_get_override(jsonb) IS 'private: POST /v2/ratelimit.getOverride';

-- POST /v2/ratelimit.listOverrides {namespace, cursor?, limit? (10)}
CREATE FUNCTION unkey._v2_ratelimit_list_overrides(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{namespace,cursor,limit}', '{namespace}');
	ns_id text := unkey._v2_override_namespace(b, 'read_override');
BEGIN
	RETURN unkey._v2_page(b, format($q$SELECT o.override_id AS id, unkey._v2_override_data(o) AS answer, o.identifier AS haystack
								   FROM unkey.unkey_list_overrides(%L) o$q$, ns_id), 10);
END
$$;
COMMENT ON FUNCTION unkey._v2_ratelimit_list_overrides(jsonb) IS 'private: POST /v2/ratelimit.listOverrides';

-- POST /v2/ratelimit.deleteOverride {namespace, identifier}
CREATE FUNCTION unkey._v2_ratelimit_delete_override(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{namespace,identifier}', '{namespace,identifier}');
	ident text := unkey._v2_string(b, 'identifier', 1, 512);
	ns_id text := unkey._v2_override_namespace(b, 'delete_override');
BEGIN
	BEGIN
		PERFORM unkey.unkey_delete_override(ns_id, ident);
	EXCEPTION WHEN SQLSTATE 'PT404' THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/ratelimit_override_not_found', 'This override does not exist.');
	END;
	RETURN jsonb_build_object('data', '{}'::jsonb);
END
$$;
COMMENT ON FUNCTION unkey._v2_ratelimit_delete_override(jsonb) IS 'private: POST /v2/ratelimit.deleteOverride';

-- Unkey's Permission objects of these permission slugs or ids, by slug
CREATE FUNCTION unkey._v2_permissions(slugs text[]) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object('id', p.id, 'name', p.name, 'slug', p.slug,
																   'description', p.description)) ORDER BY p.slug COLLATE "C"), '[]')
	  FROM unkey.permissions p WHERE p.slug = ANY (slugs) OR p.id = ANY (slugs)
$$;
COMMENT ON FUNCTION unkey._v2_permissions(text[]) IS 'private: Unkey''s Permission objects of these slugs or ids, by slug';

-- Unkey's Role: description and permissions left out when empty
CREATE FUNCTION unkey._v2_role_data(r unkey.role) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object('id', r.role_id, 'name', r.name, 'description', r.description,
		'permissions', CASE WHEN cardinality(r.permissions) > 0 THEN unkey._v2_permissions(r.permissions) END))
$$;
COMMENT ON FUNCTION unkey._v2_role_data(unkey.role) IS 'private: Unkey''s Role: description and permissions left out when empty';

-- The permission slugs of a request, checked; the root key needs
-- create_permission for those that do not exist yet
CREATE FUNCTION unkey._v2_slugs(b jsonb, field text, granted text[]) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	slugs text[] := unkey._v2_strings(b, field, 1000, 1, 128);
BEGIN
	IF EXISTS (SELECT FROM unnest(slugs) x WHERE x !~ '^[a-zA-Z0-9_:.*-]+$') THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
							   format('%s must be permission slugs of letters, digits and _ : . * -', field), 'body.' || field);
	END IF;
	IF EXISTS (SELECT FROM unnest(slugs) x WHERE NOT EXISTS (SELECT FROM unkey.permissions p WHERE p.slug = x)) THEN
		PERFORM unkey._v2_require(granted, 'rbac.*.create_permission');
	END IF;
	RETURN ARRAY(SELECT DISTINCT x FROM unnest(slugs) x ORDER BY 1);
END
$$;
COMMENT ON FUNCTION unkey._v2_slugs(jsonb, text, text[]) IS 'private: the permission slugs of a request, checked; create_permission for new ones';

-- POST /v2/permissions.createPermission {name, slug, description?}
CREATE FUNCTION unkey._v2_permissions_create_permission(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{name,slug,description}', '{name,slug}');
	perm_name text := unkey._v2_string(b, 'name', 1, 512);
	new_slug text := unkey._v2_string(b, 'slug', 1, 128, '^[a-zA-Z0-9_:.*-]+$');
	perm_description text := unkey._v2_string(b, 'description', 0, 512);
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'rbac.*.create_permission');
	IF EXISTS (SELECT FROM unkey.permissions p WHERE lower(p.slug) = lower(new_slug)) THEN
		PERFORM unkey._v2_fail(409, 'unkey/data/permission_already_exists',
							   format('A permission with slug ''%s'' already exists in this workspace', new_slug));
	END IF;
	RETURN jsonb_build_object('data', jsonb_build_object('permissionId', unkey.unkey_create_permission(perm_name, new_slug, nullif(perm_description, ''))));
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_create_permission(jsonb) IS 'private: POST /v2/permissions.createPermission';

-- POST /v2/permissions.getPermission {permission} (id or slug)
CREATE FUNCTION unkey._v2_permissions_get_permission(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{permission}', '{permission}');
	perm text := unkey._v2_string(b, 'permission', 1, 128, '^[a-zA-Z0-9_:.*-]+$');
	d jsonb;
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'rbac.*.read_permission');
	d := unkey._v2_permissions(ARRAY[perm]) -> 0;
	IF d IS NULL THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/permission_not_found', 'The requested permission does not exist.');
	END IF;
	RETURN jsonb_build_object('data', d);
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_get_permission(jsonb) IS 'private: POST /v2/permissions.getPermission';

-- POST /v2/permissions.listPermissions {limit?, cursor?, search?}
CREATE FUNCTION unkey._v2_permissions_list_permissions(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{limit,cursor,search}', '{}');
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'rbac.*.read_permission');
	RETURN unkey._v2_page(b, $q$SELECT p.id, jsonb_strip_nulls(jsonb_build_object('id', p.id, 'name', p.name, 'slug', p.slug,
								   'description', p.description)) AS answer,
								concat_ws(' ', p.id, p.name, p.slug, p.description) AS haystack
						   FROM unkey.permissions p$q$, 100);
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_list_permissions(jsonb) IS 'private: POST /v2/permissions.listPermissions, with search';

-- POST /v2/permissions.deletePermission {permission} (id or slug)
CREATE FUNCTION unkey._v2_permissions_delete_permission(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{permission}', '{permission}');
	perm text := unkey._v2_string(b, 'permission', 1, 128, '^[a-zA-Z0-9_:.*-]+$');
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'rbac.*.delete_permission');
	BEGIN
		PERFORM unkey.unkey_delete_permission(perm);
	EXCEPTION WHEN SQLSTATE 'PT404' THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/permission_not_found', 'The requested permission does not exist.');
	END;
	RETURN jsonb_build_object('data', '{}'::jsonb);
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_delete_permission(jsonb) IS 'private: POST /v2/permissions.deletePermission';

-- POST /v2/permissions.createRole {name, description?, permissions?}
CREATE FUNCTION unkey._v2_permissions_create_role(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{name,description,permissions}', '{name}');
	role_name text := unkey._v2_string(b, 'name', 1, 128);
	role_description text := unkey._v2_string(b, 'description', 0, 512);
	granted text[] := unkey._v2_root();
	slugs text[];
BEGIN
	PERFORM unkey._v2_require(granted, 'rbac.*.create_role');
	slugs := unkey._v2_slugs(b, 'permissions', granted);
	IF cardinality(slugs) > 0 THEN
		PERFORM unkey._v2_require(granted, 'rbac.*.add_permission_to_role');
	END IF;
	IF EXISTS (SELECT FROM unkey.roles r WHERE lower(r.name) = lower(role_name)) THEN
		PERFORM unkey._v2_fail(409, 'unkey/data/role_already_exists', format('A role with name ''%s'' already exists in this workspace', role_name));
	END IF;
	RETURN jsonb_build_object('data', jsonb_build_object('roleId', unkey.unkey_create_role(role_name, nullif(role_description, ''), coalesce(slugs, '{}'))));
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_create_role(jsonb) IS 'private: POST /v2/permissions.createRole';

-- The role a request names (id or name): 404 role_not_found
CREATE FUNCTION unkey._v2_role(role text) RETURNS unkey.role
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN unkey.unkey_get_role(role);
EXCEPTION WHEN SQLSTATE 'PT404' THEN
	PERFORM unkey._v2_fail(404, 'unkey/data/role_not_found', 'The requested role does not exist.');
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION unkey._v2_role(text) IS 'private: the role a request names (id or name), or 404 role_not_found';

-- POST /v2/permissions.getRole {role} (id or name)
CREATE FUNCTION unkey._v2_permissions_get_role(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{role}', '{role}');
	role text := unkey._v2_string(b, 'role', 1, 128);
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'rbac.*.read_role');
	RETURN jsonb_build_object('data', unkey._v2_role_data(unkey._v2_role(role)));
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_get_role(jsonb) IS 'private: POST /v2/permissions.getRole';

-- POST /v2/permissions.listRoles {limit?, cursor?, search?}
CREATE FUNCTION unkey._v2_permissions_list_roles(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{limit,cursor,search}', '{}');
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'rbac.*.read_role');
	RETURN unkey._v2_page(b, $q$SELECT r.id, unkey._v2_role_data(unkey.unkey_get_role(r.id)) AS answer,
								concat_ws(' ', r.id, r.name, r.description) AS haystack
						   FROM unkey.roles r$q$, 100);
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_list_roles(jsonb) IS 'private: POST /v2/permissions.listRoles, with search';

-- POST /v2/permissions.deleteRole {role} (id or name)
CREATE FUNCTION unkey._v2_permissions_delete_role(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{role}', '{role}');
	role text := unkey._v2_string(b, 'role', 1, 128);
BEGIN
	PERFORM unkey._v2_require(unkey._v2_root(), 'rbac.*.delete_role');
	PERFORM unkey.unkey_delete_role((unkey._v2_role(role)).role_id);
	RETURN jsonb_build_object('data', '{}'::jsonb);
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_delete_role(jsonb) IS 'private: POST /v2/permissions.deleteRole';

-- POST /v2/permissions.setRolePermissions {roleId, permissions}: replaces
-- the role's permissions, creating missing slugs; answers them by slug
CREATE FUNCTION unkey._v2_permissions_set_role_permissions(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{roleId,permissions}', '{roleId,permissions}');
	role_id text := unkey._v2_string(b, 'roleId', 3, 255, '^[a-zA-Z0-9_-]+$');
	granted text[] := unkey._v2_root();
	slugs text[];
BEGIN
	PERFORM unkey._v2_require(granted, 'rbac.*.add_permission_to_role AND rbac.*.remove_permission_from_role');
	slugs := unkey._v2_slugs(b, 'permissions', granted);
	IF NOT EXISTS (SELECT FROM unkey.roles r WHERE r.id = role_id) THEN
		PERFORM unkey._v2_fail(404, 'unkey/data/role_not_found', 'The requested role does not exist.');
	END IF;
	PERFORM unkey.unkey_set_role_permissions(role_id, slugs);
	RETURN jsonb_build_object('data', unkey._v2_permissions(slugs));
END
$$;
COMMENT ON FUNCTION unkey._v2_permissions_set_role_permissions(jsonb) IS 'private: POST /v2/permissions.setRolePermissions';

-- Unkey's credits object of a request ({remaining?, refill?: {interval,
-- amount, refillDay?}} or null) as the SQL API's fields: credits,
-- refill_interval, refill_amount, refill_day; a field left out is not set
CREATE FUNCTION unkey._v2_credit_fields(b jsonb, location text, required_remaining boolean) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c jsonb := b -> 'credits';
	r jsonb;
	out jsonb := '{}';
BEGIN
	IF NOT b ? 'credits' THEN
		RETURN out;
	END IF;
	IF jsonb_typeof(c) = 'null' THEN
		RETURN jsonb_build_object('credits', NULL, 'refill_interval', NULL);
	END IF;
	c := unkey._v2_body(c, '{remaining,refill}');
	IF required_remaining AND NOT c ? 'remaining' THEN	-- null is a value here: unlimited
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'credits.remaining is required (null for unlimited).',
							   location || '.remaining');
	END IF;
	IF c ? 'remaining' THEN
		IF jsonb_typeof(c -> 'remaining') = 'null' THEN
			out := jsonb_build_object('credits', NULL, 'refill_interval', NULL);
		ELSE
			out := jsonb_build_object('credits', unkey._v2_integer(c, 'remaining', 0, 9223372036854775807, location || '.remaining'));
		END IF;
	END IF;
	IF c ? 'refill' AND jsonb_typeof(c -> 'refill') = 'null' THEN
		out := out || jsonb_build_object('refill_interval', NULL);
	ELSIF c ? 'refill' THEN
		r := unkey._v2_body(c -> 'refill', '{interval,amount,refillDay}', '{interval,amount}');
		PERFORM unkey._v2_string(r, 'interval', 5, 7, '^(daily|monthly)$');
		PERFORM unkey._v2_integer(r, 'amount', 1, 9223372036854775807, location || '.refill.amount');
		PERFORM unkey._v2_integer(r, 'refillDay', 1, 31, location || '.refill.refillDay');
		IF out -> 'credits' IS NULL OR jsonb_typeof(out -> 'credits') = 'null' THEN
			PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
								   '`credits.remaining` must be provided when `credits.refill` is set.', location || '.remaining');
		END IF;
		IF r ->> 'interval' = 'monthly' AND NOT r ? 'refillDay' THEN
			PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input',
								   '`refillDay` must be provided when the refill interval is `monthly`.', location || '.refill.refillDay');
		END IF;
		out := out || jsonb_build_object('refill_interval', r -> 'interval', 'refill_amount', r -> 'amount')
			|| CASE WHEN r ->> 'interval' = 'monthly' THEN jsonb_build_object('refill_day', r -> 'refillDay') ELSE '{}' END;
	END IF;
	RETURN out;
END
$$;
COMMENT ON FUNCTION unkey._v2_credit_fields(jsonb, text, boolean) IS 'private: Unkey''s credits object of a request as the SQL API''s credit fields';

-- Unkey's KeyCreditsData of a key's credits
CREATE FUNCTION unkey._v2_credits_data(c unkey.key_credits) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_build_object('remaining', c.remaining)
		|| CASE WHEN c.refill_interval IS NOT NULL THEN jsonb_build_object('refill', jsonb_strip_nulls(jsonb_build_object(
			'interval', c.refill_interval, 'amount', c.refill_amount, 'refillDay', c.refill_day))) ELSE '{}' END
$$;
COMMENT ON FUNCTION unkey._v2_credits_data(unkey.key_credits) IS 'private: Unkey''s KeyCreditsData';

-- POST /v2/keys.updateKey: omitted fields stay, null clears, a value sets
CREATE FUNCTION unkey._v2_keys_update_key(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{keyId,name,externalId,meta,expires,credits,ratelimits,enabled,roles,permissions}', '{keyId}');
	key_id text := unkey._v2_string(b, 'keyId', 3, 255, '^[a-zA-Z0-9_]+$');
	changes jsonb;
	granted text[] := unkey._v2_root();
	api text := unkey._v2_key_api(key_id);
BEGIN
	PERFORM unkey._v2_require(granted, format('api.*.update_key OR api.%s.update_key', api));
	changes := unkey._v2_credit_fields(b, 'body.credits', false)
		|| jsonb_strip_nulls(jsonb_build_object('name', CASE WHEN jsonb_typeof(b -> 'name') = 'string' THEN b -> 'name' END,
			'external_id', CASE WHEN jsonb_typeof(b -> 'externalId') = 'string' THEN b -> 'externalId' END,
			'expires', CASE WHEN jsonb_typeof(b -> 'expires') = 'number' THEN b -> 'expires' END,
			'enabled', b -> 'enabled', 'ratelimits', b -> 'ratelimits', 'roles', b -> 'roles', 'permissions', b -> 'permissions'))
		|| (SELECT coalesce(jsonb_object_agg(m.ours, NULL), '{}') FROM (VALUES ('name', 'name'), ('externalId', 'external_id'),
				('meta', 'meta'), ('expires', 'expires')) m(theirs, ours) WHERE jsonb_typeof(b -> m.theirs) = 'null')
		-- meta as given: user meta may hold nulls, which jsonb_strip_nulls would drop
		|| CASE WHEN jsonb_typeof(b -> 'meta') = 'object' THEN jsonb_build_object('meta', b -> 'meta') ELSE '{}' END;
	-- null clears name, externalId, meta, expires: the rest must be values
	PERFORM unkey._v2_string(jsonb_strip_nulls(b), 'name', 1, 255);
	PERFORM unkey._v2_string(jsonb_strip_nulls(b), 'externalId', 1, 255, '^[a-zA-Z0-9_.-]+$');
	PERFORM unkey._v2_integer(jsonb_strip_nulls(b), 'expires', 0, 4102444800000, 'body.expires');
	IF b ? 'meta' AND jsonb_typeof(b -> 'meta') NOT IN ('object', 'null') THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'meta must be an object or null.', 'body.meta');
	END IF;
	PERFORM unkey._v2_boolean(b, 'enabled');
	PERFORM unkey.unkey_update_key(key_id, changes);
	RETURN jsonb_build_object('data', '{}'::jsonb);
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_update_key(jsonb) IS 'private: POST /v2/keys.updateKey';

-- POST /v2/keys.updateCredits {keyId, operation, value?}
CREATE FUNCTION unkey._v2_keys_update_credits(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{keyId,operation,value}', '{keyId,operation}');
	key_id text := unkey._v2_string(b, 'keyId', 3, 255);
	op text := unkey._v2_string(b, 'operation', 3, 9, '^(set|increment|decrement)$');
	granted text[] := unkey._v2_root();
	api text := unkey._v2_key_api(key_id);
	value bigint;
BEGIN
	IF jsonb_typeof(b -> 'value') IS DISTINCT FROM 'null' THEN
		value := unkey._v2_integer(b, 'value', 0, 9223372036854775807, 'body.value');
	END IF;
	PERFORM unkey._v2_require(granted, format('api.*.update_key OR api.%s.update_key', api));
	RETURN jsonb_build_object('data', unkey._v2_credits_data(unkey.unkey_update_credits(key_id, op, value)));
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_update_credits(jsonb) IS 'private: POST /v2/keys.updateCredits';

-- POST /v2/keys.rerollKey {keyId, expiration (ms the old key stays valid)}
CREATE FUNCTION unkey._v2_keys_reroll_key(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{keyId,expiration}', '{keyId,expiration}');
	key_id text := unkey._v2_string(b, 'keyId', 3, 255, '^[a-zA-Z0-9_]+$');
	expiration bigint := unkey._v2_integer(b, 'expiration', 0, 4102444800000, 'body.expiration');
	granted text[] := unkey._v2_root();
	api text := unkey._v2_key_api(key_id);
	created unkey.created_key;
BEGIN
	PERFORM unkey._v2_require(granted, format('api.*.create_key OR api.%s.create_key', api));
	IF EXISTS (SELECT FROM unkey.encrypted_keys e JOIN unkey.keys k ON k.key_hash = e.key_hash WHERE k.id = key_id) THEN
		PERFORM unkey._v2_require(granted, format('api.*.encrypt_key OR api.%s.encrypt_key', api));
	END IF;
	created := unkey.unkey_reroll_key(key_id, expiration * interval '1 millisecond');
	RETURN jsonb_build_object('data', jsonb_build_object('keyId', created.key_id, 'key', created.key));
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_reroll_key(jsonb) IS 'private: POST /v2/keys.rerollKey';

-- POST /v2/keys.{add,remove,set}Permissions and {add,remove,set}Roles: the
-- key's direct permissions, or its roles, afterwards
CREATE FUNCTION unkey._v2_keys_grants(body jsonb, what text, op text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, ARRAY['keyId', what], ARRAY['keyId', what]);
	key_id text := unkey._v2_string(b, 'keyId', 3, 255, '^[a-zA-Z0-9_]+$');
	granted text[] := unkey._v2_root();
	api text := unkey._v2_key_api(key_id);
	names text[];
	result text[];
BEGIN
	PERFORM unkey._v2_require(granted, format('api.*.update_key OR api.%s.update_key', api));
	IF what = 'permissions' THEN
		PERFORM unkey._v2_require(granted, CASE op WHEN 'add' THEN 'rbac.*.add_permission_to_key'
			WHEN 'remove' THEN 'rbac.*.remove_permission_from_key'
			ELSE 'rbac.*.add_permission_to_key AND rbac.*.remove_permission_from_key' END);
		names := CASE WHEN op = 'remove' THEN unkey._v2_strings(b, what, 1000, 1, 128) ELSE unkey._v2_slugs(b, what, granted) END;
	ELSE
		IF op = 'add' THEN
			PERFORM unkey._v2_require(granted, 'rbac.*.add_role_to_key');
		END IF;
		names := unkey._v2_strings(b, what, 100, 1, 128);
	END IF;
	IF op <> 'set' AND cardinality(names) = 0 THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', format('%s must name at least one.', what), 'body.' || what);
	END IF;
	EXECUTE format('SELECT unkey.%I($1, $2)', format('unkey_%s_key_%s', op, what)) INTO result USING key_id, names;
	IF what = 'permissions' THEN
		RETURN jsonb_build_object('data', unkey._v2_permissions(result));
	END IF;
	RETURN jsonb_build_object('data', coalesce((SELECT jsonb_agg(unkey._v2_role_data(unkey.unkey_get_role(r)) ORDER BY r)
												  FROM unnest(result) r), '[]'));
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_grants(jsonb, text, text) IS 'private: POST /v2/keys.{add,remove,set}{Permissions,Roles}';

-- POST /v2/keys.migrateKeys {migrationId, apiId, keys: [{hash, ...}]}: a
-- hash is Unkey's base64 SHA-256 (or {value, variant: "sha256_base64"});
-- plaintext instead of hash is ours (sealed when the API is recoverable)
CREATE FUNCTION unkey._v2_keys_migrate_keys(body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb := unkey._v2_body(body, '{migrationId,apiId,keys}', '{migrationId,apiId,keys}');
	api text := unkey._v2_string(b, 'apiId', 3, 255);
	keys jsonb := '[]';
	k jsonb;
	h jsonb;
	n integer := 0;
	result unkey.migration_result;
BEGIN
	PERFORM unkey._v2_string(b, 'migrationId', 3, 255);
	IF jsonb_typeof(b -> 'keys') <> 'array' OR jsonb_array_length(b -> 'keys') < 1 THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'keys must be an array of at least one key.', 'body.keys');
	END IF;
	FOR k IN SELECT e FROM jsonb_array_elements(b -> 'keys') e LOOP
		k := unkey._v2_body(k, '{hash,plaintext,name,externalId,meta,roles,permissions,expires,enabled,credits,ratelimits}', '{}');
		h := k -> 'hash';
		IF jsonb_typeof(h) = 'object' THEN
			h := unkey._v2_body(h, '{value,variant}', '{value,variant}');
			IF h ->> 'variant' <> 'sha256_base64' THEN
				PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'hash.variant must be sha256_base64.',
									   format('body.keys[%s].hash.variant', n));
			END IF;
			h := h -> 'value';
		END IF;
		keys := keys || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('hash', h, 'plaintext', k -> 'plaintext',
			'name', k -> 'name', 'external_id', k -> 'externalId', 'roles', k -> 'roles',
			'permissions', k -> 'permissions', 'expires', k -> 'expires', 'enabled', k -> 'enabled', 'ratelimits', k -> 'ratelimits'))
			|| CASE WHEN k ? 'meta' THEN jsonb_build_object('meta', k -> 'meta') ELSE '{}' END	-- its nulls kept
			|| unkey._v2_credit_fields(k, format('body.keys[%s].credits', n), true));
		n := n + 1;
	END LOOP;
	IF api !~ '^[a-zA-Z0-9_]+$' THEN		-- no API has such an id; only ids go into a permission query
		PERFORM unkey._v2_root();
		PERFORM unkey._v2_fail(404, 'unkey/data/api_not_found', 'The requested API does not exist or has been deleted.');
	END IF;
	IF NOT unkey._v2_allowed(unkey._v2_root(), format('api.*.create_key OR api.%s.create_key', api)) THEN
		PERFORM unkey._v2_fail(403, 'unkey/authorization/insufficient_permissions',
							   format('Missing one of these permissions: api.*.create_key or api.%s.create_key', api));
	END IF;
	PERFORM unkey._v2_api(api);
	result := unkey.unkey_migrate_keys(api, keys);
	RETURN jsonb_build_object('data', jsonb_build_object('migrated', coalesce(result.migrated, '[]'),
														 'failed', coalesce(result.failed, '[]')));
END
$$;
COMMENT ON FUNCTION unkey._v2_keys_migrate_keys(jsonb) IS 'private: POST /v2/keys.migrateKeys';

-- The analytics sandbox (analytics.getVerifications and getRatelimits):
-- Unkey's tables as views of ours, with Unkey's names and columns, each
-- filtered to the APIs or namespaces the root key may read, and security
-- barriers, so that none of the caller's conditions sees a row before the
-- filter has.  The filter is unkey._analytics_allows(id), which answers
-- from the scope that unkey._v2_analytics_run (src/v2.c) sets for the one
-- query it runs, and raises anywhere else, so the views show nothing
-- outside it.
CREATE FUNCTION unkey._analytics_allows(id text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'unkey_analytics_allows' LANGUAGE C STABLE PARALLEL UNSAFE
	COST 0.1;	-- cheaper than any condition of the caller's, even a leakproof one: it runs first
COMMENT ON FUNCTION unkey._analytics_allows(text) IS 'private: whether the analytics query running now may read this API or namespace';

-- key_verifications_v1: one row per verification (time in Unix ms)
CREATE VIEW unkey.key_verifications_v1 WITH (security_barrier) AS
SELECT e.request_id, (extract(epoch FROM e.time) * 1000)::bigint AS time, ''::text AS workspace_id,
	   coalesce(e.api_id, '') AS key_space_id, coalesce(e.identity_id, '') AS identity_id,
	   coalesce(e.external_id, '') AS external_id, coalesce(e.key_id, '') AS key_id, ''::text AS region,
	   'api'::text AS source, ''::text AS app_id, e.outcome, coalesce(e.tags, '{}') AS tags, e.spent_credits,
	   coalesce(e.latency, 0) AS latency
  FROM unkey.verification_events e
 WHERE unkey._analytics_allows(e.api_id) AND e.api_id IS DISTINCT FROM unkey.root_api_id();

-- key_verifications_per_{minute,hour,day,month}_v1: one row per bucket,
-- key, identity, tag set and outcome (the minute from the raw events; the
-- others from the rollups, so their history outlives the raw events)
CREATE VIEW unkey.key_verifications_per_minute_v1 WITH (security_barrier) AS
SELECT date_trunc('minute', e.time AT TIME ZONE 'UTC') AS time, ''::text AS workspace_id,
	   coalesce(e.api_id, '') AS key_space_id, coalesce(e.identity_id, '') AS identity_id,
	   coalesce(e.external_id, '') AS external_id, coalesce(e.key_id, '') AS key_id, e.outcome, 'api'::text AS source,
	   ''::text AS app_id, coalesce(e.tags, '{}') AS tags, count(*) AS count, sum(e.spent_credits)::bigint AS spent_credits,
	   avg(e.latency) AS latency_avg
  FROM unkey.verification_events e
 WHERE unkey._analytics_allows(e.api_id) AND e.api_id IS DISTINCT FROM unkey.root_api_id()
 GROUP BY 1, 3, 4, 5, 6, 7, 10;
DO $$
DECLARE
	g text[];
BEGIN
	FOREACH g SLICE 1 IN ARRAY ARRAY[['hour', 'hourly'], ['day', 'daily'], ['month', 'monthly']] LOOP
		EXECUTE format(
			'CREATE VIEW unkey.key_verifications_per_%1$s_v1 WITH (security_barrier) AS'
			' SELECT v.time AT TIME ZONE ''UTC'' AS time, ''''::text AS workspace_id, coalesce(v.api_id, '''') AS key_space_id,'
			' coalesce(v.identity_id, '''') AS identity_id, coalesce(v.external_id, '''') AS external_id,'
			' coalesce(v.key_id, '''') AS key_id, o.outcome, ''api''::text AS source, ''''::text AS app_id,'
			' coalesce(v.tags, ''{}'') AS tags, o.count,'
			' CASE WHEN o.outcome = ''VALID'' THEN v.spent_credits ELSE 0 END::bigint AS spent_credits,'
			' v.latency_avg, v.latency_p75, v.latency_p99'
			' FROM unkey.verifications_%2$s v'
			' CROSS JOIN LATERAL (VALUES (''VALID'', v.valid), (''NOT_FOUND'', v.not_found), (''FORBIDDEN'', v.forbidden),'
			' (''USAGE_EXCEEDED'', v.usage_exceeded), (''RATE_LIMITED'', v.rate_limited), (''DISABLED'', v.disabled),'
			' (''INSUFFICIENT_PERMISSIONS'', v.insufficient_permissions), (''EXPIRED'', v.expired)) o (outcome, count)'
			' WHERE o.count > 0 AND unkey._analytics_allows(v.api_id) AND v.api_id IS DISTINCT FROM unkey.root_api_id()',
			g[1], g[2]);
	END LOOP;
END
$$;

-- ratelimits_v1: one row per rate-limit check (times in Unix ms)
CREATE VIEW unkey.ratelimits_v1 WITH (security_barrier) AS
SELECT e.request_id, (extract(epoch FROM e.time) * 1000)::bigint AS time, ''::text AS workspace_id, e.namespace_id,
	   e.identifier, e.passed, coalesce(e.latency, 0) AS latency, coalesce(e.override_id, '') AS override_id, e."limit",
	   e.remaining, (extract(epoch FROM e.reset) * 1000)::bigint AS reset_at, e.cost AS tokens
  FROM unkey.ratelimit_events e
 WHERE unkey._analytics_allows(e.namespace_id);

-- ratelimits_per_{minute,hour,day,month}_v1: checks per bucket and
-- identifier (the minute from the raw events, with tokens; the others from
-- the hourly rollups, which count checks, not tokens)
CREATE VIEW unkey.ratelimits_per_minute_v1 WITH (security_barrier) AS
SELECT date_trunc('minute', e.time AT TIME ZONE 'UTC') AS time, ''::text AS workspace_id, e.namespace_id, e.identifier,
	   count(*) FILTER (WHERE e.passed) AS passed, count(*) AS total, sum(e.cost)::bigint AS total_tokens,
	   coalesce(sum(e.cost) FILTER (WHERE e.passed), 0)::bigint AS passed_tokens, avg(e.latency) AS latency_avg
  FROM unkey.ratelimit_events e
 WHERE unkey._analytics_allows(e.namespace_id)
 GROUP BY 1, 3, 4;
DO $$
DECLARE
	g text;
BEGIN
	FOREACH g IN ARRAY ARRAY['hour', 'day', 'month'] LOOP
		EXECUTE format(
			'CREATE VIEW unkey.ratelimits_per_%1$s_v1 WITH (security_barrier) AS'
			' SELECT date_trunc(%1$L, r.bucket AT TIME ZONE ''UTC'') AS time, ''''::text AS workspace_id, r.namespace_id,'
			' r.identifier, sum(r.passed)::bigint AS passed, sum(r.passed + r.limited)::bigint AS total'
			' FROM unkey.ratelimit_rollups r'
			' WHERE unkey._analytics_allows(r.namespace_id)'
			' GROUP BY 1, 3, 4', g);
	END LOOP;
END
$$;

DO $$
DECLARE
	v text;
BEGIN
	FOREACH v IN ARRAY ARRAY['key_verifications_v1', 'key_verifications_per_minute_v1', 'key_verifications_per_hour_v1',
							 'key_verifications_per_day_v1', 'key_verifications_per_month_v1', 'ratelimits_v1',
							 'ratelimits_per_minute_v1', 'ratelimits_per_hour_v1', 'ratelimits_per_day_v1',
							 'ratelimits_per_month_v1'] LOOP
		EXECUTE format('COMMENT ON VIEW unkey.%I IS %L', v,
					   format('private: Unkey''s analytics table %s, read only by the v2 API''s analytics queries', v));
	END LOOP;
END
$$;

-- Run an analytics query in the sandbox (src/v2.c): one SELECT over the
-- endpoint's five views and the functions Unkey allows, read-only, under
-- unkey.analytics_timeout, at most unkey.analytics_max_rows rows and 4 MiB,
-- and unkey.analytics_queries_per_hour per root key; Unkey's errors
CREATE FUNCTION unkey._v2_analytics_run(query text, resource text, scope text[], quota_id text) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'unkey_v2_analytics_run' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION unkey._v2_analytics_run(text, text, text[], text) IS 'private: run an analytics query of the v2 API in the sandbox';

-- POST /v2/analytics.getVerifications and getRatelimits {query}: the
-- caller's SQL over Unkey's table names, restricted to what the root key
-- may read: every API (api.*.read_analytics) or those it names
-- (api.<apiId>.read_analytics), and the same for namespaces (ratelimit.)
CREATE FUNCTION unkey._v2_analytics(body jsonb, resource text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	granted text[];
	scope text[];
BEGIN
	-- Unkey's schema names query and allows other properties
	IF body IS NULL OR jsonb_typeof(body) <> 'object' THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'The request body must be a JSON object.', 'body');
	ELSIF jsonb_typeof(body -> 'query') IS DISTINCT FROM 'string' THEN
		PERFORM unkey._v2_fail(400, 'unkey/application/invalid_input', 'query must be a string.', 'body.query');
	END IF;
	granted := unkey._v2_root();
	IF NOT resource || '.*.read_analytics' = ANY (granted) THEN
		scope := ARRAY(SELECT split_part(g, '.', 2) FROM unnest(granted) g
						WHERE g ~ ('^' || resource || '\.[A-Za-z0-9_]+\.read_analytics$'));
		IF cardinality(scope) = 0 THEN
			PERFORM unkey._v2_fail(403, 'unkey/authorization/insufficient_permissions',
								   format('Missing permission: ''%s.*.read_analytics''', resource));
		END IF;
	END IF;
	RETURN jsonb_build_object('data', unkey._v2_analytics_run(body ->> 'query', resource, scope, unkey._actor()));
END
$$;
COMMENT ON FUNCTION unkey._v2_analytics(jsonb, text) IS 'private: POST /v2/analytics.getVerifications and getRatelimits {query}';

-- Run one endpoint: its answer in Unkey's envelope, or Unkey's error body
-- with its status, every write of the endpoint undone
CREATE FUNCTION unkey._v2_call(endpoint text, body jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	answer jsonb;
	state text;
	message text;
	detail text;
	hint text;
BEGIN
	BEGIN
		answer := CASE endpoint
			WHEN 'apis.createApi' THEN unkey._v2_apis_create_api(body)
			WHEN 'apis.getApi' THEN unkey._v2_apis_get_api(body)
			WHEN 'apis.deleteApi' THEN unkey._v2_apis_delete_api(body)
			WHEN 'apis.listKeys' THEN unkey._v2_apis_list_keys(body)
			WHEN 'keys.createKey' THEN unkey._v2_keys_create_key(body)
			WHEN 'keys.getKey' THEN unkey._v2_keys_get_key(body)
			WHEN 'keys.whoami' THEN unkey._v2_keys_whoami(body)
			WHEN 'keys.deleteKey' THEN unkey._v2_keys_delete_key(body)
			WHEN 'identities.createIdentity' THEN unkey._v2_identities_create_identity(body)
			WHEN 'identities.getIdentity' THEN unkey._v2_identities_get_identity(body)
			WHEN 'identities.listIdentities' THEN unkey._v2_identities_list_identities(body)
			WHEN 'identities.updateIdentity' THEN unkey._v2_identities_update_identity(body)
			WHEN 'identities.deleteIdentity' THEN unkey._v2_identities_delete_identity(body)
			WHEN 'ratelimit.limit' THEN unkey._v2_ratelimit_limit(body)
			WHEN 'ratelimit.multiLimit' THEN unkey._v2_ratelimit_multi_limit(body)
			WHEN 'ratelimit.setOverride' THEN unkey._v2_ratelimit_set_override(body)
			WHEN 'ratelimit.getOverride' THEN unkey._v2_ratelimit_get_override(body)
			WHEN 'ratelimit.listOverrides' THEN unkey._v2_ratelimit_list_overrides(body)
			WHEN 'ratelimit.deleteOverride' THEN unkey._v2_ratelimit_delete_override(body)
			WHEN 'permissions.createPermission' THEN unkey._v2_permissions_create_permission(body)
			WHEN 'permissions.getPermission' THEN unkey._v2_permissions_get_permission(body)
			WHEN 'permissions.listPermissions' THEN unkey._v2_permissions_list_permissions(body)
			WHEN 'permissions.deletePermission' THEN unkey._v2_permissions_delete_permission(body)
			WHEN 'permissions.createRole' THEN unkey._v2_permissions_create_role(body)
			WHEN 'permissions.getRole' THEN unkey._v2_permissions_get_role(body)
			WHEN 'permissions.listRoles' THEN unkey._v2_permissions_list_roles(body)
			WHEN 'permissions.deleteRole' THEN unkey._v2_permissions_delete_role(body)
			WHEN 'permissions.setRolePermissions' THEN unkey._v2_permissions_set_role_permissions(body)
			WHEN 'keys.updateKey' THEN unkey._v2_keys_update_key(body)
			WHEN 'keys.updateCredits' THEN unkey._v2_keys_update_credits(body)
			WHEN 'keys.rerollKey' THEN unkey._v2_keys_reroll_key(body)
			WHEN 'keys.migrateKeys' THEN unkey._v2_keys_migrate_keys(body)
			WHEN 'keys.addPermissions' THEN unkey._v2_keys_grants(body, 'permissions', 'add')
			WHEN 'keys.removePermissions' THEN unkey._v2_keys_grants(body, 'permissions', 'remove')
			WHEN 'keys.setPermissions' THEN unkey._v2_keys_grants(body, 'permissions', 'set')
			WHEN 'keys.addRoles' THEN unkey._v2_keys_grants(body, 'roles', 'add')
			WHEN 'keys.removeRoles' THEN unkey._v2_keys_grants(body, 'roles', 'remove')
			WHEN 'keys.setRoles' THEN unkey._v2_keys_grants(body, 'roles', 'set')
			WHEN 'analytics.getVerifications' THEN unkey._v2_analytics(body, 'api')
			WHEN 'analytics.getRatelimits' THEN unkey._v2_analytics(body, 'ratelimit')
			END;
		RETURN jsonb_build_object('meta', unkey._v2_meta()) || answer;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
								detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	END;
	RETURN unkey._v2_error(state, message, detail, hint, endpoint = 'identities.deleteIdentity');
END
$$;
COMMENT ON FUNCTION unkey._v2_call(text, jsonb) IS 'private: run one endpoint: its answer in Unkey''s envelope, or Unkey''s error body with its status, every write of the endpoint undone';

-- GET /v2/liveness
CREATE FUNCTION unkey_v2.liveness() RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT jsonb_build_object('meta', unkey._v2_meta(), 'data', jsonb_build_object('message', 'OK')) $$;
COMMENT ON FUNCTION unkey_v2.liveness() IS 'Unkey v2: GET /v2/liveness';

-- POST /v2/keys.verifyKey {key, tags?, permissions?, credits?: {cost},
-- ratelimits?, migrationId?}: in C (src/v2.c), because it runs on every
-- request; it checks and answers as the other endpoints do.  The root key's
-- verify_key permission for the key's API decides whether the key is found
-- at all; every outcome is 200, as in Unkey.
CREATE FUNCTION unkey_v2."keys.verifyKey"(jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'unkey_v2_verify_key'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION unkey_v2."keys.verifyKey"(jsonb) IS 'Unkey v2: POST /v2/keys.verifyKey';

-- The other endpoints: unkey_v2."<group>.<op>"(jsonb), each a SECURITY DEFINER call
-- of unkey._v2_call: PostgREST's role needs EXECUTE on it and nothing else;
-- the root key decides what the call may do
DO $$
DECLARE
	e text;
BEGIN
	FOREACH e IN ARRAY ARRAY['apis.createApi', 'apis.getApi', 'apis.deleteApi', 'apis.listKeys', 'keys.createKey',
							 'keys.getKey', 'keys.whoami', 'keys.deleteKey', 'identities.createIdentity',
							 'identities.getIdentity', 'identities.listIdentities', 'identities.updateIdentity',
							 'identities.deleteIdentity', 'ratelimit.limit', 'ratelimit.multiLimit', 'ratelimit.setOverride',
							 'ratelimit.getOverride', 'ratelimit.listOverrides', 'ratelimit.deleteOverride',
							 'permissions.createPermission', 'permissions.getPermission', 'permissions.listPermissions',
							 'permissions.deletePermission', 'permissions.createRole', 'permissions.getRole',
							 'permissions.listRoles', 'permissions.deleteRole', 'permissions.setRolePermissions',
							 'keys.updateKey', 'keys.updateCredits', 'keys.rerollKey', 'keys.migrateKeys',
							 'keys.addPermissions', 'keys.removePermissions', 'keys.setPermissions',
							 'keys.addRoles', 'keys.removeRoles', 'keys.setRoles',
							 'analytics.getVerifications', 'analytics.getRatelimits'] LOOP
		EXECUTE format('CREATE FUNCTION unkey_v2.%I(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SECURITY DEFINER '
					   'SET search_path = pg_catalog, pg_temp AS %L', e, format('SELECT unkey._v2_call(%L, $1)', e));
		EXECUTE format('COMMENT ON FUNCTION unkey_v2.%I(jsonb) IS %L', e, 'Unkey v2: POST /v2/' || e);
	END LOOP;
END
$$;

/*
 * 0.5.0's event pipeline on Citus: the coordinator creates and drops the
 * event partitions and materialises the rollups, for every node; the
 * rollups' state is a reference table; unkey_get_verifications is PL/pgSQL
 * and the verifications view groups by the tag set itself, as Citus needs
 * (src/sql/events.sql).
 */
COMMENT ON TABLE unkey.rollup_state IS 'reference: how far day and month rollups are materialised, and hourly rollups pruned';
CREATE OR REPLACE FUNCTION unkey._ensure_partitions(parent text, times timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	day timestamptz;
	part text;
BEGIN
	FOR day IN SELECT DISTINCT date_trunc('day', t, 'UTC') FROM unnest(times) t WHERE t IS NOT NULL LOOP
		part := parent || '_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
		CONTINUE WHEN to_regclass(format('unkey.%I', part)) IS NOT NULL;
		-- on a Citus worker, the coordinator creates them, with their shards
		IF unkey._citus_worker_table(format('unkey.%I', parent)::regclass) THEN
			PERFORM unkey._on_coordinator(format('unkey._ensure_partitions(%L, ARRAY[%s]::pg_catalog.timestamptz[])', parent,
												 (SELECT string_agg(unkey._timestamptz_literal(x), ', ') FROM unnest(times) x)));
			RETURN;
		END IF;
		BEGIN
			-- the bounds in UTC, whatever the session's DateStyle and TimeZone
			EXECUTE format('CREATE TABLE unkey.%I PARTITION OF unkey.%I FOR VALUES FROM (%L) TO (%L)', part, parent,
						   to_char(day AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'),
						   to_char((day + interval '24 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
		EXCEPTION WHEN duplicate_table OR unique_violation THEN
			NULL;				-- another writer created it first
		END;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._ensure_partitions(text, timestamptz[]) IS 'private: create the day partitions these events need';
CREATE OR REPLACE FUNCTION unkey._materialize_rollups(now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	st unkey.rollup_state;
	step record;
	tab text;
	tagged boolean;
	done timestamptz;
	cut timestamptz;
	keep interval := (SELECT e.hourly_retention FROM unkey.event_settings e);
BEGIN
	-- on Citus the coordinator materialises, for every node
	IF unkey._citus_worker_table('unkey.verification_rollups'::regclass) THEN
		PERFORM unkey._on_coordinator(format('unkey._materialize_rollups(%s)', unkey._timestamptz_literal(now)));
		RETURN;
	END IF;
	-- each statement must see what committed before it, the batches the lock waited for included
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'rollups are materialised in read committed transactions only'::text,
							 'Leave it to the event writer, or SET TRANSACTION ISOLATION LEVEL READ COMMITTED.'::text);
	END IF;
	-- no batch is being added meanwhile: each is either in what we read, or waits and sees the new state
	LOCK TABLE unkey.rollup_state IN EXCLUSIVE MODE;
	SELECT * INTO st FROM unkey.rollup_state;
	IF NOT FOUND THEN
		-- the first time: after the days and months already there (a restore without this table's
		-- row), else from the oldest hour, or today when there is none
		st.day_done := coalesce((SELECT max(r.bucket) + interval '24 hours' FROM unkey.verification_rollups r
								  WHERE r.granularity = 'day'),
								date_trunc('day', coalesce((SELECT min(r.bucket) FROM unkey.verification_rollups r
															 WHERE r.granularity = 'hour'), now), 'UTC'));
		st.month_done := coalesce((SELECT date_trunc('month', max(r.bucket) + interval '32 days', 'UTC')
									 FROM unkey.verification_rollups r WHERE r.granularity = 'month'),
								  date_trunc('month', coalesce((SELECT min(r.bucket) FROM unkey.verification_rollups r
																 WHERE r.granularity IN ('day', 'hour')), now), 'UTC'));
	END IF;
	FOR step IN SELECT * FROM (VALUES ('hour', 'day'), ('day', 'month')) AS v(finer, coarser) LOOP
		done := CASE step.coarser WHEN 'day' THEN st.day_done ELSE st.month_done END;
		CONTINUE WHEN date_trunc(step.coarser, now, 'UTC') <= done;
		FOREACH tab IN ARRAY ARRAY['verification_rollups', 'verification_tag_rollups'] LOOP
			tagged := tab = 'verification_tag_rollups';
			EXECUTE format(
				'INSERT INTO unkey.%1$I (granularity, bucket, key_hash, api_id, key_id, identity_id, external_id,'
				' valid, not_found, forbidden, usage_exceeded, rate_limited, disabled, insufficient_permissions,'
				' expired, spent_credits, latency_sum, latency_hist, last_time%2$s)'
				' SELECT $1, date_trunc($1, r.bucket, ''UTC''), r.key_hash, r.api_id, max(r.key_id), r.identity_id,'
				' max(r.external_id), sum(r.valid), sum(r.not_found), sum(r.forbidden), sum(r.usage_exceeded),'
				' sum(r.rate_limited), sum(r.disabled), sum(r.insufficient_permissions), sum(r.expired),'
				' sum(r.spent_credits), sum(r.latency_sum), unkey._latency_hist_sum(r.latency_hist), max(r.last_time)%3$s'
				' FROM unkey.%1$I r WHERE r.granularity = $2 AND r.bucket >= $3 AND r.bucket < $4'
				' GROUP BY 2, r.key_hash, r.identity_id, r.api_id%4$s',
				tab, CASE WHEN tagged THEN ', tags, tags_id' ELSE '' END,
				CASE WHEN tagged THEN ', min(r.tags), r.tags_id' ELSE '' END,
				CASE WHEN tagged THEN ', r.tags_id' ELSE '' END)
			USING step.coarser, step.finer, done, date_trunc(step.coarser, now, 'UTC');
		END LOOP;
		IF step.coarser = 'day' THEN
			st.day_done := date_trunc('day', now, 'UTC');
		ELSE
			st.month_done := date_trunc('month', now, 'UTC');
		END IF;
	END LOOP;
	cut := least(st.day_done, date_trunc('day', now - keep, 'UTC'));
	IF keep IS NOT NULL AND cut > coalesce(st.hours_from, '-infinity') THEN
		DELETE FROM unkey.verification_rollups r WHERE r.granularity = 'hour' AND r.bucket < cut;
		DELETE FROM unkey.verification_tag_rollups r WHERE r.granularity = 'hour' AND r.bucket < cut;
		st.hours_from := cut;
	END IF;
	INSERT INTO unkey.rollup_state AS s VALUES (true, st.day_done, st.month_done, st.hours_from)
	ON CONFLICT (singleton) DO UPDATE
	   SET day_done = EXCLUDED.day_done, month_done = EXCLUDED.month_done, hours_from = EXCLUDED.hours_from;
END
$$;
COMMENT ON FUNCTION unkey._materialize_rollups(timestamptz) IS 'private: materialise the closed days and months of the verification rollups, and prune old hours';
CREATE OR REPLACE FUNCTION unkey._apply_retention(now timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	keep interval;
	part record;
BEGIN
	-- on Citus the coordinator drops the partitions, with their shards on every node
	IF unkey._citus_worker_table('unkey.verification_events'::regclass) THEN
		RETURN QUERY SELECT unnest(string_to_array(unkey._on_coordinator(
			format('(SELECT pg_catalog.string_agg(p, '' '') FROM unkey._apply_retention(%s) p)', unkey._timestamptz_literal(now))), ' '));
		RETURN;
	END IF;
	keep := (SELECT s.retention FROM unkey.event_settings s);
	IF keep IS NULL THEN
		RETURN;
	END IF;
	FOR part IN
		SELECT c.relname
		  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent IN ('unkey.verification_events'::regclass, 'unkey.ratelimit_events'::regclass)
		   AND c.relname ~ '_p[0-9]{8}$'
		   AND (substring(c.relname FROM '_p([0-9]{8})$')::date::timestamp AT TIME ZONE 'UTC')
			   + interval '24 hours' <= now - keep
		 ORDER BY c.relname
	LOOP
		-- another run (the writers of several Citus nodes ask the coordinator) may have dropped it meanwhile
		BEGIN
			EXECUTE format('DROP TABLE unkey.%I', part.relname);
			RETURN NEXT part.relname;
		EXCEPTION WHEN undefined_table THEN
			NULL;
		END;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._apply_retention(timestamptz) IS 'private: drop event partitions past the retention';
CREATE OR REPLACE FUNCTION unkey._maintain_events(now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF unkey._citus_worker_table('unkey.verification_events'::regclass) THEN
		PERFORM unkey._on_coordinator(format('unkey._maintain_events(%s)', unkey._timestamptz_literal(now)));
		RETURN;
	END IF;
	PERFORM unkey._ensure_partitions(p, ARRAY[now, now + interval '24 hours'])
	   FROM unnest(ARRAY['verification_events', 'ratelimit_events']) p;
	PERFORM unkey._apply_retention(now);
END
$$;
COMMENT ON FUNCTION unkey._maintain_events(timestamptz) IS 'private: create the coming partitions and apply the retention';
CREATE OR REPLACE FUNCTION unkey.unkey_get_verifications(
	api_id			text,
	start			timestamptz,
	"end"			timestamptz DEFAULT NULL,
	group_by		text[]	DEFAULT NULL,
	key_id			text	DEFAULT NULL,
	external_id		text	DEFAULT NULL,
	tags			text[]	DEFAULT NULL,
	order_by		text	DEFAULT NULL,
	"order"			text	DEFAULT NULL,
	"limit"			integer DEFAULT NULL)
RETURNS SETOF unkey.verification_count
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
SET plan_cache_mode = force_custom_plan	-- the arguments are constants of the plan: branches it does not need are pruned
AS $$
-- as in SQL: a column, not the argument of the same name
#variable_conflict use_column
DECLARE
	-- the checked arguments
	v record;
	on_citus boolean := to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL;
BEGIN
	SELECT * INTO v FROM unkey._verification_query(api_id, start, "end", group_by, tags, order_by, "order", "limit");
	RETURN QUERY
	WITH src AS (
		-- the key's rollups, or with tags the tag sets; each tag apart only when grouped by tag
		SELECT k.bucket, k.key_id, k.identity_id, k.external_id, NULL::text[] AS tags, NULL::text AS tag,
			   k.valid, k.not_found, k.forbidden, k.usage_exceeded, k.rate_limited, k.disabled,
			   k.insufficient_permissions, k.expired
		  FROM unkey._rollups k
		 WHERE NOT v.tagged
		   AND k.api_id = unkey_get_verifications.api_id AND k.granularity = v.gran
		   AND k.bucket >= v.first AND k.bucket < v.stop
		   AND (unkey_get_verifications.key_id IS NULL OR k.key_id = unkey_get_verifications.key_id)
		   AND (unkey_get_verifications.external_id IS NULL OR k.external_id = unkey_get_verifications.external_id)
		UNION ALL
		SELECT t.bucket, t.key_id, t.identity_id, t.external_id, t.tags, one.tag,
			   t.valid, t.not_found, t.forbidden, t.usage_exceeded, t.rate_limited, t.disabled,
			   t.insufficient_permissions, t.expired
		  FROM unkey._tag_sets t
		  LEFT JOIN LATERAL unnest(CASE WHEN v.by_tag THEN t.tags END) AS one(tag) ON true
		 WHERE v.tagged
		   AND t.api_id = unkey_get_verifications.api_id AND t.granularity = v.gran
		   AND t.bucket >= v.first AND t.bucket < v.stop
		   AND (unkey_get_verifications.key_id IS NULL OR t.key_id = unkey_get_verifications.key_id)
		   AND (unkey_get_verifications.external_id IS NULL OR t.external_id = unkey_get_verifications.external_id)
		   -- the untagged rows' tags are a constant, and a qual on it a constant qual, which prunes them
		   -- here but which Citus cannot plan beside _tag_sets' outer join (PostgreSQL 15): on Citus the
		   -- bucket, never NULL, keeps it a qual on the row
		   AND (unkey_get_verifications.tags IS NULL
				OR CASE WHEN on_citus AND t.bucket IS NOT NULL THEN t.tags WHEN NOT on_citus THEN t.tags END
				   @> unkey_get_verifications.tags)
	), agg AS (
		SELECT CASE WHEN v.unit IS NOT NULL THEN r.bucket END AS t,
			   -- bytewise comparisons: the grouping sorts hundreds of thousands of ids
			   CASE WHEN v.by_key THEN r.key_id END COLLATE "C" AS k,
			   CASE WHEN v.by_identity THEN r.identity_id END COLLATE "C" AS i,
			   CASE WHEN v.by_identity THEN r.external_id END COLLATE "C" AS x,
			   CASE WHEN v.by_tags THEN r.tags END AS g,
			   r.tag COLLATE "C" AS tg,
			   sum(r.valid)::bigint AS valid, sum(r.not_found)::bigint AS not_found,
			   sum(r.forbidden)::bigint AS forbidden, sum(r.usage_exceeded)::bigint AS usage_exceeded,
			   sum(r.rate_limited)::bigint AS rate_limited, sum(r.disabled)::bigint AS disabled,
			   sum(r.insufficient_permissions)::bigint AS insufficient_permissions, sum(r.expired)::bigint AS expired,
			   sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited + r.disabled
				   + r.insufficient_permissions + r.expired)::bigint AS total
		  FROM src r
		 GROUP BY 1, 2, 3, 4, 5, 6
	), buckets AS (
		-- every bucket of a time series, stepped in UTC wall time
		SELECT w AT TIME ZONE 'UTC' AS t
		  FROM generate_series(v.first AT TIME ZONE 'UTC', (v.stop - interval '1 microsecond') AT TIME ZONE 'UTC',
							   ('1 ' || v.unit)::interval) AS w
		 WHERE v.unit IS NOT NULL
	), gapped AS (
		-- the groups that miss a bucket (most have none); a time series alone always has its group
		SELECT a.k, a.i, a.x, a.g, a.tg FROM agg a
		 GROUP BY a.k, a.i, a.x, a.g, a.tg
		HAVING count(*) < (SELECT count(*) FROM buckets)
		UNION
		SELECT NULL, NULL, NULL, NULL, NULL
		 WHERE NOT (group_by && '{key,identity,tags,tag}'::text[]) AND v.unit IS NOT NULL
	), rows AS (
		SELECT a.* FROM agg a
		UNION ALL
		-- the missing buckets of those groups, as zeros ('' stands for NULL: no id, tag or tag set is empty)
		SELECT b.t, gp.k, gp.i, gp.x, gp.g, gp.tg, 0, 0, 0, 0, 0, 0, 0, 0, 0
		  FROM buckets b, gapped gp
		 WHERE NOT EXISTS (SELECT FROM agg a
							WHERE a.t = b.t AND coalesce(a.k, '') = coalesce(gp.k, '')
							  AND coalesce(a.i, '') = coalesce(gp.i, '') AND coalesce(a.x, '') = coalesce(gp.x, '')
							  AND coalesce(a.g, '{}') = coalesce(gp.g, '{}') AND coalesce(a.tg, '') = coalesce(gp.tg, ''))
	)
	-- ordered by time, or by a count (bigint, not through a numeric of both), then by the groups
	SELECT rw.t, rw.k, rw.i, rw.x, rw.g, rw.tg, rw.valid, rw.not_found, rw.forbidden, rw.usage_exceeded,
		   rw.rate_limited, rw.disabled, rw.insufficient_permissions, rw.expired, rw.total
	  FROM rows rw
	 ORDER BY CASE WHEN (v.sort_by = 'time' AND NOT v.descending) THEN rw.t END ASC,
			  CASE WHEN (v.sort_by = 'time' AND v.descending) THEN rw.t END DESC,
			  CASE WHEN (v.sort_by <> 'time') THEN
				  CASE v.sort_by
					  WHEN 'total' THEN rw.total WHEN 'valid' THEN rw.valid
					  WHEN 'not_found' THEN rw.not_found WHEN 'forbidden' THEN rw.forbidden
					  WHEN 'usage_exceeded' THEN rw.usage_exceeded WHEN 'rate_limited' THEN rw.rate_limited
					  WHEN 'disabled' THEN rw.disabled WHEN 'insufficient_permissions' THEN rw.insufficient_permissions
					  ELSE rw.expired END
				  * CASE WHEN v.descending THEN -1 ELSE 1 END END ASC,
			  rw.t, rw.k COLLATE "C", rw.i COLLATE "C", rw.g::text COLLATE "C", rw.tg COLLATE "C"
	 LIMIT unkey_get_verifications."limit";
END
$$;
COMMENT ON FUNCTION unkey.unkey_get_verifications(text, timestamptz, timestamptz, text[], text, text, text[], text, text, integer) IS 'verification counts per outcome, grouped and gap-filled, as Unkey''s analytics.getVerifications';
CREATE OR REPLACE VIEW unkey.verifications AS
SELECT r.granularity, r.bucket AS time, r.api_id, r.key_id, r.identity_id, r.external_id, r.tags,
	   sum(r.valid) AS valid, sum(r.not_found) AS not_found, sum(r.forbidden) AS forbidden,
	   sum(r.usage_exceeded) AS usage_exceeded, sum(r.rate_limited) AS rate_limited, sum(r.disabled) AS disabled,
	   sum(r.insufficient_permissions) AS insufficient_permissions, sum(r.expired) AS expired,
	   sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited + r.disabled
		   + r.insufficient_permissions + r.expired) AS total,
	   sum(r.spent_credits) AS spent_credits,
	   sum(r.latency_sum) / sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited
								+ r.disabled + r.insufficient_permissions + r.expired) AS latency_avg,
	   unkey._latency_quantile(unkey._latency_hist_sum(r.latency_hist), 0.75::double precision) AS latency_p75,
	   unkey._latency_quantile(unkey._latency_hist_sum(r.latency_hist), 0.99::double precision) AS latency_p99
  FROM unkey._tag_sets r
 GROUP BY r.granularity, r.bucket, r.api_id, r.key_id, r.identity_id, r.external_id, r.tags_id, r.tags;

/*
 * 0.5.0 runs on Citus (src/sql/citus.sql, copied here whole until 0.5.0 is
 * released).
 */
/*
 * citus.sql: running on Citus (README: Running on Citus).  The tables'
 * classes in their comments say how each is distributed: reference tables on
 * every node, per-key tables by key_hash colocated with unkey.keys, the
 * per-identifier ones by identifier, the local ones stay on the coordinator.
 * The C readers find a row's shard (src/tables.c); the entry point keyed by
 * the hash is what Citus delegates to the node that holds the key.
 */

-- unkey_verify_key with the key's stored hash first, for Citus to route
CREATE FUNCTION unkey.unkey_verify_key_by_hash(
	key_hash	bytea,
	key			text,
	api_id		text	DEFAULT NULL,
	permissions text	DEFAULT NULL,
	cost		bigint	DEFAULT 1,
	ratelimits	jsonb	DEFAULT NULL,
	tags		text[]	DEFAULT NULL,
	ip			inet	DEFAULT NULL)
RETURNS unkey.verification
AS 'MODULE_PATHNAME', 'unkey_verify_key_by_hash'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet) IS 'unkey_verify_key, keyed by the key''s hash (unkey._key_hash(key)) so that Citus runs it on the node of the key''s shard';

-- unkey's tables of one class, each after the tables it references
CREATE FUNCTION unkey._tables_of_class(class text) RETURNS SETOF regclass
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	done oid[] := '{}';
	t oid;
	progress boolean := true;
BEGIN
	WHILE progress LOOP
		progress := false;
		FOR t IN
			SELECT c.oid FROM pg_class c
			 WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
			   AND split_part(obj_description(c.oid, 'pg_class'), ':', 1) = class AND c.oid <> ALL (done)
			   AND NOT EXISTS (SELECT FROM pg_constraint f
								WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid
								  AND split_part(obj_description(f.confrelid, 'pg_class'), ':', 1) = class
								  AND f.confrelid <> ALL (done))
			 ORDER BY c.relname
		LOOP
			done := done || t;
			progress := true;
			RETURN NEXT t;
		END LOOP;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._tables_of_class(text) IS 'private: unkey''s tables of one class (their comment''s first word), each after those it references';

-- Whether Citus distributes this table and this node is not the
-- coordinator: the event partitions are created, and dropped, on the
-- coordinator only (Citus refuses it elsewhere), and the rollups' days and
-- months materialised there, so a worker asks the coordinator to do it
CREATE FUNCTION unkey._citus_worker_table(rel regclass) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	worker boolean;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
			' AND (SELECT groupid FROM pg_catalog.pg_dist_local_group) <> 0'
	   INTO worker USING rel;
	RETURN worker;
END
$$;
COMMENT ON FUNCTION unkey._citus_worker_table(regclass) IS 'private: whether Citus distributes this table and this node is a worker, where its partitions cannot be created';

-- A timestamptz as an SQL literal that reads the same under any DateStyle
-- and TimeZone (the coordinator's session has its own)
CREATE FUNCTION unkey._timestamptz_literal(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('%L::pg_catalog.timestamptz', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00"')) $$;
COMMENT ON FUNCTION unkey._timestamptz_literal(timestamptz) IS 'private: a timestamptz as a literal independent of DateStyle and TimeZone';

-- The value of an SQL expression, evaluated on the Citus coordinator in a
-- transaction of its own there (its error is raised here).  Every name in
-- it must be qualified: it runs with the coordinator session's search_path.
-- It waits at most a second for a lock: a worker's event writer must not
-- hang on the coordinator's locks (a pg_dump, or a lock this worker's own
-- transaction holds), and tries again later.
CREATE FUNCTION unkey._on_coordinator(expr text) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ok boolean;
	answer text;
BEGIN
	EXECUTE 'SELECT success, result FROM pg_catalog.run_command_on_coordinator($1)' INTO ok, answer
	  USING format('WITH s AS MATERIALIZED (SELECT pg_catalog.set_config(''lock_timeout'', ''1s'', true))'
				   ' SELECT (%s)::pg_catalog.text FROM s', expr);
	IF NOT ok THEN
		PERFORM unkey._raise('object_not_in_prerequisite_state'::text, 'the Citus coordinator could not evaluate ' || expr || ': ' || coalesce(answer, ''),
							 'The event partitions and rollups of every node are kept by the coordinator: check that it is up and has unkey, and see its log (README: Running on Citus).'::text);
	END IF;
	RETURN answer;
END
$$;
COMMENT ON FUNCTION unkey._on_coordinator(text) IS 'private: evaluate an expression on the Citus coordinator, in its own transaction there';

-- Distribute every table by its class, and register the delegated entry point
CREATE FUNCTION unkey.citus_distribute() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regclass;
	distributed oid[];
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		PERFORM unkey._raise('object_not_in_prerequisite_state'::text, 'citus is not installed in this database'::text,
							 'Run CREATE EXTENSION citus on the coordinator, add the workers, then this function.'::text);
	END IF;
	EXECUTE 'SELECT array_agg(logicalrelid::oid) FROM pg_catalog.pg_dist_partition' INTO distributed;
	distributed := coalesce(distributed, '{}');
	-- reference tables may reference each other; the coordinator keeps a replica of each
	PERFORM set_config('citus.enable_local_reference_table_foreign_keys', 'off', true);
	FOR t IN SELECT unkey._tables_of_class('reference') LOOP
		CONTINUE WHEN t::oid = ANY (distributed);
		EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING t;
	END LOOP;
	FOR t IN SELECT unkey._tables_of_class('per-key') LOOP
		CONTINUE WHEN t::oid = ANY (distributed);
		IF t = 'unkey.keys'::regclass THEN
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''key_hash'')' USING t;
		ELSE
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''key_hash'', colocate_with => ''unkey.keys'')' USING t;
		END IF;
	END LOOP;
	FOR t IN SELECT unkey._tables_of_class('per-identifier') LOOP
		CONTINUE WHEN t::oid = ANY (distributed);
		IF t = 'unkey.ratelimit_events'::regclass THEN
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''identifier'')' USING t;
		ELSE
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''identifier'', colocate_with => ''unkey.ratelimit_events'')' USING t;
		END IF;
	END LOOP;
	EXECUTE 'SELECT pg_catalog.create_distributed_function($1, ''$1'', colocate_with => ''unkey.keys'', force_delegation => true)'
	  USING 'unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet)'::regprocedure;
END
$$;
COMMENT ON FUNCTION unkey.citus_distribute() IS 'on a Citus coordinator: distribute unkey''s tables by their class and let Citus run unkey_verify_key_by_hash on the key''s node';

-- Bring every table back to the coordinator, its rows with it, and drop
-- every shard and placement of unkey on every node, as Citus does for a
-- dropped table (Citus's undistribute_table cannot rewrite an extension's
-- tables); DROP EXTENSION unkey then leaves nothing behind
CREATE FUNCTION unkey.citus_undistribute() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regclass;
	tables regclass[];
	parts regclass[];
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN;
	END IF;
	-- one connection per node for the whole transaction: the shards it reads are the ones it drops
	PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
	-- reference tables first, so that the rows of the others find theirs when they come back
	tables := ARRAY(SELECT c FROM (SELECT unkey._tables_of_class('reference') UNION ALL SELECT unkey._tables_of_class('per-key')
								   UNION ALL SELECT unkey._tables_of_class('per-identifier')) x(c)
					 WHERE EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = x.c));
	FOREACH t IN ARRAY tables LOOP
		EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS SELECT * FROM %s', 'undistribute_' || t::oid, t);
	END LOOP;
	-- the partitions of the event tables go with their parent's shards
	parts := ARRAY(SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i WHERE i.inhparent = ANY (tables::oid[])
					  AND EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = i.inhrelid));
	FOR t IN SELECT x FROM unnest(tables) WITH ORDINALITY u(x, n) ORDER BY n DESC LOOP
		EXECUTE 'SELECT pg_catalog.master_remove_distributed_table_metadata_from_workers($1, ''unkey'', $2)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
		EXECUTE 'SELECT pg_catalog.citus_drop_all_shards($1, ''unkey'', $2, drop_shards_metadata_only := false)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
		EXECUTE 'SELECT pg_catalog.master_remove_partition_metadata($1, ''unkey'', $2)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
	END LOOP;
	FOREACH t IN ARRAY parts LOOP
		EXECUTE 'SELECT pg_catalog.citus_drop_all_shards($1, ''unkey'', $2, drop_shards_metadata_only := true)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
		EXECUTE 'SELECT pg_catalog.master_remove_partition_metadata($1, ''unkey'', $2)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
	END LOOP;
	-- what the tables held before they were distributed may still be in them: the rows from the shards replace it
	FOR t IN SELECT x FROM unnest(tables) WITH ORDINALITY u(x, n) ORDER BY n DESC LOOP
		EXECUTE format('DELETE FROM %s', t);
	END LOOP;
	FOREACH t IN ARRAY tables LOOP
		EXECUTE format('INSERT INTO %s SELECT * FROM %I', t, 'undistribute_' || t::oid);
	END LOOP;
	-- the entry point is no longer delegated (Citus's own unmarking needs the function dropped)
	EXECUTE 'SELECT pg_catalog.run_command_on_workers($c$DELETE FROM pg_catalog.pg_dist_object WHERE classid = ''pg_proc''::regclass'
			' AND objid = ''unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet)''::regprocedure$c$)';
	EXECUTE 'DELETE FROM pg_catalog.pg_dist_object WHERE classid = ''pg_proc''::regclass AND objid = $1'
	  USING 'unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet)'::regprocedure;
END
$$;
COMMENT ON FUNCTION unkey.citus_undistribute() IS 'on a Citus coordinator: bring unkey''s tables and their rows back to the coordinator and drop every shard (then DROP EXTENSION unkey leaves nothing on the workers)';

-- what this script created is for no one but the owner, as in a fresh
-- install, and not for the roles the installing role's default privileges
-- name (src/sql/privileges.sql does the same for a fresh install)
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA unkey_v2 FROM PUBLIC;
REVOKE ALL ON FUNCTION unkey._set_v2_actor(text) FROM PUBLIC;
DO $$
DECLARE
	stmt text;
BEGIN
	FOR stmt IN
		SELECT DISTINCT format('REVOKE ALL ON %s %s FROM %s', o.kind, o.name,
							   CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END)
		  FROM (SELECT 'ROUTINE', p.oid::regprocedure::text, coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner)), p.proowner
				  FROM pg_catalog.pg_proc p
				 WHERE p.pronamespace = 'unkey_v2'::regnamespace
					OR (p.pronamespace = 'unkey'::regnamespace
						AND p.proname ~ '^(_v2_|_set_v2_actor$|_analytics_allows$|root_api_id$|_check_root_permissions$|unkey_(create|list|update|delete)_root_keys?$|unkey_verify_key_by_hash$|_tables_of_class$|citus_(un)?distribute$|_send_invalidation$|_invalidate$|_citus_worker_table$|_on_coordinator$|_timestamptz_literal$)')
				UNION ALL
				SELECT 'TABLE', c.oid::regclass::text, c.relacl, c.relowner
				  FROM pg_catalog.pg_class c
				 WHERE c.relnamespace = 'unkey'::regnamespace
				   AND c.relname ~ '^(root_keys|config_version|(key_verifications|ratelimits)(_per_(minute|hour|day|month))?_v1)$'
				UNION ALL
				SELECT 'SCHEMA', 'unkey_v2', n.nspacl, n.nspowner
				  FROM pg_catalog.pg_namespace n WHERE n.nspname = 'unkey_v2') o(kind, name, acl, owner),
			   pg_catalog.aclexplode(o.acl) a
		 WHERE a.grantee <> o.owner
	LOOP
		EXECUTE stmt;
	END LOOP;
END
$$;
