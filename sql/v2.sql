-- v2: Unkey's v2 HTTP API (schema unkey_v2), called the way PostgREST calls
-- it behind the reverse proxy (TAP 021 replays whole HTTP requests): the root
-- key in X-Unkey-Root-Key, the body as one jsonb argument; shown here is the
-- status PostgREST would answer with, and the body without its meta
SET unkey.test_now = '2030-01-15 12:00:00+00';

CREATE FUNCTION pg_temp.v2(endpoint text, body text, root text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	answer jsonb;
BEGIN
	PERFORM set_config('request.headers', CASE WHEN root IS NULL THEN '{}'
		ELSE jsonb_build_object('x-unkey-root-key', root)::text END, true),
			set_config('response.status', '', true), set_config('response.headers', '', true);
	EXECUTE format('SELECT unkey_v2.%I($1::jsonb)', endpoint) INTO answer USING body;
	RETURN concat_ws(' ', coalesce(nullif(current_setting('response.status', true), ''), '200'),
					 nullif(current_setting('response.headers', true), ''), answer - 'meta');
END
$$;

-- root keys: shown once; Unkey's permission names only
SELECT (unkey.unkey_create_root_key('ci', ARRAY['api.*.create_api', 'api.*.read_api', 'api.*.delete_api',
	'api.*.verify_key'])).key AS root \gset
SELECT 'Bearer ' || :'root' AS bearer \gset
SELECT key_id AS root_id FROM unkey.unkey_list_root_keys() WHERE name = 'ci' \gset
SELECT name, start ~ '^unkey_' AS unkey_prefix, permissions, enabled FROM unkey.unkey_list_root_keys();
SELECT regress.err($$SELECT unkey.unkey_create_root_key('bad', ARRAY['api.*.fly'])$$);
SELECT regress.err($$SELECT unkey.unkey_create_root_key('bad', ARRAY['documents.read'])$$);
SELECT regress.err($$SELECT unkey.unkey_create_root_key('bad', NULL)$$);
SELECT regress.err($$SELECT unkey.unkey_update_root_key('key_missing', ARRAY['api.*.read_api'])$$);

-- liveness, and the request id of the request when it has one
SELECT unkey_v2.liveness() -> 'data' AS liveness;
SET unkey.request_id = 'req_fromproxy1';
SELECT unkey_v2.liveness() -> 'meta' AS meta;
RESET unkey.request_id;
SELECT set_config('request.headers', '{"x-request-id": "nginx-4f2a"}', false);
SELECT unkey_v2.liveness() -> 'meta' AS from_header;
SELECT set_config('request.headers', '{}', false);
SELECT unkey_v2.liveness() #>> '{meta,requestId}' ~ '^req_' AS generated;

-- apis: create, read, delete, each with Unkey's validation
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', :'bearer') ~ '^200 \{"data": \{"apiId": "api_' AS created;
SELECT id AS api FROM unkey.apis WHERE name = 'payments' \gset
SELECT pg_temp.v2('apis.getApi', format('{"apiId": "%s"}', :'api'), :'bearer') = format('200 {"data": {"id": "%s", "name": "payments"}}', :'api') AS got;
SELECT pg_temp.v2('apis.createApi', '{"name": "pa"}', :'bearer');
SELECT pg_temp.v2('apis.createApi', '{"name": "payments", "colour": "red"}', :'bearer');
SELECT pg_temp.v2('apis.createApi', '{}', :'bearer');
SELECT pg_temp.v2('apis.createApi', '[]', :'bearer');
SELECT pg_temp.v2('apis.createApi', '{"name": 5}', :'bearer');
SELECT pg_temp.v2('apis.getApi', '{"apiId": "api_missing"}', :'bearer');
SELECT pg_temp.v2('apis.getApi', '{"apiId": "api-bad!"}', :'bearer');
-- the root keys' own API is not the application's
SELECT pg_temp.v2('apis.getApi', format('{"apiId": "%s"}', unkey.root_api_id()), :'bearer');
SELECT pg_temp.v2('apis.deleteApi', format('{"apiId": "%s"}', unkey.root_api_id()), :'bearer');
SELECT unkey.unkey_create_api('protected', delete_protection => true) AS protected_api \gset
SELECT pg_temp.v2('apis.deleteApi', format('{"apiId": "%s"}', :'protected_api'), :'bearer');
SELECT count(*) AS still_there FROM unkey.apis WHERE id = :'protected_api' AND deleted_at IS NULL;
SELECT pg_temp.v2('apis.deleteApi', format('{"apiId": "%s"}', :'api'), :'bearer');
SELECT pg_temp.v2('apis.getApi', format('{"apiId": "%s"}', :'api'), :'bearer') ~ '^404' AS gone;

-- authentication: missing, malformed, unknown, a key that is not a root key,
-- disabled, expired, revoked
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', NULL);
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', :'root');
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', 'Bearer unkey_nosuchkey');
SELECT unkey.unkey_create_api('app') AS app \gset
SELECT (unkey.unkey_create_key(:'app')).key AS app_key \gset
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', 'Bearer ' || :'app_key');
SELECT enabled FROM unkey.unkey_update_root_key(:'root_id', enabled => false);
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', :'bearer');
SELECT enabled FROM unkey.unkey_update_root_key(:'root_id', enabled => true);
SELECT (unkey.unkey_create_root_key('old', ARRAY['api.*.create_api'], expires => '2029-01-01')).key AS old_root \gset
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', 'Bearer ' || :'old_root');
SELECT (unkey.unkey_create_root_key('gone', ARRAY['api.*.create_api'])).key AS gone_root \gset
SELECT unkey.unkey_delete_root_key((SELECT key_id FROM unkey.unkey_list_root_keys() WHERE name = 'gone'));
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', 'Bearer ' || :'gone_root');
SELECT count(*) AS gone_rows FROM unkey.root_keys r JOIN unkey.keys k USING (key_hash) WHERE k.name = 'gone';

-- permissions: Unkey's names, literally; api.<id>.x is that API only
SELECT (unkey.unkey_create_root_key('scoped', ARRAY['api.' || :'app' || '.read_api', 'api.' || :'app' || '.verify_key'])).key AS scoped \gset
SELECT pg_temp.v2('apis.getApi', format('{"apiId": "%s"}', :'app'), 'Bearer ' || :'scoped') ~ '^200' AS own_api;
SELECT replace(pg_temp.v2('apis.getApi', format('{"apiId": "%s"}', :'protected_api'), 'Bearer ' || :'scoped'),
	:'protected_api', 'api_<protected>') AS other_api;
SELECT pg_temp.v2('apis.createApi', '{"name": "payments"}', 'Bearer ' || :'scoped');
SELECT permissions FROM unkey.unkey_update_root_key(:'root_id', ARRAY['api.*.read_api']);

-- keys.verifyKey: the root key's scope decides whether the key exists
SELECT (unkey.unkey_create_key(:'app', name => 'k1', credits => 2, meta => '{"plan": null, "seats": 3}',
	external_id => 'acme', ratelimits => '[{"name": "requests", "limit": 5, "duration": 60000, "autoApply": true}]')).key AS k \gset
SELECT (unkey.unkey_create_key(:'protected_api')).key AS other_key \gset
SELECT regexp_replace(pg_temp.v2('keys.verifyKey', format('{"key": "%s"}', :'k'), 'Bearer ' || :'scoped'),
	'(key|id)_[1-9A-HJ-NP-Za-km-z]+', '\1_<id>', 'g') AS verified;
SELECT regexp_replace(pg_temp.v2('keys.verifyKey', format('{"key": "%s", "credits": {"cost": 5}}', :'k'), 'Bearer ' || :'scoped'),
	'(key|id)_[1-9A-HJ-NP-Za-km-z]+', '\1_<id>', 'g') AS not_enough;
SELECT pg_temp.v2('keys.verifyKey', format('{"key": "%s"}', :'other_key'), 'Bearer ' || :'scoped') AS other_api;
SELECT pg_temp.v2('keys.verifyKey', '{"key": "no such key"}', 'Bearer ' || :'scoped') AS unknown;
SELECT pg_temp.v2('keys.verifyKey', format('{"key": "%s"}', :'root'), 'Bearer ' || :'scoped') AS a_root_key;
SELECT pg_temp.v2('keys.verifyKey', format('{"key": "%s"}', :'k'), :'bearer') AS without_verify_key;
SELECT pg_temp.v2('keys.verifyKey', format('{"key": "%s", "permissions": "a AND ("}', :'k'), 'Bearer ' || :'scoped');
SELECT regexp_replace(pg_temp.v2('keys.verifyKey', format('{"key": "%s", "ratelimits": [{"name": "nope"}]}', :'k'), 'Bearer ' || :'scoped'),
	'(key|id)_[1-9A-HJ-NP-Za-km-z]+', '\1_<id>', 'g') AS unknown_limit;
SELECT pg_temp.v2('keys.verifyKey', format('{"key": "%s", "tags": [1]}', :'k'), 'Bearer ' || :'scoped');
SELECT pg_temp.v2('keys.verifyKey', format('{"key": "%s", "credits": {"cost": -1}}', :'k'), 'Bearer ' || :'scoped');
SELECT pg_temp.v2('keys.verifyKey', format('{"key": "%s", "credits": {}}', :'k'), 'Bearer ' || :'scoped');
SELECT pg_temp.v2('keys.verifyKey', format('{"key": "%s", "apiId": "%s"}', :'k', :'app'), 'Bearer ' || :'scoped');
SELECT remaining AS credits_left FROM unkey.keys WHERE name = 'k1';

-- keys.createKey, getKey, whoami, deleteKey and apis.listKeys: Unkey's
-- shapes (camelCase, ms, nested credits), optional fields left out
SELECT (unkey.unkey_create_root_key('keys', ARRAY['api.*.create_key', 'api.*.read_key', 'api.*.read_api',
	'api.*.delete_key'])).key AS keys_root \gset
SELECT 'Bearer ' || :'keys_root' AS kb \gset
SELECT unkey.unkey_create_role('v2 reader', NULL, ARRAY['doc.read']) IS NOT NULL AS role_made;
SELECT pg_temp.v2('keys.createKey', format('{"apiId": "%s", "prefix": "sk", "name": "full", "byteLength": 16,
	"externalId": "globex", "meta": {"plan": "pro", "tags": null}, "roles": ["v2 reader"], "permissions": ["doc.write"],
	"expires": 4102444800000, "credits": {"remaining": 5, "refill": {"interval": "monthly", "amount": 5, "refillDay": 3}},
	"ratelimits": [{"name": "requests", "limit": 10, "duration": 60000, "autoApply": true}], "enabled": true,
	"recoverable": false}', :'app'), :'kb') AS created \gset
SELECT :'created' ~ '^200 \{"data": \{"key": "sk_[1-9A-HJ-NP-Za-km-z]+", "keyId": "key_' AS created_ok;
SELECT (substring(:'created' FROM 5))::jsonb #>> '{data,keyId}' AS full_id,
	   (substring(:'created' FROM 5))::jsonb #>> '{data,key}' AS full_key \gset
SELECT regexp_replace(regexp_replace(pg_temp.v2('keys.getKey', format('{"keyId": "%s"}', :'full_id'), :'kb'),
	'(key|id|rl)_[1-9A-HJ-NP-Za-km-z0-9]+', '\1_<id>', 'g'), '"start": "sk_[^"]*"', '"start": "sk_<4>"') AS got_key;
SELECT pg_temp.v2('keys.whoami', format('{"key": "%s"}', :'full_key'), :'kb') =
	   pg_temp.v2('keys.getKey', format('{"keyId": "%s"}', :'full_id'), :'kb') AS whoami_is_getkey;
SELECT pg_temp.v2('keys.whoami', '{"key": "sk_nosuchkey"}', :'kb');
SELECT pg_temp.v2('keys.whoami', format('{"key": "%s"}', :'root'), :'kb') ~ '^404' AS root_key_unseen;
SELECT pg_temp.v2('keys.getKey', format('{"keyId": "%s"}', :'full_id'), 'Bearer ' || :'scoped') ~ '^403' AS scoped_cannot_read;
SELECT pg_temp.v2('keys.getKey', format('{"keyId": "%s", "decrypt": true}', :'full_id'), :'kb') ~ '^403 .*decrypt_key' AS decrypt_needs_permission;
-- errors: unlimited with a refill, monthly without its day, a missing role (all undone), a hidden API
SELECT count(*) AS keys_before FROM unkey.keys \gset
SELECT pg_temp.v2('keys.createKey', format('{"apiId": "%s", "credits": {"remaining": null, "refill": {"interval": "daily", "amount": 1}}}', :'app'), :'kb');
SELECT pg_temp.v2('keys.createKey', format('{"apiId": "%s", "credits": {"remaining": 1, "refill": {"interval": "monthly", "amount": 1}}}', :'app'), :'kb');
SELECT pg_temp.v2('keys.createKey', format('{"apiId": "%s", "externalId": "fresh-identity", "roles": ["no such role"]}', :'app'), :'kb');
SELECT count(*) - :keys_before AS keys_added FROM unkey.keys;
SELECT count(*) AS identities_added FROM unkey.identities WHERE external_id = 'fresh-identity';
SELECT pg_temp.v2('keys.createKey', format('{"apiId": "%s"}', unkey.root_api_id()), :'kb');
SELECT pg_temp.v2('keys.createKey', format('{"apiId": "%s", "byteLength": 8}', :'app'), :'kb');
SELECT pg_temp.v2('keys.createKey', format('{"apiId": "%s"}', :'app'), 'Bearer ' || :'scoped');
-- listKeys: pages to the end, each item a KeyResponseData, the cursor only while there is more
SELECT pg_temp.v2('keys.createKey', format('{"apiId": "%s", "name": "k%s"}', :'app', n), :'kb') ~ '^200' AS more_keys
  FROM generate_series(1, 3) n;
WITH RECURSIVE pages(n, answer) AS (
	SELECT 1, substring(pg_temp.v2('apis.listKeys', format('{"apiId": "%s", "limit": 2}', :'app'), :'kb') FROM 5)::jsonb
	UNION ALL
	SELECT n + 1, substring(pg_temp.v2('apis.listKeys', format('{"apiId": "%s", "limit": 2, "cursor": "%s"}', :'app',
		answer #>> '{pagination,cursor}'), :'kb') FROM 5)::jsonb
	  FROM pages WHERE (answer #> '{pagination,hasMore}')::boolean AND n < 10)
SELECT n, jsonb_array_length(answer -> 'data') AS keys, answer #> '{pagination,hasMore}' AS has_more,
	   answer #> '{pagination}' ? 'cursor' AS has_cursor FROM pages ORDER BY n;
SELECT pg_temp.v2('apis.listKeys', format('{"apiId": "%s", "externalId": "nobody"}', :'app'), :'kb');
SELECT pg_temp.v2('apis.listKeys', format('{"apiId": "%s"}', :'app'), 'Bearer ' || :'scoped') ~ '^404' AS scoped_cannot_list;
SELECT pg_temp.v2('apis.listKeys', format('{"apiId": "%s", "limit": 101}', :'app'), :'kb') ~ '^400' AS limit_bounded;
SELECT pg_temp.v2('keys.deleteKey', format('{"keyId": "%s"}', :'full_id'), :'kb');
SELECT pg_temp.v2('keys.getKey', format('{"keyId": "%s"}', :'full_id'), :'kb') ~ '^404' AS deleted_key_gone;
SELECT pg_temp.v2('keys.deleteKey', format('{"keyId": "%s"}', :'full_id'), :'kb') ~ '^404' AS delete_twice;

-- nothing of it is executable by PUBLIC
SELECT count(*) AS public_functions FROM pg_proc p
 WHERE p.pronamespace = 'unkey_v2'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE');
RESET unkey.test_now;
