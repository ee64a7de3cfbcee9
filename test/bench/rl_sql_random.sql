-- the PL/pgSQL limiter (rl_setup.psql) on one of 100,000 random identifiers
\set i random(1, 100000)
SELECT bench.sql_ratelimit('user_' || :i, 1000000000, 60000);
