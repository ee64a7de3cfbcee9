/*
 * utils.sql: what every subsystem shares.  The install script
 * unkey--<version>.sql is built by the Makefile from the files in src/sql/,
 * in this order: utils, keys, credits, permissions, ratelimit, lifecycle,
 * events, privileges.  Edit these files, never the built script.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION unkey" to load this file. \quit

/*
 * The schema must be ours alone.  Our SECURITY DEFINER functions call what is
 * in it, so a role that owns it, owns something in it or may create in it
 * could plant a function that runs with our rights.  CREATE EXTENSION
 * creates the schema when it is missing; one that already exists (a pg_dump
 * restore creates it first) is accepted only when it and everything in it
 * belong to the role installing the extension or to a superuser, and no
 * other role may create in it.  Every upgrade script runs the same check.
 */
CREATE FUNCTION unkey._check_schema()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ns oid := 'unkey'::regnamespace;
	what text;
	who oid;
BEGIN
	-- every role that owns or may create something here, and what
	SELECT o.what, o.role INTO what, who
	  FROM (SELECT 'schema "unkey" is owned by', n.nspowner FROM pg_catalog.pg_namespace n WHERE n.oid = ns
			UNION ALL
			SELECT 'schema "unkey" grants CREATE to', a.grantee
			  FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
			 WHERE n.oid = ns AND a.privilege_type = 'CREATE'
			UNION ALL
			SELECT c.oid::regclass::text || ' is owned by', c.relowner FROM pg_catalog.pg_class c WHERE c.relnamespace = ns
			UNION ALL
			SELECT p.oid::regprocedure::text || ' is owned by', p.proowner FROM pg_catalog.pg_proc p WHERE p.pronamespace = ns
			UNION ALL
			SELECT t.oid::regtype::text || ' is owned by', t.typowner FROM pg_catalog.pg_type t WHERE t.typnamespace = ns
			UNION ALL
			SELECT o.oid::regoperator::text || ' is owned by', o.oprowner FROM pg_catalog.pg_operator o WHERE o.oprnamespace = ns
			UNION ALL
			SELECT 'collation ' || c.collname || ' is owned by', c.collowner FROM pg_catalog.pg_collation c WHERE c.collnamespace = ns
			UNION ALL
			SELECT 'conversion ' || c.conname || ' is owned by', c.conowner FROM pg_catalog.pg_conversion c WHERE c.connamespace = ns
			UNION ALL
			SELECT 'operator family ' || f.opfname || ' is owned by', f.opfowner FROM pg_catalog.pg_opfamily f WHERE f.opfnamespace = ns
			UNION ALL
			SELECT 'operator class ' || c.opcname || ' is owned by', c.opcowner FROM pg_catalog.pg_opclass c WHERE c.opcnamespace = ns
			UNION ALL
			SELECT 'text search configuration ' || c.cfgname || ' is owned by', c.cfgowner
			  FROM pg_catalog.pg_ts_config c WHERE c.cfgnamespace = ns
			UNION ALL
			SELECT 'text search dictionary ' || d.dictname || ' is owned by', d.dictowner
			  FROM pg_catalog.pg_ts_dict d WHERE d.dictnamespace = ns
			UNION ALL
			SELECT 'statistics ' || s.stxname || ' is owned by', s.stxowner FROM pg_catalog.pg_statistic_ext s WHERE s.stxnamespace = ns
			UNION ALL
			SELECT 'extension ' || e.extname || ' is owned by', e.extowner
			  FROM pg_catalog.pg_extension e WHERE e.extnamespace = ns AND e.extname <> 'unkey') o(what, role)
	 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r
						WHERE r.oid = o.role AND (r.rolsuper OR r.rolname = current_user))
	 LIMIT 1;
	IF what IS NOT NULL THEN
		RAISE EXCEPTION '% role "%", which is neither a superuser nor "%", who installs or updates unkey',
			what, CASE who WHEN 0 THEN 'PUBLIC' ELSE who::regrole::text END, current_user
			USING ERRCODE = '42501',
			HINT = 'Check what schema unkey holds; drop that object, give it to a superuser or revoke that CREATE, then try again.';
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._check_schema() IS 'private: refuse a schema unkey that a role other than a superuser or the installer owns, may create in, or owns something in';
SELECT unkey._check_schema();

-- Nothing in schema unkey is usable by PUBLIC: applications get exactly the
-- grants the README shows.
REVOKE ALL ON SCHEMA unkey FROM PUBLIC;

CREATE FUNCTION unkey.now() RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'unkey_now' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey.now() IS 'the clock used for expiry and refill: the statement''s start (unkey.test_now pins it in tests)';

CREATE FUNCTION unkey._actor() RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_actor' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._actor() IS 'private: the calling role (current_user outside our SECURITY DEFINER functions), or the v2 API''s root key';
CREATE FUNCTION unkey._set_v2_actor(actor text) RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_set_v2_actor' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._set_v2_actor(text) IS 'private: the v2 API''s root key is the actor of this transaction''s audit rows';

CREATE FUNCTION unkey._new_id(prefix text) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_new_id' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._new_id(text) IS 'private: a new random id with an Unkey-style prefix';

-- A counter of the changes to cached configuration (rate-limit namespaces
-- and overrides, the gateway's settings and routes): a relcache
-- invalidation reaches the backends of one server, so on Citus each node's
-- backends also compare this with the value they cached under
CREATE TABLE unkey.config_version (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	version				bigint NOT NULL
);
COMMENT ON TABLE unkey.config_version IS 'reference: a counter of the changes to cached configuration, for the caches of every Citus node';
-- no row is version 0; pg_dump carries it, as the configuration it counts
SELECT pg_catalog.pg_extension_config_dump('unkey.config_version', '');

CREATE FUNCTION unkey._send_invalidation(rel regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_invalidate' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._send_invalidation(regclass) IS 'private: at commit, make every backend of this server drop its caches of this table';

CREATE FUNCTION unkey._invalidate(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO unkey.config_version AS v (version) VALUES (1)
	ON CONFLICT (singleton) DO UPDATE SET version = v.version + 1;
	PERFORM unkey._send_invalidation(rel);
END
$$;
COMMENT ON FUNCTION unkey._invalidate(regclass) IS 'private: at commit, make every backend drop its caches of this table (on Citus, of every node)';

CREATE FUNCTION unkey._raise(condition text, message text, hint text) RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_raise' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey._raise(text, text, text) IS 'private: raise an error by condition name (not_found, gone, precondition_failed, invalid_parameter_value, ...), with the SQLSTATEs defined once in C';

-- Record a change in the audit log, in the caller's transaction; targets is a flat
-- array of (type, id) pairs; never VARIADIC, so no overload can capture a call
CREATE FUNCTION unkey._audit(event text, description text, targets text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	headers jsonb;
	ip text;
BEGIN
	-- PostgREST puts the HTTP request headers here, as a JSON object
	BEGIN
		headers := nullif(current_setting('request.headers', true), '')::jsonb;
	EXCEPTION WHEN invalid_text_representation THEN
		headers := NULL;
	END;
	IF jsonb_typeof(headers) IS DISTINCT FROM 'object' THEN
		headers := '{}';
	END IF;
	ip := coalesce(nullif(btrim(split_part(headers ->> 'x-forwarded-for', ',', 1)), ''),
				   nullif(btrim(headers ->> 'x-real-ip'), ''), host(inet_client_addr()));
	INSERT INTO unkey.audit_log (time, event, actor, remote_ip, user_agent, correlation_id, targets, description)
	SELECT unkey.now(), event, unkey._actor(), nullif(ip, ''), headers ->> 'user-agent', txid_current(),
		   coalesce(jsonb_agg(jsonb_build_object('type', targets[i], 'id', targets[i + 1]) ORDER BY i), '[]'),
		   description
	  FROM generate_series(1, coalesce(cardinality(targets), 0), 2) i;
END
$$;
COMMENT ON FUNCTION unkey._audit(text, text, text[]) IS 'private: write one audit row; never pass a key or a hash';

-- Validate a meta argument: a JSON object of at most 1 MiB (NULL is fine)
CREATE FUNCTION unkey._check_meta(meta jsonb, field text DEFAULT 'meta')
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF jsonb_typeof(meta) <> 'object' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('%s must be a JSON object', field),
							 'Pass a JSON object such as {"plan": "pro"}, or NULL.'::text);
	END IF;
	IF octet_length(meta::text) > 1048576 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('%s must be at most 1 MiB', field),
							 'Keep large data in your own tables and store a reference in meta.'::text);
	END IF;
	RETURN meta;
END
$$;
COMMENT ON FUNCTION unkey._check_meta(jsonb, text) IS 'private: validate a meta object';

-- Paging arguments of the list functions: limit 1..100
CREATE FUNCTION unkey._check_limit("limit" integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF "limit" IS NULL OR "limit" NOT BETWEEN 1 AND 100 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'limit must be between 1 and 100'::text,
							 'Ask for at most 100 rows per page and pass the returned cursor for the next page.'::text);
	END IF;
	RETURN "limit";
END
$$;
COMMENT ON FUNCTION unkey._check_limit(integer) IS 'private: validate a page size';
