-- (c2): the hand-written PL/pgSQL verifier (setup.psql) on a random key in [lo, hi]
\set i random(:lo, :hi)
SELECT bench.plpgsql_verify('bench_' || :i);
