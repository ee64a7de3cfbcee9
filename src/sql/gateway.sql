/*
 * gateway.sql: protect a PostgREST API with unkey keys.  unkey.pre_request()
 * is PostgREST's db-pre-request: it verifies the key of each request (from a
 * header or a cookie) against one API, with a cost and a permission query
 * from the request's method and path, answers with PostgREST's error
 * contract (SQLSTATE PGRST) when the key does not pass, and otherwise tells
 * the application who called (request.unkey.* settings), sets X-RateLimit-*
 * response headers, and may switch to a role.  It runs in the READ ONLY
 * transactions PostgREST uses for GET and HEAD.
 */

-- The gateway's settings: one row, made by unkey_gateway_configure
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

-- Raise PostgREST's error for a refused request: its JSON body, status and headers; never the key
CREATE FUNCTION unkey._gateway_refuse(status integer, code text, message text, hint text, headers jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE SQLSTATE 'PGRST' USING
		MESSAGE = jsonb_build_object('code', code, 'message', message, 'details', NULL, 'hint', hint)::text,
		DETAIL = jsonb_build_object('status', status,
									'status_text', CASE status WHEN 400 THEN 'Bad Request' WHEN 401 THEN 'Unauthorized'
														WHEN 403 THEN 'Forbidden' WHEN 429 THEN 'Too Many Requests'
														ELSE 'Internal Server Error' END,
									'headers', coalesce(headers, '{}'))::text;
END
$$;
COMMENT ON FUNCTION unkey._gateway_refuse(integer, text, text, text, jsonb) IS 'private: raise SQLSTATE PGRST with a JSON body, status and headers';

-- The permission a route needs when the route table does not say: GET /rpc/report -> rpc.report.read
CREATE FUNCTION unkey._gateway_permission(method text, path text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN count(*) = 0 OR bool_or(s !~ '^[A-Za-z0-9_:-]{1,128}$') THEN NULL
				ELSE string_agg(s, '.' ORDER BY n) || '.' ||
					 CASE WHEN method IN ('GET', 'HEAD') THEN 'read' WHEN method = 'DELETE' THEN 'delete' ELSE 'write' END
			END
	  FROM unnest(string_to_array(path, '/')) WITH ORDINALITY p(s, n)
	 WHERE s <> ''
$$;
COMMENT ON FUNCTION unkey._gateway_permission(text, text) IS 'private: the permission derived from a request''s method and path';

/*
 * Verify the request PostgREST is running (its request.* settings) and
 * return the role to switch to, or NULL; raise SQLSTATE PGRST when the key
 * does not pass.  SECURITY DEFINER: it reads the gateway's settings and the
 * keys; it can verify nothing but the request's own key.
 */
CREATE FUNCTION unkey.gateway_check()
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	headers jsonb;
	cookies jsonb;
	g unkey.gateway;
	r unkey.gateway_routes;
	key text;
	req_method text := upper(coalesce(current_setting('request.method', true), ''));
	req_path text := coalesce(current_setting('request.path', true), '');
	perm text;
	cost bigint;
	v unkey.verification;
	lim jsonb;
	challenge jsonb;
	reset_ms bigint;
	role text;
	ip inet;
	k record;
BEGIN
	BEGIN
		headers := nullif(current_setting('request.headers', true), '')::jsonb;
		cookies := nullif(current_setting('request.cookies', true), '')::jsonb;
	EXCEPTION WHEN data_exception THEN
		headers := '[]';
	END;
	IF jsonb_typeof(coalesce(headers, '{}')) <> 'object' OR jsonb_typeof(coalesce(cookies, '{}')) <> 'object' THEN
		PERFORM unkey._gateway_refuse(400, 'BAD_REQUEST'::text, 'request.headers and request.cookies must be JSON objects'::text,
									  'Call unkey.pre_request() from PostgREST''s db-pre-request.'::text, NULL::jsonb);
	END IF;

	-- the key, from the header (or the cookie); without one the answer is 401, whatever else is set
	SELECT * INTO g FROM unkey.gateway;
	challenge := jsonb_build_object('WWW-Authenticate', format('ApiKey header="%s"', coalesce(g.header, 'x-api-key')));
	key := headers ->> coalesce(g.header, 'x-api-key');
	IF key IS NULL AND g.cookie IS NOT NULL THEN
		key := cookies ->> g.cookie;
	END IF;
	IF key IS NULL OR key = '' THEN
		PERFORM unkey._gateway_refuse(401, 'MISSING_KEY'::text, 'this API needs a key'::text,
									  format('Send it in the %s header.', coalesce(g.header, 'x-api-key')), challenge);
	END IF;
	-- a key too long, or with spaces, commas or control characters, matches nothing
	IF char_length(key) > 512 OR key ~ '[[:space:][:cntrl:],]' THEN
		PERFORM unkey._gateway_refuse(401, 'NOT_FOUND'::text, 'the key is not valid'::text, NULL::text, challenge);
	END IF;
	IF g.api_id IS NULL THEN
		PERFORM unkey._gateway_refuse(500, 'GATEWAY_NOT_CONFIGURED'::text, 'the gateway has no API'::text,
									  'Run unkey_gateway_configure(api_id) first.'::text, NULL::jsonb);
	END IF;

	-- the route's permission query and cost
	SELECT * INTO r FROM unkey.gateway_routes gr
	 WHERE gr.path = req_path AND gr.method IN (req_method, '*')
	 ORDER BY gr.method = '*' LIMIT 1;
	IF r.path IS NOT NULL THEN
		perm := r.permissions;
	ELSIF g.derive_permissions THEN
		perm := unkey._gateway_permission(req_method, req_path);
		IF perm IS NULL THEN
			PERFORM unkey._gateway_refuse(400, 'BAD_REQUEST'::text, 'this path cannot be named as a permission'::text,
										  'The gateway''s administrator can add the route to unkey.gateway_routes.'::text, NULL::jsonb);
		END IF;
	END IF;
	cost := coalesce(r.cost, CASE WHEN req_method IN ('GET', 'HEAD') THEN g.read_cost ELSE g.write_cost END);
	-- a route that spends cannot be called in PostgREST's READ ONLY transaction (GET, HEAD):
	-- 25006 (405) for a key of this API, before anything is counted or spent
	IF cost > 0 AND current_setting('transaction_read_only')::boolean THEN
		IF NOT EXISTS (SELECT FROM unkey.keys kk WHERE kk.key_hash = unkey._key_hash(key) AND kk.api_id = g.api_id
													AND kk.deleted_at IS NULL) THEN
			PERFORM unkey._gateway_refuse(401, 'NOT_FOUND'::text, 'the key is not valid'::text, NULL::text, challenge);
		END IF;
		PERFORM unkey._raise('read_only_sql_transaction'::text, 'this route spends credits, which a read-only request cannot'::text,
							 'Call it by POST (PostgREST runs GET and HEAD read-only), or give the route a cost of 0.'::text);
	END IF;

	-- the client's address for an IP whitelist, as the proxy in front of PostgREST says it
	BEGIN
		ip := nullif(btrim(coalesce(split_part(headers ->> 'x-forwarded-for', ',', 1), headers ->> 'x-real-ip')), '')::inet;
	EXCEPTION WHEN data_exception THEN
		ip := NULL;
	END;
	v := unkey.unkey_verify_key(key, g.api_id, perm, cost, NULL::jsonb, NULL::text[], ip);

	IF v.code IN ('NOT_FOUND', 'DISABLED', 'EXPIRED') THEN
		PERFORM unkey._gateway_refuse(401, v.code, CASE v.code WHEN 'NOT_FOUND' THEN 'the key is not valid'
														  WHEN 'DISABLED' THEN 'the key is disabled' ELSE 'the key has expired' END,
									  NULL::text, challenge);
	ELSIF v.code IN ('FORBIDDEN', 'INSUFFICIENT_PERMISSIONS') THEN
		PERFORM unkey._gateway_refuse(403, v.code, CASE v.code WHEN 'FORBIDDEN' THEN 'the key may not be used from this address'
														  ELSE 'the key may not do this' END, NULL::text, NULL::jsonb);
	ELSIF v.code = 'RATE_LIMITED' THEN
		SELECT e INTO lim FROM jsonb_array_elements(v.ratelimits) e WHERE (e ->> 'exceeded')::boolean
		 ORDER BY (e ->> 'reset')::bigint DESC LIMIT 1;
		reset_ms := (lim ->> 'reset')::bigint;
		PERFORM unkey._gateway_refuse(429, v.code, 'too many requests'::text, NULL::text, jsonb_build_object(
			'Retry-After', greatest(1, ceil((reset_ms - extract(epoch FROM unkey.now()) * 1000) / 1000.0))::bigint::text,
			'X-RateLimit-Limit', lim ->> 'limit', 'X-RateLimit-Remaining', '0',
			'X-RateLimit-Reset', ceil(reset_ms / 1000.0)::bigint::text));
	ELSIF v.code = 'USAGE_EXCEEDED' THEN
		-- out of credits: 429 as well; when the key refills, the next refill is the reset
		SELECT kk.refill_amount, unkey._next_refill(kk.refill_day, unkey.now()) AS next_refill INTO k
		  FROM unkey.keys kk WHERE kk.id = v.key_id AND kk.refill_amount IS NOT NULL;
		PERFORM unkey._gateway_refuse(429, v.code, 'the key has no credits left'::text, NULL::text,
			jsonb_strip_nulls(jsonb_build_object(
				'Retry-After', CASE WHEN k.next_refill IS NOT NULL
									THEN greatest(1, ceil(extract(epoch FROM k.next_refill - unkey.now())))::bigint::text END,
				'X-RateLimit-Limit', k.refill_amount::text, 'X-RateLimit-Remaining', '0',
				'X-RateLimit-Reset', ceil(extract(epoch FROM k.next_refill))::bigint::text)));
	END IF;

	-- who called, for row-level security and the application
	PERFORM set_config('request.unkey.key_id', v.key_id, true),
			set_config('request.unkey.api_id', v.api_id, true),
			set_config('request.unkey.name', coalesce(v.name, ''), true),
			set_config('request.unkey.meta', coalesce(v.meta::text, ''), true),
			set_config('request.unkey.identity_id', coalesce(v.identity_id, ''), true),
			set_config('request.unkey.external_id', coalesce(v.external_id, ''), true),
			set_config('request.unkey.identity_meta', coalesce(v.identity_meta::text, ''), true),
			set_config('request.unkey.credits', coalesce(v.credits::text, ''), true);
	-- the tightest rate limit checked, and the credits left, as response headers
	SELECT e INTO lim FROM jsonb_array_elements(v.ratelimits) e ORDER BY (e ->> 'remaining')::bigint, e ->> 'name' LIMIT 1;
	IF lim IS NOT NULL OR v.credits IS NOT NULL THEN
		PERFORM set_config('response.headers', (SELECT jsonb_agg(jsonb_build_object(h.name, h.value) ORDER BY h.n)
												  FROM (VALUES (1, 'X-RateLimit-Limit', lim ->> 'limit'),
															   (2, 'X-RateLimit-Remaining', lim ->> 'remaining'),
															   (3, 'X-RateLimit-Reset', ceil((lim ->> 'reset')::bigint / 1000.0)::bigint::text),
															   (4, 'X-Credits-Remaining', v.credits::text)) h(n, name, value)
												 WHERE h.value IS NOT NULL)::text, true);
	END IF;

	-- the role to switch to: the key's own (in its meta), else the route's; only one the gateway allows
	IF g.role_field IS NOT NULL THEN
		role := v.meta ->> g.role_field;
	END IF;
	role := coalesce(role, r.role);
	IF role IS NOT NULL AND role <> ALL (g.roles) THEN
		PERFORM unkey._gateway_refuse(403, 'ROLE_NOT_ALLOWED'::text, 'the key names a role the gateway may not switch to'::text,
									  NULL::text, NULL::jsonb);
	END IF;
	RETURN role;
END
$$;
COMMENT ON FUNCTION unkey.gateway_check() IS 'verify the key of the PostgREST request being run and return the role to switch to; used by unkey.pre_request()';

-- PostgREST's db-pre-request.  SECURITY INVOKER: a role switch is refused inside SECURITY DEFINER
CREATE FUNCTION unkey.pre_request()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	role text := unkey.gateway_check();
BEGIN
	IF role IS NOT NULL THEN
		PERFORM pg_catalog.set_config('role', role, true);
	END IF;
END
$$;
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
					unkey.unkey_ratelimit(text, text, bigint, interval, bigint), unkey.unkey_ratelimit_many(jsonb) TO %I',
				   verifier);
	-- the admin: every unkey_ function but the owner's (rotation, these roles)
	FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace = 'unkey'::regnamespace AND p.proname LIKE 'unkey\_%'
				AND p.proname NOT IN ('unkey_vault_rotate', 'unkey_create_postgrest_roles')
			  ORDER BY 1 LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, admin);
	END LOOP;
	EXECUTE format('GRANT SELECT ON unkey.audit_trail, unkey.verifications, unkey.verifications_hourly,
					unkey.verifications_daily, unkey.verifications_monthly, unkey.key_usage, unkey.ratelimits_hourly,
					unkey.ratelimits_daily, unkey.ratelimits_monthly TO %I', admin);
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_postgrest_roles(text, text, text, text) IS 'create PostgREST''s authenticator and the anonymous, verifier and admin roles (or grant to existing ones); decrypting stays with unkey_decrypt';
