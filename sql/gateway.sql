-- gateway: unkey.pre_request(), PostgREST's db-pre-request, called here the
-- way PostgREST calls it (TAP 015 replays whole PostgREST requests)
SET unkey.test_now = '2030-01-15 12:00:00+00';

-- a request: PostgREST's settings for it, then the pre-request; the answer as
-- PostgREST would send it: status, code, headers, and what the application sees
CREATE FUNCTION pg_temp.request(method text, path text, headers text, cookies text DEFAULT '{}')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text;
	detail text;
	state text;
BEGIN
	PERFORM set_config('request.method', method, true), set_config('request.path', path, true),
			set_config('request.headers', headers, true), set_config('request.cookies', cookies, true),
			set_config('response.headers', '', true), set_config('request.unkey.key_id', '', true);
	BEGIN
		PERFORM unkey.pre_request();
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
		IF state <> 'PGRST' THEN
			RETURN state || ' ' || msg;
		END IF;
		RETURN format('%s %s %s', detail::jsonb -> 'status', msg::jsonb ->> 'code', detail::jsonb -> 'headers');
	END;
	RETURN format('200 %s key=%s external_id=%s role=%s', coalesce(nullif(current_setting('response.headers', true), ''), '-'),
				  nullif(current_setting('request.unkey.key_id', true), '') IS NOT NULL,
				  current_setting('request.unkey.external_id', true), current_user);
END
$$;

-- not configured: no key is 401 all the same; a key is 500 (the administrator's to fix)
SELECT pg_temp.request('GET', '/rpc/report', '{}');
SELECT pg_temp.request('GET', '/rpc/report', '{"x-api-key": "sk_whatever"}');

SELECT unkey.unkey_create_api('gateway') AS gw_api \gset
SELECT key AS reader FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', external_id => 'acme',
	permissions => ARRAY['rpc.report.read', 'items.read']) \gset
SELECT key AS writer FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', credits => 2,
	permissions => ARRAY['rpc.report.write', 'items.write']) \gset
SELECT key AS limited FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', permissions => ARRAY['rpc.report.read'],
	ratelimits => '[{"name": "requests", "limit": 2, "duration": 60000, "autoApply": true}]') \gset
SELECT key_id AS off_id, key AS off FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', enabled => false) \gset
SELECT key AS expired FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', expires => '2030-01-01') \gset
SELECT key AS refilled FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', credits => 1, refill_interval => 'daily',
	refill_amount => 5, permissions => ARRAY['rpc.report.write']) \gset
SELECT key AS other_api FROM unkey.unkey_create_key(unkey.unkey_create_api('elsewhere'), prefix => 'sk') \gset

-- configuration, and its bad input
SELECT unkey.unkey_gateway_configure(:'gw_api');
SELECT header, cookie, derive_permissions, read_cost, write_cost, roles, role_field FROM unkey.gateway;
SELECT regress.err(format($$SELECT unkey.unkey_gateway_configure(%L, header => 'Authorization')$$, :'gw_api'));
SELECT regress.err(format($$SELECT unkey.unkey_gateway_configure(%L, header => 'X-Api-Key')$$, :'gw_api'));
SELECT regress.err(format($$SELECT unkey.unkey_gateway_configure(%L, cookie => 'a b')$$, :'gw_api'));
SELECT regress.err(format($$SELECT unkey.unkey_gateway_configure(%L, read_cost => -1)$$, :'gw_api'));
SELECT regress.err(format($$SELECT unkey.unkey_gateway_configure(%L, roles => '{no_such_role}')$$, :'gw_api'));
SELECT regress.err($$SELECT unkey.unkey_gateway_configure('api_missing')$$);
SELECT regress.err($$SELECT unkey.unkey_gateway_set_route('TRACE', '/rpc/report')$$);
SELECT regress.err($$SELECT unkey.unkey_gateway_set_route('GET', 'rpc/report')$$);
SELECT regress.err($$SELECT unkey.unkey_gateway_set_route('GET', '/rpc/report?x=1')$$);
SELECT regress.err($$SELECT unkey.unkey_gateway_set_route('GET', '/rpc/report', permissions => 'a AND')$$);
SELECT regress.err($$SELECT unkey.unkey_gateway_set_route('GET', '/rpc/report', cost => -1)$$);
SELECT regress.err($$SELECT unkey.unkey_gateway_set_route('GET', '/rpc/report', role => 'no_such_role')$$);
SELECT regress.err($$SELECT unkey.unkey_gateway_delete_route('GET', '/nowhere')$$);

-- no key, or one that matches nothing: 401, before anything else is read
SELECT pg_temp.request('GET', '/rpc/report', '{}');
SELECT pg_temp.request('GET', '/rpc/report', '{"x-api-key": ""}');
SELECT pg_temp.request('GET', '/rpc/report', '{"authorization": "Bearer sk_x"}');
SELECT pg_temp.request('GET', '/rpc/report', '{"x-api-key": "sk_nothing_like_it"}');
SELECT pg_temp.request('GET', '/no/such/path/%%', format('{"x-api-key": "%s"}', 'sk_nothing_like_it'));
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'reader' || ', ' || :'writer')::text);
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'reader' || E'\u0001')::text);
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', repeat('k', 10240))::text);
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'other_api')::text);
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'off')::text);
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'expired')::text);
-- request.headers that is not a JSON object: 400
SELECT pg_temp.request('GET', '/rpc/report', 'not json');
SELECT pg_temp.request('GET', '/rpc/report', '["x-api-key"]');

-- a good key: 200; the application reads who called from request.unkey.*
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'reader')::text);
BEGIN;
SELECT pg_temp.request('GET', '/items', json_build_object('x-api-key', :'reader')::text);
SELECT current_setting('request.unkey.external_id') AS external_id, current_setting('request.unkey.meta') AS meta,
	   current_setting('request.unkey.api_id') = :'gw_api' AS api_id;
ROLLBACK;
-- the permission comes from method and path: GET /rpc/report needs rpc.report.read, POST rpc.report.write
SELECT pg_temp.request('POST', '/rpc/report', json_build_object('x-api-key', :'reader')::text);
SELECT pg_temp.request('DELETE', '/items', json_build_object('x-api-key', :'reader')::text);
SELECT pg_temp.request('GET', '/rpc/other', json_build_object('x-api-key', :'reader')::text);
-- a path that cannot be a permission's name: 400
SELECT pg_temp.request('GET', '/rpc/re port', json_build_object('x-api-key', :'reader')::text);
SELECT pg_temp.request('GET', '/', json_build_object('x-api-key', :'reader')::text);

-- writes spend write_cost (1): the writer has 2 credits, the third request is 429
SELECT pg_temp.request('POST', '/rpc/report', json_build_object('x-api-key', :'writer')::text);
SELECT pg_temp.request('POST', '/rpc/report', json_build_object('x-api-key', :'writer')::text);
SELECT pg_temp.request('POST', '/rpc/report', json_build_object('x-api-key', :'writer')::text);
-- out of credits, with a refill: 429 until the next refill (midnight UTC, 12 hours, 43,200 s away)
SELECT pg_temp.request('POST', '/rpc/report', json_build_object('x-api-key', :'refilled')::text);
SELECT pg_temp.request('POST', '/rpc/report', json_build_object('x-api-key', :'refilled')::text);
-- a rate limit: 2 per minute, the third request is 429 with its headers
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'limited')::text);
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'limited')::text);
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'limited')::text);

-- routes: their own permission query, cost and role
SELECT unkey.unkey_gateway_set_route('*', '/rpc/public_stats');
SELECT pg_temp.request('GET', '/rpc/public_stats', json_build_object('x-api-key', :'other_api')::text);
SELECT key AS plain FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk') \gset
SELECT pg_temp.request('GET', '/rpc/public_stats', json_build_object('x-api-key', :'plain')::text);
SELECT unkey.unkey_gateway_set_route('GET', '/rpc/report', permissions => 'rpc.report.read OR items.write');
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'writer')::text);
-- HEAD runs what GET runs: it gets GET's route
SELECT pg_temp.request('HEAD', '/rpc/report', json_build_object('x-api-key', :'writer')::text);
-- a read that spends: GET runs READ ONLY in PostgREST, so it is refused (405) and spends nothing
SELECT key_id AS payer_id, key AS payer FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', credits => 10) \gset
SELECT unkey.unkey_gateway_set_route('*', '/rpc/paid', cost => 3);
BEGIN READ ONLY;
SELECT pg_temp.request('GET', '/rpc/paid', json_build_object('x-api-key', :'payer')::text);
ROLLBACK;
-- ... and a disabled key there is 401, as verification would answer it
BEGIN READ ONLY;
SELECT pg_temp.request('GET', '/rpc/paid', json_build_object('x-api-key', :'off')::text);
ROLLBACK;
SELECT credits AS payer_credits FROM unkey.unkey_get_key(:'payer_id');
-- the route is found under the path PostgREST routes on: decoded (/rpc/%70aid is /rpc/paid)
SELECT pg_temp.request('POST', '/rpc/%70aid', json_build_object('x-api-key', :'payer')::text);
SELECT pg_temp.request('POST', '/rpc/%7', json_build_object('x-api-key', :'payer')::text);
SELECT pg_temp.request('POST', '/rpc/paid', json_build_object('x-api-key', :'payer')::text);
SELECT credits AS payer_credits FROM unkey.unkey_get_key(:'payer_id');
-- and a read that spends nothing works in READ ONLY
BEGIN READ ONLY;
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'reader')::text);
ROLLBACK;
SELECT unkey.unkey_gateway_delete_route('*', '/rpc/paid');
SELECT method, path, permissions, cost, role FROM unkey.gateway_routes ORDER BY path, method;

-- the key from a cookie, when the header is absent
SELECT unkey.unkey_gateway_configure(:'gw_api', cookie => 'api_key');
SELECT pg_temp.request('GET', '/rpc/report', '{}', json_build_object('api_key', :'reader')::text);
-- a custom header
SELECT unkey.unkey_gateway_configure(:'gw_api', header => 'apikey');
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'reader')::text);
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('apikey', :'reader')::text);

-- roles: a key may name one in its meta, a route may give one; only those the gateway lists
CREATE ROLE regress_gw_reader NOLOGIN;
CREATE ROLE regress_gw_other NOLOGIN;
SELECT unkey.unkey_gateway_configure(:'gw_api', roles => '{regress_gw_reader}', role_field => 'role');
SELECT key AS roled FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', meta => '{"role": "regress_gw_reader"}',
	permissions => ARRAY['rpc.report.read']) \gset
SELECT key AS badrole FROM unkey.unkey_create_key(:'gw_api', prefix => 'sk', meta => '{"role": "regress_gw_other"}',
	permissions => ARRAY['rpc.report.read']) \gset
BEGIN;
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'roled')::text);
ROLLBACK;
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'badrole')::text);
SELECT unkey.unkey_gateway_set_route('GET', '/rpc/report', permissions => 'rpc.report.read', role => 'regress_gw_other');
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'reader')::text);
SELECT unkey.unkey_gateway_set_route('GET', '/rpc/report', permissions => 'rpc.report.read', role => 'regress_gw_reader');
BEGIN;
SELECT pg_temp.request('GET', '/rpc/report', json_build_object('x-api-key', :'reader')::text);
ROLLBACK;

-- an API with an IP whitelist: the client's address is the proxy's X-Real-IP, else the
-- last X-Forwarded-For address (the one the proxy appended; the client writes the others)
SELECT unkey.unkey_create_api('internal', ip_whitelist => '{10.0.0.0/8}') AS ip_api \gset
SELECT key AS ip_key FROM unkey.unkey_create_key(:'ip_api', permissions => ARRAY['rpc.ipcheck.read']) \gset
SELECT unkey.unkey_gateway_configure(:'ip_api');
SELECT pg_temp.request('GET', '/rpc/ipcheck', json_build_object('x-api-key', :'ip_key', 'x-forwarded-for', '10.1.2.3, 203.0.113.9')::text);
SELECT pg_temp.request('GET', '/rpc/ipcheck', json_build_object('x-api-key', :'ip_key', 'x-forwarded-for', '203.0.113.9, 10.1.2.3')::text);
SELECT pg_temp.request('GET', '/rpc/ipcheck', json_build_object('x-api-key', :'ip_key', 'x-real-ip', '10.9.9.9', 'x-forwarded-for', '203.0.113.9')::text);
SELECT pg_temp.request('GET', '/rpc/ipcheck', json_build_object('x-api-key', :'ip_key', 'x-real-ip', 'not an address')::text);
SELECT pg_temp.request('GET', '/rpc/ipcheck', json_build_object('x-api-key', :'ip_key')::text);

-- the roles of a PostgREST deployment
SELECT unkey.unkey_create_postgrest_roles('regress_pgrst_auth', 'regress_pgrst_anon', 'regress_pgrst_verifier', 'regress_pgrst_admin');
SELECT rolname, rolcanlogin, rolinherit FROM pg_roles WHERE rolname LIKE 'regress_pgrst_%' ORDER BY 1;
SELECT r.rolname AS member_of FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
 WHERE m.member = 'regress_pgrst_auth'::regrole ORDER BY 1;
-- the anonymous role passes the gateway and nothing else
SELECT p.oid::regprocedure AS anon_may_execute FROM pg_proc p
 WHERE p.pronamespace = 'unkey'::regnamespace AND has_function_privilege('regress_pgrst_anon', p.oid, 'EXECUTE') ORDER BY 1;
SELECT p.oid::regprocedure AS verifier_may_execute FROM pg_proc p
 WHERE p.pronamespace = 'unkey'::regnamespace AND has_function_privilege('regress_pgrst_verifier', p.oid, 'EXECUTE') ORDER BY 1;
SELECT count(*) FILTER (WHERE has_function_privilege('regress_pgrst_admin', p.oid, 'EXECUTE')) AS admin_functions,
	   count(*) FILTER (WHERE p.proname LIKE 'unkey\_%' AND NOT has_function_privilege('regress_pgrst_admin', p.oid, 'EXECUTE')) AS admin_lacks,
	   string_agg(p.proname, ', ' ORDER BY p.proname) FILTER (WHERE p.proname LIKE 'unkey\_%' AND NOT has_function_privilege('regress_pgrst_admin', p.oid, 'EXECUTE')) AS owner_only
  FROM pg_proc p WHERE p.pronamespace = 'unkey'::regnamespace;
SELECT pg_has_role('regress_pgrst_admin', 'unkey_decrypt', 'MEMBER') AS admin_decrypts;
-- run again: nothing new, nothing lost
SELECT unkey.unkey_create_postgrest_roles('regress_pgrst_auth', 'regress_pgrst_anon', 'regress_pgrst_verifier', 'regress_pgrst_admin');
SELECT count(*) AS memberships FROM pg_auth_members WHERE member = 'regress_pgrst_auth'::regrole;

-- clean up
DELETE FROM unkey.gateway_routes;
DELETE FROM unkey.gateway;
DROP OWNED BY regress_pgrst_anon, regress_pgrst_verifier, regress_pgrst_admin, regress_gw_reader, regress_gw_other;
DROP ROLE regress_pgrst_auth, regress_pgrst_anon, regress_pgrst_verifier, regress_pgrst_admin, regress_gw_reader, regress_gw_other;
RESET unkey.test_now;
