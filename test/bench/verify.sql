-- (a)/(b): unkey_verify_key with the default cost 1 on a random key in [lo, hi]
\set i random(:lo, :hi)
SELECT * FROM unkey.unkey_verify_key('bench_' || :i);
