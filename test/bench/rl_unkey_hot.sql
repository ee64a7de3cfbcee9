-- unkey_ratelimit on one identifier shared by every client
SELECT * FROM unkey.unkey_ratelimit('bench', 'hot', 1000000000, '60 seconds');
