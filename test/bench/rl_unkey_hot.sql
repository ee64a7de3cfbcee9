-- unkey_ratelimit on one identifier shared by every client
-- \set first: without a meta-command pgbench reuses its cached clock when the
-- reply is already in, and logs a latency of 0 µs
\set i 0
SELECT * FROM unkey.unkey_ratelimit('bench', 'hot', 1000000000, '60 seconds');
