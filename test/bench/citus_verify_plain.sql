-- unkey_verify_key on the one key given with -D key=... -D api=...: it sends
-- the key to the node of its shard itself (one statement Citus delegates)
\set i 0
SELECT * FROM unkey.unkey_verify_key(:key, :api);
