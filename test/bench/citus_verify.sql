-- unkey_verify_key_by_hash on the one key given with -D key=... -D api=...:
-- Citus runs it on the node of the key's shard (the hash is folded to a constant)
\set i 0
SELECT * FROM unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key(:key), 'base64'), :key, :api);
