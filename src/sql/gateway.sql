/*
 * gateway.sql: protect a PostgREST API with unkey keys (C: src/gateway.c).  unkey.pre_request()
 * is PostgREST's db-pre-request: it verifies the key of each request (from a
 * header or a cookie) against one API, with a cost and a permission query
 * from the request's method and path, answers with PostgREST's error
 * contract (SQLSTATE PGRST) when the key does not pass, and otherwise tells
 * the application who called (request.unkey.* settings), sets X-RateLimit-*
 * response headers, and may switch to a role.  It runs in the READ ONLY
 * transactions PostgREST uses for GET and HEAD.
 */

-- The gateway's settings: one row, made by unkey_gateway_configure (change it
-- through the functions: they tell every backend to read it again)
CREATE TABLE unkey.gateway (
	id					boolean PRIMARY KEY DEFAULT true CHECK (id),
	api_id				text NOT NULL REFERENCES unkey.apis (id),
	header				text NOT NULL DEFAULT 'x-api-key'
		CHECK (header ~ '^[a-z0-9-]{1,64}$' AND header NOT IN ('authorization', 'cookie')),
	cookie				text CHECK (cookie ~ '^[A-Za-z0-9_.-]{1,64}$'),
	derive_permissions	boolean NOT NULL DEFAULT true,
	read_cost			bigint NOT NULL DEFAULT 0 CHECK (read_cost >= 0),
	write_cost			bigint NOT NULL DEFAULT 1 CHECK (write_cost >= 0),
	roles				text[] NOT NULL DEFAULT '{}',
	role_field			text CHECK (char_length(role_field) BETWEEN 1 AND 64)
);
COMMENT ON TABLE unkey.gateway IS 'reference: the settings of unkey.pre_request (one row)';

-- Routes with their own permission query, cost or role
CREATE TABLE unkey.gateway_routes (
	method				text NOT NULL CHECK (method IN ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', '*')),
	path				text NOT NULL CHECK (path ~ '^/[^?#[:space:][:cntrl:]]{0,255}$'),
	permissions			text CHECK (char_length(permissions) BETWEEN 1 AND 1000),
	cost				bigint CHECK (cost >= 0),
	role				text,
	PRIMARY KEY (method, path)
);
COMMENT ON TABLE unkey.gateway_routes IS 'reference: per-route permission query, cost and role of unkey.pre_request';

SELECT pg_catalog.pg_extension_config_dump('unkey.gateway', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.gateway_routes', '');

-- Verify the key of the PostgREST request being run (C: src/gateway.c); the role to switch to, or NULL
CREATE FUNCTION unkey.gateway_check()
RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_gateway_check' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.gateway_check() IS 'verify the key of the PostgREST request being run (its request.* settings) and return the role the gateway would switch to; refuses with SQLSTATE PGRST';

-- PostgREST's db-pre-request.  Neither SECURITY DEFINER nor SET: it switches the request's role
CREATE FUNCTION unkey.pre_request()
RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_pre_request' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.pre_request() IS 'PostgREST db-pre-request: refuse a request without a valid key (401, 403, 429), else describe the caller in request.unkey.* and switch role if configured';

CREATE FUNCTION unkey.unkey_gateway_configure(
	api_id				text,
	header				text	DEFAULT 'x-api-key',
	cookie				text	DEFAULT NULL,
	derive_permissions	boolean DEFAULT true,
	read_cost			bigint	DEFAULT 0,
	write_cost			bigint	DEFAULT 1,
	roles				text[]	DEFAULT '{}',
	role_field			text	DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	missing text;
BEGIN
	IF NOT EXISTS (SELECT FROM unkey.apis a WHERE a.id = unkey_gateway_configure.api_id AND a.deleted_at IS NULL) THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	IF header IS NULL OR header !~ '^[a-z0-9-]{1,64}$' OR header IN ('authorization', 'cookie') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'header must be a lower-case header name other than authorization and cookie'::text,
							 'PostgREST lower-cases header names and reads Authorization as a JWT: use a header such as x-api-key.'::text);
	END IF;
	IF cookie !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'cookie must be a cookie name of 1 to 64 of [A-Za-z0-9_.-]'::text,
							 'Pass the cookie''s name, or NULL to read the header only.'::text);
	END IF;
	IF derive_permissions IS NULL OR read_cost IS NULL OR write_cost IS NULL OR read_cost < 0 OR write_cost < 0 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'derive_permissions, read_cost and write_cost must be given, the costs 0 or more'::text,
							 'GET and HEAD run read-only in PostgREST: keep read_cost 0 unless reads are routed by POST.'::text);
	END IF;
	SELECT string_agg(x, ', ') INTO missing FROM unnest(coalesce(roles, '{}')) x WHERE to_regrole(quote_ident(x)) IS NULL;
	IF roles IS NULL OR missing IS NOT NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('roles must name existing roles: %s', coalesce(missing, 'NULL')),
							 'Create the roles first, and grant them to PostgREST''s authenticator role.'::text);
	END IF;
	IF role_field IS NOT NULL AND char_length(role_field) NOT BETWEEN 1 AND 64 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'role_field must be 1 to 64 characters'::text,
							 'Name the field of a key''s meta that holds its role, such as role.'::text);
	END IF;
	INSERT INTO unkey.gateway AS gw (api_id, header, cookie, derive_permissions, read_cost, write_cost, roles, role_field)
	VALUES (api_id, header, cookie, derive_permissions, read_cost, write_cost, roles, role_field)
	ON CONFLICT (id) DO UPDATE
	   SET (api_id, header, cookie, derive_permissions, read_cost, write_cost, roles, role_field)
		 = (EXCLUDED.api_id, EXCLUDED.header, EXCLUDED.cookie, EXCLUDED.derive_permissions, EXCLUDED.read_cost,
			EXCLUDED.write_cost, EXCLUDED.roles, EXCLUDED.role_field);
	PERFORM unkey._invalidate('unkey.gateway'::regclass);
	PERFORM unkey._audit('gateway.configure'::text, format('Configured the gateway for API %s', api_id), ARRAY['api', api_id]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_gateway_configure(text, text, text, boolean, bigint, bigint, text[], text) IS 'set unkey.pre_request''s API, key header or cookie, permission and cost defaults, and the roles it may switch to';

CREATE FUNCTION unkey.unkey_gateway_set_route(method text, path text, permissions text DEFAULT NULL,
											  cost bigint DEFAULT NULL, role text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF method IS NULL OR upper(method) NOT IN ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', '*') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'method must be GET, HEAD, POST, PUT, PATCH, DELETE or *'::text,
							 'Use * for every method.'::text);
	END IF;
	IF path IS NULL OR path !~ '^/[^?#[:space:][:cntrl:]]{0,255}$' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'path must start with / and hold no query string, space or control character'::text,
							 'Pass the path as PostgREST sees it, such as /rpc/report or /items.'::text);
	END IF;
	IF permissions IS NOT NULL THEN
		PERFORM unkey.unkey_normalize_permission_query(permissions);
	END IF;
	IF cost < 0 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'cost must not be negative'::text,
							 'Pass 0 or more, or NULL for the gateway''s default.'::text);
	END IF;
	IF role IS NOT NULL AND to_regrole(quote_ident(role)) IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('role "%s" does not exist', role),
							 'Create the role, grant it to PostgREST''s authenticator and list it in unkey_gateway_configure(roles).'::text);
	END IF;
	INSERT INTO unkey.gateway_routes AS gr (method, path, permissions, cost, role)
	VALUES (upper(method), path, permissions, cost, role)
	ON CONFLICT ON CONSTRAINT gateway_routes_pkey DO UPDATE
	   SET (permissions, cost, role) = (EXCLUDED.permissions, EXCLUDED.cost, EXCLUDED.role);
	PERFORM unkey._invalidate('unkey.gateway_routes'::regclass);
	PERFORM unkey._audit('gateway.set_route'::text, format('Set the gateway route %s %s', upper(method), path), ARRAY[]::text[]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_gateway_set_route(text, text, text, bigint, text) IS 'give a route (method or *, and path) its own permission query (NULL: none), cost and role';

CREATE FUNCTION unkey.unkey_gateway_delete_route(method text, path text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM unkey.gateway_routes gr WHERE gr.method = upper(unkey_gateway_delete_route.method)
										   AND gr.path = unkey_gateway_delete_route.path;
	IF NOT FOUND THEN
		PERFORM unkey._raise('not_found'::text, 'route not found'::text,
							 'SELECT * FROM unkey.gateway_routes lists the routes.'::text);
	END IF;
	PERFORM unkey._invalidate('unkey.gateway_routes'::regclass);
	PERFORM unkey._audit('gateway.delete_route'::text, format('Deleted the gateway route %s %s', upper(method), path), ARRAY[]::text[]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_gateway_delete_route(text, text) IS 'remove a route: it gets the gateway''s defaults again';

/*
 * The roles of a PostgREST deployment, with the grants each needs: the
 * authenticator PostgREST logs in as (LOGIN NOINHERIT, a member of the
 * others, no password: set one), the anonymous role that can only pass the
 * gateway, a verifier and an admin.  Existing roles are kept and granted to.
 * Not SECURITY DEFINER: a superuser, or a role with CREATEROLE that owns
 * the extension, runs it.
 */
CREATE FUNCTION unkey.unkey_create_postgrest_roles(
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
COMMENT ON FUNCTION unkey.unkey_create_postgrest_roles(text, text, text, text) IS 'create PostgREST''s authenticator and the anonymous, verifier and admin roles (or grant to existing ones); decrypting stays with unkey_decrypt';
