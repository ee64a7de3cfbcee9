/* unkey--0.1.0--0.2.0.sql: from release 0.1.0 to 0.2.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION unkey UPDATE TO '0.2.0'" to load this file. \quit

/*
 * The schema must be ours alone.  Our SECURITY DEFINER functions call what is
 * in it, so a role that owns it, owns something in it or may create in it
 * could plant a function that runs with our rights.  CREATE EXTENSION
 * creates the schema when it is missing; one that already exists (a pg_dump
 * restore creates it first) is accepted only when it and everything in it
 * belong to the role installing the extension and no other role may create
 * in it.  Every upgrade script runs the same check.
 */
CREATE FUNCTION unkey._check_schema()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ns oid := 'unkey'::regnamespace;
	me oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);
	what text;
	who oid;
BEGIN
	SELECT n.nspowner INTO who FROM pg_catalog.pg_namespace n WHERE n.oid = ns;
	IF who <> me THEN
		RAISE EXCEPTION 'schema "unkey" is owned by role "%", not by "%" who installs the extension',
			who::regrole, current_user
			USING ERRCODE = '42501',
			HINT = 'Drop or rename that schema after checking what it holds, then run CREATE EXTENSION unkey again.';
	END IF;
	SELECT a.grantee::regrole::text INTO what
	  FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
	 WHERE n.oid = ns AND a.privilege_type = 'CREATE' AND a.grantee <> me
	 LIMIT 1;
	IF what IS NOT NULL THEN
		RAISE EXCEPTION 'role "%" may create objects in schema "unkey"', coalesce(nullif(what, '-'), 'PUBLIC')
			USING ERRCODE = '42501',
			HINT = 'Revoke CREATE on schema unkey from every role but the extension owner, then try again.';
	END IF;
	SELECT o.what, o.owner INTO what, who
	  FROM (SELECT c.oid::regclass::text, c.relowner FROM pg_catalog.pg_class c WHERE c.relnamespace = ns
			UNION ALL
			SELECT p.oid::regprocedure::text, p.proowner FROM pg_catalog.pg_proc p WHERE p.pronamespace = ns
			UNION ALL
			SELECT t.oid::regtype::text, t.typowner FROM pg_catalog.pg_type t WHERE t.typnamespace = ns
			UNION ALL
			SELECT o.oid::regoperator::text, o.oprowner FROM pg_catalog.pg_operator o WHERE o.oprnamespace = ns
			UNION ALL
			SELECT c.collname, c.collowner FROM pg_catalog.pg_collation c WHERE c.collnamespace = ns
			UNION ALL
			SELECT c.conname, c.conowner FROM pg_catalog.pg_conversion c WHERE c.connamespace = ns
			UNION ALL
			SELECT f.opfname, f.opfowner FROM pg_catalog.pg_opfamily f WHERE f.opfnamespace = ns
			UNION ALL
			SELECT c.opcname, c.opcowner FROM pg_catalog.pg_opclass c WHERE c.opcnamespace = ns
			UNION ALL
			SELECT c.cfgname, c.cfgowner FROM pg_catalog.pg_ts_config c WHERE c.cfgnamespace = ns
			UNION ALL
			SELECT d.dictname, d.dictowner FROM pg_catalog.pg_ts_dict d WHERE d.dictnamespace = ns
			UNION ALL
			SELECT s.stxname, s.stxowner FROM pg_catalog.pg_statistic_ext s WHERE s.stxnamespace = ns) o(what, owner)
	 WHERE o.owner <> me
	 LIMIT 1;
	IF what IS NOT NULL THEN
		RAISE EXCEPTION '% in schema "unkey" is owned by role "%"', what, who::regrole
			USING ERRCODE = '42501',
			HINT = 'Only the extension owner may own objects in schema unkey: drop that object after checking it, then try again.';
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._check_schema() IS 'private: refuse a schema unkey that another role owns, may create in, or has planted objects in';
-- as privileges.sql does for every function of a fresh install
REVOKE ALL ON FUNCTION unkey._check_schema() FROM PUBLIC;
SELECT unkey._check_schema();
