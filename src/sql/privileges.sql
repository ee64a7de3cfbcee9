/*
 * privileges.sql: nothing in schema unkey is usable by PUBLIC; applications
 * get exactly the grants the README shows
 */

-- functions are executable by PUBLIC by default: take that back from all of them
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA unkey FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA unkey_v2 FROM PUBLIC;
-- tables are never read or written directly by applications
REVOKE ALL ON ALL TABLES IN SCHEMA unkey FROM PUBLIC;

-- the installing role's default privileges (ALTER DEFAULT PRIVILEGES) may
-- have granted what we just created to other roles: take back every grant
-- but the owner's, so that applications get exactly what the README grants
DO $$
DECLARE
	stmt text;
BEGIN
	FOR stmt IN
		SELECT DISTINCT format('REVOKE ALL ON %s %s FROM %s', o.kind, o.name,
							   CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END)
		  FROM (SELECT 'ROUTINE', p.oid::regprocedure::text, p.proacl, p.proowner
				  FROM pg_catalog.pg_proc p WHERE p.pronamespace IN ('unkey'::regnamespace, 'unkey_v2'::regnamespace)
				UNION ALL
				SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, c.oid::regclass::text, c.relacl, c.relowner
				  FROM pg_catalog.pg_class c WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S')
				UNION ALL
				SELECT 'TYPE', t.oid::regtype::text, t.typacl, t.typowner
				  FROM pg_catalog.pg_type t WHERE t.typnamespace = 'unkey'::regnamespace AND t.typacl IS NOT NULL
				UNION ALL
				SELECT 'SCHEMA', n.nspname, n.nspacl, n.nspowner
				  FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('unkey', 'unkey_v2')) o(kind, name, acl, owner),
			   pg_catalog.aclexplode(o.acl) a
		  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
		 WHERE a.grantee <> o.owner
	LOOP
		EXECUTE stmt;
	END LOOP;
END
$$;
