-- (q2) the lower bound: the answer of analytics.sql stored as a table
-- (bench.day_key, events.sh: one row per day and key), read in order and
-- sent to the client like (q)
\set i 0
SELECT * FROM bench.day_key r
 WHERE r.time >= :t0::timestamptz AND r.time < :t1::timestamptz
 ORDER BY r.time, r.key_id COLLATE "C";
