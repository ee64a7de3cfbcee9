-- ratelimit: the sliding window, overrides, namespaces, multi-limit, and
-- key and identity limits in verification, all on a pinned clock
SET timezone = 'UTC';

-- rl(at, identifier, limit, cost, duration): one call of unkey_ratelimit at a pinned instant
CREATE FUNCTION regress.rl(at text, identifier text, lim bigint, cost bigint DEFAULT 1,
						   duration interval DEFAULT '60 seconds', ns text DEFAULT 'regress')
RETURNS unkey.ratelimit_result LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('unkey.test_now', at, false);
	RETURN unkey.unkey_ratelimit(ns, identifier, lim, duration, cost);
END
$$;

-- the decision table of the sliding window (d = 60 s; 2026-01-01 00:00 is a window start)
-- setup calls use a large limit on the same counter to place cur and prev
SELECT success FROM regress.rl('2026-01-01 00:00:00+00', 't2', 1000, 9);
SELECT success FROM regress.rl('2026-01-01 00:00:00+00', 't3', 1000, 10);
SELECT success FROM regress.rl('2026-01-01 00:00:00+00', 't4', 1000, 10);
SELECT success FROM regress.rl('2025-12-31 23:59:00+00', 't5', 1000, 10);
SELECT success FROM regress.rl('2026-01-01 00:00:30+00', 't5', 1000, 5);
SELECT success FROM regress.rl('2025-12-31 23:59:00+00', 't6', 1000, 10);
SELECT success FROM regress.rl('2026-01-01 00:00:59.4+00', 't6', 1000, 5);
SELECT t.row, t.cur, t.prev, t.elapsed, t.cost, r.success, r.remaining, r.reset
  FROM (VALUES (1, 't1', 0, 0, '0.0', '2026-01-01 00:00:00+00', 1),
			   (2, 't2', 9, 0, '0.0', '2026-01-01 00:00:00+00', 1),
			   (3, 't3', 10, 0, '0.0', '2026-01-01 00:00:00+00', 0),
			   (4, 't4', 10, 0, '0.0', '2026-01-01 00:00:00+00', 1),
			   (5, 't5', 5, 10, '0.5', '2026-01-01 00:00:30+00', 1),
			   (6, 't6', 5, 10, '0.99', '2026-01-01 00:00:59.4+00', 1),
			   (7, 't7', 0, 0, '0.0', '2026-01-01 00:00:00+00', 100)) t(row, id, cur, prev, elapsed, at, cost),
	   LATERAL regress.rl(t.at, t.id, 10, t.cost) r
 ORDER BY t.row;

-- windows are aligned to the epoch, reset is absolute, and the previous window
-- fades out linearly: limit 4 per 10 s
SELECT at, r.success, r.remaining, r.reset
  FROM (VALUES (1, '2026-01-01 00:00:07+00'), (2, '2026-01-01 00:00:08+00'),
			   (3, '2026-01-01 00:00:09.999+00'), (4, '2026-01-01 00:00:09.999+00'),
			   (5, '2026-01-01 00:00:09.999+00'), (6, '2026-01-01 00:00:10+00'),
			   (7, '2026-01-01 00:00:15+00'), (8, '2026-01-01 00:00:17.5+00'),
			   (9, '2026-01-01 00:00:30+00')) t(n, at),
	   LATERAL regress.rl(t.at, 'aligned', 4, 1, '10 seconds') r
 ORDER BY t.n;

-- the same identifier with different durations is a different limit
SELECT d, r.success, r.remaining
  FROM (VALUES (1, '10 seconds'::interval), (2, '20 seconds'), (3, '10 seconds'), (4, '1 minute')) t(n, d),
	   LATERAL regress.rl('2026-01-01 00:00:00+00', 'durations', 1, 1, t.d) r
 ORDER BY t.n;
-- and a denied request counts nowhere: hammering does not extend the lockout
SELECT n, r.success FROM generate_series(1, 3) n,
	   LATERAL regress.rl('2026-01-01 00:00:00+00', 'hammer' || (n > 0)::text, 1) r ORDER BY n;
-- half a window later the previous window weighs trunc(1 * 0.5) = 0; had the two
-- denials counted it would weigh trunc(3 * 0.5) = 1 and refuse
SELECT success, remaining FROM regress.rl('2026-01-01 00:01:30+00', 'hammertrue', 1);

-- namespaces are created on first use, and work by name or id
SELECT name, namespace_id ~ '^rlns_' AS id_format FROM unkey.unkey_list_namespaces() WHERE name = 'regress';
SELECT namespace_id AS regress_ns FROM unkey.unkey_list_namespaces() WHERE name = 'regress' \gset
SELECT success, remaining FROM regress.rl('2026-01-01 00:00:00+00', 't1', 10, 1, '60 seconds', :'regress_ns');

-- overrides (the example from Unkey's docs): exact wins over wildcard, the most
-- specific wildcard wins, and they replace limit and duration; setting one
-- needs the namespace to exist
SELECT regress.err($$SELECT unkey.unkey_set_override('overrides', 'x', 1, '1 minute')$$);
SELECT success FROM regress.rl('2025-01-01 00:00:00+00', 'first use', 10, 0, '60 seconds', 'overrides');
SELECT unkey.unkey_set_override('overrides', '*@domain.com', 20, '60 seconds') AS o_domain \gset
SELECT unkey.unkey_set_override('overrides', 'hello@domain.com', 100, '1 second') AS o_hello \gset
SELECT unkey.unkey_set_override('overrides', '*.com', 30, '60 seconds') AS o_com \gset
SELECT unkey.unkey_set_override('overrides', 'a*', 40, '60 seconds') AS o_a \gset
SELECT unkey.unkey_set_override('overrides', 'blocked', 0, '60 seconds') AS o_blocked \gset
SELECT id, r.success, r."limit", r.remaining, r.reset,
	   CASE r.override_id WHEN :'o_domain' THEN '*@domain.com' WHEN :'o_hello' THEN 'hello@domain.com'
		   WHEN :'o_com' THEN '*.com' WHEN :'o_a' THEN 'a*' WHEN :'o_blocked' THEN 'blocked' END AS matched
  FROM unnest(ARRAY['abc@domain.com', 'hello@domain.com', 'xyz', 'x@other.com', 'abc', 'ABC@DOMAIN.COM',
					'*@domain.com', 'blocked', 'blocked2']) WITH ORDINALITY AS t(id, n),
	   LATERAL regress.rl('2026-01-01 00:00:00+00', t.id, 10, 1, '60 seconds', 'overrides') r
 ORDER BY t.n;
-- an override with limit 0 denies even a check with cost 0
SELECT success, remaining FROM regress.rl('2026-01-01 00:00:00+00', 'blocked', 10, 0, '60 seconds', 'overrides');
-- changes apply to the next call
SELECT unkey.unkey_delete_override('overrides', 'blocked');
SELECT success, "limit", override_id IS NULL AS no_override
  FROM regress.rl('2026-01-01 00:00:00+00', 'blocked', 10, 1, '60 seconds', 'overrides');
SELECT unkey.unkey_set_override('overrides', '*@domain.com', 25, '60 seconds') = :'o_domain' AS upsert_keeps_id;
SELECT "limit" FROM regress.rl('2026-01-01 00:00:00+00', 'new@domain.com', 10, 1, '60 seconds', 'overrides');
SELECT identifier, "limit", duration, override_id = :'o_hello' AS is_hello
  FROM unkey.unkey_get_override('overrides', 'hello@domain.com');
SELECT identifier, "limit", duration FROM unkey.unkey_list_overrides('overrides');
SELECT a, regress.err(a) FROM unnest(ARRAY[
	$$SELECT unkey.unkey_get_override('overrides', 'nobody')$$,
	$$SELECT unkey.unkey_delete_override('overrides', 'nobody')$$,
	$$SELECT unkey.unkey_set_override('missing-ns', 'x', 1, '1 minute')$$,
	$$SELECT unkey.unkey_list_overrides('missing-ns')$$,
	$$SELECT unkey.unkey_set_override('overrides', '', 1, '1 minute')$$,
	$$SELECT unkey.unkey_set_override('overrides', repeat('i', 513), 1, '1 minute')$$,
	$$SELECT unkey.unkey_set_override('overrides', 'x', -1, '1 minute')$$,
	$$SELECT unkey.unkey_set_override('overrides', 'x', NULL, '1 minute')$$,
	$$SELECT unkey.unkey_set_override('overrides', 'x', 1, '999 milliseconds')$$,
	$$SELECT unkey.unkey_set_override('overrides', 'x', 1, '31 days')$$
]) a;

-- a deleted namespace refuses calls with PT410 (as Unkey's 410 Gone)
SELECT success FROM regress.rl('2026-01-01 00:00:00+00', 'x', 1, 1, '60 seconds', 'doomed');
SELECT unkey.unkey_delete_namespace('doomed');
SELECT regress.err($$SELECT regress.rl('2026-01-01 00:00:00+00', 'x', 1, 1, '60 seconds', 'doomed')$$);
SELECT regress.err($$SELECT unkey.unkey_delete_namespace('doomed')$$);
SELECT count(*) AS listed FROM unkey.unkey_list_namespaces() WHERE name = 'doomed';

-- invalid arguments
SET unkey.test_now = '2026-01-01 00:00:00+00';
SELECT a, regress.err('SELECT unkey.unkey_ratelimit(' || a || ')') FROM unnest(ARRAY[
	$$NULL, 'i', 1, '1 minute'$$,
	$$'', 'i', 1, '1 minute'$$,
	$$repeat('n', 513), 'i', 1, '1 minute'$$,
	$$'n', NULL, 1, '1 minute'$$,
	$$'n', '', 1, '1 minute'$$,
	$$'n', repeat('i', 513), 1, '1 minute'$$,
	$$'n', 'i', 0, '1 minute'$$,
	$$'n', 'i', -1, '1 minute'$$,
	$$'n', 'i', NULL, '1 minute'$$,
	$$'n', 'i', 1, '999 milliseconds'$$,
	$$'n', 'i', 1, '30 days 1 millisecond'$$,
	$$'n', 'i', 1, '1.0005 seconds'$$,
	$$'n', 'i', 1, NULL$$,
	$$'n', 'i', 1, '1 minute', -1$$,
	$$'n', 'i', 1, '1 minute', NULL$$
]) a;
SELECT regress.err($$SELECT unkey.unkey_ratelimit(repeat('n', 512), repeat('i', 512), 1, '30 days')$$) AS bounds_ok;
SELECT regress.err($$SELECT unkey.unkey_ratelimit('n', 'i', 1, '1 second', 0)$$) AS edges_ok;
-- counts saturate instead of wrapping: a huge cost is refused and counts nothing,
-- and a full counter next to the largest value saturates instead of turning negative
SELECT success, remaining FROM unkey.unkey_ratelimit('n', 'huge', 10, '1 minute', 9223372036854775807);
SELECT success, remaining FROM unkey.unkey_ratelimit('n', 'huge', 10, '1 minute');
SELECT success, remaining FROM unkey.unkey_ratelimit('n', 'max', 9223372036854775806, '1 minute', 9223372036854775806);
SELECT success, remaining FROM unkey.unkey_ratelimit('n', 'max', 9223372036854775806, '1 minute', 2);

-- multi-limit, all or nothing: a per-minute limit that refuses leaves the per-month limit untouched
SELECT unkey.unkey_ratelimit_many('[{"namespace": "multi", "identifier": "u", "limit": 1, "duration": 60000},
									{"namespace": "multi", "identifier": "u", "limit": 1000, "duration": 2592000000}]');
SELECT unkey.unkey_ratelimit_many('[{"namespace": "multi", "identifier": "u", "limit": 1, "duration": 60000},
									{"namespace": "multi", "identifier": "u", "limit": 1000, "duration": 2592000000}]');
-- two minutes on, the minute limit passes again; the month limit counted only the first call
SET unkey.test_now = '2026-01-01 00:02:00+00';
SELECT unkey.unkey_ratelimit_many('[{"namespace": "multi", "identifier": "u", "limit": 1, "duration": 60000},
									{"namespace": "multi", "identifier": "u", "limit": 1000, "duration": 2592000000, "cost": 5}]');
SELECT a, regress.err(format('SELECT unkey.unkey_ratelimit_many(%L)', a)) FROM unnest(ARRAY[
	'{}', '[]', '[1]',
	'[{"namespace": "m", "identifier": "u", "limit": 1}]',
	'[{"namespace": "m", "identifier": "u", "limit": 1.5, "duration": 60000}]',
	'[{"namespace": "m", "identifier": "u", "limit": 0, "duration": 60000}]',
	'[{"namespace": "m", "identifier": "u", "limit": 1, "duration": 60000, "cost": -1}]',
	'[{"namespace": "m", "identifier": "u", "limit": 1, "duration": 60000, "other": 1}]',
	'[{"namespace": 1, "identifier": "u", "limit": 1, "duration": 60000}]'
]) a;
SELECT regress.err(format('SELECT unkey.unkey_ratelimit_many(%L)',
	(SELECT jsonb_agg(jsonb_build_object('namespace', 'm', 'identifier', 'u' || i, 'limit', 1, 'duration', 60000))
	   FROM generate_series(1, 101) i))) AS too_many;

-- the same limit twice in one call would be checked once and counted twice: refused
SELECT regress.err($$SELECT unkey.unkey_ratelimit_many('[{"namespace": "dup", "identifier": "u", "limit": 10, "duration": 60000, "cost": 10},
														{"namespace": "dup", "identifier": "u", "limit": 10, "duration": 60000, "cost": 10}]')$$);

-- a namespace created by a transaction that rolls back is not remembered by the session
BEGIN;
SELECT success FROM unkey.unkey_ratelimit('phantom', 'u', 2, '1 minute');
ROLLBACK;
SELECT success FROM unkey.unkey_ratelimit('phantom', 'u', 2, '1 minute');
SELECT count(*) AS phantom_exists FROM unkey.unkey_list_namespaces() WHERE name = 'phantom';
SELECT unkey.unkey_set_override('phantom', 'u', 1, '1 minute') IS NOT NULL AS override_set;

-- the wildcard matcher against a reference (LIKE, with * as % and everything else literal)
SELECT setseed(0.42);
SELECT count(*) AS pairs,
	   count(*) FILTER (WHERE unkey._wildcard_match(p, s) <>
			(s COLLATE "C" LIKE replace(replace(replace(replace(p, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'))) AS disagreements,
	   count(*) FILTER (WHERE unkey._wildcard_match(p, s)) > 100 AS some_match
  FROM (SELECT (SELECT string_agg(substr('ab*%_\', 1 + floor(random() * 6)::int, 1), '')
				  FROM generate_series(1, floor(random() * 7)::int + g * 0)) AS p,
			   (SELECT string_agg(substr('ab%_\*', 1 + floor(random() * 6)::int, 1), '')
				  FROM generate_series(1, floor(random() * 9)::int + g * 0)) AS s
		  FROM generate_series(1, 20000) g) t
 WHERE p IS NOT NULL AND s IS NOT NULL;
SELECT unkey._wildcard_match('*', ''), unkey._wildcard_match('a*b*c', 'aXbYc'),
	   unkey._wildcard_match('a*b*c', 'aXbYcd'), unkey._wildcard_match('*.*', 'a.b'),
	   unkey._wildcard_match('a.b', 'aXb'), unkey._wildcard_match('**a', 'a');

----------------------------------------------------------------------------
-- rate limits in verification
----------------------------------------------------------------------------
SET unkey.test_now = '2026-02-01 00:00:00+00';
SELECT unkey.unkey_create_api('rl-verify') AS api \gset
CREATE TEMP TABLE k (label text PRIMARY KEY, key_id text, key text);

-- identity limits are shared by the identity's keys; a key config of the same name shadows it
INSERT INTO k SELECT 'shared1', * FROM unkey.unkey_create_key(:'api', external_id => 'rl-shared');
INSERT INTO k SELECT 'shared2', * FROM unkey.unkey_create_key(:'api', external_id => 'rl-shared');
INSERT INTO k SELECT 'own', * FROM unkey.unkey_create_key(:'api', external_id => 'rl-shared',
	ratelimits => '[{"name": "requests", "limit": 3, "duration": 60000, "autoApply": true}]');
SELECT unkey.unkey_set_identity_ratelimit('rl-shared', 'requests', 2, '1 minute', auto_apply => true);
SELECT unkey.unkey_set_identity_ratelimit('rl-shared', 'tokens', 100, '1 hour');
SELECT unkey.unkey_get_identity_ratelimits('rl-shared');
-- (one statement per call, so that they run in this order)
SELECT 'shared1' AS key, code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'shared1'));
SELECT 'shared2' AS key, code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'shared2'));
SELECT 'shared1' AS key, code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'shared1'));
SELECT n, v.code, v.ratelimits->0->'remaining' AS remaining
  FROM generate_series(1, 4) n, LATERAL unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'own'), tags => ARRAY[n::text]) v
 ORDER BY n;

-- a non-autoApply limit is checked only when named, with the request's cost;
-- an inline limit needs no config; a name that exists nowhere is PT412
SET unkey.test_now = '2026-02-01 00:05:00+00';
SELECT code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'shared1'),
	ratelimits => '[{"name": "tokens", "cost": 60}]');
SELECT code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'shared2'),
	ratelimits => '[{"name": "tokens", "cost": 60}]');
SELECT code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'shared2'),
	ratelimits => '[{"name": "requests", "cost": 0}, {"name": "custom", "limit": 1, "duration": 1000}]');
SELECT code, ratelimits->1 FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'shared2'),
	ratelimits => '[{"name": "requests", "cost": 0}, {"name": "custom", "limit": 1, "duration": 1000}]');
SELECT regress.err(format($$SELECT unkey.unkey_verify_key(%L, ratelimits => '[{"name": "missing"}]')$$,
	(SELECT key FROM k WHERE label = 'shared1'))) ~ '^PT412: ratelimit "missing" was requested but does not exist for key "key_\w+" nor its identity "id_\w+"$' AS pt412;
INSERT INTO k SELECT 'lonely', * FROM unkey.unkey_create_key(:'api');
SELECT regress.err(format($$SELECT unkey.unkey_verify_key(%L, ratelimits => '[{"name": "missing"}]')$$,
	(SELECT key FROM k WHERE label = 'lonely'))) ~ '^PT412: ratelimit "missing" was requested but does not exist for key "key_\w+" and the key has no identity$' AS pt412_no_identity;
-- ... but a disabled key answers DISABLED before rate limits are even assembled
INSERT INTO k SELECT 'off', * FROM unkey.unkey_create_key(:'api', enabled => false);
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'off'), ratelimits => '[{"name": "missing"}]');

-- the order with credits: RATE_LIMITED spends no credit; USAGE_EXCEEDED has consumed its tokens;
-- DISABLED and EXPIRED consume nothing
SET unkey.test_now = '2026-02-01 00:10:00+00';
INSERT INTO k SELECT 'metered', * FROM unkey.unkey_create_key(:'api', credits => 1,
	ratelimits => '[{"name": "requests", "limit": 3, "duration": 60000, "autoApply": true}]');
INSERT INTO k SELECT 'rich', * FROM unkey.unkey_create_key(:'api', credits => 5,
	ratelimits => '[{"name": "requests", "limit": 1, "duration": 60000, "autoApply": true}]');
INSERT INTO k SELECT 'expired', * FROM unkey.unkey_create_key(:'api', expires => '2026-01-01',
	ratelimits => '[{"name": "requests", "limit": 1, "duration": 60000, "autoApply": true}]');
SELECT n, v.code, v.credits, v.ratelimits->0->'remaining' AS rl_remaining
  FROM generate_series(1, 4) n, LATERAL unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'metered'), tags => ARRAY[n::text]) v
 ORDER BY n;
SELECT n, v.code, v.credits
  FROM generate_series(1, 3) n, LATERAL unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'rich'), tags => ARRAY[n::text]) v
 ORDER BY n;
SELECT remaining FROM unkey.keys WHERE id = (SELECT key_id FROM k WHERE label = 'rich');
SELECT entries AS entries_before FROM unkey.unkey_ratelimit_info() \gset
SELECT n, v.code, v.ratelimits
  FROM generate_series(1, 2) n, LATERAL unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'expired'), tags => ARRAY[n::text]) v
 ORDER BY n;
SELECT entries = :entries_before AS no_counter_touched FROM unkey.unkey_ratelimit_info();

-- multi-limit rollback in verification: the per-minute limit refuses, the per-month one keeps its tokens
INSERT INTO k SELECT 'two', * FROM unkey.unkey_create_key(:'api',
	ratelimits => '[{"name": "minute", "limit": 1, "duration": 60000, "autoApply": true},
					{"name": "month", "limit": 1000, "duration": 2592000000, "autoApply": true}]');
SELECT code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'two'));
SELECT code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'two'));
-- two minutes on: the minute limit passes, and the month limit shows it counted only the first call
SET unkey.test_now = '2026-02-01 00:12:00+00';
SELECT code, ratelimits FROM unkey.unkey_verify_key((SELECT key FROM k WHERE label = 'two'));

-- key rate-limit management
SELECT unkey.unkey_set_key_ratelimit((SELECT key_id FROM k WHERE label = 'two'), 'minute', 5, '2 minutes');
SELECT unkey.unkey_get_key_ratelimits((SELECT key_id FROM k WHERE label = 'two'));
SELECT unkey.unkey_delete_key_ratelimit((SELECT key_id FROM k WHERE label = 'two'), 'month');
SELECT unkey.unkey_get_key_ratelimits((SELECT key_id FROM k WHERE label = 'two'));
SELECT n, regress.err(a) FROM unnest(ARRAY[
	format($$SELECT unkey.unkey_set_key_ratelimit(%L, 'ab', 1, '1 minute')$$, (SELECT key_id FROM k WHERE label = 'two')),
	format($$SELECT unkey.unkey_set_key_ratelimit(%L, 'abc', 0, '1 minute')$$, (SELECT key_id FROM k WHERE label = 'two')),
	format($$SELECT unkey.unkey_set_key_ratelimit(%L, 'abc', 1, '1 millisecond')$$, (SELECT key_id FROM k WHERE label = 'two')),
	format($$SELECT unkey.unkey_delete_key_ratelimit(%L, 'nothing')$$, (SELECT key_id FROM k WHERE label = 'two')),
	$$SELECT unkey.unkey_set_key_ratelimit('key_missing', 'abc', 1, '1 minute')$$,
	$$SELECT unkey.unkey_get_key_ratelimits('key_missing')$$,
	$$SELECT unkey.unkey_set_identity_ratelimit('nobody', 'abc', 1, '1 minute')$$,
	$$SELECT unkey.unkey_delete_identity_ratelimit('rl-shared', 'nothing')$$
]) WITH ORDINALITY AS t(a, n) ORDER BY n;

-- at most 50 named limits per key (and per identity), so verification never exceeds a batch
SELECT * FROM unkey.unkey_create_key(:'api') \gset capped_
SELECT count(*) FILTER (WHERE e = 'ok') AS set, min(e) FILTER (WHERE e <> 'ok') AS then
  FROM (SELECT regress.err(format($$SELECT unkey.unkey_set_key_ratelimit(%L, %L, 1, '1 minute')$$,
								  :'capped_key_id', 'limit' || i)) AS e
		  FROM generate_series(1, 51) i) s;
SELECT regress.err(format($$SELECT unkey.unkey_set_key_ratelimit(%L, 'limit1', 2, '1 minute')$$, :'capped_key_id')) AS update_still_ok;

-- invalid ratelimits in verification are errors, not fail-open
SELECT a, regress.err(format('SELECT unkey.unkey_verify_key(%L, ratelimits => %L)', 'k', a)) FROM unnest(ARRAY[
	'{}', '[1]', '[{"cost": 1}]', '[{"name": "ab"}]', '[{"name": "abc", "cost": -1}]',
	'[{"name": "abc", "cost": 1.5}]', '[{"name": "abc", "limit": 0, "duration": 60000}]',
	'[{"name": "abc", "limit": 1, "duration": 999}]', '[{"name": "abc", "limit": 0}]',
	'[{"name": "abc", "other": 1}]',
	'[{"name": "abc"}, {"name": "abc"}]'
]) a;
-- a limit or a duration alone is a lookup by name, as in Unkey's verifier:
-- a name the key's limits do not have is PT412
WITH k AS (SELECT key FROM unkey.unkey_create_key(unkey.unkey_create_api('half inline')))
SELECT a, regexp_replace(regress.err(format('SELECT unkey.unkey_verify_key(%L, ratelimits => %L)', k.key, a)),
					  'key_[1-9A-HJ-NP-Za-km-z]+', 'key_<id>') AS err
  FROM k, unnest(ARRAY['[{"name": "abc", "limit": 1}]', '[{"name": "abc", "duration": 60000}]']) a;

-- names: a stored config takes 3 to 128 characters, a limit given in a
-- verification 3 to 255 (Unkey's two bounds); an inline limit on an unknown
-- key verifies as NOT_FOUND
SELECT * FROM unkey.unkey_create_key(:'api') \gset names_
SELECT n, regress.err(format($$SELECT unkey.unkey_set_key_ratelimit(%L, %L, 1, '1 minute')$$,
							 :'names_key_id', repeat('n', n))) AS config,
	   regress.err(format('SELECT code FROM unkey.unkey_verify_key(%L, ratelimits => %L)', 'k',
						  jsonb_build_array(jsonb_build_object('name', repeat('n', n), 'limit', 1,
															   'duration', 60000)))) AS in_verification
  FROM unnest(ARRAY[128, 129, 255, 256]) n;

-- a full table (the tests run with unkey.ratelimit_max_entries = 1000) never forgets a
-- counter whose window is open.  The clock is pinned in 2001, so that every counter made
-- here has expired for the tests that follow.
SET unkey.test_now = '2001-01-01 00:00:00+00';
-- the victim: 3 per hour, refused on its 4th request
SELECT success, remaining FROM unkey.unkey_ratelimit('flood', 'victim', 3, '1 hour');
SELECT success, remaining FROM unkey.unkey_ratelimit('flood', 'victim', 3, '1 hour');
SELECT success, remaining FROM unkey.unkey_ratelimit('flood', 'victim', 3, '1 hour');
SELECT success, remaining FROM unkey.unkey_ratelimit('flood', 'victim', 3, '1 hour');
-- 3,000 fresh identifiers: once the table is full, the new ones are refused (fail closed)
SELECT count(*) FILTER (WHERE r.success) > 0 AS some_allowed, count(*) FILTER (WHERE NOT r.success) > 1000 AS rest_refused
  FROM generate_series(1, 3000) i,
	   LATERAL regress.rl('2001-01-01 00:00:00+00', 'flood' || i, 10, 1, '1 hour', 'flood') r;
SELECT entries = max_entries AS full_table, evicted_live, refused_full > 0 AS refusals_counted
  FROM unkey.unkey_ratelimit_info();
-- the victim's counter was kept: still refused
SELECT success, remaining FROM unkey.unkey_ratelimit('flood', 'victim', 3, '1 hour');
-- two hours later both windows have ended: those counters go, new identifiers are counted again
SET unkey.test_now = '2001-01-01 02:00:01+00';
SELECT success FROM unkey.unkey_ratelimit('flood', 'after', 3, '1 hour');
SELECT evicted_expired > 0 AS expired_evicted, entries < max_entries AS room_again FROM unkey.unkey_ratelimit_info();
-- unkey.ratelimit_when_full = error: a request that needs a new counter fails instead
SET unkey.test_now = '2001-01-02 00:00:00+00';
SELECT count(*) FILTER (WHERE NOT r.success) > 0 AS full_again
  FROM generate_series(1, 1100) i,
	   LATERAL regress.rl('2001-01-02 00:00:00+00', 'again' || i, 10, 1, '1 hour', 'flood') r;
ALTER SYSTEM SET unkey.ratelimit_when_full = 'error';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SHOW unkey.ratelimit_when_full;
SELECT regress.err($$SELECT unkey.unkey_ratelimit('flood', 'one more', 3, '1 hour')$$);
ALTER SYSTEM RESET unkey.ratelimit_when_full;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SHOW unkey.ratelimit_when_full;
RESET unkey.test_now;
