-- a primary-key SELECT of the same key's row through Citus (routed to its shard's node)
\set i 0
SELECT id, remaining FROM unkey.keys WHERE key_hash = decode(unkey.unkey_hash_key(:key), 'base64');
