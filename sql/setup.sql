-- setup: the extension, pgcrypto for cross-checks, and a helper for errors
CREATE EXTENSION unkey;
CREATE EXTENSION pgcrypto;
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'unkey';
SHOW shared_preload_libraries;

-- regress.err(sql) runs a statement and shows 'SQLSTATE: message', or 'ok':
-- error cases then read as one line each, with the code they must raise
CREATE SCHEMA regress;
CREATE FUNCTION regress.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT USAGE ON SCHEMA regress TO PUBLIC;
GRANT EXECUTE ON FUNCTION regress.err(text) TO PUBLIC;
SELECT regress.err('SELECT 1');
SELECT regress.err('SELECT 1/0');
