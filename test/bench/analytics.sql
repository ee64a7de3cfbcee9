-- (q) unkey_get_verifications grouped by day and key over the last DAYS days
-- of the analytics API (events.sh passes -D api, t0, t1); every row goes to
-- the client.  \set first: see verify_one.sql
\set i 0
SELECT * FROM unkey.unkey_get_verifications(:api, :t0, :t1, group_by => '{day,key}');
