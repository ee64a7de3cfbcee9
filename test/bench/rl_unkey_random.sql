-- unkey_ratelimit on one of 100,000 random identifiers (limit never reached)
\set i random(1, 100000)
SELECT * FROM unkey.unkey_ratelimit('bench', 'user_' || :i, 1000000000, '60 seconds');
