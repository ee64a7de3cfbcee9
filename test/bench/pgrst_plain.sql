-- A PostgREST request, GET /rpc/report?month=2026-12, as PostgREST sends it (no pre-request)
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', :sp, true), set_config('role', :role, true), set_config('request.jwt.claims', :claims, true), set_config('request.method', :method, true), set_config('request.path', :path, true), set_config('request.headers', :hdrs, true), set_config('request.cookies', :cookies, true);
WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM (SELECT "api"."report"("month" := :month::text) pgrst_scalar) pgrst_call) SELECT null::bigint AS total_result_set, 1 AS page_total, coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT "report".* FROM "pgrst_source" AS "report") _postgrest_t;
COMMIT;
