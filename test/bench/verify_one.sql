-- unkey_verify_key on the one key given with -D key=...
-- \set first: without a meta-command pgbench reuses its cached clock when the
-- reply is already in, and logs a latency of 0 µs
\set i 0
SELECT * FROM unkey.unkey_verify_key(:key);
