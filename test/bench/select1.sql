-- the floor: one round trip that does nothing
-- \set first: without a meta-command pgbench reuses its cached clock when the
-- reply is already in, and logs a latency of 0 µs
\set i 0
SELECT 1;
