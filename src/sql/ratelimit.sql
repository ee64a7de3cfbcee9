/*
 * ratelimit.sql: standalone rate limits, namespaces and overrides, and the
 * named limits of keys and identities (C: src/limiter.c is the shared-memory
 * limiter, src/ratelimit.c its SQL face)
 */

CREATE TABLE unkey.key_ratelimits (
	key_hash			bytea NOT NULL REFERENCES unkey.keys (key_hash) ON DELETE CASCADE,
	name				text NOT NULL CHECK (char_length(name) BETWEEN 3 AND 128),
	"limit"				bigint NOT NULL CHECK ("limit" >= 1),
	duration_ms			bigint NOT NULL CHECK (duration_ms BETWEEN 1000 AND 2592000000),
	auto_apply			boolean NOT NULL DEFAULT false,
	PRIMARY KEY (key_hash, name)
);
COMMENT ON TABLE unkey.key_ratelimits IS 'per-key: named rate-limit configs of a key';

CREATE TABLE unkey.identity_ratelimits (
	identity_id			text NOT NULL REFERENCES unkey.identities (id) ON DELETE CASCADE,
	name				text NOT NULL CHECK (char_length(name) BETWEEN 3 AND 128),
	"limit"				bigint NOT NULL CHECK ("limit" >= 1),
	duration_ms			bigint NOT NULL CHECK (duration_ms BETWEEN 1000 AND 2592000000),
	auto_apply			boolean NOT NULL DEFAULT false,
	PRIMARY KEY (identity_id, name)
);
COMMENT ON TABLE unkey.identity_ratelimits IS 'reference: named rate-limit configs of an identity, shared by its keys';

CREATE TABLE unkey.ratelimit_namespaces (
	id					text PRIMARY KEY,
	name				text NOT NULL UNIQUE CHECK (char_length(name) BETWEEN 1 AND 512),
	created_at			timestamptz NOT NULL,
	deleted_at			timestamptz
);
COMMENT ON TABLE unkey.ratelimit_namespaces IS 'reference: namespaces of unkey_ratelimit, created on first use';

CREATE TABLE unkey.ratelimit_overrides (
	id					text PRIMARY KEY,
	namespace_id		text NOT NULL REFERENCES unkey.ratelimit_namespaces (id) ON DELETE CASCADE,
	identifier			text NOT NULL CHECK (char_length(identifier) BETWEEN 1 AND 512),
	"limit"				bigint NOT NULL CHECK ("limit" >= 0),
	duration_ms			bigint NOT NULL CHECK (duration_ms BETWEEN 1000 AND 2592000000),
	created_at			timestamptz NOT NULL,
	updated_at			timestamptz,
	UNIQUE (namespace_id, identifier)
);
COMMENT ON TABLE unkey.ratelimit_overrides IS 'reference: per-identifier limits of a namespace; * is a wildcard';

-- pg_dump carries user data; the extension recreates everything else
SELECT pg_catalog.pg_extension_config_dump('unkey.key_ratelimits', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.identity_ratelimits', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.ratelimit_namespaces', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.ratelimit_overrides', '');

CREATE TYPE unkey.ratelimit_result AS (
	success				boolean,
	"limit"				bigint,
	remaining			bigint,
	reset				timestamptz,
	override_id			text
);

CREATE TYPE unkey.ratelimit_info AS (
	entries				bigint,
	max_entries			bigint,
	evicted_expired		bigint,
	evicted_live		bigint,
	eviction_runs		bigint,
	refused_full		bigint
);

CREATE TYPE unkey.override AS (
	override_id			text,
	namespace_id		text,
	identifier			text,
	"limit"				bigint,
	duration			interval
);

CREATE FUNCTION unkey._wildcard_match(pattern text, identifier text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'unkey_wildcard_match' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._wildcard_match(text, text) IS 'private: the override matcher (* matches any run of characters)';

CREATE FUNCTION unkey._ratelimit_batch(namespaces text[], identifiers text[], limits bigint[],
									   durations_ms bigint[], costs bigint[])
RETURNS SETOF unkey.ratelimit_result
	AS 'MODULE_PATHNAME', 'unkey_ratelimit_batch' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION unkey._ratelimit_batch(text[], text[], bigint[], bigint[], bigint[]) IS 'private: check several standalone limits all-or-nothing';

CREATE FUNCTION unkey._check_ratelimit_config(name text, "limit" bigint, duration_ms bigint) RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_check_ratelimit_config' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._check_ratelimit_config(text, bigint, bigint) IS 'private: Unkey''s bounds for a named rate limit, the same checks as in verification (duration_ms NULL: checked elsewhere)';

-- A duration argument as milliseconds, checked: whole ms, 1 second to 30 days
CREATE FUNCTION unkey._duration_ms(duration interval) RETURNS bigint
	AS 'MODULE_PATHNAME', 'unkey_duration_ms' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._duration_ms(interval) IS 'private: validate a duration and convert it to milliseconds';

-- Validate a ratelimits argument: [{"name","limit","duration" (ms),"autoApply"}]
CREATE FUNCTION unkey._check_ratelimits(ratelimits jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rl jsonb;
	names text[] := '{}';
BEGIN
	IF jsonb_typeof(ratelimits) <> 'array' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'ratelimits must be a JSON array'::text,
							 'Pass an array such as [{"name": "requests", "limit": 100, "duration": 60000}].'::text);
	END IF;
	IF jsonb_array_length(ratelimits) > 50 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'ratelimits must have at most 50 entries'::text,
							 'A key or an identity has at most 50 rate limits.'::text);
	END IF;
	FOR rl IN SELECT value FROM jsonb_array_elements(ratelimits) LOOP
		IF jsonb_typeof(rl) <> 'object' OR rl - ARRAY['name', 'limit', 'duration', 'autoApply'] <> '{}' THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, 'each ratelimit must be an object with name, limit, duration and optional autoApply'::text,
								 'Each entry takes "name", "limit", "duration" (ms) and optionally "autoApply", and nothing else.'::text);
		END IF;
		IF (rl ->> 'name') = ANY (names) THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, format('ratelimit name "%s" is given twice', rl ->> 'name'),
								 'Give each limit a name of its own.'::text);
		END IF;
		names := names || (rl ->> 'name');
		IF EXISTS (SELECT FROM unnest(ARRAY[rl -> 'limit', rl -> 'duration']) v
					WHERE CASE WHEN jsonb_typeof(v) = 'number'
							   THEN v::numeric <> trunc(v::numeric)
									OR v::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807
							   ELSE true END) THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, 'ratelimit limit and duration must be integers'::text,
								 'Pass whole numbers; durations are milliseconds.'::text);
		END IF;
		PERFORM unkey._check_ratelimit_config(CASE WHEN jsonb_typeof(rl -> 'name') = 'string' THEN rl ->> 'name' END,
											  (rl ->> 'limit')::bigint, (rl ->> 'duration')::bigint);
		IF rl ? 'autoApply' AND jsonb_typeof(rl -> 'autoApply') <> 'boolean' THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, 'ratelimit autoApply must be a boolean'::text,
								 'Pass true or false, or leave it out.'::text);
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._check_ratelimits(jsonb) IS 'private: validate rate-limit configs';

-- Replace all named rate limits of a key (key_hash) or an identity (identity_id);
-- the other argument is NULL, so the statement on its table matches nothing
CREATE FUNCTION unkey._replace_ratelimits(key_hash bytea, identity_id text, ratelimits jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM unkey._check_ratelimits(ratelimits);
	DELETE FROM unkey.key_ratelimits r WHERE r.key_hash = _replace_ratelimits.key_hash;
	DELETE FROM unkey.identity_ratelimits r WHERE r.identity_id = _replace_ratelimits.identity_id;
	INSERT INTO unkey.key_ratelimits (key_hash, name, "limit", duration_ms, auto_apply)
	SELECT _replace_ratelimits.key_hash, c.name, c."limit", c.duration, coalesce(c."autoApply", false)
	  FROM jsonb_to_recordset(ratelimits) c(name text, "limit" bigint, duration bigint, "autoApply" boolean)
	 WHERE _replace_ratelimits.key_hash IS NOT NULL;
	INSERT INTO unkey.identity_ratelimits (identity_id, name, "limit", duration_ms, auto_apply)
	SELECT _replace_ratelimits.identity_id, c.name, c."limit", c.duration, coalesce(c."autoApply", false)
	  FROM jsonb_to_recordset(ratelimits) c(name text, "limit" bigint, duration bigint, "autoApply" boolean)
	 WHERE _replace_ratelimits.identity_id IS NOT NULL;
END
$$;
COMMENT ON FUNCTION unkey._replace_ratelimits(bytea, text, jsonb) IS 'private: set the whole list of named rate limits of a key or identity';

-- Neither SECURITY DEFINER nor SET search_path: PostgreSQL 15 charges a SET
-- clause as a GUC save and restore on every call, and this function needs
-- neither.  It runs no SQL on its common path (namespaces and overrides are
-- read by index from C, the counters are in shared memory, the event goes to
-- the ring); the SQL of its rare paths (a namespace created on first use, an
-- event written inline) runs in C as the extension's owner with a pinned
-- search_path.  So EXECUTE alone is all a caller needs.
CREATE FUNCTION unkey.unkey_ratelimit(
	namespace	text,
	identifier	text,
	"limit"		bigint,
	duration	interval,
	cost		bigint DEFAULT 1)
RETURNS unkey.ratelimit_result
AS 'MODULE_PATHNAME', 'unkey_ratelimit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION unkey.unkey_ratelimit(text, text, bigint, interval, bigint) IS 'count a request against a sliding-window limit in shared memory';

CREATE FUNCTION unkey.unkey_ratelimit_many(requests jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r			jsonb;
	i			integer := 0;
	nss			text[] := '{}';
	ids			text[] := '{}';
	limits		bigint[] := '{}';
	durations	bigint[] := '{}';
	costs		bigint[] := '{}';
	result		jsonb;
BEGIN
	IF jsonb_typeof(requests) IS DISTINCT FROM 'array'
	   OR jsonb_array_length(requests) NOT BETWEEN 1 AND 100 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'requests must be a JSON array of 1 to 100 limits'::text,
							 'Pass 1 to 100 limit objects in one array.'::text);
	END IF;
	FOR r IN SELECT value FROM jsonb_array_elements(requests) LOOP
		i := i + 1;
		IF jsonb_typeof(r) <> 'object'
		   OR r - ARRAY['namespace', 'identifier', 'limit', 'duration', 'cost'] <> '{}'
		   OR jsonb_typeof(r -> 'namespace') IS DISTINCT FROM 'string'
		   OR jsonb_typeof(r -> 'identifier') IS DISTINCT FROM 'string'
		   OR jsonb_typeof(r -> 'limit') IS DISTINCT FROM 'number'
		   OR jsonb_typeof(r -> 'duration') IS DISTINCT FROM 'number'
		   OR (r ? 'cost' AND jsonb_typeof(r -> 'cost') <> 'number') THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, format('request %s must be an object with namespace, identifier, limit, duration (ms) and optional cost', i),
								 'Each request takes "namespace", "identifier", "limit", "duration" (ms) and optionally "cost".'::text);
		END IF;
		IF (r ->> 'limit')::numeric <> trunc((r ->> 'limit')::numeric)
		   OR (r ->> 'duration')::numeric <> trunc((r ->> 'duration')::numeric)
		   OR coalesce((r ->> 'cost')::numeric, 1) <> trunc(coalesce((r ->> 'cost')::numeric, 1))
		   OR abs((r ->> 'limit')::numeric) > 9223372036854775807
		   OR abs((r ->> 'duration')::numeric) > 9223372036854775807
		   OR abs(coalesce((r ->> 'cost')::numeric, 1)) > 9223372036854775807 THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, format('request %s: limit, duration and cost must be integers', i),
								 'Pass whole numbers; durations are milliseconds.'::text);
		END IF;
		nss := nss || (r ->> 'namespace');
		ids := ids || (r ->> 'identifier');
		limits := limits || (r ->> 'limit')::bigint;
		durations := durations || (r ->> 'duration')::bigint;
		costs := costs || coalesce((r ->> 'cost')::bigint, 1);
	END LOOP;

	SELECT jsonb_build_object(
			   'passed', bool_and(b.success),
			   'limits', jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
					'namespace', nss[n], 'identifier', ids[n], 'limit', b."limit",
					'remaining', b.remaining,
					'reset', (extract(epoch FROM b.reset) * 1000)::bigint,
					'passed', b.success, 'overrideId', b.override_id)) ORDER BY n))
	  INTO result
	  FROM unkey._ratelimit_batch(nss, ids, limits, durations, costs) WITH ORDINALITY AS b(success, "limit", remaining, reset, override_id, n);
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey.unkey_ratelimit_many(jsonb) IS 'check several limits all-or-nothing: [{namespace, identifier, limit, duration (ms), cost}]';

-- Reads shared memory only: neither SECURITY DEFINER nor SET, like unkey_ratelimit
CREATE FUNCTION unkey.unkey_ratelimit_info()
RETURNS unkey.ratelimit_info
AS 'MODULE_PATHNAME', 'unkey_ratelimit_info'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_ratelimit_info() IS 'counters in shared memory, how many were evicted (only expired ones since 0.4.0), and how many requests were refused for want of room';

-- The id of a live namespace given by name or id; PT404 if there is none
CREATE FUNCTION unkey._namespace_id(namespace text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	found_id text;
BEGIN
	SELECT n.id INTO found_id FROM unkey.ratelimit_namespaces n
	 WHERE (n.name = namespace OR n.id = namespace) AND n.deleted_at IS NULL
	 ORDER BY n.name = namespace DESC LIMIT 1;
	IF found_id IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'namespace not found'::text,
							 'Pass the namespace name or its id (rlns_...); unkey_list_namespaces lists them.'::text);
	END IF;
	RETURN found_id;
END
$$;
COMMENT ON FUNCTION unkey._namespace_id(text) IS 'private: resolve a namespace name or id';

CREATE FUNCTION unkey.unkey_list_namespaces()
RETURNS TABLE (namespace_id text, name text, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT n.id, n.name, n.created_at FROM unkey.ratelimit_namespaces n
	 WHERE n.deleted_at IS NULL ORDER BY n.name COLLATE "C";
$$;
COMMENT ON FUNCTION unkey.unkey_list_namespaces() IS 'the live rate-limit namespaces';

CREATE FUNCTION unkey.unkey_delete_namespace(namespace text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ns_id text := unkey._namespace_id(namespace);
BEGIN
	UPDATE unkey.ratelimit_namespaces n SET deleted_at = unkey.now() WHERE n.id = ns_id;
	PERFORM unkey._invalidate('unkey.ratelimit_namespaces'::regclass);
	PERFORM unkey._audit('ratelimitNamespace.delete'::text, format('Deleted namespace %s', namespace),
						 ARRAY['ratelimitNamespace', ns_id]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_namespace(text) IS 'soft-delete a namespace: later calls on it raise PT410';

CREATE FUNCTION unkey.unkey_set_override(namespace text, identifier text, "limit" bigint, duration interval)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ns_id text;
	result text;
BEGIN
	IF identifier IS NULL OR char_length(identifier) NOT BETWEEN 1 AND 512 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'identifier must be 1 to 512 characters'::text,
							 'Pass an identifier of 1 to 512 characters.'::text);
	END IF;
	IF "limit" IS NULL OR "limit" < 0 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'limit must be zero or more'::text,
							 'A limit of 0 denies every request.'::text);
	END IF;
	ns_id := unkey._namespace_id(namespace);
	INSERT INTO unkey.ratelimit_overrides AS o (id, namespace_id, identifier, "limit", duration_ms, created_at)
	VALUES (unkey._new_id('rlor'::text), ns_id, identifier, "limit", unkey._duration_ms(duration), unkey.now())
	ON CONFLICT ON CONSTRAINT ratelimit_overrides_namespace_id_identifier_key DO UPDATE
		SET "limit" = EXCLUDED."limit", duration_ms = EXCLUDED.duration_ms, updated_at = EXCLUDED.created_at
	RETURNING o.id INTO result;
	PERFORM unkey._invalidate('unkey.ratelimit_overrides'::regclass);
	PERFORM unkey._audit('ratelimit.set_override'::text, format('Set override %s in namespace %s', result, namespace),
						 ARRAY['ratelimitNamespace', ns_id, 'ratelimitOverride', result]);
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_override(text, text, bigint, interval) IS 'set the limit of an identifier or pattern in a namespace (upsert); limit 0 always denies';

CREATE FUNCTION unkey.unkey_get_override(namespace text, identifier text)
RETURNS unkey.override
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result unkey.override;
BEGIN
	SELECT o.id, o.namespace_id, o.identifier, o."limit", o.duration_ms * interval '1 millisecond'
	  INTO result
	  FROM unkey.ratelimit_overrides o
	 WHERE o.namespace_id = unkey._namespace_id(namespace) AND o.identifier = unkey_get_override.identifier;
	IF NOT FOUND THEN
		PERFORM unkey._raise('not_found'::text, 'override not found'::text,
							 'unkey_list_overrides(namespace) lists the overrides of a namespace.'::text);
	END IF;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey.unkey_get_override(text, text) IS 'the override set for exactly this identifier or pattern';

CREATE FUNCTION unkey.unkey_list_overrides(namespace text)
RETURNS SETOF unkey.override
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY
	SELECT o.id, o.namespace_id, o.identifier, o."limit", o.duration_ms * interval '1 millisecond'
	  FROM unkey.ratelimit_overrides o
	 WHERE o.namespace_id = unkey._namespace_id(namespace)
	 ORDER BY o.identifier COLLATE "C";
END
$$;
COMMENT ON FUNCTION unkey.unkey_list_overrides(text) IS 'every override of a namespace';

CREATE FUNCTION unkey.unkey_delete_override(namespace text, identifier text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	gone text;
BEGIN
	DELETE FROM unkey.ratelimit_overrides o
	 WHERE o.namespace_id = unkey._namespace_id(namespace) AND o.identifier = unkey_delete_override.identifier
	RETURNING o.id INTO gone;
	IF gone IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'override not found'::text,
							 'unkey_list_overrides(namespace) lists the overrides of a namespace.'::text);
	END IF;
	PERFORM unkey._invalidate('unkey.ratelimit_overrides'::regclass);
	PERFORM unkey._audit('ratelimit.delete_override'::text, format('Deleted override %s in namespace %s', gone, namespace),
						 ARRAY['ratelimitNamespace', unkey._namespace_id(namespace), 'ratelimitOverride', gone]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_override(text, text) IS 'remove an override';

-- The named rate limits of a key (key_hash) or an identity (identity_id), as
-- JSON; the other argument is NULL, so its half of the union reads nothing
CREATE FUNCTION unkey._get_ratelimits(key_hash bytea, identity_id text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- PL/pgSQL, not SQL: Citus plans a parameter of a SQL function over a distributed table as it cannot
	RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('name', r.name, 'limit', r."limit", 'duration', r.duration_ms,
														 'autoApply', r.auto_apply) ORDER BY r.name COLLATE "C"), '[]')
			  FROM (SELECT k.name, k."limit", k.duration_ms, k.auto_apply FROM unkey.key_ratelimits k
					 WHERE k.key_hash = _get_ratelimits.key_hash
					UNION ALL
					SELECT i.name, i."limit", i.duration_ms, i.auto_apply FROM unkey.identity_ratelimits i
					 WHERE i.identity_id = _get_ratelimits.identity_id) r);
END
$$;
COMMENT ON FUNCTION unkey._get_ratelimits(bytea, text) IS 'private: the named rate limits of a key or identity, as JSON';

-- Set or delete a named rate limit of a key (by id) or an identity (by id or
-- external id), and audit it: the one mechanism behind the four functions
-- that change key and identity limits
CREATE FUNCTION unkey._change_ratelimit(action text, owner_type text, owner text, name text,
										"limit" bigint, duration interval, auto_apply boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h bytea;
	iid text;
	target text := owner;
	n bigint;
	m bigint;
BEGIN
	IF owner_type = 'key' THEN
		h := (unkey._lock_key(owner)).key_hash;
	ELSE
		iid := unkey._identity_id(owner, true);
		target := iid;
	END IF;
	IF action = 'delete' THEN
		DELETE FROM unkey.key_ratelimits r WHERE r.key_hash = h AND r.name = _change_ratelimit.name;
		GET DIAGNOSTICS n = ROW_COUNT;
		DELETE FROM unkey.identity_ratelimits r WHERE r.identity_id = iid AND r.name = _change_ratelimit.name;
		GET DIAGNOSTICS m = ROW_COUNT;
		IF n + m = 0 THEN
			PERFORM unkey._raise('not_found'::text, 'ratelimit not found'::text,
								 format('The %s has no rate limit named "%s"; unkey_get_%s_ratelimits lists its limits.',
										owner_type, name, owner_type));
		END IF;
	ELSE
		PERFORM unkey._check_ratelimit_config(name, "limit", NULL::bigint);
		IF (SELECT count(*) FROM unkey.key_ratelimits r WHERE r.key_hash = h AND r.name <> _change_ratelimit.name)
		   + (SELECT count(*) FROM unkey.identity_ratelimits r
			   WHERE r.identity_id = iid AND r.name <> _change_ratelimit.name) >= 50 THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, 'at most 50 rate limits per key or identity'::text,
								 'Delete a rate limit first, or change one that exists by its name.'::text);
		END IF;
		INSERT INTO unkey.key_ratelimits AS r (key_hash, name, "limit", duration_ms, auto_apply)
		SELECT h, _change_ratelimit.name, _change_ratelimit."limit", unkey._duration_ms(duration),
			   coalesce(auto_apply, false)
		 WHERE h IS NOT NULL
		ON CONFLICT ON CONSTRAINT key_ratelimits_pkey DO UPDATE
		   SET "limit" = EXCLUDED."limit", duration_ms = EXCLUDED.duration_ms, auto_apply = EXCLUDED.auto_apply;
		INSERT INTO unkey.identity_ratelimits AS r (identity_id, name, "limit", duration_ms, auto_apply)
		SELECT iid, _change_ratelimit.name, _change_ratelimit."limit", unkey._duration_ms(duration),
			   coalesce(auto_apply, false)
		 WHERE iid IS NOT NULL
		ON CONFLICT ON CONSTRAINT identity_ratelimits_pkey DO UPDATE
		   SET "limit" = EXCLUDED."limit", duration_ms = EXCLUDED.duration_ms, auto_apply = EXCLUDED.auto_apply;
	END IF;
	PERFORM unkey._audit(owner_type || '.update',
						 format('%s rate limit %s of %s %s', CASE action WHEN 'delete' THEN 'Deleted' ELSE 'Set' END,
								name, owner_type, target),
						 ARRAY[owner_type, target]);
END
$$;
COMMENT ON FUNCTION unkey._change_ratelimit(text, text, text, text, bigint, interval, boolean) IS 'private: set or delete a named rate limit of a key or identity';

-- unkey_set_, unkey_get_ and unkey_delete_ key_ratelimit(s) and
-- identity_ratelimit(s): one template each, for keys and for identities
DO $$
DECLARE
	o text[];
BEGIN
	-- owner type, its parameter, what that is, and the owner as _get_ratelimits takes it
	FOREACH o SLICE 1 IN ARRAY ARRAY[
		['key', 'key_id', 'a key', 'unkey._key_hash_of(key_id), NULL::text'],
		['identity', 'identity', 'an identity (by id or external id), shared by its keys',
		 'NULL::bytea, unkey._identity_id(identity, false)']] LOOP
		EXECUTE format($f$
CREATE FUNCTION unkey.unkey_set_%1$s_ratelimit(%2$s text, name text, "limit" bigint, duration interval,
											 auto_apply boolean DEFAULT false)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $b$ SELECT unkey._change_ratelimit('set'::text, %1$L::text, %2$s, name, "limit", duration, auto_apply) $b$;
COMMENT ON FUNCTION unkey.unkey_set_%1$s_ratelimit(text, text, bigint, interval, boolean) IS %5$L;

CREATE FUNCTION unkey.unkey_get_%1$s_ratelimits(%2$s text)
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $b$ SELECT unkey._get_ratelimits(%4$s) $b$;
COMMENT ON FUNCTION unkey.unkey_get_%1$s_ratelimits(text) IS %6$L;

CREATE FUNCTION unkey.unkey_delete_%1$s_ratelimit(%2$s text, name text)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $b$ SELECT unkey._change_ratelimit('delete'::text, %1$L::text, %2$s, name, NULL::bigint, NULL::interval, NULL::boolean) $b$;
COMMENT ON FUNCTION unkey.unkey_delete_%1$s_ratelimit(text, text) IS %7$L$f$,
			o[1], o[2], o[3], o[4],
			format('add or change a named rate limit of %s', o[3]),
			format('the named rate limits of %s, as JSON (durations in ms)', o[3]),
			format('remove a named rate limit of %s', o[3]));
	END LOOP;
END
$$;
