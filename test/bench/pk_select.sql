-- (c1): a plain primary-key lookup; the hash is computed inline by the built-in sha256()
\set i random(:lo, :hi)
SELECT * FROM unkey.keys WHERE key_hash = sha256(('bench_' || :i)::bytea);
