-- (qc) analytics.sql aggregated on the server: the same call, only its row
-- count goes to the client (events.sh passes -D api, t0, t1)
\set i 0
SELECT count(*) FROM unkey.unkey_get_verifications(:api, :t0, :t1, group_by => '{day,key}');
