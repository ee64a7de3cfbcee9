-- events: the event pipeline, the rollups, the analytics views and functions
SET timezone = 'UTC';
SELECT unkey.unkey_create_api('events') AS api \gset
SELECT unkey.unkey_create_role('events-role', permissions => ARRAY['ev.read']) IS NOT NULL AS role_created;
-- one key per outcome
SET unkey.test_now = '2031-03-01 00:00:00+00';
SELECT key_id AS valid_id, key AS valid_key FROM unkey.unkey_create_key(:'api', name => 'valid', credits => 100,
	external_id => 'events-customer', roles => ARRAY['events-role']) \gset
SELECT key_id AS disabled_id, key AS disabled_key FROM unkey.unkey_create_key(:'api', name => 'disabled', enabled => false) \gset
SELECT key_id AS expired_id, key AS expired_key FROM unkey.unkey_create_key(:'api', name => 'expired', expires => '2031-02-01 00:00:00+00') \gset
SELECT key_id AS empty_id, key AS empty_key FROM unkey.unkey_create_key(:'api', name => 'empty', credits => 0) \gset
SELECT key_id AS limited_id, key AS limited_key FROM unkey.unkey_create_key(:'api', name => 'limited',
	ratelimits => '[{"name": "burst", "limit": 1, "duration": 60000, "autoApply": true}]') \gset
SELECT unkey.unkey_create_api('events ip', ip_whitelist => ARRAY['10.0.0.0/8']) AS ip_api \gset
SELECT key_id AS ip_id, key AS ip_key FROM unkey.unkey_create_key(:'ip_api', name => 'ip') \gset

-- a burst over two days and three hours, with tags; each verification at its own pinned time
CREATE TEMP TABLE burst (n int, at timestamptz, key text, args text);
INSERT INTO burst VALUES
	(1, '2031-03-01 10:05:00+00', :'valid_key', 'tags => ''{path=/a,region=eu}'''),
	(2, '2031-03-01 10:06:00+00', :'valid_key', 'tags => ''{path=/a,region=eu}'', cost => 3'),
	(3, '2031-03-01 10:59:59+00', :'valid_key', 'tags => ''{path=/b}'''),
	(4, '2031-03-01 12:00:00+00', :'valid_key', 'permissions => ''ev.write'''),
	(5, '2031-03-01 12:30:00+00', :'disabled_key', 'tags => ''{path=/a,region=eu}'''),
	(6, '2031-03-01 12:31:00+00', :'expired_key', NULL),
	(7, '2031-03-01 12:32:00+00', :'empty_key', 'tags => ''{path=/b}'''),
	(8, '2031-03-01 12:33:00+00', :'limited_key', NULL),
	(9, '2031-03-01 12:33:01+00', :'limited_key', NULL),
	(10, '2031-03-01 12:34:00+00', :'ip_key', 'ip => ''192.0.2.1'''),
	(11, '2031-03-02 08:00:00+00', 'ev_no_such_key', 'api_id => ''' || :'api' || ''''),
	(12, '2031-03-02 08:00:00+00', :'valid_key', 'tags => ''{path=/a}'''),
	(13, '2031-03-02 09:00:00+00', :'valid_key', 'api_id => ''' || :'ip_api' || '''');
CREATE FUNCTION pg_temp.run(b burst) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	code text;
BEGIN
	PERFORM set_config('unkey.test_now', b.at::text, false);
	EXECUTE format('SELECT code FROM unkey.unkey_verify_key(%L%s)', b.key, coalesce(', ' || b.args, '')) INTO code;
	RETURN code;
END
$$;
SELECT b.n, pg_temp.run(b) AS code FROM burst b ORDER BY b.n;

-- an event survives the caller's rollback; the credits it spent do not
SET unkey.test_now = '2031-03-02 09:30:00+00';
BEGIN;
SELECT code, credits FROM unkey.unkey_verify_key(:'valid_key', tags => '{rolled-back}');
ROLLBACK;
SELECT credits FROM unkey.unkey_get_key(:'valid_id');

-- the application's request id goes with the events of its transaction (on another day)
SET unkey.test_now = '2031-04-01 00:00:00+00';
BEGIN;
SET LOCAL unkey.request_id = 'req_events_1';
SELECT code FROM unkey.unkey_verify_key(:'valid_key', cost => 0, tags => '{with-request-id}');
SELECT success FROM unkey.unkey_ratelimit('events-request', 'user_1', 10, '1 minute');
COMMIT;
SELECT code FROM unkey.unkey_verify_key(:'valid_key', cost => 0, tags => '{without-request-id}');
SET unkey.test_now = '2031-03-02 09:30:00+00';

-- the events are buffered; unkey_flush_events waits until the event writer has written them
SELECT FROM unkey.unkey_flush_events();
SELECT coalesce(sum(buffered), 0) AS buffered, coalesce(sum(inline_writes), 0) AS inline_writes,
	   coalesce(sum(discarded), 0) AS discarded
  FROM unkey.unkey_events_info() WHERE database = current_database();

-- every outcome is there, NOT_FOUND with the hash of what was presented
SELECT outcome, count(*), sum(spent_credits) AS spent, count(key_id) AS with_key_id,
	   bool_and(latency >= 0) AS latency_measured
  FROM unkey.verification_events WHERE time >= '2031-03-01' AND time < '2031-03-03'
 GROUP BY outcome ORDER BY outcome;
SELECT api_id = :'api' AS asked_api, key_id, key_hash = digest('ev_no_such_key', 'sha256') AS presented_hash
  FROM unkey.verification_events WHERE outcome = 'NOT_FOUND' AND time >= '2031-03-01' AND time < '2031-03-03';
SELECT tags, spent_credits FROM unkey.verification_events WHERE tags = '{rolled-back}';
SELECT tags, request_id FROM unkey.verification_events WHERE tags[1] LIKE '%request-id' ORDER BY tags;
SELECT namespace, request_id FROM unkey.ratelimit_events WHERE namespace = 'events-request';
-- one partition per day (UTC)
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'unkey.verification_events'::regclass AND c.relname LIKE '%_p203103%' ORDER BY 1;

-- the rollups equal a GROUP BY over the raw events, at every grain: per
-- bucket, key (NOT_FOUND as one), identity and API each outcome, the
-- credits, the latency histogram and the last time; and per tag set too
-- (normalised, the untagged as {}), each outcome, the credits and latencies
CREATE FUNCTION pg_temp.rollups_vs_raw(lo timestamptz, hi timestamptz)
RETURNS TABLE (granularity text, mismatches bigint, tag_mismatches bigint, rolled_up numeric, events bigint)
LANGUAGE sql AS $$
	WITH raw AS (
		SELECT u.g, date_trunc(u.g, e.time, 'UTC') AS b,
			   CASE WHEN e.outcome = 'NOT_FOUND' THEN '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
					ELSE e.key_hash END AS h, e.identity_id AS i, e.api_id AS a,
			   ARRAY(SELECT DISTINCT t COLLATE "C" FROM unnest(e.tags) t ORDER BY 1) AS tags,
			   e.outcome, e.spent_credits, e.latency, e.time
		  FROM unkey.verification_events e, unnest(ARRAY['hour', 'day', 'month']) u(g)
		 WHERE e.time >= lo AND e.time < hi
	), expected AS (
		SELECT g, b, h, i, a, tags,
			   count(*) FILTER (WHERE outcome = 'VALID') AS valid, count(*) FILTER (WHERE outcome = 'NOT_FOUND') AS nf,
			   count(*) FILTER (WHERE outcome = 'FORBIDDEN') AS fb, count(*) FILTER (WHERE outcome = 'USAGE_EXCEEDED') AS ue,
			   count(*) FILTER (WHERE outcome = 'RATE_LIMITED') AS rl, count(*) FILTER (WHERE outcome = 'DISABLED') AS d,
			   count(*) FILTER (WHERE outcome = 'INSUFFICIENT_PERMISSIONS') AS ip, count(*) FILTER (WHERE outcome = 'EXPIRED') AS ex,
			   sum(spent_credits) AS s, unkey._latency_hist(array_agg(latency)) AS hist, max(time) AS last
		  FROM raw GROUP BY GROUPING SETS ((g, b, h, i, a), (g, b, h, i, a, tags))
	), actual AS (
		SELECT r.granularity AS g, r.bucket AS b, r.key_hash AS h, r.identity_id AS i, r.api_id AS a, NULL::text[] AS tags,
			   sum(r.valid) AS valid, sum(r.not_found) AS nf, sum(r.forbidden) AS fb, sum(r.usage_exceeded) AS ue,
			   sum(r.rate_limited) AS rl, sum(r.disabled) AS d, sum(r.insufficient_permissions) AS ip,
			   sum(r.expired) AS ex, sum(r.spent_credits) AS s, unkey._latency_hist_sum(r.latency_hist) AS hist,
			   max(r.last_time) AS last
		  FROM unkey._rollups r
		 WHERE r.last_time >= lo AND r.last_time < hi
		 GROUP BY r.granularity, r.bucket, r.key_hash, r.identity_id, r.api_id
		UNION ALL
		SELECT r.granularity, r.bucket, r.key_hash, r.identity_id, r.api_id, min(r.tags),
			   sum(r.valid), sum(r.not_found), sum(r.forbidden), sum(r.usage_exceeded), sum(r.rate_limited),
			   sum(r.disabled), sum(r.insufficient_permissions), sum(r.expired), sum(r.spent_credits),
			   unkey._latency_hist_sum(r.latency_hist), NULL
		  FROM unkey._tag_sets r
		 WHERE r.bucket >= date_trunc(r.granularity, lo, 'UTC') AND r.bucket < hi
		 GROUP BY r.granularity, r.bucket, r.key_hash, r.identity_id, r.api_id, r.tags_id
	), compared AS (
		-- a tag set's last verification is not kept apart
		SELECT g, b, h, i, a, tags, valid, nf, fb, ue, rl, d, ip, ex, s, hist,
			   CASE WHEN tags IS NULL THEN last END AS last FROM expected
	)
	SELECT u.g,
		   (SELECT count(*) FROM ((SELECT * FROM compared x WHERE x.g = u.g AND x.tags IS NULL
								   EXCEPT SELECT * FROM actual y WHERE y.g = u.g AND y.tags IS NULL)
								  UNION ALL
								  (SELECT * FROM actual y WHERE y.g = u.g AND y.tags IS NULL
								   EXCEPT SELECT * FROM compared x WHERE x.g = u.g AND x.tags IS NULL)) d),
		   (SELECT count(*) FROM ((SELECT * FROM compared x WHERE x.g = u.g AND x.tags IS NOT NULL
								   EXCEPT SELECT * FROM actual y WHERE y.g = u.g AND y.tags IS NOT NULL)
								  UNION ALL
								  (SELECT * FROM actual y WHERE y.g = u.g AND y.tags IS NOT NULL
								   EXCEPT SELECT * FROM compared x WHERE x.g = u.g AND x.tags IS NOT NULL)) d),
		   (SELECT sum(y.valid + y.nf + y.fb + y.ue + y.rl + y.d + y.ip + y.ex) FROM actual y WHERE y.g = u.g AND y.tags IS NULL),
		   (SELECT count(*) FROM unkey.verification_events e WHERE e.time >= lo AND e.time < hi)
	  FROM unnest(ARRAY['hour', 'day', 'month']) u(g)
$$;
-- no day has closed yet (the writer materialises on the server's clock, years
-- before these): every grain is answered from the hours
SELECT count(*) AS materialised FROM unkey.verification_rollups WHERE granularity <> 'hour' AND bucket >= '2031-01-01';
SELECT * FROM pg_temp.rollups_vs_raw('2031-03-01', '2031-03-03');
SELECT granularity, count(*) FROM unkey.verification_rollups WHERE bucket >= '2031-01-01' GROUP BY 1 ORDER BY 1;

-- the views: one column per outcome
SELECT time, key_id = :'valid_id' AS valid_key, tags, valid, forbidden, insufficient_permissions, total, spent_credits
  FROM unkey.verifications_hourly WHERE api_id = :'api' AND time < '2031-03-02'
 ORDER BY time, valid_key DESC, tags::text COLLATE "C", valid, insufficient_permissions, total;
SELECT time, sum(valid) AS valid, sum(disabled) AS disabled, sum(expired) AS expired, sum(usage_exceeded) AS usage_exceeded,
	   sum(rate_limited) AS rate_limited, sum(not_found) AS not_found, sum(total) AS total
  FROM unkey.verifications_daily WHERE api_id = :'api' GROUP BY time ORDER BY time;
SELECT time, sum(total) AS total FROM unkey.verifications_monthly WHERE api_id IN (:'api', :'ip_api') GROUP BY time;
SELECT k.name, u.valid, u.disabled, u.expired, u.usage_exceeded, u.rate_limited, u.insufficient_permissions,
	   u.forbidden, u.total, u.spent_credits, u.last_used_at
  FROM unkey.key_usage u JOIN unkey.keys k ON k.id = u.key_id
 WHERE u.api_id IN (:'api', :'ip_api') ORDER BY k.name;
-- last_used_at reads the rollups
SELECT last_used_at FROM unkey.unkey_get_key(:'valid_id');
-- latencies: average, p75 and p99 are read from the histograms
SELECT count(*) AS rows, bool_and(latency_avg > 0 AND latency_p75 > 0 AND latency_p99 >= latency_p75) AS latency_ok
  FROM unkey.verifications_daily WHERE api_id = :'api';
SELECT unkey._latency_quantile(unkey._latency_hist(ARRAY[0.001, 0.002, 0.004, 1.0]), q) AS ms
  FROM unnest(ARRAY[0.25, 0.5, 0.75, 1.0]) q;

----------------------------------------------------------------------------
-- unkey_get_verifications
----------------------------------------------------------------------------
-- the total over a range, by default grouped by nothing
SELECT valid, not_found, forbidden, usage_exceeded, rate_limited, disabled, insufficient_permissions, expired, total
  FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03');
-- a daily series is gap-filled: 2031-02-28 .. 2031-03-04 has five days, three of them empty
SELECT time, valid, total FROM unkey.unkey_get_verifications(:'api', '2031-02-28', '2031-03-05', group_by => '{day}');
-- hourly, for one key; start is rounded down to the hour
SELECT time, valid, insufficient_permissions, total
  FROM unkey.unkey_get_verifications(:'api', '2031-03-01 09:30', '2031-03-01 13:00', group_by => '{hour}', key_id => :'valid_id');
-- monthly
SELECT time, total FROM unkey.unkey_get_verifications(:'api', '2031-01-15', '2031-04-01', group_by => '{month}');
-- by key (ordered by total, descending, by default), by identity, by tag set, by each tag
SELECT key_id = :'valid_id' AS valid_key, key_id IS NULL AS not_found_row, valid, total
  FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', group_by => '{key}');
SELECT identity_id IS NOT NULL AS has_identity, external_id, total
  FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', group_by => '{identity}');
SELECT tags, total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', group_by => '{tags}', order_by => 'total', "order" => 'asc');
SELECT tag, total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', group_by => '{tag}');
-- combined: a daily series per tag, gap-filled for each tag seen
SELECT time, tag, total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-04', group_by => '{day,tag}');
SELECT time, key_id = :'valid_id' AS valid_key, tags, total
  FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', group_by => '{day,key,tags}', order_by => 'valid', "limit" => 1);
-- filters: key, external id, tags (every given tag must be present)
SELECT total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', key_id => :'disabled_id');
SELECT total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', external_id => 'events-customer');
SELECT total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', tags => '{path=/a}');
SELECT total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', tags => '{path=/a,region=eu}');
SELECT count(*) AS rows FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', tags => '{nothing}');
-- ordering and limit
SELECT time, total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', group_by => '{day}', "order" => 'desc');
SELECT tag, valid FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', group_by => '{tag}', order_by => 'valid', "limit" => 1);
-- every combination of the non-time groups, with and without a time unit, runs and adds up
SELECT count(*) AS combinations, bool_and(total = 12) AS all_add_up
  FROM (SELECT g, (SELECT sum(v.total) FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03', group_by => g) v) AS total
		  FROM (SELECT array_remove(ARRAY[k, i, t, u], NULL) AS g
				  FROM unnest(ARRAY['key', NULL]) k, unnest(ARRAY['identity', NULL]) i,
					   unnest(ARRAY['tags', NULL]) t, unnest(ARRAY['hour', 'day', 'month', NULL]) u) c) x;
-- errors
SELECT regress.err(format('SELECT * FROM unkey.unkey_get_verifications(%L, %L, %L, %s)', :'api', s, e, coalesce(x, 'NULL'))) AS error
  FROM (VALUES ('2031-03-01', '2031-03-02', 'group_by => ''{week}'''),
			   ('2031-03-01', '2031-03-02', 'group_by => ''{day,hour}'''),
			   ('2031-03-01', '2031-03-02', 'group_by => ''{tag,tags}'''),
			   ('2031-03-01', '2031-03-02', 'group_by => ''{NULL}'''),
			   ('2031-03-02', '2031-03-01', 'group_by => NULL'),
			   ('2031-03-01', '2031-03-02', 'order_by => ''time'''),
			   ('2031-03-01', '2031-03-02', 'order_by => ''latency'''),
			   ('2031-03-01', '2031-03-02', '"order" => ''up'''),
			   ('2031-03-01', '2031-03-02', '"limit" => 0')) t(s, e, x);
SELECT regress.err($$SELECT * FROM unkey.unkey_get_verifications('api_missing', '2031-03-01')$$);
SELECT regress.err(format('SELECT * FROM unkey.unkey_get_verifications(%L, %L, %L, group_by => %L)', :'api', s, e, g)) AS error
  FROM (VALUES ('-infinity', '2031-03-01', '{day}'), ('2031-03-01', 'infinity', NULL),
			   ('2020-01-01', '2031-03-01', '{hour}')) t(s, e, g);
SELECT count(*) AS months FROM unkey.unkey_get_verifications(:'api', '2020-01-01', '2031-03-01', group_by => '{month}');
SELECT regress.err(format('SELECT * FROM unkey.unkey_get_verifications(%L, NULL)', :'api'));

----------------------------------------------------------------------------
-- events that are hard to write: none of them holds up the others
----------------------------------------------------------------------------
SET unkey.test_now = '2031-05-01 00:00:00+00';
-- NOT_FOUND is counted for the API that was asked about, each apart
SELECT unkey.unkey_create_api('events other') AS other_api \gset
SELECT v.code FROM (VALUES (:'api'), (:'api'), (:'other_api')) a(id), unkey.unkey_verify_key('ev_wrong_key', api_id => a.id) v;
-- an api_id that cannot be an id is not recorded; 20 tags of 512 characters are
SELECT code FROM unkey.unkey_verify_key('ev_wrong_key', api_id => repeat('x', 5000));
SELECT code FROM unkey.unkey_verify_key(:'valid_key', cost => 0,
	tags => ARRAY(SELECT repeat(chr(96 + i), 512) FROM generate_series(1, 20) i));
SELECT FROM unkey.unkey_flush_events();
SELECT coalesce(sum(discarded), 0) AS discarded FROM unkey.unkey_events_info() WHERE database = current_database();
SELECT (SELECT not_found FROM unkey.unkey_get_verifications(:'api', '2031-05-01', '2031-05-02')) AS asked_api,
	   (SELECT not_found FROM unkey.unkey_get_verifications(:'other_api', '2031-05-01', '2031-05-02')) AS other_api;
SELECT api_id IS NULL AS no_api_id, count(*) FROM unkey.verification_events
 WHERE key_hash = digest('ev_wrong_key', 'sha256') AND time = '2031-05-01' GROUP BY 1 ORDER BY 1;
SELECT granularity, cardinality(tags) AS tags, count(*) AS rollup_rows FROM unkey._tagged_rollups
 WHERE key_id = :'valid_id' AND cardinality(tags) = 20 GROUP BY 1, 2 ORDER BY 1;
-- partitions are a UTC day, whatever the session's DateStyle and time zone
SET DateStyle = 'Postgres'; SET TimeZone = 'Asia/Kolkata';
SELECT unkey._ensure_partitions('ratelimit_events', ARRAY['2031-06-01 12:00:00+00'::timestamptz]);
RESET DateStyle; SET TimeZone = 'UTC';
SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.relname = 'ratelimit_events_p20310601';

----------------------------------------------------------------------------
-- rate-limit events
----------------------------------------------------------------------------
SET unkey.test_now = '2031-03-05 10:00:00+00';
SELECT success FROM unkey.unkey_ratelimit('events-ns', 'user_1', 1, '1 minute');
SELECT unkey.unkey_set_override('events-ns', 'vip', 5, '1 minute') AS override_id \gset
SELECT success FROM unkey.unkey_ratelimit('events-ns', 'user_1', 1, '1 minute', cost => 2);
SELECT success FROM unkey.unkey_ratelimit('events-ns', 'vip', 1, '1 minute');
SELECT FROM unkey.unkey_flush_events();
SELECT namespace, identifier, passed, "limit", remaining, reset, cost, override_id = :'override_id' AS via_override,
	   namespace_id ~ '^rlns_' AS namespace_id
  FROM unkey.ratelimit_events WHERE namespace = 'events-ns' ORDER BY time, identifier, cost;

-- the rate-limit rollups: checks over hours, days and a month boundary, in
-- two flushes that share an hour; each view equals a GROUP BY of the raw
-- events at its grain, in both directions
CREATE FUNCTION pg_temp.rl_checks(times timestamptz[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t timestamptz;
BEGIN
	FOREACH t IN ARRAY times LOOP
		PERFORM set_config('unkey.test_now', t::text, true);
		PERFORM unkey.unkey_ratelimit('events-rollup', 'user_' || i, 2, '1 hour')
		   FROM generate_series(1, 3) i, generate_series(1, 2) j;
	END LOOP;
END
$$;
SELECT pg_temp.rl_checks('{2031-03-31 22:59:59+00, 2031-03-31 23:00:00+00, 2031-03-31 23:30:00+00}');
SELECT FROM unkey.unkey_flush_events();
SELECT pg_temp.rl_checks('{2031-03-31 23:40:00+00, 2031-04-01 00:00:01+00, 2031-04-02 05:00:00+00}');
SELECT FROM unkey.unkey_flush_events();
SELECT time, identifier, passed, limited, total FROM unkey.ratelimits_daily
 WHERE namespace = 'events-rollup' ORDER BY time, identifier;
WITH grains(g, unit) AS (VALUES ('hourly', 'hour'), ('daily', 'day'), ('monthly', 'month')),
views AS (
	SELECT 'hourly' AS g, time, namespace_id, identifier, passed, limited, total
	  FROM unkey.ratelimits_hourly WHERE namespace = 'events-rollup'
	UNION ALL
	SELECT 'daily', time, namespace_id, identifier, passed, limited, total
	  FROM unkey.ratelimits_daily WHERE namespace = 'events-rollup'
	UNION ALL
	SELECT 'monthly', time, namespace_id, identifier, passed, limited, total
	  FROM unkey.ratelimits_monthly WHERE namespace = 'events-rollup'),
raw AS (
	SELECT g.g, date_trunc(g.unit, e.time, 'UTC') AS time, e.namespace_id, e.identifier,
		   count(*) FILTER (WHERE e.passed) AS passed, count(*) FILTER (WHERE NOT e.passed) AS limited,
		   count(*) AS total
	  FROM unkey.ratelimit_events e, grains g
	 WHERE e.namespace = 'events-rollup'
	 GROUP BY 1, 2, 3, 4)
SELECT g.g AS grain, (SELECT count(*) FROM views v WHERE v.g = g.g) AS view_rows,
	   (SELECT count(*) FROM (SELECT * FROM views v WHERE v.g = g.g EXCEPT ALL
							  SELECT * FROM raw r WHERE r.g = g.g) d)
	   + (SELECT count(*) FROM (SELECT * FROM raw r WHERE r.g = g.g EXCEPT ALL
								SELECT * FROM views v WHERE v.g = g.g) d) AS differences
  FROM grains g ORDER BY view_rows;
DROP FUNCTION pg_temp.rl_checks(timestamptz[]);

----------------------------------------------------------------------------
-- materialising: a day, then a month, once closed; late events; old hours pruned
----------------------------------------------------------------------------
-- a tag set in any order and with duplicates is one set
SET unkey.test_now = '2031-03-02 10:15:00+00';
SELECT code FROM unkey.unkey_verify_key(:'valid_key', cost => 0, tags => '{z,y,z}');
SELECT code FROM unkey.unkey_verify_key(:'valid_key', cost => 0, tags => '{y,z}');
SELECT FROM unkey.unkey_flush_events();
SELECT tags, valid FROM unkey.verification_tag_rollups WHERE granularity = 'hour' AND tags && '{y,z}';
-- 2031-03-01 closes (the writer does this once a minute, on the server's clock)
SELECT unkey._materialize_rollups('2031-03-02 00:30:00+00');
SELECT day_done, month_done, hours_from FROM unkey.rollup_state;
SELECT granularity, count(*) FROM unkey.verification_rollups WHERE bucket >= '2031-01-01' GROUP BY 1 ORDER BY 1;
SELECT * FROM pg_temp.rollups_vs_raw('2031-03-01', '2031-03-03');
-- a late event of the closed day (a flush after the day closed) is added to its day too
SET unkey.test_now = '2031-03-01 23:59:00+00';
SELECT code FROM unkey.unkey_verify_key(:'valid_key', cost => 0, tags => '{late}');
SELECT FROM unkey.unkey_flush_events();
SELECT granularity, bucket, valid FROM unkey.verification_tag_rollups WHERE tags = '{late}' ORDER BY 1;
SELECT * FROM pg_temp.rollups_vs_raw('2031-03-01', '2031-03-03');
-- materialising again changes nothing; March closes on April 1st
SELECT unkey._materialize_rollups('2031-03-02 00:30:00+00');
SELECT * FROM pg_temp.rollups_vs_raw('2031-03-01', '2031-03-03');
SELECT unkey._materialize_rollups('2031-04-01 00:00:00+00');
SELECT day_done, month_done, hours_from FROM unkey.rollup_state;
SELECT granularity, count(*) FROM unkey.verification_rollups WHERE bucket >= '2031-01-01' GROUP BY 1 ORDER BY 1;
SELECT * FROM pg_temp.rollups_vs_raw('2031-03-01', '2031-03-03');
SELECT time, valid, total FROM unkey.unkey_get_verifications(:'api', '2031-02-28', '2031-03-05', group_by => '{day}');
-- hourly rollups are kept for the hourly retention, and pruned only once their day holds them
SELECT regress.err($$SELECT unkey.unkey_set_hourly_retention('1 day')$$);
SELECT unkey.unkey_set_hourly_retention('2 days');
SELECT unkey._materialize_rollups('2031-03-03 12:00:00+00');
SELECT hours_from FROM unkey.rollup_state;
SELECT unkey._materialize_rollups('2031-04-10 12:00:00+00');
SELECT day_done, month_done, hours_from FROM unkey.rollup_state;
SELECT granularity, min(bucket) FROM unkey.verification_rollups WHERE bucket >= '2031-01-01' GROUP BY 1 ORDER BY 1;
SELECT granularity, mismatches, tag_mismatches, rolled_up, events FROM pg_temp.rollups_vs_raw('2031-03-01', '2031-03-03')
 WHERE granularity <> 'hour';
-- a total over pruned hours is summed from the days, from start rounded down to the day
SELECT total FROM unkey.unkey_get_verifications(:'api', '2031-03-01 10:00', '2031-03-03');
-- an hourly series over them is refused rather than shown as zeros
SELECT regress.err(format($$SELECT * FROM unkey.unkey_get_verifications(%L, '2031-03-01', '2031-03-02', group_by => '{hour}')$$, :'api'));
SELECT unkey.unkey_set_hourly_retention(NULL);
SELECT count(*) AS settings_rows FROM unkey.event_settings;

-- materialising needs read committed: a snapshot older than its lock would miss batches
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT regress.err($$SELECT unkey._materialize_rollups('2031-04-10 12:00:00+00')$$);
ROLLBACK;
-- what the writer's C path refuses: a hash of another size, an infinite latency or time
SELECT regress.err($$SELECT unkey._store_verifications(ARRAY['2031-03-01']::timestamptz[], '{0.1}', ARRAY['\x00']::bytea[],
	'{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NOT_FOUND}', '{NULL}', '{0}')$$);
SELECT regress.err($$SELECT unkey._store_verifications(ARRAY['2031-03-01']::timestamptz[], '{Infinity}',
	ARRAY[digest('x', 'sha256')], '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NOT_FOUND}', '{NULL}', '{0}')$$);
SELECT regress.err($$SELECT unkey._store_verifications(ARRAY['infinity']::timestamptz[], '{0.1}',
	ARRAY[digest('x', 'sha256')], '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NOT_FOUND}', '{NULL}', '{0}')$$);
-- a latency far beyond the last bucket lands in it
SELECT unkey._latency_quantile(unkey._latency_hist(ARRAY[1e300, 'Infinity']::float8[]), 0.5) AS ms;

----------------------------------------------------------------------------
-- retention: whole partitions before now - retention go, nothing newer
----------------------------------------------------------------------------
SET unkey.test_now = '2031-03-02 09:30:00+00';
SELECT code FROM unkey.unkey_verify_key(:'valid_key', cost => 0, tags => '{retention}');
SELECT FROM unkey.unkey_flush_events();
SELECT unkey.unkey_set_retention('1 day');
SET unkey.test_now = '2031-03-03 12:00:00+00';
SELECT * FROM unkey.unkey_apply_retention() p WHERE p LIKE '%_p20310%';
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'unkey.verification_events'::regclass AND c.relname LIKE '%_p203103%' ORDER BY 1;
SELECT count(*) AS kept_events FROM unkey.verification_events WHERE time >= '2031-03-01' AND time < '2031-03-03';
-- the rollups stay: analytics keep their history
SELECT total FROM unkey.unkey_get_verifications(:'api', '2031-03-01', '2031-03-03');
SELECT regress.err($$SELECT unkey.unkey_set_retention('-1 day')$$);
SELECT regress.err($$SELECT unkey.unkey_set_retention('0')$$);
SELECT unkey.unkey_set_retention(NULL);
SELECT count(*) AS retention_rows FROM unkey.event_settings;
DROP FUNCTION pg_temp.run(burst);
DROP TABLE burst;
RESET unkey.test_now;
RESET timezone;
