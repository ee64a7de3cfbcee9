-- a C no-op declared like unkey_ratelimit (rl_setup.psql), called with the same arguments
\set i random(1, 100000)
SELECT * FROM bench.noop('bench', 'user_' || :i);
