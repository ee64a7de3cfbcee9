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

----------------------------------------------------------------------------
-- public API: hashing
----------------------------------------------------------------------------

CREATE FUNCTION unkey.unkey_hash_key(key text) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_hash_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey.unkey_hash_key(text) IS 'base64 SHA-256 of a key, as Unkey stores it';

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
	missing			text;
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
	IF array_position(roles, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'roles must not contain null' USING ERRCODE = '22023';
	END IF;
	SELECT r INTO missing FROM unnest(roles) r
	 WHERE NOT EXISTS (SELECT FROM unkey.roles x WHERE x.name = r) LIMIT 1;
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'role "%" not found', missing USING ERRCODE = 'PT404';
	END IF;
	IF array_position(permissions, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'permissions must not contain null' USING ERRCODE = '22023';
	END IF;
	SELECT p INTO missing FROM unnest(permissions) p
	 WHERE p !~ '^[A-Za-z0-9_:.*-]{1,128}$' LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'permission "%" must be 1 to 128 characters of [A-Za-z0-9_:.*-]', missing
			USING ERRCODE = '22023';
	END IF;
	IF enabled IS NULL THEN
		RAISE EXCEPTION 'enabled must not be null' USING ERRCODE = '22023';
	END IF;
	IF recoverable THEN
		RAISE EXCEPTION 'recoverable keys are not supported yet' USING ERRCODE = '0A000';
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
	IF roles IS NOT NULL THEN
		INSERT INTO unkey.key_roles (key_hash, role_id)
		SELECT DISTINCT new_hash, x.id FROM unkey.roles x WHERE x.name = ANY (roles);
	END IF;
	IF permissions IS NOT NULL THEN
		-- missing permissions are created; a concurrent creator wins harmlessly
		INSERT INTO unkey.permissions (id, name, slug, created_at)
		SELECT unkey._new_id('perm'), p, p, ts FROM (SELECT DISTINCT p FROM unnest(permissions) p) s
		ON CONFLICT (slug) DO NOTHING;
		INSERT INTO unkey.key_permissions (key_hash, permission_id)
		SELECT new_hash, x.id FROM unkey.permissions x WHERE x.slug = ANY (permissions);
	END IF;

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
-- privileges
----------------------------------------------------------------------------

-- functions are executable by PUBLIC by default: take that back from all of them
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA unkey FROM PUBLIC;
-- tables are never read or written directly by applications
REVOKE ALL ON ALL TABLES IN SCHEMA unkey FROM PUBLIC;
