-- (q1) the floor query of analytics_floor.sql on a compact copy of the same
-- day rollup rows (bench.day_rollups, events.sh: six columns, no latency
-- histogram, stored in bucket order): what the width and scatter of the
-- rollup rows cost
\set i 0
SELECT count(*) FROM (
	SELECT r.bucket, r.key_id, sum(r.count)
	  FROM bench.day_rollups r
	 WHERE r.api_id = :api AND r.bucket >= date_trunc('day', :t0::timestamptz, 'UTC') AND r.bucket < :t1::timestamptz
	 GROUP BY 1, 2) s;
