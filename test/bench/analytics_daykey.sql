-- (q2) the lower bound: the same answer pre-aggregated to one row per day and
-- key (bench.day_key, events.sh: 30,000 rows for 30 days x 1,000 keys, one
-- column per outcome), read in order and sent to the client like (q)
\set i 0
SELECT * FROM bench.day_key r
 WHERE r.api_id = :api AND r.bucket >= date_trunc('day', :t0::timestamptz, 'UTC') AND r.bucket < :t1::timestamptz
 ORDER BY r.bucket, r.key_id COLLATE "C";
