-- (q0) the floor: the day rollup rows that analytics.sql reads, summed per
-- day and key by one plain query, with no gap-filling, outcome columns or
-- ordering; counted on the server like analytics_count.sql
\set i 0
SELECT count(*) FROM (
	SELECT r.bucket, r.key_id, sum(r.count)
	  FROM unkey.verification_rollups r
	 WHERE r.api_id = :api AND r.granularity = 'day'
	   AND r.bucket >= date_trunc('day', :t0::timestamptz, 'UTC') AND r.bucket < :t1::timestamptz
	 GROUP BY 1, 2) s;
