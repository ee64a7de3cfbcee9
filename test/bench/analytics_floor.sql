-- (q0) the floor: the rollup rows that analytics.sql reads (the materialised
-- days, and today's hours), summed per day and key by one plain query, with
-- no gap-filling or ordering; counted on the server like analytics_count.sql
\set i 0
SELECT count(*) FROM (
	SELECT date_trunc('day', r.bucket, 'UTC'), r.key_id, sum(r.valid), sum(r.rate_limited), sum(r.usage_exceeded)
	  FROM unkey.verification_rollups r
	 WHERE r.api_id = :api
	   AND ((r.granularity = 'day' AND r.bucket >= :t0::timestamptz)
			OR (r.granularity = 'hour' AND r.bucket >= date_trunc('day', now(), 'UTC')))
	   AND r.bucket < :t1::timestamptz
	 GROUP BY 1, 2) s;
