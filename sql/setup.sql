-- setup: the extension, pgcrypto for cross-checks, and a helper for errors
CREATE EXTENSION unkey;
CREATE EXTENSION pgcrypto;
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'unkey';
SHOW shared_preload_libraries;

-- regress.err(sql) runs a statement and shows 'SQLSTATE: message (hint: ...)',
-- or 'ok': error cases then read as one line each, with the code they must
-- raise and the hint that tells the caller what to do
CREATE SCHEMA regress;
CREATE FUNCTION regress.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	hint text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
	-- qualified: the hijack test calls this under a search_path full of plants
	RETURN pg_catalog.concat(SQLSTATE, ': ', SQLERRM,
							 CASE WHEN pg_catalog.length(hint) OPERATOR(pg_catalog.>) 0
								  THEN pg_catalog.concat(' (hint: ', hint, ')') END);
END
$$;
GRANT USAGE ON SCHEMA regress TO PUBLIC;
GRANT EXECUTE ON FUNCTION regress.err(text) TO PUBLIC;
SELECT regress.err('SELECT 1');
SELECT regress.err('SELECT 1/0');
