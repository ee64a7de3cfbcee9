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
	eviction_runs		bigint
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

-- A duration argument as milliseconds, validated: 1 second to 30 days, whole ms
CREATE FUNCTION unkey._duration_ms(duration interval) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ms numeric := extract(epoch FROM duration) * 1000;
BEGIN
	IF duration IS NULL OR ms <> trunc(ms) OR ms NOT BETWEEN 1000 AND 2592000000 THEN
		RAISE EXCEPTION 'duration must be between 1 second and 30 days, in whole milliseconds'
			USING ERRCODE = '22023';
	END IF;
	RETURN ms::bigint;
END
$$;
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
		RAISE EXCEPTION 'ratelimits must be a JSON array' USING ERRCODE = '22023';
	END IF;
	IF jsonb_array_length(ratelimits) > 50 THEN
		RAISE EXCEPTION 'ratelimits must have at most 50 entries' USING ERRCODE = '22023';
	END IF;
	FOR rl IN SELECT value FROM jsonb_array_elements(ratelimits) LOOP
		IF jsonb_typeof(rl) <> 'object' OR rl - ARRAY['name', 'limit', 'duration', 'autoApply'] <> '{}' THEN
			RAISE EXCEPTION 'each ratelimit must be an object with name, limit, duration and optional autoApply'
				USING ERRCODE = '22023';
		END IF;
		IF jsonb_typeof(rl -> 'name') IS DISTINCT FROM 'string'
		   OR char_length(rl ->> 'name') NOT BETWEEN 3 AND 128 THEN
			RAISE EXCEPTION 'ratelimit name must be 3 to 128 characters' USING ERRCODE = '22023';
		END IF;
		IF (rl ->> 'name') = ANY (names) THEN
			RAISE EXCEPTION 'ratelimit name "%" is given twice', rl ->> 'name' USING ERRCODE = '22023';
		END IF;
		names := names || (rl ->> 'name');
		IF jsonb_typeof(rl -> 'limit') IS DISTINCT FROM 'number'
		   OR (rl ->> 'limit')::numeric <> trunc((rl ->> 'limit')::numeric)
		   OR (rl ->> 'limit')::numeric NOT BETWEEN 1 AND 9223372036854775807 THEN
			RAISE EXCEPTION 'ratelimit limit must be an integer of at least 1' USING ERRCODE = '22023';
		END IF;
		IF jsonb_typeof(rl -> 'duration') IS DISTINCT FROM 'number'
		   OR (rl ->> 'duration')::numeric <> trunc((rl ->> 'duration')::numeric)
		   OR (rl ->> 'duration')::numeric NOT BETWEEN 1000 AND 2592000000 THEN
			RAISE EXCEPTION 'ratelimit duration must be an integer number of milliseconds from 1000 to 2592000000'
				USING ERRCODE = '22023';
		END IF;
		IF rl ? 'autoApply' AND jsonb_typeof(rl -> 'autoApply') <> 'boolean' THEN
			RAISE EXCEPTION 'ratelimit autoApply must be a boolean' USING ERRCODE = '22023';
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._check_ratelimits(jsonb) IS 'private: validate rate-limit configs';

-- Replace all named rate limits of a key or identity; owner_tab is a fixed table name, never user input
CREATE FUNCTION unkey._replace_ratelimits(owner_tab text, owner_col text, owner anyelement, ratelimits jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM unkey._check_ratelimits(ratelimits);
	EXECUTE format('DELETE FROM unkey.%I r WHERE r.%I = $1', owner_tab, owner_col) USING owner;
	EXECUTE format('INSERT INTO unkey.%I (%I, name, "limit", duration_ms, auto_apply)'
				   ' SELECT $1, rl ->> ''name'', (rl ->> ''limit'')::bigint, (rl ->> ''duration'')::bigint,'
				   ' coalesce((rl ->> ''autoApply'')::boolean, false) FROM jsonb_array_elements($2) rl',
				   owner_tab, owner_col)
	USING owner, ratelimits;
END
$$;
COMMENT ON FUNCTION unkey._replace_ratelimits(text, text, anyelement, jsonb) IS 'private: set the whole list of named rate limits of a key or identity';

CREATE FUNCTION unkey.unkey_ratelimit(
	namespace	text,
	identifier	text,
	"limit"		bigint,
	duration	interval,
	cost		bigint DEFAULT 1)
RETURNS unkey.ratelimit_result
AS 'MODULE_PATHNAME', 'unkey_ratelimit'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
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
		RAISE EXCEPTION 'requests must be a JSON array of 1 to 100 limits' USING ERRCODE = '22023';
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
			RAISE EXCEPTION 'request % must be an object with namespace, identifier, limit, duration (ms) and optional cost', i
				USING ERRCODE = '22023';
		END IF;
		IF (r ->> 'limit')::numeric <> trunc((r ->> 'limit')::numeric)
		   OR (r ->> 'duration')::numeric <> trunc((r ->> 'duration')::numeric)
		   OR coalesce((r ->> 'cost')::numeric, 1) <> trunc(coalesce((r ->> 'cost')::numeric, 1))
		   OR abs((r ->> 'limit')::numeric) > 9223372036854775807
		   OR abs((r ->> 'duration')::numeric) > 9223372036854775807
		   OR abs(coalesce((r ->> 'cost')::numeric, 1)) > 9223372036854775807 THEN
			RAISE EXCEPTION 'request %: limit, duration and cost must be integers', i USING ERRCODE = '22023';
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

CREATE FUNCTION unkey.unkey_ratelimit_info()
RETURNS unkey.ratelimit_info
AS 'MODULE_PATHNAME', 'unkey_ratelimit_info'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION unkey.unkey_ratelimit_info() IS 'counters in shared memory, and how many were evicted';

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
		RAISE EXCEPTION 'namespace not found' USING ERRCODE = 'PT404';
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
	PERFORM unkey._audit('ratelimitNamespace.delete', format('Deleted namespace %s', namespace),
						 'ratelimitNamespace', ns_id);
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
		RAISE EXCEPTION 'identifier must be 1 to 512 characters' USING ERRCODE = '22023';
	END IF;
	IF "limit" IS NULL OR "limit" < 0 THEN
		RAISE EXCEPTION 'limit must be zero or more' USING ERRCODE = '22023';
	END IF;
	ns_id := unkey._namespace_id(namespace);
	INSERT INTO unkey.ratelimit_overrides AS o (id, namespace_id, identifier, "limit", duration_ms, created_at)
	VALUES (unkey._new_id('rlor'), ns_id, identifier, "limit", unkey._duration_ms(duration), unkey.now())
	ON CONFLICT ON CONSTRAINT ratelimit_overrides_namespace_id_identifier_key DO UPDATE
		SET "limit" = EXCLUDED."limit", duration_ms = EXCLUDED.duration_ms, updated_at = EXCLUDED.created_at
	RETURNING o.id INTO result;
	PERFORM unkey._invalidate('unkey.ratelimit_overrides'::regclass);
	PERFORM unkey._audit('ratelimit.set_override', format('Set override %s in namespace %s', result, namespace),
						 'ratelimitNamespace', ns_id, 'ratelimitOverride', result);
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
		RAISE EXCEPTION 'override not found' USING ERRCODE = 'PT404';
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
		RAISE EXCEPTION 'override not found' USING ERRCODE = 'PT404';
	END IF;
	PERFORM unkey._invalidate('unkey.ratelimit_overrides'::regclass);
	PERFORM unkey._audit('ratelimit.delete_override', format('Deleted override %s in namespace %s', gone, namespace),
						 'ratelimitNamespace', unkey._namespace_id(namespace), 'ratelimitOverride', gone);
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_override(text, text) IS 'remove an override';

-- Validate one named rate-limit config of a key or identity
CREATE FUNCTION unkey._check_ratelimit(name text, "limit" bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR char_length(name) NOT BETWEEN 3 AND 128 THEN
		RAISE EXCEPTION 'ratelimit name must be 3 to 128 characters' USING ERRCODE = '22023';
	END IF;
	IF "limit" IS NULL OR "limit" < 1 THEN
		RAISE EXCEPTION 'ratelimit limit must be at least 1' USING ERRCODE = '22023';
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._check_ratelimit(text, bigint) IS 'private: validate a named rate-limit config';

-- Key and identity configs share these three; owner_tab is a fixed table name, never user input
CREATE FUNCTION unkey._set_ratelimit(owner_tab text, owner_col text, owner anyelement, name text,
									 "limit" bigint, duration interval, auto_apply boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	others bigint;
BEGIN
	PERFORM unkey._check_ratelimit(name, "limit");
	EXECUTE format('SELECT count(*) FROM unkey.%I r WHERE r.%I = $1 AND r.name <> $2', owner_tab, owner_col)
	INTO others USING owner, name;
	IF others >= 50 THEN
		RAISE EXCEPTION 'at most 50 rate limits per key or identity' USING ERRCODE = '22023';
	END IF;
	EXECUTE format('INSERT INTO unkey.%I AS r (%I, name, "limit", duration_ms, auto_apply)'
				   ' VALUES ($1, $2, $3, $4, $5) ON CONFLICT ON CONSTRAINT %I DO UPDATE'
				   ' SET "limit" = EXCLUDED."limit", duration_ms = EXCLUDED.duration_ms,'
				   ' auto_apply = EXCLUDED.auto_apply', owner_tab, owner_col, owner_tab || '_pkey')
	USING owner, name, "limit", unkey._duration_ms(duration), coalesce(auto_apply, false);
END
$$;
COMMENT ON FUNCTION unkey._set_ratelimit(text, text, anyelement, text, bigint, interval, boolean) IS 'private: upsert a named rate limit of a key or identity';

CREATE FUNCTION unkey._get_ratelimits(owner_tab text, owner_col text, owner anyelement)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result jsonb;
BEGIN
	EXECUTE format('SELECT coalesce(jsonb_agg(jsonb_build_object(''name'', r.name, ''limit'', r."limit",'
				   ' ''duration'', r.duration_ms, ''autoApply'', r.auto_apply) ORDER BY r.name COLLATE "C"), ''[]'')'
				   ' FROM unkey.%I r WHERE r.%I = $1', owner_tab, owner_col)
	INTO result USING owner;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey._get_ratelimits(text, text, anyelement) IS 'private: the named rate limits of a key or identity, as JSON';

CREATE FUNCTION unkey._delete_ratelimit(owner_tab text, owner_col text, owner anyelement, name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	deleted integer;
BEGIN
	EXECUTE format('DELETE FROM unkey.%I r WHERE r.%I = $1 AND r.name = $2', owner_tab, owner_col)
	USING owner, name;
	GET DIAGNOSTICS deleted = ROW_COUNT;
	IF deleted = 0 THEN
		RAISE EXCEPTION 'ratelimit not found' USING ERRCODE = 'PT404';
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._delete_ratelimit(text, text, anyelement, text) IS 'private: remove a named rate limit of a key or identity';

CREATE FUNCTION unkey.unkey_set_key_ratelimit(key_id text, name text, "limit" bigint, duration interval,
											  auto_apply boolean DEFAULT false)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._set_ratelimit('key_ratelimits', 'key_hash', (unkey._lock_key(key_id)).key_hash, name, "limit", duration, auto_apply); SELECT unkey._audit('key.update', format('Set rate limit %s of key %s', name, key_id), 'key', key_id) $$;
COMMENT ON FUNCTION unkey.unkey_set_key_ratelimit(text, text, bigint, interval, boolean) IS 'add or change a named rate limit of a key';

CREATE FUNCTION unkey.unkey_get_key_ratelimits(key_id text)
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._get_ratelimits('key_ratelimits', 'key_hash', unkey._key_hash_of(key_id)) $$;
COMMENT ON FUNCTION unkey.unkey_get_key_ratelimits(text) IS 'the named rate limits of a key, as JSON (durations in ms)';

CREATE FUNCTION unkey.unkey_delete_key_ratelimit(key_id text, name text)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._delete_ratelimit('key_ratelimits', 'key_hash', (unkey._lock_key(key_id)).key_hash, name); SELECT unkey._audit('key.update', format('Deleted rate limit %s of key %s', name, key_id), 'key', key_id) $$;
COMMENT ON FUNCTION unkey.unkey_delete_key_ratelimit(text, text) IS 'remove a named rate limit of a key';

CREATE FUNCTION unkey.unkey_set_identity_ratelimit(identity text, name text, "limit" bigint, duration interval,
												   auto_apply boolean DEFAULT false)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT unkey._set_ratelimit('identity_ratelimits', 'identity_id', i.id, name, "limit", duration, auto_apply),
		   unkey._audit('identity.update', format('Set rate limit %s of identity %s', name, i.id), 'identity', i.id)
	  FROM (SELECT unkey._identity_id(identity, lock => true) AS id) i
$$;
COMMENT ON FUNCTION unkey.unkey_set_identity_ratelimit(text, text, bigint, interval, boolean) IS 'add or change a named rate limit of an identity (by id or external id), shared by its keys';

CREATE FUNCTION unkey.unkey_get_identity_ratelimits(identity text)
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._get_ratelimits('identity_ratelimits', 'identity_id', unkey._identity_id(identity)) $$;
COMMENT ON FUNCTION unkey.unkey_get_identity_ratelimits(text) IS 'the named rate limits of an identity, as JSON (durations in ms)';

CREATE FUNCTION unkey.unkey_delete_identity_ratelimit(identity text, name text)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT unkey._delete_ratelimit('identity_ratelimits', 'identity_id', i.id, name),
		   unkey._audit('identity.update', format('Deleted rate limit %s of identity %s', name, i.id), 'identity', i.id)
	  FROM (SELECT unkey._identity_id(identity, lock => true) AS id) i
$$;
COMMENT ON FUNCTION unkey.unkey_delete_identity_ratelimit(text, text) IS 'remove a named rate limit of an identity';
