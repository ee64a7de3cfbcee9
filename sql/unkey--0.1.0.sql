/* unkey--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION unkey" to load this file. \quit

-- Nothing in schema unkey is usable by PUBLIC: applications get exactly the
-- grants the README shows.
REVOKE ALL ON SCHEMA unkey FROM PUBLIC;

----------------------------------------------------------------------------
-- tables
----------------------------------------------------------------------------

CREATE TABLE unkey.apis (
	id					text PRIMARY KEY,
	name				text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
	ip_whitelist		inet[] CHECK (cardinality(ip_whitelist) > 0),
	delete_protection	boolean NOT NULL DEFAULT false,
	default_prefix		text CHECK (default_prefix ~ '^[A-Za-z0-9_]{1,16}$'),
	default_byte_length integer NOT NULL DEFAULT 16
		CHECK (default_byte_length BETWEEN 16 AND 255),
	created_at			timestamptz NOT NULL,
	updated_at			timestamptz,
	deleted_at			timestamptz
);
COMMENT ON TABLE unkey.apis IS 'reference: an API, the namespace that owns keys';

CREATE TABLE unkey.identities (
	id					text PRIMARY KEY,
	external_id			text NOT NULL UNIQUE
		CHECK (external_id ~ '^[A-Za-z0-9_.-]{1,255}$'),
	meta				jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(meta) = 'object'),
	created_at			timestamptz NOT NULL,
	updated_at			timestamptz
);
COMMENT ON TABLE unkey.identities IS 'reference: a customer of the application, shared by its keys';

CREATE TABLE unkey.keys (
	key_hash			bytea PRIMARY KEY CHECK (octet_length(key_hash) = 32),
	id					text NOT NULL,
	api_id				text NOT NULL REFERENCES unkey.apis (id),
	start				text NOT NULL,
	prefix				text CHECK (prefix ~ '^[A-Za-z0-9_]{1,16}$'),
	name				text CHECK (char_length(name) BETWEEN 1 AND 255),
	identity_id			text REFERENCES unkey.identities (id),
	meta				jsonb CHECK (jsonb_typeof(meta) = 'object'),
	expires				timestamptz,
	enabled				boolean NOT NULL DEFAULT true,
	remaining			bigint CHECK (remaining >= 0),
	refill_interval		text CHECK (refill_interval IN ('daily', 'monthly')),
	refill_amount		bigint CHECK (refill_amount >= 1),
	refill_day			integer CHECK (refill_day BETWEEN 1 AND 31),
	last_refill_at		timestamptz,
	environment			text,
	created_at			timestamptz NOT NULL,
	updated_at			timestamptz,
	deleted_at			timestamptz,
	-- a refill needs an interval, an amount and a balance to refill
	CONSTRAINT keys_refill_complete CHECK ((refill_interval IS NULL) = (refill_amount IS NULL)),
	CONSTRAINT keys_refill_needs_credits CHECK (refill_amount IS NULL OR remaining IS NOT NULL),
	CONSTRAINT keys_refill_day_monthly CHECK ((refill_day IS NOT NULL) = (refill_interval IS NOT DISTINCT FROM 'monthly')),
	CONSTRAINT keys_refill_tracked CHECK (refill_amount IS NULL OR last_refill_at IS NOT NULL)
);
CREATE INDEX keys_id_idx ON unkey.keys (id);
CREATE INDEX keys_api_id_idx ON unkey.keys (api_id);
CREATE INDEX keys_identity_id_idx ON unkey.keys (identity_id);
COMMENT ON TABLE unkey.keys IS 'per-key: one row per key; only the SHA-256 of the key is stored';

CREATE TABLE unkey.key_ratelimits (
	key_hash			bytea NOT NULL REFERENCES unkey.keys (key_hash) ON DELETE CASCADE,
	name				text NOT NULL CHECK (char_length(name) BETWEEN 3 AND 128),
	"limit"				bigint NOT NULL CHECK ("limit" >= 1),
	duration_ms			bigint NOT NULL CHECK (duration_ms BETWEEN 1000 AND 2592000000),
	auto_apply			boolean NOT NULL DEFAULT false,
	PRIMARY KEY (key_hash, name)
);
COMMENT ON TABLE unkey.key_ratelimits IS 'per-key: named rate-limit configs of a key';

CREATE TABLE unkey.permissions (
	id					text PRIMARY KEY,
	name				text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 512),
	slug				text NOT NULL UNIQUE
		CHECK (slug ~ '^[A-Za-z0-9_:.*-]{1,128}$'),
	description			text,
	created_at			timestamptz NOT NULL
);
COMMENT ON TABLE unkey.permissions IS 'reference: a permission, matched by its slug';

CREATE TABLE unkey.roles (
	id					text PRIMARY KEY,
	name				text NOT NULL UNIQUE CHECK (char_length(name) BETWEEN 1 AND 128),
	description			text,
	created_at			timestamptz NOT NULL
);
COMMENT ON TABLE unkey.roles IS 'reference: a named set of permissions';

CREATE TABLE unkey.role_permissions (
	role_id				text NOT NULL REFERENCES unkey.roles (id) ON DELETE CASCADE,
	permission_id		text NOT NULL REFERENCES unkey.permissions (id) ON DELETE CASCADE,
	PRIMARY KEY (role_id, permission_id)
);
COMMENT ON TABLE unkey.role_permissions IS 'reference: the permissions of a role';

CREATE TABLE unkey.key_permissions (
	key_hash			bytea NOT NULL REFERENCES unkey.keys (key_hash) ON DELETE CASCADE,
	permission_id		text NOT NULL REFERENCES unkey.permissions (id) ON DELETE CASCADE,
	PRIMARY KEY (key_hash, permission_id)
);
COMMENT ON TABLE unkey.key_permissions IS 'per-key: permissions granted to a key directly';

CREATE TABLE unkey.key_roles (
	key_hash			bytea NOT NULL REFERENCES unkey.keys (key_hash) ON DELETE CASCADE,
	role_id				text NOT NULL REFERENCES unkey.roles (id) ON DELETE CASCADE,
	PRIMARY KEY (key_hash, role_id)
);
COMMENT ON TABLE unkey.key_roles IS 'per-key: roles held by a key';

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

CREATE TABLE unkey.verification_events (
	time				timestamptz NOT NULL,
	key_hash			bytea NOT NULL CHECK (octet_length(key_hash) = 32),
	key_id				text,
	api_id				text,
	identity_id			text,
	outcome				text NOT NULL,
	spent_credits		bigint NOT NULL DEFAULT 0,
	tags				text[]
);
COMMENT ON TABLE unkey.verification_events IS 'per-key: one row per verification; NOT_FOUND rows carry the hash of the presented key';

-- pg_dump carries user data; the extension recreates everything else
SELECT pg_catalog.pg_extension_config_dump('unkey.apis', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.identities', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.keys', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.key_ratelimits', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.permissions', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.roles', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.role_permissions', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.key_permissions', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.key_roles', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.verification_events', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.identity_ratelimits', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.ratelimit_namespaces', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.ratelimit_overrides', '');

----------------------------------------------------------------------------
-- result types
----------------------------------------------------------------------------

CREATE TYPE unkey.created_key AS (
	key_id				text,
	key					text
);

CREATE TYPE unkey.verification AS (
	valid				boolean,
	code				text,
	key_id				text,
	api_id				text,
	name				text,
	external_id			text,
	identity_id			text,
	meta				jsonb,
	expires				timestamptz,
	enabled				boolean,
	credits				bigint,
	permissions			text[],
	roles				text[],
	ratelimits			jsonb
);

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

CREATE TYPE unkey.api AS (
	api_id				text,
	name				text,
	ip_whitelist		text[],
	delete_protection	boolean,
	default_prefix		text,
	default_byte_length integer,
	created_at			timestamptz
);

----------------------------------------------------------------------------
-- C helpers (private: only the extension's own functions call them)
----------------------------------------------------------------------------

CREATE FUNCTION unkey.now() RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'unkey_now' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION unkey.now() IS 'the clock used for expiry and refill (unkey.test_now pins it in tests)';

CREATE FUNCTION unkey._generate_key(prefix text, byte_length integer) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_generate_key' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._generate_key(text, integer) IS 'private: a new random key';

CREATE FUNCTION unkey._new_id(prefix text) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_new_id' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._new_id(text) IS 'private: a new random id with an Unkey-style prefix';

CREATE FUNCTION unkey._key_hash(key text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_key_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._key_hash(text) IS 'private: the 32-byte SHA-256 stored for a key';

CREATE FUNCTION unkey._refill_due(last_refill_at timestamptz, refill_day integer, now timestamptz) RETURNS boolean
	AS 'MODULE_PATHNAME', 'unkey_refill_due' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._refill_due(timestamptz, integer, timestamptz) IS 'private: has a refill boundary passed since last_refill_at (refill_day NULL = daily)';

CREATE FUNCTION unkey._credits_now(remaining bigint, refill_amount bigint, refill_day integer,
								   last_refill_at timestamptz, now timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'unkey_credits_now' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._credits_now(bigint, bigint, integer, timestamptz, timestamptz) IS 'private: remaining credits after any refill that is due';

CREATE FUNCTION unkey._wildcard_match(pattern text, identifier text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'unkey_wildcard_match' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._wildcard_match(text, text) IS 'private: the override matcher (* matches any run of characters)';

CREATE FUNCTION unkey._invalidate(rel regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_invalidate' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._invalidate(regclass) IS 'private: at commit, make every backend drop its caches of this table';

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

----------------------------------------------------------------------------
-- public API: hashing
----------------------------------------------------------------------------

CREATE FUNCTION unkey.unkey_hash_key(key text) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_hash_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey.unkey_hash_key(text) IS 'base64 SHA-256 of a key, as Unkey stores it';

----------------------------------------------------------------------------
-- public API: permission queries
----------------------------------------------------------------------------

CREATE FUNCTION unkey.unkey_permissions_match(query text, permissions text[]) RETURNS boolean
	AS 'MODULE_PATHNAME', 'unkey_permissions_match' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey.unkey_permissions_match(text, text[]) IS 'does a permission query hold for these granted permissions (42601 if malformed)';

CREATE FUNCTION unkey.unkey_normalize_permission_query(query text) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_normalize_permission_query' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey.unkey_normalize_permission_query(text) IS 'the canonical, fully parenthesised form of a permission query';

----------------------------------------------------------------------------
-- public API: roles and permissions
----------------------------------------------------------------------------

CREATE TYPE unkey.permission AS (
	permission_id	text,
	name			text,
	slug			text,
	description		text,
	created_at		timestamptz
);

CREATE TYPE unkey.role AS (
	role_id			text,
	name			text,
	description		text,
	permissions		text[],
	created_at		timestamptz
);

-- The ids of these permission slugs, creating the missing ones (validated first)
CREATE FUNCTION unkey._permission_ids(slugs text[])
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad text;
	result text[];
BEGIN
	IF array_position(slugs, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'permissions must not contain null' USING ERRCODE = '22023';
	END IF;
	SELECT p INTO bad FROM unnest(slugs) p WHERE p !~ '^[A-Za-z0-9_:.*-]{1,128}$' LIMIT 1;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'permission "%" must be 1 to 128 characters of [A-Za-z0-9_:.*-]', bad
			USING ERRCODE = '22023';
	END IF;
	-- a concurrent creator of the same slug wins harmlessly
	INSERT INTO unkey.permissions (id, name, slug, created_at)
	SELECT unkey._new_id('perm'), p, p, unkey.now() FROM (SELECT DISTINCT p FROM unnest(slugs) p) s
	ON CONFLICT (slug) DO NOTHING;
	SELECT coalesce(array_agg(x.id), '{}') INTO result FROM unkey.permissions x WHERE x.slug = ANY (slugs);
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey._permission_ids(text[]) IS 'private: validate permission slugs, create the missing ones, return their ids';

-- The ids of these role names; PT404 for a role that does not exist
CREATE FUNCTION unkey._role_ids(names text[])
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	missing text;
	result text[];
BEGIN
	IF array_position(names, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'roles must not contain null' USING ERRCODE = '22023';
	END IF;
	SELECT r INTO missing FROM unnest(names) r
	 WHERE NOT EXISTS (SELECT FROM unkey.roles x WHERE x.name = r) LIMIT 1;
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'role "%" not found', missing USING ERRCODE = 'PT404';
	END IF;
	SELECT coalesce(array_agg(x.id), '{}') INTO result FROM unkey.roles x WHERE x.name = ANY (names);
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey._role_ids(text[]) IS 'private: resolve role names, PT404 if one is missing';

CREATE FUNCTION unkey.unkey_create_permission(name text, slug text, description text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_id text := unkey._new_id('perm');
BEGIN
	IF name IS NULL OR char_length(name) NOT BETWEEN 1 AND 512 THEN
		RAISE EXCEPTION 'name must be 1 to 512 characters' USING ERRCODE = '22023';
	END IF;
	IF slug IS NULL OR slug !~ '^[A-Za-z0-9_:.*-]{1,128}$' THEN
		RAISE EXCEPTION 'slug must be 1 to 128 characters of [A-Za-z0-9_:.*-]' USING ERRCODE = '22023';
	END IF;
	IF char_length(description) > 512 THEN
		RAISE EXCEPTION 'description must be at most 512 characters' USING ERRCODE = '22023';
	END IF;
	INSERT INTO unkey.permissions (id, name, slug, description, created_at)
	VALUES (new_id, name, slug, description, unkey.now())
	ON CONFLICT ON CONSTRAINT permissions_slug_key DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'a permission with slug "%" already exists', slug USING ERRCODE = '23505';
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_permission(text, text, text) IS 'create a permission; 23505 if the slug exists';

CREATE FUNCTION unkey.unkey_get_permission(permission text)
RETURNS unkey.permission
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result unkey.permission;
BEGIN
	SELECT p.id, p.name, p.slug, p.description, p.created_at INTO result
	  FROM unkey.permissions p WHERE p.id = permission OR p.slug = permission
	 ORDER BY p.id = permission DESC LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'permission not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey.unkey_get_permission(text) IS 'a permission, by id or slug';

CREATE FUNCTION unkey.unkey_list_permissions()
RETURNS SETOF unkey.permission
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT p.id, p.name, p.slug, p.description, p.created_at
	  FROM unkey.permissions p ORDER BY p.slug COLLATE "C";
$$;
COMMENT ON FUNCTION unkey.unkey_list_permissions() IS 'every permission, by slug';

CREATE FUNCTION unkey.unkey_delete_permission(permission text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- its links to roles and keys go with it
	DELETE FROM unkey.permissions p WHERE p.id = (unkey.unkey_get_permission(permission)).permission_id;
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_permission(text) IS 'delete a permission and remove it from every role and key';

CREATE FUNCTION unkey.unkey_create_role(name text, description text DEFAULT NULL, permissions text[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_id text := unkey._new_id('role');
BEGIN
	IF name IS NULL OR char_length(name) NOT BETWEEN 1 AND 128 THEN
		RAISE EXCEPTION 'name must be 1 to 128 characters' USING ERRCODE = '22023';
	END IF;
	IF char_length(description) > 512 THEN
		RAISE EXCEPTION 'description must be at most 512 characters' USING ERRCODE = '22023';
	END IF;
	INSERT INTO unkey.roles (id, name, description, created_at)
	VALUES (new_id, name, description, unkey.now())
	ON CONFLICT ON CONSTRAINT roles_name_key DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'a role named "%" already exists', name USING ERRCODE = '23505';
	END IF;
	IF permissions IS NOT NULL THEN
		INSERT INTO unkey.role_permissions (role_id, permission_id)
		SELECT new_id, unnest(unkey._permission_ids(permissions));
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_role(text, text, text[]) IS 'create a role, optionally with permissions (missing slugs are created); 23505 if the name exists';

CREATE FUNCTION unkey.unkey_get_role(role text)
RETURNS unkey.role
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result unkey.role;
BEGIN
	SELECT r.id, r.name, r.description,
		   ARRAY(SELECT p.slug FROM unkey.role_permissions rp JOIN unkey.permissions p ON p.id = rp.permission_id
				  WHERE rp.role_id = r.id ORDER BY p.slug COLLATE "C"),
		   r.created_at
	  INTO result
	  FROM unkey.roles r WHERE r.id = role OR r.name = role
	 ORDER BY r.id = role DESC LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey.unkey_get_role(text) IS 'a role and its permissions, by id or name';

CREATE FUNCTION unkey.unkey_list_roles()
RETURNS SETOF unkey.role
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT (unkey.unkey_get_role(r.id)).* FROM unkey.roles r ORDER BY r.name COLLATE "C";
$$;
COMMENT ON FUNCTION unkey.unkey_list_roles() IS 'every role with its permissions, by name';

CREATE FUNCTION unkey.unkey_delete_role(role text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- its links to permissions and keys go with it
	DELETE FROM unkey.roles r WHERE r.id = (unkey.unkey_get_role(role)).role_id;
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_role(text) IS 'delete a role and remove it from every key';

CREATE FUNCTION unkey.unkey_set_role_permissions(role text, permissions text[])
RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rid text := (unkey.unkey_get_role(role)).role_id;
	ids text[];
BEGIN
	IF permissions IS NULL THEN
		RAISE EXCEPTION 'permissions must not be null' USING ERRCODE = '22023';
	END IF;
	ids := unkey._permission_ids(permissions);
	DELETE FROM unkey.role_permissions rp WHERE rp.role_id = rid AND rp.permission_id <> ALL (ids);
	INSERT INTO unkey.role_permissions (role_id, permission_id)
	SELECT rid, unnest(ids) ON CONFLICT DO NOTHING;
	RETURN (unkey.unkey_get_role(rid)).permissions;
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_role_permissions(text, text[]) IS 'replace the permissions of a role (missing slugs are created; {} clears)';

-- Change a key's direct permissions or roles: add, remove or set; returns the resulting names
CREATE FUNCTION unkey._change_key_grants(key_id text, names text[], kind text, action text)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h bytea := unkey._key_hash_of(key_id);
	ids text[];
BEGIN
	IF names IS NULL THEN
		RAISE EXCEPTION '% must not be null', kind USING ERRCODE = '22023';
	END IF;
	IF kind = 'roles' THEN
		ids := unkey._role_ids(names);
		IF action <> 'add' THEN
			DELETE FROM unkey.key_roles kr WHERE kr.key_hash = h
			   AND CASE action WHEN 'remove' THEN kr.role_id = ANY (ids) ELSE kr.role_id <> ALL (ids) END;
		END IF;
		IF action <> 'remove' THEN
			INSERT INTO unkey.key_roles (key_hash, role_id) SELECT h, unnest(ids) ON CONFLICT DO NOTHING;
		END IF;
	ELSE
		-- removing never creates a permission; adding and setting create missing slugs
		ids := CASE action WHEN 'remove' THEN ARRAY(SELECT p.id FROM unkey.permissions p WHERE p.slug = ANY (names))
			   ELSE unkey._permission_ids(names) END;
		IF action <> 'add' THEN
			DELETE FROM unkey.key_permissions kp WHERE kp.key_hash = h
			   AND CASE action WHEN 'remove' THEN kp.permission_id = ANY (ids) ELSE kp.permission_id <> ALL (ids) END;
		END IF;
		IF action <> 'remove' THEN
			INSERT INTO unkey.key_permissions (key_hash, permission_id) SELECT h, unnest(ids) ON CONFLICT DO NOTHING;
		END IF;
	END IF;
	UPDATE unkey.keys k SET updated_at = unkey.now() WHERE k.key_hash = h;
	IF kind = 'roles' THEN
		RETURN ARRAY(SELECT r.name FROM unkey.key_roles kr JOIN unkey.roles r ON r.id = kr.role_id
					  WHERE kr.key_hash = h ORDER BY r.name COLLATE "C");
	END IF;
	RETURN ARRAY(SELECT p.slug FROM unkey.key_permissions kp JOIN unkey.permissions p ON p.id = kp.permission_id
				  WHERE kp.key_hash = h ORDER BY p.slug COLLATE "C");
END
$$;
COMMENT ON FUNCTION unkey._change_key_grants(text, text[], text, text) IS 'private: add, remove or set the direct permissions or the roles of a key';

CREATE FUNCTION unkey.unkey_add_key_permissions(key_id text, permissions text[]) RETURNS text[]
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._change_key_grants(key_id, permissions, 'permissions', 'add') $$;
COMMENT ON FUNCTION unkey.unkey_add_key_permissions(text, text[]) IS 'grant permissions to a key (missing slugs are created)';
CREATE FUNCTION unkey.unkey_remove_key_permissions(key_id text, permissions text[]) RETURNS text[]
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._change_key_grants(key_id, permissions, 'permissions', 'remove') $$;
COMMENT ON FUNCTION unkey.unkey_remove_key_permissions(text, text[]) IS 'take permissions from a key';
CREATE FUNCTION unkey.unkey_set_key_permissions(key_id text, permissions text[]) RETURNS text[]
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._change_key_grants(key_id, permissions, 'permissions', 'set') $$;
COMMENT ON FUNCTION unkey.unkey_set_key_permissions(text, text[]) IS 'replace the direct permissions of a key ({} clears)';
CREATE FUNCTION unkey.unkey_add_key_roles(key_id text, roles text[]) RETURNS text[]
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._change_key_grants(key_id, roles, 'roles', 'add') $$;
COMMENT ON FUNCTION unkey.unkey_add_key_roles(text, text[]) IS 'give roles to a key (they must exist)';
CREATE FUNCTION unkey.unkey_remove_key_roles(key_id text, roles text[]) RETURNS text[]
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._change_key_grants(key_id, roles, 'roles', 'remove') $$;
COMMENT ON FUNCTION unkey.unkey_remove_key_roles(text, text[]) IS 'take roles from a key';
CREATE FUNCTION unkey.unkey_set_key_roles(key_id text, roles text[]) RETURNS text[]
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._change_key_grants(key_id, roles, 'roles', 'set') $$;
COMMENT ON FUNCTION unkey.unkey_set_key_roles(text, text[]) IS 'replace the roles of a key ({} clears)';

----------------------------------------------------------------------------
-- public API: APIs
----------------------------------------------------------------------------

-- Parse a whitelist of addresses and CIDR ranges; NULL or no entries means none
CREATE FUNCTION unkey._parse_ip_whitelist(ip_whitelist text[]) RETURNS inet[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	entry text;
	result inet[] := '{}';
BEGIN
	IF ip_whitelist IS NULL THEN
		RETURN NULL;
	END IF;
	FOREACH entry IN ARRAY ip_whitelist LOOP
		entry := btrim(entry);
		CONTINUE WHEN entry IS NULL OR entry = '';
		BEGIN
			result := result || entry::inet;
		EXCEPTION WHEN invalid_text_representation THEN
			RAISE EXCEPTION 'ip_whitelist entry "%" is not an address or CIDR range', entry
				USING ERRCODE = '22023';
		END;
	END LOOP;
	RETURN nullif(result, '{}');
END
$$;
COMMENT ON FUNCTION unkey._parse_ip_whitelist(text[]) IS 'private: validate an ip_whitelist argument';

CREATE FUNCTION unkey.unkey_create_api(
	name				text,
	ip_whitelist		text[]	DEFAULT NULL,
	delete_protection	boolean DEFAULT false,
	default_prefix		text	DEFAULT NULL,
	default_byte_length integer DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_id text := unkey._new_id('api');
BEGIN
	IF name IS NULL OR char_length(name) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'name must be 1 to 255 characters' USING ERRCODE = '22023';
	END IF;
	IF delete_protection IS NULL THEN
		RAISE EXCEPTION 'delete_protection must not be null' USING ERRCODE = '22023';
	END IF;
	IF default_prefix IS NOT NULL AND default_prefix !~ '^[A-Za-z0-9_]{1,16}$' THEN
		RAISE EXCEPTION 'default_prefix must be 1 to 16 characters of [A-Za-z0-9_]' USING ERRCODE = '22023';
	END IF;
	IF default_byte_length IS NOT NULL AND default_byte_length NOT BETWEEN 16 AND 255 THEN
		RAISE EXCEPTION 'default_byte_length must be between 16 and 255' USING ERRCODE = '22023';
	END IF;

	INSERT INTO unkey.apis (id, name, ip_whitelist, delete_protection,
							default_prefix, default_byte_length, created_at)
	VALUES (new_id, name, unkey._parse_ip_whitelist(ip_whitelist), delete_protection,
			default_prefix, coalesce(default_byte_length, 16), unkey.now());
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_api(text, text[], boolean, text, integer) IS 'create an API; returns its id (api_…)';

CREATE FUNCTION unkey.unkey_get_api(api_id text)
RETURNS unkey.api
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result unkey.api;
BEGIN
	SELECT a.id, a.name, a.ip_whitelist::text::text[], a.delete_protection,
		   a.default_prefix, a.default_byte_length, a.created_at
	  INTO result
	  FROM unkey.apis a
	 WHERE a.id = unkey_get_api.api_id AND a.deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'api not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey.unkey_get_api(text) IS 'an API''s settings; PT404 if it does not exist or was deleted';

CREATE FUNCTION unkey.unkey_set_api_delete_protection(api_id text, enabled boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF enabled IS NULL THEN
		RAISE EXCEPTION 'enabled must not be null' USING ERRCODE = '22023';
	END IF;
	UPDATE unkey.apis a
	   SET delete_protection = unkey_set_api_delete_protection.enabled, updated_at = unkey.now()
	 WHERE a.id = unkey_set_api_delete_protection.api_id AND a.deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'api not found' USING ERRCODE = 'PT404';
	END IF;
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_api_delete_protection(text, boolean) IS 'turn an API''s delete protection on or off';

CREATE FUNCTION unkey.unkey_delete_api(api_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	protected boolean;
BEGIN
	SELECT a.delete_protection INTO protected
	  FROM unkey.apis a
	 WHERE a.id = unkey_delete_api.api_id AND a.deleted_at IS NULL
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'api not found' USING ERRCODE = 'PT404';
	END IF;
	IF protected THEN
		RAISE EXCEPTION 'api is protected from deletion'
			USING ERRCODE = 'PT412',
				  HINT = 'Disable it first with unkey_set_api_delete_protection(api_id, false).';
	END IF;
	UPDATE unkey.apis a SET deleted_at = unkey.now() WHERE a.id = unkey_delete_api.api_id;
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_api(text) IS 'soft-delete an API; its keys then verify as NOT_FOUND; PT412 if delete-protected';

----------------------------------------------------------------------------
-- public API: keys
----------------------------------------------------------------------------

-- Upsert an identity by external id; safe when two sessions race to create it
CREATE FUNCTION unkey._upsert_identity(external_id text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	found_id text;
BEGIN
	IF external_id !~ '^[A-Za-z0-9_.-]{1,255}$' THEN
		RAISE EXCEPTION 'external_id must be 1 to 255 characters of [A-Za-z0-9_.-]' USING ERRCODE = '22023';
	END IF;
	-- ON CONFLICT waits for a concurrent inserter; the SELECT then sees its row
	INSERT INTO unkey.identities (id, external_id, created_at)
	VALUES (unkey._new_id('id'), external_id, unkey.now())
	ON CONFLICT ON CONSTRAINT identities_external_id_key DO NOTHING
	RETURNING id INTO found_id;
	IF found_id IS NULL THEN
		SELECT i.id INTO STRICT found_id FROM unkey.identities i
		 WHERE i.external_id = _upsert_identity.external_id;
	END IF;
	RETURN found_id;
END
$$;
COMMENT ON FUNCTION unkey._upsert_identity(text) IS 'private: the identity id for an external id, created if missing';

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

CREATE FUNCTION unkey.unkey_create_key(
	api_id			text,
	prefix			text	DEFAULT NULL,
	byte_length		integer DEFAULT NULL,
	name			text	DEFAULT NULL,
	external_id		text	DEFAULT NULL,
	meta			jsonb	DEFAULT NULL,
	expires			timestamptz DEFAULT NULL,
	credits			bigint	DEFAULT NULL,
	refill_interval text	DEFAULT NULL,
	refill_amount	bigint	DEFAULT NULL,
	refill_day		integer DEFAULT NULL,
	ratelimits		jsonb	DEFAULT NULL,
	roles			text[]	DEFAULT NULL,
	permissions		text[]	DEFAULT NULL,
	enabled			boolean DEFAULT true,
	recoverable		boolean DEFAULT false)
RETURNS unkey.created_key
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	api				unkey.apis;
	ts				timestamptz := unkey.now();
	new_id			text := unkey._new_id('key');
	new_key			text;
	new_hash		bytea;
	identity		text;
	role_ids		text[] := '{}';
	perm_ids		text[] := '{}';
BEGIN
	-- validate everything before writing anything
	SELECT * INTO api FROM unkey.apis a
	 WHERE a.id = unkey_create_key.api_id AND a.deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'api not found' USING ERRCODE = 'PT404';
	END IF;
	IF prefix IS NOT NULL AND prefix !~ '^[A-Za-z0-9_]{1,16}$' THEN
		RAISE EXCEPTION 'prefix must be 1 to 16 characters of [A-Za-z0-9_]' USING ERRCODE = '22023';
	END IF;
	IF byte_length IS NOT NULL AND byte_length NOT BETWEEN 16 AND 255 THEN
		RAISE EXCEPTION 'byte_length must be between 16 and 255' USING ERRCODE = '22023';
	END IF;
	IF name IS NOT NULL AND char_length(name) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'name must be 1 to 255 characters' USING ERRCODE = '22023';
	END IF;
	IF meta IS NOT NULL AND jsonb_typeof(meta) <> 'object' THEN
		RAISE EXCEPTION 'meta must be a JSON object' USING ERRCODE = '22023';
	END IF;
	IF meta IS NOT NULL AND octet_length(meta::text) > 1048576 THEN
		RAISE EXCEPTION 'meta must be at most 1 MiB' USING ERRCODE = '22023';
	END IF;
	IF credits < 0 THEN
		RAISE EXCEPTION 'credits must not be negative' USING ERRCODE = '22023';
	END IF;
	IF refill_interval IS NOT NULL AND refill_interval NOT IN ('daily', 'monthly') THEN
		RAISE EXCEPTION 'refill_interval must be daily or monthly' USING ERRCODE = '22023';
	END IF;
	IF (refill_interval IS NULL) <> (refill_amount IS NULL) THEN
		RAISE EXCEPTION 'refill_interval and refill_amount must be given together' USING ERRCODE = '22023';
	END IF;
	IF refill_amount < 1 THEN
		RAISE EXCEPTION 'refill_amount must be at least 1' USING ERRCODE = '22023';
	END IF;
	IF refill_interval IS NOT NULL AND credits IS NULL THEN
		RAISE EXCEPTION 'credits must be given when refill_interval is set' USING ERRCODE = '22023';
	END IF;
	IF refill_interval = 'monthly' AND refill_day IS NULL THEN
		RAISE EXCEPTION 'refill_day must be given when refill_interval is monthly' USING ERRCODE = '22023';
	END IF;
	IF refill_day IS NOT NULL AND refill_interval IS DISTINCT FROM 'monthly' THEN
		RAISE EXCEPTION 'refill_day is only allowed when refill_interval is monthly' USING ERRCODE = '22023';
	END IF;
	IF refill_day NOT BETWEEN 1 AND 31 THEN
		RAISE EXCEPTION 'refill_day must be between 1 and 31' USING ERRCODE = '22023';
	END IF;
	IF ratelimits IS NOT NULL THEN
		PERFORM unkey._check_ratelimits(ratelimits);
	END IF;
	IF roles IS NOT NULL THEN
		role_ids := unkey._role_ids(roles);
	END IF;
	IF enabled IS NULL THEN
		RAISE EXCEPTION 'enabled must not be null' USING ERRCODE = '22023';
	END IF;
	IF recoverable THEN
		RAISE EXCEPTION 'recoverable keys are not supported yet' USING ERRCODE = '0A000';
	END IF;

	-- the first write creates missing permission slugs, after validating them
	IF permissions IS NOT NULL THEN
		perm_ids := unkey._permission_ids(permissions);
	END IF;

	prefix := coalesce(prefix, api.default_prefix);
	new_key := unkey._generate_key(prefix, coalesce(byte_length, api.default_byte_length));
	new_hash := unkey._key_hash(new_key);
	IF external_id IS NOT NULL THEN
		identity := unkey._upsert_identity(external_id);
	END IF;

	INSERT INTO unkey.keys (key_hash, id, api_id, start, prefix, name, identity_id, meta,
							expires, enabled, remaining, refill_interval, refill_amount,
							refill_day, last_refill_at, created_at)
	VALUES (new_hash, new_id, api.id,
			left(new_key, coalesce(char_length(prefix) + 1, 0) + 4),
			prefix, name, identity, meta, expires, enabled, credits, refill_interval,
			refill_amount, refill_day, CASE WHEN refill_interval IS NOT NULL THEN ts END, ts);

	IF ratelimits IS NOT NULL THEN
		INSERT INTO unkey.key_ratelimits (key_hash, name, "limit", duration_ms, auto_apply)
		SELECT new_hash, rl ->> 'name', (rl ->> 'limit')::bigint, (rl ->> 'duration')::bigint,
			   coalesce((rl ->> 'autoApply')::boolean, false)
		  FROM jsonb_array_elements(ratelimits) rl;
	END IF;
	INSERT INTO unkey.key_roles (key_hash, role_id) SELECT new_hash, unnest(role_ids);
	INSERT INTO unkey.key_permissions (key_hash, permission_id) SELECT new_hash, unnest(perm_ids);

	RETURN ROW(new_id, new_key)::unkey.created_key;
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_key(text, text, integer, text, text, jsonb, timestamptz, bigint, text, bigint, integer, jsonb, text[], text[], boolean, boolean) IS 'create a key; the plaintext is returned once and never stored';

CREATE FUNCTION unkey.unkey_delete_key(key_id text, permanent boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF permanent IS NULL THEN
		RAISE EXCEPTION 'permanent must not be null' USING ERRCODE = '22023';
	END IF;
	IF permanent THEN
		-- frees the hash; links and rate-limit configs go with the row
		DELETE FROM unkey.keys k WHERE k.id = unkey_delete_key.key_id;
	ELSE
		-- keeps the hash, so the same key string can never verify again
		UPDATE unkey.keys k SET deleted_at = unkey.now(), updated_at = unkey.now()
		 WHERE k.id = unkey_delete_key.key_id AND k.deleted_at IS NULL;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key not found' USING ERRCODE = 'PT404';
	END IF;
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_key(text, boolean) IS 'delete a key: soft by default (the hash stays taken), permanent frees the hash';

CREATE FUNCTION unkey.unkey_refill_keys()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ts timestamptz := unkey.now();
	refilled bigint;
BEGIN
	-- the same rule verification applies lazily, applied to every due key
	UPDATE unkey.keys k
	   SET remaining = unkey._credits_now(k.remaining, k.refill_amount, k.refill_day, k.last_refill_at, ts),
		   last_refill_at = ts
	 WHERE k.refill_amount IS NOT NULL AND k.deleted_at IS NULL
	   AND unkey._refill_due(k.last_refill_at, k.refill_day, ts);
	GET DIAGNOSTICS refilled = ROW_COUNT;
	RETURN refilled;
END
$$;
COMMENT ON FUNCTION unkey.unkey_refill_keys() IS 'apply every due refill now; returns how many keys passed a refill boundary';

----------------------------------------------------------------------------
-- public API: verification (the hot path, in C)
----------------------------------------------------------------------------

CREATE FUNCTION unkey.unkey_verify_key(
	key			text,
	api_id		text	DEFAULT NULL,
	permissions text	DEFAULT NULL,
	cost		bigint	DEFAULT 1,
	ratelimits	jsonb	DEFAULT NULL,
	tags		text[]	DEFAULT NULL,
	ip			inet	DEFAULT NULL)
RETURNS unkey.verification
AS 'MODULE_PATHNAME', 'unkey_verify_key'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet) IS 'verify a key and spend its credits; every outcome is a row, never an error';

----------------------------------------------------------------------------
-- public API: rate limits
----------------------------------------------------------------------------

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
BEGIN
	UPDATE unkey.ratelimit_namespaces n SET deleted_at = unkey.now()
	 WHERE n.id = unkey._namespace_id(namespace);
	PERFORM unkey._invalidate('unkey.ratelimit_namespaces'::regclass);
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
BEGIN
	DELETE FROM unkey.ratelimit_overrides o
	 WHERE o.namespace_id = unkey._namespace_id(namespace) AND o.identifier = unkey_delete_override.identifier;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'override not found' USING ERRCODE = 'PT404';
	END IF;
	PERFORM unkey._invalidate('unkey.ratelimit_overrides'::regclass);
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

-- The key hash of a live key, by id; PT404 if there is none
CREATE FUNCTION unkey._key_hash_of(key_id text)
RETURNS bytea
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h bytea;
BEGIN
	SELECT k.key_hash INTO h FROM unkey.keys k WHERE k.id = key_id AND k.deleted_at IS NULL;
	IF h IS NULL THEN
		RAISE EXCEPTION 'key not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN h;
END
$$;
COMMENT ON FUNCTION unkey._key_hash_of(text) IS 'private: resolve a key id';

-- The id of an identity given by id or external id; PT404 if there is none
CREATE FUNCTION unkey._identity_id(identity text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	found_id text;
BEGIN
	SELECT i.id INTO found_id FROM unkey.identities i
	 WHERE i.id = identity OR i.external_id = identity
	 ORDER BY i.id = identity DESC LIMIT 1;
	IF found_id IS NULL THEN
		RAISE EXCEPTION 'identity not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN found_id;
END
$$;
COMMENT ON FUNCTION unkey._identity_id(text) IS 'private: resolve an identity id or external id';

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
AS $$ SELECT unkey._set_ratelimit('key_ratelimits', 'key_hash', unkey._key_hash_of(key_id), name, "limit", duration, auto_apply) $$;
COMMENT ON FUNCTION unkey.unkey_set_key_ratelimit(text, text, bigint, interval, boolean) IS 'add or change a named rate limit of a key';

CREATE FUNCTION unkey.unkey_get_key_ratelimits(key_id text)
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._get_ratelimits('key_ratelimits', 'key_hash', unkey._key_hash_of(key_id)) $$;
COMMENT ON FUNCTION unkey.unkey_get_key_ratelimits(text) IS 'the named rate limits of a key, as JSON (durations in ms)';

CREATE FUNCTION unkey.unkey_delete_key_ratelimit(key_id text, name text)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._delete_ratelimit('key_ratelimits', 'key_hash', unkey._key_hash_of(key_id), name) $$;
COMMENT ON FUNCTION unkey.unkey_delete_key_ratelimit(text, text) IS 'remove a named rate limit of a key';

CREATE FUNCTION unkey.unkey_set_identity_ratelimit(identity text, name text, "limit" bigint, duration interval,
												   auto_apply boolean DEFAULT false)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._set_ratelimit('identity_ratelimits', 'identity_id', unkey._identity_id(identity), name, "limit", duration, auto_apply) $$;
COMMENT ON FUNCTION unkey.unkey_set_identity_ratelimit(text, text, bigint, interval, boolean) IS 'add or change a named rate limit of an identity (by id or external id), shared by its keys';

CREATE FUNCTION unkey.unkey_get_identity_ratelimits(identity text)
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._get_ratelimits('identity_ratelimits', 'identity_id', unkey._identity_id(identity)) $$;
COMMENT ON FUNCTION unkey.unkey_get_identity_ratelimits(text) IS 'the named rate limits of an identity, as JSON (durations in ms)';

CREATE FUNCTION unkey.unkey_delete_identity_ratelimit(identity text, name text)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._delete_ratelimit('identity_ratelimits', 'identity_id', unkey._identity_id(identity), name) $$;
COMMENT ON FUNCTION unkey.unkey_delete_identity_ratelimit(text, text) IS 'remove a named rate limit of an identity';

----------------------------------------------------------------------------
-- privileges
----------------------------------------------------------------------------

-- functions are executable by PUBLIC by default: take that back from all of them
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA unkey FROM PUBLIC;
-- tables are never read or written directly by applications
REVOKE ALL ON ALL TABLES IN SCHEMA unkey FROM PUBLIC;
