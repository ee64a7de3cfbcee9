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
	'(key|id|rl)_[0-9A-Za-z]+', '\1_<id>', 'g') AS verified;
SELECT regexp_replace(pg_temp.v2('keys.verifyKey', format('{"key": "%s", "credits": {"cost": 5}}', :'k'), 'Bearer ' || :'scoped'),
	'(key|id|rl)_[0-9A-Za-z]+', '\1_<id>', 'g') AS not_enough;
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
-- the body's other checks, and the root key, as every endpoint checks them
-- (status, location and detail of Unkey's error body)
CREATE FUNCTION pg_temp.v2e(body text, root text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	e jsonb;
BEGIN
	PERFORM set_config('request.headers', CASE WHEN root IS NULL THEN '{}'
		ELSE jsonb_build_object('x-unkey-root-key', root)::text END, true),
			set_config('response.status', '', true);
	e := unkey_v2."keys.verifyKey"(body::jsonb);
	RETURN concat_ws(' ', coalesce(nullif(current_setting('response.status', true), ''), '200'),
					 e #>> '{error,errors,0,location}', e #>> '{error,detail}',
					 '(' || regexp_replace(e #>> '{error,type}', '^.*/errors/', '') || ')');
END
$$;
SELECT pg_temp.v2e('[]', 'Bearer ' || :'scoped') AS not_an_object;
SELECT pg_temp.v2e('{"key": null}', 'Bearer ' || :'scoped') AS null_key;
SELECT pg_temp.v2e('{"key": 7}', 'Bearer ' || :'scoped') AS number_key;
SELECT pg_temp.v2e('{"key": ""}', 'Bearer ' || :'scoped') AS empty_key;
SELECT pg_temp.v2e(format('{"key": "%s", "credits": {"cost": 1.5}}', :'k'), 'Bearer ' || :'scoped') AS fraction;
SELECT pg_temp.v2e(format('{"key": "%s", "credits": {"cost": 1, "x": 1}}', :'k'), 'Bearer ' || :'scoped') AS credits_extra;
SELECT pg_temp.v2e(format('{"key": "%s", "ratelimits": {}}', :'k'), 'Bearer ' || :'scoped') AS limits_object;
SELECT pg_temp.v2e(format('{"key": "%s", "ratelimits": [{"name": "requests", "cost": -1}]}', :'k'),
	'Bearer ' || :'scoped') AS limits_bad_cost;
SELECT pg_temp.v2e(format('{"key": "%s", "migrationId": 3}', :'k'), 'Bearer ' || :'scoped') AS migration_number;
SELECT pg_temp.v2e(format('{"key": "%s", "z": 1, "b": 2}', :'k'), 'Bearer ' || :'scoped') AS first_unknown;
SELECT pg_temp.v2e(format('{"key": "%s"}', :'k'), NULL) AS no_root_key;
SELECT pg_temp.v2e(format('{"key": "%s"}', :'k'), 'Basic abc') AS malformed;
SELECT pg_temp.v2e(format('{"key": "%s"}', :'k'), 'Bearer unkey_nope') AS unknown_root;
SELECT pg_temp.v2e(format('{"key": "%s"}', :'k'), 'Bearer ' || :'k') AS app_key_as_root;
-- a verification that failed spent nothing, and a migrationId and cost 0 are accepted
SELECT remaining AS credits_left FROM unkey.keys WHERE name = 'k1';
SELECT regexp_replace(pg_temp.v2('keys.verifyKey', format('{"key": "%s", "migrationId": "m1", "credits": {"cost": 0}, "tags": ["a=1"]}', :'k'),
	'bearer ' || :'scoped' || E' \t'), '(key|id|rl)_[0-9A-Za-z]+', '\1_<id>', 'g') AS lowercase_bearer;
-- the API's IP whitelist reads the client's address as the proxy passes it:
-- X-Real-IP, else the last address of X-Forwarded-For
SELECT unkey.unkey_create_api('office', ip_whitelist => ARRAY['10.0.0.0/8']) AS office \gset
SELECT (unkey.unkey_create_key(:'office')).key AS office_key \gset
SELECT (unkey.unkey_create_root_key('office', ARRAY['api.' || :'office' || '.verify_key'])).key AS office_root \gset
CREATE FUNCTION pg_temp.from(headers jsonb) RETURNS text
LANGUAGE sql AS $$
	SELECT set_config('request.headers', (headers || jsonb_build_object('x-unkey-root-key', 'Bearer ' || current_setting('v2.root')))::text, true);
	SELECT unkey_v2."keys.verifyKey"(jsonb_build_object('key', current_setting('v2.key'))) #>> '{data,code}';
$$;
SELECT set_config('v2.root', :'office_root', false), set_config('v2.key', :'office_key', false) \gset
SELECT pg_temp.from('{"x-real-ip": "10.1.2.3"}') AS real_ip_inside,
	   pg_temp.from('{"x-real-ip": "192.168.1.1"}') AS real_ip_outside,
	   pg_temp.from('{"x-forwarded-for": "192.168.1.1, 10.0.0.5"}') AS forwarded_inside,
	   pg_temp.from('{"x-forwarded-for": "10.0.0.5, 192.168.1.1"}') AS forwarded_outside,
	   pg_temp.from('{}') AS no_address;
-- a disabled root key, and one at its expiry, are refused before the body's key is looked at
SELECT key_id AS office_root_id FROM unkey.unkey_list_root_keys() WHERE name = 'office' \gset
SELECT enabled FROM unkey.unkey_update_root_key(:'office_root_id', enabled => false);
SELECT pg_temp.v2e(format('{"key": "%s"}', :'office_key'), 'Bearer ' || :'office_root') AS disabled_root;
SELECT (unkey.unkey_create_root_key('brief', ARRAY['api.*.verify_key'], expires => '2030-01-15 12:00:01+00')).key AS brief_root \gset
SELECT pg_temp.v2e(format('{"key": "%s"}', :'office_key'), 'Bearer ' || :'brief_root') ~ '^200' AS brief_root_before;
SET unkey.test_now = '2030-01-15 12:00:01+00';
SELECT pg_temp.v2e(format('{"key": "%s"}', :'office_key'), 'Bearer ' || :'brief_root') AS brief_root_at_expiry;
SET unkey.test_now = '2030-01-15 12:00:00+00';
SELECT unkey.unkey_delete_root_key(key_id) FROM unkey.unkey_list_root_keys() WHERE name IN ('office', 'brief');

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
SELECT (unkey.unkey_create_root_key('decrypter', ARRAY['api.*.read_key', 'api.*.read_api', 'api.*.decrypt_key'])).key AS decrypter \gset
SELECT pg_temp.v2('keys.getKey', format('{"keyId": "%s", "decrypt": true}', :'full_id'), 'Bearer ' || :'decrypter');
SELECT pg_temp.v2('apis.listKeys', format('{"apiId": "%s", "decrypt": true}', :'app'), 'Bearer ' || :'decrypter') ~ '^412' AS list_decrypt_412;
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

-- identities: create (409 on a taken externalId), get by id or external id,
-- list with search and paging, update (limits replaced), delete ({meta} only)
SELECT (unkey.unkey_create_root_key('people', ARRAY['identity.*.create_identity', 'identity.*.read_identity',
	'identity.*.update_identity', 'identity.*.delete_identity'])).key AS people_root \gset
SELECT 'Bearer ' || :'people_root' AS pb \gset
SELECT pg_temp.v2('identities.createIdentity', '{"externalId": "v2-acme", "meta": {"plan": "pro"},
	"ratelimits": [{"name": "requests", "limit": 10, "duration": 60000, "autoApply": true}]}', :'pb') ~ '^200 \{"data": \{"identityId": "id_' AS created;
SELECT pg_temp.v2('identities.createIdentity', '{"externalId": "v2-beta"}', :'pb') ~ '^200' AS created_beta;
SELECT pg_temp.v2('identities.createIdentity', '{"externalId": "v2-acme"}', :'pb');
SELECT pg_temp.v2('identities.createIdentity', '{"externalId": "has space"}', :'pb') ~ '^400' AS bad_external_id;
SELECT regexp_replace(pg_temp.v2('identities.getIdentity', '{"identity": "v2-acme"}', :'pb'), '(id|rl)_[1-9A-HJ-NP-Za-km-z0-9]+', '\1_<id>', 'g') AS identity;
SELECT pg_temp.v2('identities.getIdentity', '{"identity": "v2-nobody"}', :'pb');
SELECT regexp_replace(pg_temp.v2('identities.listIdentities', '{"search": "V2-BE"}', :'pb'), 'id_[1-9A-HJ-NP-Za-km-z]+', 'id_<id>', 'g') AS searched;
SELECT pg_temp.v2('identities.listIdentities', '{"search": "v2-", "limit": 1}', :'pb') ~ '"hasMore": true' AS first_page_has_more;
SELECT regexp_replace(pg_temp.v2('identities.updateIdentity', '{"identity": "v2-acme", "meta": {"plan": "max"}, "ratelimits": []}', :'pb'),
	'id_[1-9A-HJ-NP-Za-km-z]+', 'id_<id>', 'g') AS updated;
SELECT pg_temp.v2('identities.updateIdentity', '{"identity": "v2-acme", "ratelimits": [{"name": "a", "limit": 1, "duration": 1000,
	"autoApply": false}, {"name": "a", "limit": 2, "duration": 1000, "autoApply": false}]}', :'pb') ~ '^400' AS duplicate_limit_names;
SELECT pg_temp.v2('identities.deleteIdentity', '{"identity": "v2-beta"}', :'pb');
SELECT pg_temp.v2('identities.deleteIdentity', '{"identity": "v2-beta"}', :'pb');
SELECT pg_temp.v2('identities.createIdentity', '{"externalId": "v2-gamma"}', :'bearer') ~ '^403' AS needs_create_identity;

-- rate limits: limit, multiLimit (all or nothing), overrides; namespaces by
-- name, created on first use only with create_namespace
SELECT (unkey.unkey_create_root_key('limits', ARRAY['ratelimit.*.limit', 'ratelimit.*.create_namespace',
	'ratelimit.*.set_override', 'ratelimit.*.read_override', 'ratelimit.*.delete_override'])).key AS limits_root \gset
SELECT 'Bearer ' || :'limits_root' AS lb \gset
SELECT pg_temp.v2('ratelimit.limit', '{"namespace": "v2.api", "identifier": "u1", "limit": 2, "duration": 60000}', :'lb');
SELECT pg_temp.v2('ratelimit.limit', '{"namespace": "v2.api", "identifier": "u1", "limit": 2, "duration": 60000, "cost": 2}', :'lb');
SELECT pg_temp.v2('ratelimit.limit', '{"namespace": "v2.api", "identifier": "u1", "limit": 2, "duration": 999}', :'lb') ~ '^400' AS duration_bounded;
SELECT pg_temp.v2('ratelimit.multiLimit', '[{"namespace": "v2.api", "identifier": "u2", "limit": 1, "duration": 60000},
	{"namespace": "v2.api", "identifier": "u1", "limit": 1, "duration": 60000}]', :'lb');
SELECT pg_temp.v2('ratelimit.limit', '{"namespace": "v2.api", "identifier": "u2", "limit": 1, "duration": 60000}', :'lb') AS u2_untouched;
SELECT pg_temp.v2('ratelimit.multiLimit', '[]', :'lb') ~ '^400' AS empty_multi;
SELECT pg_temp.v2('ratelimit.setOverride', '{"namespace": "v2.api", "identifier": "vip*", "limit": 100, "duration": 60000}', :'lb') ~ '^200 \{"data": \{"overrideId": "' AS override_set;
SELECT regexp_replace(pg_temp.v2('ratelimit.getOverride', '{"namespace": "v2.api", "identifier": "vip*"}', :'lb'), '"overrideId": "[^"]+"', '"overrideId": "<id>"') AS override;
SELECT regexp_replace(pg_temp.v2('ratelimit.limit', '{"namespace": "v2.api", "identifier": "vip7", "limit": 2, "duration": 60000}', :'lb'), '"overrideId": "[^"]+"', '"overrideId": "<id>"') AS vip;
SELECT pg_temp.v2('ratelimit.listOverrides', '{"namespace": "v2.api"}', :'lb') ~ '^200 \{"data": \[\{.*"identifier": "vip\*".*\}\], "pagination": \{"hasMore": false\}\}$' AS listed;
SELECT pg_temp.v2('ratelimit.deleteOverride', '{"namespace": "v2.api", "identifier": "vip*"}', :'lb');
SELECT pg_temp.v2('ratelimit.deleteOverride', '{"namespace": "v2.api", "identifier": "vip*"}', :'lb');
SELECT pg_temp.v2('ratelimit.getOverride', '{"namespace": "v2.nope", "identifier": "x"}', :'lb');
SELECT (unkey.unkey_create_root_key('limit only', ARRAY['ratelimit.*.limit'])).key AS limit_only \gset
SELECT pg_temp.v2('ratelimit.limit', '{"namespace": "v2.fresh", "identifier": "u1", "limit": 2, "duration": 60000}', 'Bearer ' || :'limit_only');
SELECT count(*) AS fresh_namespaces FROM unkey.ratelimit_namespaces WHERE name = 'v2.fresh';

-- permissions and roles: Unkey's slugs and names (taken ones are 409,
-- case-insensitively), missing slugs created only with create_permission
SELECT (unkey.unkey_create_root_key('rbac', ARRAY['rbac.*.create_permission', 'rbac.*.read_permission',
	'rbac.*.delete_permission', 'rbac.*.create_role', 'rbac.*.read_role', 'rbac.*.delete_role',
	'rbac.*.add_permission_to_role', 'rbac.*.remove_permission_from_role'])).key AS rbac_root \gset
SELECT 'Bearer ' || :'rbac_root' AS rb \gset
SELECT pg_temp.v2('permissions.createPermission', '{"name": "Read v2 docs", "slug": "v2doc.read", "description": "read them"}', :'rb') ~ '^200 \{"data": \{"permissionId": "perm_' AS created;
SELECT pg_temp.v2('permissions.createPermission', '{"name": "again", "slug": "V2DOC.READ"}', :'rb');
SELECT regexp_replace(pg_temp.v2('permissions.getPermission', '{"permission": "v2doc.read"}', :'rb'), 'perm_[1-9A-HJ-NP-Za-km-z]+', 'perm_<id>') AS permission;
SELECT pg_temp.v2('permissions.getPermission', '{"permission": "v2doc.none"}', :'rb');
SELECT pg_temp.v2('permissions.createRole', '{"name": "v2 editor", "description": "edits", "permissions": ["v2doc.read", "v2doc.write"]}', :'rb') ~ '^200 \{"data": \{"roleId": "role_' AS role_created;
SELECT pg_temp.v2('permissions.createRole', '{"name": "V2 EDITOR"}', :'rb');
SELECT regexp_replace(pg_temp.v2('permissions.getRole', '{"role": "v2 editor"}', :'rb'), '(perm|role)_[1-9A-HJ-NP-Za-km-z]+', '\1_<id>', 'g') AS role;
SELECT (SELECT string_agg(p ->> 'slug', ', ' ORDER BY p ->> 'slug') FROM jsonb_array_elements(a -> 'data') p) AS searched,
	   a -> 'pagination' AS pagination
  FROM (SELECT substring(pg_temp.v2('permissions.listPermissions', '{"search": "V2DOC"}', :'rb') FROM 5)::jsonb AS a) x;
SELECT pg_temp.v2('permissions.listRoles', '{"search": "edits", "limit": 1}', :'rb') ~ '"name": "v2 editor"' AS roles_searched;
SELECT regexp_replace(pg_temp.v2('permissions.setRolePermissions', format('{"roleId": "%s", "permissions": ["v2doc.list", "v2doc.read", "v2doc.read"]}',
	(SELECT id FROM unkey.roles WHERE name = 'v2 editor')), :'rb'), 'perm_[1-9A-HJ-NP-Za-km-z]+', 'perm_<id>', 'g') AS replaced;
SELECT pg_temp.v2('permissions.setRolePermissions', '{"roleId": "role_none", "permissions": []}', :'rb');
SELECT (unkey.unkey_create_root_key('roles only', ARRAY['rbac.*.create_role', 'rbac.*.add_permission_to_role'])).key AS roles_only \gset
SELECT pg_temp.v2('permissions.createRole', '{"name": "v2 other", "permissions": ["v2doc.brand_new"]}', 'Bearer ' || :'roles_only');
SELECT count(*) AS brand_new FROM unkey.permissions WHERE slug = 'v2doc.brand_new';
SELECT pg_temp.v2('permissions.deleteRole', '{"role": "v2 editor"}', :'rb');
SELECT pg_temp.v2('permissions.deleteRole', '{"role": "v2 editor"}', :'rb');
SELECT pg_temp.v2('permissions.deletePermission', '{"permission": "v2doc.read"}', :'rb');
SELECT pg_temp.v2('permissions.deletePermission', '{"permission": "v2doc.read"}', :'rb');

-- changing keys: updateKey (omitted stays, null clears), updateCredits,
-- the grants of a key, rerollKey, migrateKeys
SELECT (unkey.unkey_create_root_key('changes', ARRAY['api.*.create_key', 'api.*.read_key', 'api.*.update_key',
	'rbac.*.add_permission_to_key', 'rbac.*.remove_permission_from_key', 'rbac.*.create_permission',
	'rbac.*.add_role_to_key'])).key AS changes_root \gset
SELECT 'Bearer ' || :'changes_root' AS cb \gset
SELECT key_id AS ck, key AS ck_key FROM unkey.unkey_create_key(:'app', name => 'changing', credits => 5,
	refill_interval => 'daily', refill_amount => 5) \gset
SELECT pg_temp.v2('keys.updateKey', format('{"keyId": "%s", "name": "renamed", "externalId": "v2-changer", "meta": {"a": 1},
	"expires": 4102444800000, "enabled": false}', :'ck'), :'cb');
SELECT name, external_id, meta, expires, enabled, credits, refill_interval FROM unkey.unkey_get_key(:'ck');
SELECT pg_temp.v2('keys.updateKey', format('{"keyId": "%s", "name": null, "externalId": null, "meta": null, "expires": null,
	"enabled": true, "credits": null}', :'ck'), :'cb');
SELECT name, external_id, meta, expires, enabled, credits, refill_interval FROM unkey.unkey_get_key(:'ck');
SELECT pg_temp.v2('keys.updateKey', format('{"keyId": "%s", "credits": {"remaining": 7, "refill": {"interval": "monthly",
	"amount": 7, "refillDay": 2}}}', :'ck'), :'cb');
SELECT pg_temp.v2('keys.updateKey', format('{"keyId": "%s", "name": 7}', :'ck'), :'cb') ~ '^400' AS name_typed;
SELECT pg_temp.v2('keys.updateCredits', format('{"keyId": "%s", "operation": "decrement", "value": 3}', :'ck'), :'cb');
SELECT pg_temp.v2('keys.updateCredits', format('{"keyId": "%s", "operation": "set", "value": null}', :'ck'), :'cb');
SELECT pg_temp.v2('keys.updateCredits', format('{"keyId": "%s", "operation": "increment", "value": 1}', :'ck'), :'cb') ~ '^400' AS unlimited_stays;
SELECT pg_temp.v2('keys.updateCredits', format('{"keyId": "%s", "operation": "double"}', :'ck'), :'cb') ~ '^400' AS operation_checked;
SELECT regexp_replace(pg_temp.v2('keys.addPermissions', format('{"keyId": "%s", "permissions": ["v2k.write", "v2k.admin"]}', :'ck'), :'cb'),
	'perm_[1-9A-HJ-NP-Za-km-z]+', 'perm_<id>', 'g') AS added;
SELECT regexp_replace(pg_temp.v2('keys.removePermissions', format('{"keyId": "%s", "permissions": ["v2k.admin"]}', :'ck'), :'cb'),
	'perm_[1-9A-HJ-NP-Za-km-z]+', 'perm_<id>', 'g') AS removed;
SELECT pg_temp.v2('keys.setPermissions', format('{"keyId": "%s", "permissions": []}', :'ck'), :'cb') AS cleared;
SELECT regexp_replace(pg_temp.v2('keys.addRoles', format('{"keyId": "%s", "roles": ["v2 reader"]}', :'ck'), :'cb'),
	'(perm|role)_[1-9A-HJ-NP-Za-km-z]+', '\1_<id>', 'g') AS roles_added;
SELECT pg_temp.v2('keys.addRoles', format('{"keyId": "%s", "roles": ["no such role"]}', :'ck'), :'cb');
SELECT pg_temp.v2('keys.setRoles', format('{"keyId": "%s", "roles": []}', :'ck'), :'cb') AS roles_cleared;
SELECT pg_temp.v2('keys.addPermissions', format('{"keyId": "%s", "permissions": ["v2k.read"]}', :'ck'), :'kb') ~ '^403' AS needs_rbac;
SELECT pg_temp.v2('keys.rerollKey', format('{"keyId": "%s", "expiration": 60000}', :'ck'), :'cb') ~ '^200 \{"data": \{"key": "[1-9A-HJ-NP-Za-km-z]+", "keyId": "key_' AS rerolled;
SELECT expires AS old_key_expires FROM unkey.keys WHERE id = :'ck';
SELECT pg_temp.v2('keys.migrateKeys', format('{"migrationId": "v2-migration", "apiId": "%s", "keys": [
	{"hash": "%s", "name": "migrated", "credits": {"remaining": 3}},
	{"hash": {"value": "%s", "variant": "sha256_base64"}, "externalId": "v2-migrant"},
	{"hash": "%s"}]}', :'app', unkey.unkey_hash_key('v2 legacy 1'), unkey.unkey_hash_key('v2 legacy 2'), unkey.unkey_hash_key(:'k')), :'cb') ~
	'"failed": \["[^"]+"\], "migrated": \[\{"hash": "[^"]+", "keyId": "key_[^"]+"\}, \{"hash": "[^"]+", "keyId": "key_[^"]+"\}\]' AS migrated;
SELECT code, name, credits FROM unkey.unkey_verify_key('v2 legacy 1');
SELECT pg_temp.v2('keys.migrateKeys', format('{"migrationId": "v2-migration", "apiId": "%s", "keys": [{"hash": {"value": "x", "variant": "md5"}}]}', :'app'), :'cb') ~ '^400' AS variant_checked;

-- user meta keeps its nulls; credits.remaining null is unlimited on import
SELECT pg_temp.v2('keys.updateKey', format('{"keyId": "%s", "meta": {"plan": null, "seats": 2}}', :'ck'), :'cb');
SELECT meta FROM unkey.keys WHERE id = :'ck';
SELECT pg_temp.v2('keys.migrateKeys', format('{"migrationId": "v2-migration", "apiId": "%s", "keys": [{"hash": "%s",
	"credits": {"remaining": null}, "meta": {"x": null}}]}', :'app', unkey.unkey_hash_key('v2 legacy 3')), :'cb') ~ '"migrated": \[\{' AS unlimited_import;
SELECT code, credits, meta FROM unkey.unkey_verify_key('v2 legacy 3');
-- a disabled root key stays disabled when its key row is enabled through the SQL API
SELECT enabled FROM unkey.unkey_update_root_key(:'root_id', enabled => false);
SELECT (unkey.unkey_update_key(:'root_id', '{"enabled": true}')).enabled AS row_enabled;
SELECT pg_temp.v2('apis.getApi', format('{"apiId": "%s"}', :'app'), :'bearer') ~ '^403 .*key_disabled' AS still_refused;
SELECT enabled FROM unkey.unkey_update_root_key(:'root_id', enabled => true);

-- analytics: the caller's SQL over Unkey's table names, in the sandbox
-- (status, then the rows or the error's code and detail)
CREATE FUNCTION pg_temp.q(endpoint text, query text, root text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	a jsonb;
BEGIN
	PERFORM set_config('request.headers', jsonb_build_object('x-unkey-root-key', 'Bearer ' || root)::text, true),
			set_config('response.status', '', true), set_config('response.headers', '', true);
	EXECUTE format('SELECT unkey_v2.%I($1)', endpoint) INTO a USING jsonb_build_object('query', query);
	RETURN concat_ws(' ', coalesce(nullif(current_setting('response.status', true), ''), '200'),
					 CASE WHEN current_setting('response.headers', true) ~ 'problem' THEN '(problem+json)' END,
					 coalesce((a -> 'data')::text,
							  regexp_replace(a #>> '{error,type}', '^.*/errors/', '') || ': ' || (a #>> '{error,detail}')));
END
$$;
SELECT (unkey.unkey_create_root_key('analyst', ARRAY['api.*.read_analytics', 'ratelimit.*.read_analytics'])).key AS analyst \gset
SELECT (unkey.unkey_create_root_key('app analyst', ARRAY['api.' || :'app' || '.read_analytics'])).key AS app_analyst \gset
SELECT id AS v2api_ns FROM unkey.ratelimit_namespaces WHERE name = 'v2.api' \gset
SELECT (unkey.unkey_create_root_key('ns analyst', ARRAY['ratelimit.' || :'v2api_ns' || '.read_analytics'])).key AS ns_analyst \gset
SELECT unkey.unkey_flush_events() >= 0 AS flushed;
-- what this file verified on its API, by outcome, as the raw table and the
-- hourly one count it, for a root key with api.<apiId>.read_analytics
SELECT pg_temp.q('analytics.getVerifications',
	'SELECT outcome, count(*) AS n, sum(spent_credits) AS credits FROM key_verifications_v1 GROUP BY outcome ORDER BY outcome',
	:'app_analyst') AS raw;
SELECT pg_temp.q('analytics.getVerifications',
	'SELECT outcome, sum(count) AS n FROM key_verifications_per_hour_v1 GROUP BY outcome ORDER BY outcome', :'app_analyst') AS hourly;
SELECT replace(pg_temp.q('analytics.getVerifications',
	'WITH d AS (SELECT key_space_id, time FROM key_verifications_v1) SELECT min(key_space_id) AS api, count(DISTINCT key_space_id) AS apis,
	 min(to_timestamp(time / 1000)) AT TIME ZONE ''UTC'' AS first FROM d', :'app_analyst'), :'app', '<app>') AS scoped_cte;
-- api.*.read_analytics reads every API (those of the other tests too), never the root keys'
SELECT pg_temp.q('analytics.getVerifications', format('SELECT count(DISTINCT key_space_id) > 1 AS more,
	count(*) FILTER (WHERE key_space_id = %L) AS root_keys FROM key_verifications_v1', unkey.root_api_id()), :'analyst') AS wildcard;
SELECT pg_temp.q('analytics.getRatelimits',
	'SELECT identifier, sum(passed) AS passed, sum(total) AS total FROM ratelimits_per_minute_v1 GROUP BY 1 ORDER BY 1',
	:'ns_analyst') AS limits;
SELECT pg_temp.q('analytics.getRatelimits', format('SELECT count(*) FILTER (WHERE namespace_id = %L) = 6 AS v2_api_checks
	FROM ratelimits_v1', :'v2api_ns'), :'analyst') AS all_namespaces;
-- what the sandbox refuses: 400 with Unkey's codes
SELECT pg_temp.q('analytics.getVerifications', q, :'analyst') AS refused
  FROM unnest(ARRAY[
	'DELETE FROM key_verifications_v1',
	'SELECT 1; SELECT 2',
	'SELECT 1 INTO TEMP t',
	'WITH d AS (DELETE FROM unkey.keys RETURNING 1) SELECT * FROM d',
	'SELECT key_id FROM key_verifications_v1 FOR UPDATE',
	'SELECT * FROM unkey.keys',
	'SELECT rolpassword FROM pg_authid',
	'SELECT * FROM ratelimits_v1',
	'SELECT count(*) FROM key_verifications_v1 WHERE pg_sleep(1) IS NULL',
	'SELECT current_setting(''unkey.vault_key_file'')',
	'SELECT set_config(''unkey.test_now'', ''2031-01-01'', false)',
	'SELECT unkey._analytics_allows(''x'')',
	'SELECT * FROM generate_series(1, 10)',
	'SELECT ''pg_authid''::regclass',
	'SELEC 1',
	'SELECT nope FROM key_verifications_v1',
	'SELECT 1 / 0',
	'SELECT array_agg(key_id) FROM key_verifications_v1',
	'SELECT jsonb_agg(key_id) FROM key_verifications_v1',
	'SELECT replace(key_id, ''a'', ''aaaa'') FROM key_verifications_v1',
	'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r',
	'SELECT ''<a/>''::xml',
	'SELECT v FROM key_verifications_v1 v',
	'SELECT cardinality(ARRAY(SELECT 1 FROM key_verifications_v1)) AS n',
	'SELECT ''{10,1259}''::regclass[]',
	'SELECT ''(1)''::unkey.ratelimit_result[]',
	'SELECT current_user',
	'SELECT overlay(''abc'' placing ''x'' from 1)',
	'SELECT key_id || key_id FROM key_verifications_v1',
	'SELECT concat(key_id, key_id) FROM key_verifications_v1',
	'SELECT ' || (SELECT string_agg('1', ', ') FROM generate_series(1, 65)),
	'SELECT regclass(''pg_authid'')',
	'SELECT regclass(''no_such_table'')',
	'SELECT ''x''::char(10485760)',
	'SELECT array_to_string(tags, '','') FROM key_verifications_v1',
	'SELECT outcome FROM key_verifications_v1 ORDER BY outcome USING ~>~',
	-- 21 levels of subqueries, each using the column below twice: the planner would copy it 2^21 times
	(SELECT format('SELECT length(x21) AS n FROM %s t',
		string_agg('(SELECT greatest(x' || (i - 1) || ', x' || (i - 1) || ') AS x' || i || ' FROM ', '' ORDER BY i DESC)
		|| '(SELECT key_id AS x0 FROM key_verifications_v1) s0' || string_agg(') s' || i, '' ORDER BY i) FILTER (WHERE i < 21) || ')')
	   FROM generate_series(1, 21) i),
	-- 18 CTEs, each joining the one before with itself: the planner would inline c0 2^18 times
	(SELECT 'WITH c0 AS NOT MATERIALIZED (SELECT 1 AS x FROM key_verifications_v1 LIMIT 1), '
		|| string_agg(format('c%s AS NOT MATERIALIZED (SELECT a.x FROM c%s a, c%s b)', i, i - 1, i - 1), ', ' ORDER BY i)
		|| ' SELECT count(*) FROM c18' FROM generate_series(1, 18) i),
	-- 18 FULL JOINs USING a column that doubles at each level: COALESCE copied 2^18 times
	(SELECT 'SELECT count(x) AS c FROM (' || repeat('SELECT x * x AS x FROM (', 18) || 'SELECT latency AS x FROM key_verifications_v1'
		|| string_agg(format(') a%s FULL JOIN (SELECT 1 AS x) b%s USING (x)', i, i), '' ORDER BY i) || ') z'
	   FROM generate_series(1, 18) i),
	-- 21 CTEs, each used once: the planner inlines them, copying the column below twice at each level
	(SELECT 'WITH c0 AS (SELECT key_id AS x FROM key_verifications_v1), '
		|| string_agg(format('c%s AS (SELECT greatest(x, x) AS x FROM c%s)', i, i - 1), ', ' ORDER BY i)
		|| ' SELECT length(x) AS n FROM c21' FROM generate_series(1, 21) i),
	'SELECT (10::numeric + 1) * 3',
	'SELECT to_timestamp(time / 1000.0) FROM key_verifications_v1',
	'WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) CYCLE n SET m TO regclass ''unkey.keys'' DEFAULT regclass ''unkey.nosuch'' USING p SELECT n FROM t',
	'SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY outcome USING ~>~) FROM key_verifications_v1',
	'SELECT row_number() OVER (ORDER BY key_id USING ~<~) FROM key_verifications_v1']) q;
-- what works besides: IN (subquery), unnest in FROM, window functions
SELECT replace(pg_temp.q('analytics.getVerifications', 'SELECT count(*) AS valid FROM key_verifications_v1
	WHERE key_id IN (SELECT key_id FROM key_verifications_v1 WHERE outcome = ''VALID'')', :'app_analyst'), :'app', '<app>') AS in_subquery;
SELECT pg_temp.q('analytics.getVerifications', 'SELECT t AS tag, count(*) AS n FROM key_verifications_v1, LATERAL unnest(tags) t
	GROUP BY t ORDER BY t', :'app_analyst') AS unnest_in_from;
SELECT pg_temp.q('analytics.getVerifications', 'SELECT outcome, row_number() OVER (ORDER BY outcome) AS r
	FROM (SELECT DISTINCT outcome FROM key_verifications_v1) o ORDER BY r', :'app_analyst') AS window_function;
SELECT pg_temp.q('analytics.getVerifications', 'SELECT DISTINCT outcome AS q, 1.5::float8 * 2 AS f FROM key_verifications_v1 ORDER BY q',
	:'app_analyst') AS a_column_named_q;
-- the scope filter runs before any condition of the caller's: the ten
-- views are security barriers, and a condition that fails on another API's
-- rows never sees one
SELECT count(*) AS views, count(*) FILTER (WHERE c.reloptions @> '{security_barrier=true}') AS barriers
  FROM pg_class c WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind = 'v' AND c.relname ~ '_v1$';
SELECT replace(pg_temp.q('analytics.getVerifications', format('SELECT count(*) AS n, now() > %L AS now_works FROM key_verifications_v1
	WHERE 1 / (CASE WHEN key_space_id <> %L THEN 0 ELSE 1 END) = 1', '2000-01-01', :'app'), :'app_analyst'), :'app', '<app>') AS barrier;
SELECT pg_temp.q('analytics.getVerifications', repeat(' ', 16385), :'analyst') AS too_long;
SELECT pg_temp.q('analytics.getVerifications', 'SELECT 1', :'root') AS needs_read_analytics;
SELECT pg_temp.q('analytics.getRatelimits', 'SELECT 1', :'app_analyst') AS needs_ratelimit_read_analytics;
SELECT pg_temp.v2('analytics.getVerifications', '{"query": 1}', 'Bearer ' || :'analyst') ~ '^400 .*body.query' AS query_is_a_string;
-- the limits: rows, time and the hourly quota (422, 422, 429)
SET unkey.analytics_max_rows = 2;
SELECT pg_temp.q('analytics.getVerifications', 'SELECT outcome FROM key_verifications_v1', :'analyst') AS rows;
RESET unkey.analytics_max_rows;
SET unkey.analytics_timeout = 100;
SELECT pg_temp.q('analytics.getVerifications', 'SELECT count(*) FROM key_verifications_v1 a, key_verifications_v1 b,
	key_verifications_v1 c, key_verifications_v1 d, key_verifications_v1 e, key_verifications_v1 f, key_verifications_v1 g',
	:'analyst') AS timeout;
RESET unkey.analytics_timeout;
SELECT pg_temp.q('analytics.getVerifications', 'SELECT 1 AS still_works', :'analyst') AS after_timeout;
SET unkey.analytics_queries_per_hour = 1;
SELECT pg_temp.q('analytics.getVerifications', 'SELECT 1', :'analyst') AS quota;
RESET unkey.analytics_queries_per_hour;
-- the views answer only inside the sandbox
SELECT regress.err($$SELECT count(*) FROM unkey.key_verifications_v1$$);
SELECT pg_temp.v2('analytics.getRatelimits', '{}', 'Bearer ' || :'analyst') ~ '^400' AS query_required;

-- a verification's rate limit that names a limit without both limit and
-- duration is a lookup by name (Unkey's rule): a missing one is 412
SELECT regexp_replace(pg_temp.v2('keys.verifyKey', format('{"key": "%s", "ratelimits": [{"name": "nope", "limit": 5}]}', :'k'),
	'Bearer ' || :'scoped'), '(key|id)_[1-9A-HJ-NP-Za-km-z]+', '\1_<id>', 'g') AS half_inline;

-- the audit log names the root key of a v2 change, not PostgREST's role
SELECT event, actor ~ '^root_key:key_' AS by_root_key FROM unkey.audit_trail
 WHERE targets::text LIKE '%' || :'api' || '%' ORDER BY id;
SELECT count(*) AS public_can_claim FROM pg_proc p
 WHERE p.oid = 'unkey._set_v2_actor(text)'::regprocedure AND has_function_privilege('public', p.oid, 'EXECUTE');

-- nothing of it is executable by PUBLIC
SELECT count(*) AS public_functions FROM pg_proc p
 WHERE p.pronamespace = 'unkey_v2'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE');
RESET unkey.test_now;
