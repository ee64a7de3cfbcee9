-- identities: create, get, list, update and delete; verify shows the identity
SET unkey.test_now = '2030-01-15 12:00:00+00';
SET timezone = 'UTC';
SELECT unkey.unkey_create_api('identities') AS api \gset

SELECT unkey.unkey_create_identity('ident-alice', meta => '{"plan": "pro"}',
	ratelimits => '[{"name": "requests", "limit": 2, "duration": 60000, "autoApply": true}]') AS alice \gset
SELECT :'alice' ~ '^id_[1-9A-HJ-NP-Za-km-z]{16,}$' AS id_shape;
SELECT unkey.unkey_create_identity('ident-bob') AS bob \gset
-- by id or by external id, the same row
SELECT external_id, meta, ratelimits, created_at, updated_at FROM unkey.unkey_get_identity(:'alice');
SELECT identity_id = :'alice' AS same FROM unkey.unkey_get_identity('ident-alice');
SELECT external_id, meta, ratelimits FROM unkey.unkey_get_identity('ident-bob');

-- a key linked by external id uses the existing identity; verify returns its external id and meta
SELECT key_id AS k_id, key AS k FROM unkey.unkey_create_key(:'api', external_id => 'ident-alice') \gset
SELECT code, identity_id = :'alice' AS linked, external_id, identity_meta, ratelimits -> 0 ->> 'name' AS limit_applied
  FROM unkey.unkey_verify_key(:'k');
SELECT code FROM unkey.unkey_verify_key(:'k');
SELECT code FROM unkey.unkey_verify_key(:'k');

-- update: NULL leaves a field, a value replaces it; '[]' removes every rate limit
SET unkey.test_now = '2030-01-15 12:01:00+00';
SELECT external_id, meta, ratelimits, updated_at FROM unkey.unkey_update_identity('ident-alice', meta => '{"plan": "team"}');
SELECT external_id, meta, ratelimits FROM unkey.unkey_update_identity(:'alice',
	ratelimits => '[{"name": "requests", "limit": 100, "duration": 60000, "autoApply": true}, {"name": "tokens", "limit": 5, "duration": 1000}]');
SELECT code, identity_meta, ratelimits -> 0 ->> 'limit' AS new_limit FROM unkey.unkey_verify_key(:'k');
SELECT meta, ratelimits FROM unkey.unkey_update_identity(:'alice', ratelimits => '[]');
SELECT meta, ratelimits FROM unkey.unkey_update_identity(:'alice', meta => '{}');
SELECT meta, ratelimits FROM unkey.unkey_update_identity(:'alice');

-- list: keyset pagination in id order
SELECT count(*) AS created FROM generate_series(1, 3) i, unkey.unkey_create_identity('ident-list-' || i) x;
CREATE TEMP TABLE pages AS
WITH RECURSIVE walk(page, result) AS (
	SELECT 1, unkey.unkey_list_identities("limit" => 2)
	UNION ALL
	SELECT page + 1, unkey.unkey_list_identities("limit" => 2, cursor => (result).cursor)
	  FROM walk WHERE (result).has_more
)
SELECT page, result FROM walk;
-- (other tests' identities are listed too, so only the shape of the pages is shown)
SELECT count(*) > 2 AS several_pages,
	   bool_and(cardinality((result).identities) = 2) FILTER (WHERE (result).has_more) AS full_pages_until_the_last,
	   bool_and((result).cursor = ((result).identities)[2].identity_id) FILTER (WHERE (result).has_more) AS cursor_is_last_id,
	   bool_and((result).cursor IS NULL AND cardinality((result).identities) BETWEEN 1 AND 2) FILTER (WHERE NOT (result).has_more) AS last_page,
	   count(*) FILTER (WHERE NOT (result).has_more) AS pages_without_more
  FROM pages;
SELECT count(*) = (SELECT count(*) FROM unkey.identities) AS all_listed,
	   array_agg(i.identity_id ORDER BY p.page, i.ordinality) = array_agg(i.identity_id ORDER BY i.identity_id) AS in_id_order,
	   count(DISTINCT i.identity_id) = count(*) AS no_duplicates
  FROM pages p, unnest((p.result).identities) WITH ORDINALITY i;
SELECT cardinality(identities) AS n, has_more, cursor FROM unkey.unkey_list_identities(cursor => 'id_zzzz');

-- delete: the identity and its rate limits go; its keys are unlinked and keep working
SELECT unkey.unkey_update_identity(:'alice', ratelimits => '[{"name": "burst", "limit": 1, "duration": 60000, "autoApply": true}]') IS NOT NULL AS limited_again;
SELECT code FROM unkey.unkey_verify_key(:'k');
SELECT code FROM unkey.unkey_verify_key(:'k');
SELECT unkey.unkey_delete_identity('ident-alice');
SELECT code, identity_id, external_id, identity_meta, ratelimits FROM unkey.unkey_verify_key(:'k');
SELECT identity_id, external_id FROM unkey.unkey_get_key(:'k_id');
SELECT (SELECT count(*) FROM unkey.identities WHERE id = :'alice') AS identity_rows,
	   (SELECT count(*) FROM unkey.identity_ratelimits WHERE identity_id = :'alice') AS ratelimit_rows;
-- the external id is free again; a new identity does not pick up the old keys
SELECT unkey.unkey_create_identity('ident-alice') <> :'alice' AS new_identity;
SELECT external_id FROM unkey.unkey_get_key(:'k_id');

-- errors
SELECT regress.err($$SELECT unkey.unkey_create_identity('ident-bob')$$);
SELECT regress.err($$SELECT unkey.unkey_create_identity('bad id!')$$);
SELECT regress.err($$SELECT unkey.unkey_create_identity('')$$);
SELECT regress.err($$SELECT unkey.unkey_create_identity(NULL)$$);
SELECT regress.err(format('SELECT unkey.unkey_create_identity(%L)', repeat('x', 256)));
SELECT regress.err($$SELECT unkey.unkey_create_identity('ident-x', meta => '[]')$$);
SELECT regress.err($$SELECT unkey.unkey_create_identity('ident-x', ratelimits => '[{"name": "r", "limit": 1, "duration": 1000}]')$$);
SELECT regress.err($$SELECT unkey.unkey_create_identity('ident-x', ratelimits => '{}')$$);
SELECT regress.err($$SELECT unkey.unkey_get_identity('nobody')$$);
SELECT regress.err($$SELECT unkey.unkey_update_identity('nobody', meta => '{}')$$);
SELECT regress.err($$SELECT unkey.unkey_update_identity('ident-bob', meta => '"x"')$$);
SELECT regress.err($$SELECT unkey.unkey_update_identity('ident-bob', ratelimits => '[{}]')$$);
SELECT regress.err($$SELECT unkey.unkey_delete_identity('nobody')$$);
SELECT regress.err($$SELECT unkey.unkey_delete_identity(NULL)$$);
SELECT regress.err($$SELECT unkey.unkey_list_identities("limit" => 0)$$);
-- none of the failed calls created or changed anything
SELECT (SELECT count(*) FROM unkey.identities WHERE external_id = 'ident-x') AS created,
	   (SELECT meta FROM unkey.identities WHERE external_id = 'ident-bob') AS bob_meta;
DROP TABLE pages;
RESET unkey.test_now;
RESET timezone;
