-- (u) the credits baseline: one single-row UPDATE of remaining on a random key
-- of the same set as (b), in the same table (same row, same four indexes, HOT
-- like unkey's own UPDATE), hash computed inline by the built-in sha256();
-- RETURNING the balance, as unkey_verify_key returns it
\set i random(:lo, :hi)
UPDATE unkey.keys SET remaining = remaining - 1
 WHERE key_hash = sha256(('bench_' || :i)::bytea) RETURNING remaining;
