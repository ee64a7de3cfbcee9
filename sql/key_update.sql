-- key_update: unkey_update_key's three-state change sets, and unkey_update_credits
SET unkey.test_now = '2030-01-15 12:00:00+00';
SET timezone = 'UTC';
SELECT unkey.unkey_create_api('update') AS api \gset
SELECT unkey.unkey_create_role('updater', permissions => ARRAY['role.perm']) IS NOT NULL AS role_created;
SELECT unkey.unkey_create_role('other role') IS NOT NULL AS role_created;

-- a fresh key with every field set, for each case
CREATE FUNCTION pg_temp.full_key() RETURNS text LANGUAGE sql AS $$
	SELECT key_id FROM unkey.unkey_create_key(
		(SELECT id FROM unkey.apis WHERE name = 'update'), name => 'before', external_id => 'update-customer',
		meta => '{"v": 1}', expires => '2031-01-01 00:00:00+00', credits => 10,
		refill_interval => 'monthly', refill_amount => 50, refill_day => 15,
		ratelimits => '[{"name": "requests", "limit": 5, "duration": 1000}]',
		roles => ARRAY['updater'], permissions => ARRAY['a.read'])
$$;
-- the fields that can change, as one comparable row
CREATE FUNCTION pg_temp.fields(key_id text)
RETURNS TABLE (name text, external_id text, meta jsonb, expires timestamptz, enabled boolean,
			   credits bigint, refill text, ratelimits text, roles text[], permissions text[])
LANGUAGE sql AS $$
	SELECT g.name, g.external_id, g.meta, g.expires, g.enabled, g.credits,
		   g.refill_interval || coalesce('/' || g.refill_amount, '') || coalesce('/day ' || g.refill_day, ''),
		   (SELECT string_agg((r ->> 'name') || ':' || (r ->> 'limit'), ',') FROM jsonb_array_elements(g.ratelimits) r),
		   g.roles, g.permissions
	  FROM unkey.unkey_get_key(key_id) g
$$;

SELECT * FROM pg_temp.fields(pg_temp.full_key());

-- the matrix: for each field, absent (the {} row), null and a value; only that field moves
CREATE TEMP TABLE cases (n int, changes jsonb);
INSERT INTO cases VALUES
	(1, '{}'),
	(2, '{"name": null}'), (3, '{"name": "after"}'),
	(4, '{"external_id": null}'), (5, '{"external_id": "update-other"}'),
	(6, '{"meta": null}'), (7, '{"meta": {"v": 2}}'),
	(8, '{"expires": null}'), (9, '{"expires": "2032-02-02 02:02:02+00"}'), (10, '{"expires": 1900000000000}'),
	(11, '{"enabled": false}'),
	(12, '{"credits": null}'), (13, '{"credits": 99}'),
	(14, '{"refill_interval": null}'), (15, '{"refill_interval": "daily", "refill_amount": 7}'),
	(16, '{"refill_amount": 70}'), (17, '{"refill_day": 1}'),
	(18, '{"ratelimits": null}'), (19, '{"ratelimits": []}'),
	(20, '{"ratelimits": [{"name": "tokens", "limit": 9, "duration": 60000}]}'),
	(21, '{"roles": null}'), (22, '{"roles": []}'), (23, '{"roles": ["other role"]}'),
	(24, '{"permissions": null}'), (25, '{"permissions": []}'), (26, '{"permissions": ["b.write", "a.read"]}'),
	(27, '{"name": "both", "credits": 3}'),
	(28, '{"refill_interval": "daily"}'), (29, '{"credits": 4.0, "refill_day": 2e0}');
SELECT c.n, c.changes, f.*
  FROM cases c, LATERAL (SELECT pg_temp.full_key() AS id WHERE c.n > 0) k,
	   LATERAL (SELECT unkey.unkey_update_key(k.id, c.changes)) u,
	   LATERAL pg_temp.fields(k.id) f
 ORDER BY c.n;

-- the returned row is the key after the change, and updated_at moves
SELECT pg_temp.full_key() AS k \gset
SET unkey.test_now = '2030-01-16 00:00:00+00';
SELECT name, credits, updated_at FROM unkey.unkey_update_key(:'k', '{"name": "returned", "credits": 4}');
SET unkey.test_now = '2030-01-15 12:00:00+00';

-- the change is visible to the very next verification
SELECT key_id AS vk_id, key AS vk FROM unkey.unkey_create_key(:'api', credits => 1) \gset
SELECT code, credits FROM unkey.unkey_verify_key(:'vk');
SELECT code, credits FROM unkey.unkey_verify_key(:'vk');
SELECT credits FROM unkey.unkey_update_key(:'vk_id', '{"credits": 2}');
SELECT code, credits FROM unkey.unkey_verify_key(:'vk');
SELECT enabled FROM unkey.unkey_update_key(:'vk_id', '{"enabled": false}');
SELECT code FROM unkey.unkey_verify_key(:'vk');
SELECT expires FROM unkey.unkey_update_key(:'vk_id', '{"enabled": true, "expires": "2030-01-15 11:00:00+00"}');
SELECT code FROM unkey.unkey_verify_key(:'vk');
SELECT expires FROM unkey.unkey_update_key(:'vk_id', '{"expires": null, "permissions": ["x.y"]}');
SELECT code, permissions FROM unkey.unkey_verify_key(:'vk', permissions => 'x.y');
-- unlinking the identity takes its rate limits away from the key
SELECT external_id FROM unkey.unkey_update_key(:'vk_id', '{"external_id": "update-linked", "credits": null}');
SELECT unkey.unkey_set_identity_ratelimit('update-linked', 'burst', 1, '1 minute', auto_apply => true);
SELECT code, external_id FROM unkey.unkey_verify_key(:'vk');
SELECT code, external_id FROM unkey.unkey_verify_key(:'vk');
SELECT external_id FROM unkey.unkey_update_key(:'vk_id', '{"external_id": null}');
SELECT code, external_id, ratelimits FROM unkey.unkey_verify_key(:'vk');

-- refill rules (§4.4): each combination, and the error when it is incomplete
SELECT pg_temp.full_key() AS r \gset
SELECT refill_interval, refill_amount, refill_day, credits
  FROM unkey.unkey_update_key(:'r', '{"refill_interval": "monthly", "refill_amount": 5, "refill_day": 31}');
SELECT refill_interval, refill_amount, refill_day, credits
  FROM unkey.unkey_update_key(:'r', '{"refill_amount": 6}');
SELECT refill_interval, refill_amount, refill_day, credits
  FROM unkey.unkey_update_key(:'r', '{"credits": 1}');
SELECT refill_interval, refill_amount, refill_day, credits, last_refill_at
  FROM unkey.unkey_update_key(:'r', '{"refill_interval": null}');
SELECT refill_interval, refill_amount, refill_day, credits, last_refill_at
  FROM unkey.unkey_update_key(:'r', '{"refill_interval": "daily", "refill_amount": 2}');
SELECT refill_interval, refill_amount, refill_day, credits, last_refill_at
  FROM unkey.unkey_update_key(:'r', '{"credits": null}');
SELECT regress.err(format('SELECT unkey.unkey_update_key(%L, %L)', :'r', c)) AS refill_errors
  FROM unnest(ARRAY[
	'{"refill_interval": "daily", "refill_amount": 2}',
	'{"credits": 5, "refill_interval": "monthly", "refill_amount": 2}',
	'{"credits": 5, "refill_interval": "daily", "refill_amount": 2, "refill_day": 3}',
	'{"credits": 5, "refill_interval": "daily"}',
	'{"credits": 5, "refill_interval": "weekly", "refill_amount": 2}',
	'{"credits": 5, "refill_interval": "daily", "refill_amount": 0}',
	'{"credits": 5, "refill_interval": "monthly", "refill_amount": 2, "refill_day": 32}',
	'{"credits": 5, "refill_day": 3}',
	'{"credits": 5, "refill_amount": 3}']) c;
-- none of those wrote anything
SELECT refill_interval, credits FROM unkey.unkey_get_key(:'r');

-- errors: each invalid change set with its SQLSTATE; the key is left as it was
SELECT pg_temp.full_key() AS e \gset
SELECT c AS changes, regress.err(format('SELECT unkey.unkey_update_key(%L, %L)', :'e', c)) AS error
  FROM unnest(ARRAY[
	'{"nmae": "typo"}', '[]', '"name"', '{"name": ""}', '{"name": 5}',
	'{"external_id": "bad id!"}', '{"external_id": 7}', '{"meta": []}', '{"meta": "x"}',
	'{"expires": "soon"}', '{"expires": true}', '{"expires": "infinity"}',
	'{"enabled": null}', '{"enabled": "yes"}',
	'{"credits": -1}', '{"credits": 1.5}', '{"credits": "10"}', '{"credits": 1e30}',
	'{"refill_day": 1.5}', '{"refill_day": 99999999999}',
	'{"ratelimits": {}}', '{"ratelimits": [{"name": "x", "limit": 1, "duration": 1000}]}',
	'{"roles": ["no such role"]}', '{"roles": "updater"}', '{"roles": [1]}',
	'{"permissions": ["bad perm"]}', '{"permissions": [null]}']) c;
SELECT regress.err(format('SELECT unkey.unkey_update_key(%L, NULL)', :'e'));
SELECT regress.err($$SELECT unkey.unkey_update_key('key_missing', '{}')$$);
SELECT (SELECT row(f.*)::text FROM pg_temp.fields(:'e') f)
	 = (SELECT row(f.*)::text FROM pg_temp.fields(pg_temp.full_key()) f) AS unchanged_after_errors;
-- a key of a deleted API cannot be changed in any way
SELECT unkey.unkey_create_api('update doomed') AS doomed \gset
SELECT key_id AS dk FROM unkey.unkey_create_key(:'doomed', credits => 1) \gset
SELECT unkey.unkey_delete_api(:'doomed');
SELECT regress.err(format(s, :'dk')) AS change_of_a_key_of_a_deleted_api
  FROM unnest(ARRAY['SELECT unkey.unkey_update_key(%L, ''{}'')', 'SELECT unkey.unkey_update_credits(%L, ''increment'', 1)',
					'SELECT unkey.unkey_reroll_key(%L, ''0'')', 'SELECT unkey.unkey_set_key_ratelimit(%L, ''abc'', 1, ''1 second'')',
					'SELECT unkey.unkey_add_key_permissions(%L, ''{x}'')']) s;
SELECT remaining, updated_at FROM unkey.keys WHERE id = :'dk';
-- a deleted key cannot be updated
SELECT unkey.unkey_delete_key(:'e');
SELECT regress.err(format('SELECT unkey.unkey_update_key(%L, %L)', :'e', '{"name": "x"}'));

----------------------------------------------------------------------------
-- unkey_update_credits
----------------------------------------------------------------------------
SELECT key_id AS c_id, key AS c_key FROM unkey.unkey_create_key(:'api', credits => 10,
	refill_interval => 'daily', refill_amount => 10) \gset
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'set', 3);
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'increment', 4);
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'decrement', 2);
-- decrement clamps at 0
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'decrement', 100);
SELECT code FROM unkey.unkey_verify_key(:'c_key');
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'increment', 1);
SELECT code, credits FROM unkey.unkey_verify_key(:'c_key');
-- a refill that is due happens before the operation, as verification would apply it
SET unkey.test_now = '2030-01-16 00:00:01+00';
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'increment', 5);
SELECT credits, last_refill_at FROM unkey.unkey_get_key(:'c_id');
-- set also counts as this period's balance: the refill already passed does not overwrite it
SET unkey.test_now = '2030-01-17 00:00:01+00';
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'set', 2);
SELECT code, credits FROM unkey.unkey_verify_key(:'c_key');
SET unkey.test_now = '2030-01-15 12:00:00+00';
-- set NULL (or no value) makes the key unlimited and clears its refill
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'set', NULL);
SELECT code, credits FROM unkey.unkey_verify_key(:'c_key');
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'set');
SELECT * FROM unkey.unkey_update_credits(:'c_id', 'set', 0);
SELECT code FROM unkey.unkey_verify_key(:'c_key');

-- errors
SELECT remaining FROM unkey.unkey_update_credits(:'c_id', 'set', 1);
SELECT key_id AS u_id FROM unkey.unkey_create_key(:'api') \gset
SELECT regress.err(format('SELECT unkey.unkey_update_credits(%L, %L, %s)', id, op, coalesce(v::text, 'NULL'))) AS error, id = :'u_id' AS unlimited_key, op, v
  FROM (VALUES (:'u_id', 'increment', 1), (:'u_id', 'decrement', 1),
			   (:'c_id', 'increment', NULL), (:'c_id', 'decrement', NULL),
			   (:'c_id', 'add', 1), (:'c_id', NULL, 1), (:'c_id', 'set', -1),
			   (:'c_id', 'increment', 9223372036854775807), ('key_missing', 'set', 1)) t(id, op, v);
-- the unlimited key stayed unlimited, the other kept its balance
SELECT (SELECT credits FROM unkey.unkey_get_key(:'u_id')) AS unlimited,
	   (SELECT credits FROM unkey.unkey_get_key(:'c_id')) AS limited;
DROP TABLE cases;
RESET unkey.test_now;
RESET timezone;
