-- the PL/pgSQL limiter on one identifier shared by every client
SELECT bench.sql_ratelimit('hot', 1000000000, 60000);
