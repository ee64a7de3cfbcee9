-- the PL/pgSQL limiter on one identifier shared by every client
-- \set first: without a meta-command pgbench reuses its cached clock when the
-- reply is already in, and logs a latency of 0 µs
\set i 0
SELECT bench.sql_ratelimit('hot', 1000000000, 60000);
