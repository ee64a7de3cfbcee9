/*
 * citus.sql: running on Citus (README: Running on Citus).  The tables'
 * classes in their comments say how each is distributed: reference tables on
 * every node, per-key tables by key_hash colocated with unkey.keys, the
 * per-identifier ones by identifier, the local ones stay on the coordinator.
 * The C readers find a row's shard (src/tables.c); the entry point keyed by
 * the hash is what Citus delegates to the node that holds the key.
 */

-- unkey_verify_key with the key's stored hash first, for Citus to route
CREATE FUNCTION unkey.unkey_verify_key_by_hash(
	key_hash	bytea,
	key			text,
	api_id		text	DEFAULT NULL,
	permissions text	DEFAULT NULL,
	cost		bigint	DEFAULT 1,
	ratelimits	jsonb	DEFAULT NULL,
	tags		text[]	DEFAULT NULL,
	ip			inet	DEFAULT NULL)
RETURNS unkey.verification
AS 'MODULE_PATHNAME', 'unkey_verify_key_by_hash'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet) IS 'unkey_verify_key, keyed by the key''s hash (unkey._key_hash(key)) so that Citus runs it on the node of the key''s shard';

-- unkey's tables of one class, each after the tables it references
CREATE FUNCTION unkey._tables_of_class(class text) RETURNS SETOF regclass
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	done oid[] := '{}';
	t oid;
	progress boolean := true;
BEGIN
	WHILE progress LOOP
		progress := false;
		FOR t IN
			SELECT c.oid FROM pg_class c
			 WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
			   AND split_part(obj_description(c.oid, 'pg_class'), ':', 1) = class AND c.oid <> ALL (done)
			   AND NOT EXISTS (SELECT FROM pg_constraint f
								WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid
								  AND split_part(obj_description(f.confrelid, 'pg_class'), ':', 1) = class
								  AND f.confrelid <> ALL (done))
			 ORDER BY c.relname
		LOOP
			done := done || t;
			progress := true;
			RETURN NEXT t;
		END LOOP;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._tables_of_class(text) IS 'private: unkey''s tables of one class (their comment''s first word), each after those it references';

-- Whether Citus distributes this table and this node is not the
-- coordinator: the event partitions are created, and dropped, on the
-- coordinator only (Citus refuses it elsewhere), and the rollups' days and
-- months materialised there, so a worker asks the coordinator to do it
CREATE FUNCTION unkey._citus_worker_table(rel regclass) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	worker boolean;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
			' AND (SELECT groupid FROM pg_catalog.pg_dist_local_group) <> 0'
	   INTO worker USING rel;
	RETURN worker;
END
$$;
COMMENT ON FUNCTION unkey._citus_worker_table(regclass) IS 'private: whether Citus distributes this table and this node is a worker, where its partitions cannot be created';

-- A timestamptz as an SQL literal that reads the same under any DateStyle
-- and TimeZone (the coordinator's session has its own)
CREATE FUNCTION unkey._timestamptz_literal(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('%L::pg_catalog.timestamptz', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00"')) $$;
COMMENT ON FUNCTION unkey._timestamptz_literal(timestamptz) IS 'private: a timestamptz as a literal independent of DateStyle and TimeZone';

-- The value of an SQL expression, evaluated on the Citus coordinator in a
-- transaction of its own there (its error is raised here).  Every name in
-- it must be qualified: it runs with the coordinator session's search_path.
-- It waits at most a second for a lock: a worker's event writer must not
-- hang on the coordinator's locks (a pg_dump, or a lock this worker's own
-- transaction holds), and tries again later.
CREATE FUNCTION unkey._on_coordinator(expr text) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ok boolean;
	answer text;
BEGIN
	EXECUTE 'SELECT success, result FROM pg_catalog.run_command_on_coordinator($1)' INTO ok, answer
	  USING format('WITH s AS MATERIALIZED (SELECT pg_catalog.set_config(''lock_timeout'', ''1s'', true))'
				   ' SELECT (%s)::pg_catalog.text FROM s', expr);
	IF NOT ok THEN
		PERFORM unkey._raise('object_not_in_prerequisite_state'::text, 'the Citus coordinator could not evaluate ' || expr || ': ' || coalesce(answer, ''),
							 'The event partitions and rollups of every node are kept by the coordinator: check that it is up and has unkey, and see its log (README: Running on Citus).'::text);
	END IF;
	RETURN answer;
END
$$;
COMMENT ON FUNCTION unkey._on_coordinator(text) IS 'private: evaluate an expression on the Citus coordinator, in its own transaction there';

-- Distribute every table by its class, and register the delegated entry point
CREATE FUNCTION unkey.citus_distribute() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regclass;
	distributed oid[];
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		PERFORM unkey._raise('object_not_in_prerequisite_state'::text, 'citus is not installed in this database'::text,
							 'Run CREATE EXTENSION citus on the coordinator, add the workers, then this function.'::text);
	END IF;
	EXECUTE 'SELECT array_agg(logicalrelid::oid) FROM pg_catalog.pg_dist_partition' INTO distributed;
	distributed := coalesce(distributed, '{}');
	-- reference tables may reference each other; the coordinator keeps a replica of each
	PERFORM set_config('citus.enable_local_reference_table_foreign_keys', 'off', true);
	FOR t IN SELECT unkey._tables_of_class('reference') LOOP
		CONTINUE WHEN t::oid = ANY (distributed);
		EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING t;
	END LOOP;
	FOR t IN SELECT unkey._tables_of_class('per-key') LOOP
		CONTINUE WHEN t::oid = ANY (distributed);
		IF t = 'unkey.keys'::regclass THEN
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''key_hash'')' USING t;
		ELSE
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''key_hash'', colocate_with => ''unkey.keys'')' USING t;
		END IF;
	END LOOP;
	FOR t IN SELECT unkey._tables_of_class('per-identifier') LOOP
		CONTINUE WHEN t::oid = ANY (distributed);
		IF t = 'unkey.ratelimit_events'::regclass THEN
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''identifier'')' USING t;
		ELSE
			EXECUTE 'SELECT pg_catalog.create_distributed_table($1, ''identifier'', colocate_with => ''unkey.ratelimit_events'')' USING t;
		END IF;
	END LOOP;
	EXECUTE 'SELECT pg_catalog.create_distributed_function($1, ''$1'', colocate_with => ''unkey.keys'', force_delegation => true)'
	  USING 'unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet)'::regprocedure;
END
$$;
COMMENT ON FUNCTION unkey.citus_distribute() IS 'on a Citus coordinator: distribute unkey''s tables by their class and let Citus run unkey_verify_key_by_hash on the key''s node';

-- Bring every table back to the coordinator, its rows with it, and drop
-- every shard and placement of unkey on every node, as Citus does for a
-- dropped table (Citus's undistribute_table cannot rewrite an extension's
-- tables); DROP EXTENSION unkey then leaves nothing behind
CREATE FUNCTION unkey.citus_undistribute() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regclass;
	tables regclass[];
	parts regclass[];
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN;
	END IF;
	-- one connection per node for the whole transaction: the shards it reads are the ones it drops
	PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
	-- reference tables first, so that the rows of the others find theirs when they come back
	tables := ARRAY(SELECT c FROM (SELECT unkey._tables_of_class('reference') UNION ALL SELECT unkey._tables_of_class('per-key')
								   UNION ALL SELECT unkey._tables_of_class('per-identifier')) x(c)
					 WHERE EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = x.c));
	FOREACH t IN ARRAY tables LOOP
		EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS SELECT * FROM %s', 'undistribute_' || t::oid, t);
	END LOOP;
	-- the partitions of the event tables go with their parent's shards
	parts := ARRAY(SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i WHERE i.inhparent = ANY (tables::oid[])
					  AND EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = i.inhrelid));
	FOR t IN SELECT x FROM unnest(tables) WITH ORDINALITY u(x, n) ORDER BY n DESC LOOP
		EXECUTE 'SELECT pg_catalog.master_remove_distributed_table_metadata_from_workers($1, ''unkey'', $2)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
		EXECUTE 'SELECT pg_catalog.citus_drop_all_shards($1, ''unkey'', $2, drop_shards_metadata_only := false)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
		EXECUTE 'SELECT pg_catalog.master_remove_partition_metadata($1, ''unkey'', $2)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
	END LOOP;
	FOREACH t IN ARRAY parts LOOP
		EXECUTE 'SELECT pg_catalog.citus_drop_all_shards($1, ''unkey'', $2, drop_shards_metadata_only := true)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
		EXECUTE 'SELECT pg_catalog.master_remove_partition_metadata($1, ''unkey'', $2)'
		  USING t, (SELECT relname FROM pg_catalog.pg_class WHERE oid = t);
	END LOOP;
	-- what the tables held before they were distributed may still be in them: the rows from the shards replace it
	FOR t IN SELECT x FROM unnest(tables) WITH ORDINALITY u(x, n) ORDER BY n DESC LOOP
		EXECUTE format('DELETE FROM %s', t);
	END LOOP;
	FOREACH t IN ARRAY tables LOOP
		EXECUTE format('INSERT INTO %s SELECT * FROM %I', t, 'undistribute_' || t::oid);
	END LOOP;
	-- the entry point is no longer delegated (Citus's own unmarking needs the function dropped)
	EXECUTE 'SELECT pg_catalog.run_command_on_workers($c$DELETE FROM pg_catalog.pg_dist_object WHERE classid = ''pg_proc''::regclass'
			' AND objid = ''unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet)''::regprocedure$c$)';
	EXECUTE 'DELETE FROM pg_catalog.pg_dist_object WHERE classid = ''pg_proc''::regclass AND objid = $1'
	  USING 'unkey.unkey_verify_key_by_hash(bytea, text, text, text, bigint, jsonb, text[], inet)'::regprocedure;
END
$$;
COMMENT ON FUNCTION unkey.citus_undistribute() IS 'on a Citus coordinator: bring unkey''s tables and their rows back to the coordinator and drop every shard (then DROP EXTENSION unkey leaves nothing on the workers)';
