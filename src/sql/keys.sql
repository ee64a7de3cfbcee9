/*
 * keys.sql: APIs, keys and their identities; creating, deleting and
 * verifying keys (verification itself is C: src/verify.c)
 */

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
	deleted_at			timestamptz,
	-- keys may be created recoverable (unkey_set_api_recoverable; src/sql/vault.sql)
	recoverable			boolean NOT NULL DEFAULT false
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
-- unkey_list_keys pages through an API's keys in id order
CREATE INDEX keys_api_id_idx ON unkey.keys (api_id, id);
CREATE INDEX keys_identity_id_idx ON unkey.keys (identity_id);
COMMENT ON TABLE unkey.keys IS 'per-key: one row per key; only the SHA-256 of the key is stored';

-- pg_dump carries user data; the extension recreates everything else
SELECT pg_catalog.pg_extension_config_dump('unkey.apis', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.identities', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.keys', '');

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
	ratelimits			jsonb,
	identity_meta		jsonb
);

CREATE TYPE unkey.api AS (
	api_id				text,
	name				text,
	ip_whitelist		text[],
	delete_protection	boolean,
	default_prefix		text,
	default_byte_length integer,
	created_at			timestamptz,
	recoverable			boolean
);

CREATE FUNCTION unkey._generate_key(prefix text, byte_length integer) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_generate_key' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._generate_key(text, integer) IS 'private: a new random key';

CREATE FUNCTION unkey._key_hash(key text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_key_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._key_hash(text) IS 'private: the 32-byte SHA-256 stored for a key';

CREATE FUNCTION unkey.unkey_hash_key(key text) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_hash_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey.unkey_hash_key(text) IS 'base64 SHA-256 of a key, as Unkey stores it';

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
			PERFORM unkey._raise('invalid_parameter_value'::text, format('ip_whitelist entry "%s" is not an address or CIDR range', entry),
								 'Give IPv4 or IPv6 addresses or CIDR ranges, such as 10.0.0.0/8 or 2001:db8::/32.'::text);
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
	new_id text := unkey._new_id('api'::text);
BEGIN
	IF name IS NULL OR char_length(name) NOT BETWEEN 1 AND 255 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'name must be 1 to 255 characters'::text,
							 'Pass a name of 1 to 255 characters.'::text);
	END IF;
	IF delete_protection IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'delete_protection must not be null'::text,
							 'Pass true or false.'::text);
	END IF;
	IF default_prefix IS NOT NULL AND default_prefix !~ '^[A-Za-z0-9_]{1,16}$' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'default_prefix must be 1 to 16 characters of [A-Za-z0-9_]'::text,
							 'Use letters, digits and underscores only, such as sk_live, or NULL for no prefix.'::text);
	END IF;
	IF default_byte_length IS NOT NULL AND default_byte_length NOT BETWEEN 16 AND 255 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'default_byte_length must be between 16 and 255'::text,
							 '16 bytes (128 bits of entropy) is the default and enough for most keys.'::text);
	END IF;

	INSERT INTO unkey.apis (id, name, ip_whitelist, delete_protection,
							default_prefix, default_byte_length, created_at)
	VALUES (new_id, name, unkey._parse_ip_whitelist(ip_whitelist), delete_protection,
			default_prefix, coalesce(default_byte_length, 16), unkey.now());
	PERFORM unkey._audit('api.create'::text, format('Created API %s', new_id), ARRAY['api', new_id]);
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
		   a.default_prefix, a.default_byte_length, a.created_at, a.recoverable
	  INTO result
	  FROM unkey.apis a
	 WHERE a.id = unkey_get_api.api_id AND a.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
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
		PERFORM unkey._raise('invalid_parameter_value'::text, 'enabled must not be null'::text,
							 'Pass true or false.'::text);
	END IF;
	UPDATE unkey.apis a
	   SET delete_protection = unkey_set_api_delete_protection.enabled, updated_at = unkey.now()
	 WHERE a.id = unkey_set_api_delete_protection.api_id AND a.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	PERFORM unkey._audit('api.update'::text, format('Turned delete protection of API %s %s', api_id,
						 CASE WHEN enabled THEN 'on' ELSE 'off' END), ARRAY['api', api_id]);
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
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	IF protected THEN
		PERFORM unkey._raise('precondition_failed'::text, 'api is protected from deletion'::text,
							 'Disable it first with unkey_set_api_delete_protection(api_id, false).'::text);
	END IF;
	UPDATE unkey.apis a SET deleted_at = unkey.now() WHERE a.id = unkey_delete_api.api_id;
	-- its keys are never shown again: their ciphertexts go (the wrapped data key stays)
	DELETE FROM unkey.encrypted_keys e WHERE e.api_id = unkey_delete_api.api_id;
	PERFORM unkey._audit('api.delete'::text, format('Deleted API %s', api_id), ARRAY['api', api_id]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_api(text) IS 'soft-delete an API; its keys then verify as NOT_FOUND; PT412 if delete-protected';

-- Validate an external id: 1..255 of [A-Za-z0-9_.-]
CREATE FUNCTION unkey._check_external_id(external_id text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF external_id IS NULL OR external_id !~ '^[A-Za-z0-9_.-]{1,255}$' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'external_id must be 1 to 255 characters of [A-Za-z0-9_.-]'::text,
							 'Use 1 to 255 letters, digits, underscores, dots or hyphens, such as user_42.'::text);
	END IF;
	RETURN external_id;
END
$$;
COMMENT ON FUNCTION unkey._check_external_id(text) IS 'private: validate an external id';

-- Upsert an identity by external id; safe when two sessions race to create it
CREATE FUNCTION unkey._upsert_identity(external_id text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	found_id text;
BEGIN
	PERFORM unkey._check_external_id(external_id);
	LOOP
		-- the share lock keeps a concurrent unkey_delete_identity from removing it under us
		SELECT i.id INTO found_id FROM unkey.identities i
		 WHERE i.external_id = _upsert_identity.external_id
		   FOR KEY SHARE;
		EXIT WHEN found_id IS NOT NULL;
		-- ON CONFLICT waits for a concurrent inserter; the next pass then sees its row
		INSERT INTO unkey.identities (id, external_id, created_at)
		VALUES (unkey._new_id('id'::text), external_id, unkey.now())
		ON CONFLICT ON CONSTRAINT identities_external_id_key DO NOTHING
		RETURNING id INTO found_id;
		EXIT WHEN found_id IS NOT NULL;
	END LOOP;
	RETURN found_id;
END
$$;
COMMENT ON FUNCTION unkey._upsert_identity(text) IS 'private: the identity id for an external id, created if missing';

-- The id of an identity given by id or external id; PT404 if there is none
CREATE FUNCTION unkey._identity_id(identity text, lock boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	found_id text;
BEGIN
	SELECT i.id INTO found_id FROM unkey.identities i
	 WHERE i.id = identity OR i.external_id = identity
	 ORDER BY i.id = identity DESC LIMIT 1;
	-- a change locks the row, waiting for anyone linking a key to it
	IF lock AND found_id IS NOT NULL THEN
		SELECT i.id INTO found_id FROM unkey.identities i WHERE i.id = found_id FOR UPDATE;
	END IF;
	IF found_id IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'identity not found'::text,
							 'Pass the identity id (id_...) or its external id; unkey_list_identities lists them.'::text);
	END IF;
	RETURN found_id;
END
$$;
COMMENT ON FUNCTION unkey._identity_id(text, boolean) IS 'private: resolve an identity id or external id, locked for a change if asked';

-- Replace the rate limits, roles and permissions of a key; a NULL argument leaves that set alone
CREATE FUNCTION unkey._set_key_links(h bytea, ratelimits jsonb, roles text[], permissions text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF ratelimits IS NOT NULL THEN
		PERFORM unkey._replace_ratelimits(h, NULL::text, ratelimits);
	END IF;
	IF roles IS NOT NULL THEN
		DELETE FROM unkey.key_roles kr WHERE kr.key_hash = h;
		INSERT INTO unkey.key_roles (key_hash, role_id) SELECT h, unnest(unkey._role_ids(roles));
	END IF;
	IF permissions IS NOT NULL THEN
		DELETE FROM unkey.key_permissions kp WHERE kp.key_hash = h;
		INSERT INTO unkey.key_permissions (key_hash, permission_id) SELECT h, unnest(unkey._permission_ids(permissions));
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._set_key_links(bytea, jsonb, text[], text[]) IS 'private: replace the rate limits, roles and permissions of a key';

-- The invariants of a key's own fields, checked on create, update and migrate with the same messages
CREATE FUNCTION unkey._check_key(k unkey.keys)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF k.name IS NOT NULL AND char_length(k.name) NOT BETWEEN 1 AND 255 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'name must be 1 to 255 characters'::text,
							 'Pass a name of 1 to 255 characters.'::text);
	END IF;
	PERFORM unkey._check_meta(k.meta, 'meta'::text);
	IF k.enabled IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'enabled must not be null'::text,
							 'Pass true or false.'::text);
	END IF;
	IF k.remaining < 0 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'credits must not be negative'::text,
							 'Pass 0 or more credits, or NULL for unlimited.'::text);
	END IF;
	IF k.refill_interval IS NOT NULL AND k.refill_interval NOT IN ('daily', 'monthly') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'refill_interval must be daily or monthly'::text,
							 'Pass ''daily'' or ''monthly'', or NULL for no refill.'::text);
	END IF;
	IF (k.refill_interval IS NULL) <> (k.refill_amount IS NULL) THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'refill_interval and refill_amount must be given together'::text,
							 'Give both to refill the key, or neither.'::text);
	END IF;
	IF k.refill_amount < 1 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'refill_amount must be at least 1'::text,
							 'refill_amount is the balance a refill sets: pass 1 or more.'::text);
	END IF;
	IF k.refill_interval IS NOT NULL AND k.remaining IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'credits must be given when refill_interval is set'::text,
							 'A refill sets the balance, so give the starting credits too.'::text);
	END IF;
	IF k.refill_interval = 'monthly' AND k.refill_day IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'refill_day must be given when refill_interval is monthly'::text,
							 'Pass refill_day 1 to 31; 31 refills on the last day of shorter months.'::text);
	END IF;
	IF k.refill_day IS NOT NULL AND k.refill_interval IS DISTINCT FROM 'monthly' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'refill_day is only allowed when refill_interval is monthly'::text,
							 'Leave refill_day out for a daily refill.'::text);
	END IF;
	IF k.refill_day NOT BETWEEN 1 AND 31 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'refill_day must be between 1 and 31'::text,
							 'Pass 1 to 31; 31 refills on the last day of shorter months.'::text);
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._check_key(unkey.keys) IS 'private: validate the fields of a key';

-- A key row for a new secret: its hash, a new id, and the start shown for it
CREATE FUNCTION unkey._with_secret(k unkey.keys, key text)
RETURNS unkey.keys
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	k.key_hash := unkey._key_hash(key);
	k.id := unkey._new_id('key'::text);
	k.start := left(key, coalesce(char_length(k.prefix) + 1, 0) + 4);
	RETURN k;
END
$$;
COMMENT ON FUNCTION unkey._with_secret(unkey.keys, text) IS 'private: set the hash, id and start of a new key';

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
	k				unkey.keys;
	new_key			text;
	ciphertext		bytea;
BEGIN
	-- validate everything before writing anything
	SELECT * INTO api FROM unkey.apis a
	 WHERE a.id = unkey_create_key.api_id AND a.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	IF prefix IS NOT NULL AND prefix !~ '^[A-Za-z0-9_]{1,16}$' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'prefix must be 1 to 16 characters of [A-Za-z0-9_]'::text,
							 'Use letters, digits and underscores only, such as sk_live, or NULL for the API''s default.'::text);
	END IF;
	IF byte_length IS NOT NULL AND byte_length NOT BETWEEN 16 AND 255 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'byte_length must be between 16 and 255'::text,
							 '16 bytes (128 bits of entropy) is the default and enough for most keys.'::text);
	END IF;
	k.name := name;
	k.meta := meta;
	k.enabled := enabled;
	k.remaining := credits;
	k.refill_interval := refill_interval;
	k.refill_amount := refill_amount;
	k.refill_day := refill_day;
	PERFORM unkey._check_key(k);
	IF ratelimits IS NOT NULL THEN
		PERFORM unkey._check_ratelimits(ratelimits);
	END IF;
	PERFORM unkey._role_ids(roles);
	IF recoverable IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'recoverable must not be null'::text,
							 'Pass true to store the key encrypted so that it can be shown again, or false.'::text);
	END IF;
	IF recoverable AND NOT api.recoverable THEN
		PERFORM unkey._raise('precondition_failed'::text, 'This API does not support key encryption.'::text,
							 'Turn it on with unkey_set_api_recoverable(api_id, true); keys created before stay unrecoverable.'::text);
	END IF;
	IF external_id IS NOT NULL THEN
		PERFORM unkey._check_external_id(external_id);
	END IF;

	k.prefix := coalesce(prefix, api.default_prefix);
	new_key := unkey._generate_key(k.prefix, coalesce(byte_length, api.default_byte_length));
	k := unkey._with_secret(k, new_key);
	k.api_id := api.id;
	k.expires := expires;
	k.last_refill_at := CASE WHEN refill_interval IS NOT NULL THEN ts END;
	k.created_at := ts;
	IF external_id IS NOT NULL THEN
		k.identity_id := unkey._upsert_identity(external_id);
	END IF;
	-- sealed before any write, and only the ciphertext is ever written
	IF recoverable THEN
		ciphertext := unkey._encrypt_key(k.api_id, k.id, new_key);
	END IF;

	INSERT INTO unkey.keys VALUES (k.*);
	IF recoverable THEN
		INSERT INTO unkey.encrypted_keys (key_hash, api_id, ciphertext, created_at)
		VALUES (k.key_hash, k.api_id, ciphertext, ts);
	END IF;
	PERFORM unkey._set_key_links(k.key_hash, ratelimits, roles, permissions);
	PERFORM unkey._audit('key.create'::text, format('Created key %s in API %s', k.id, api.id), ARRAY['key', k.id, 'api', api.id]);
	RETURN ROW(k.id, new_key)::unkey.created_key;
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_key(text, text, integer, text, text, jsonb, timestamptz, bigint, text, bigint, integer, jsonb, text[], text[], boolean, boolean) IS 'create a key; the plaintext is returned once and never stored (recoverable: stored encrypted, for unkey_get_key(decrypt => true))';

CREATE FUNCTION unkey.unkey_delete_key(key_id text, permanent boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF permanent IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'permanent must not be null'::text,
							 'Pass false for a soft delete, or true to erase the key row.'::text);
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
		PERFORM unkey._raise('not_found'::text, 'key not found'::text,
							 'Check the key id (key_...); a deleted key, or a key of a deleted API, cannot be used.'::text);
	END IF;
	-- a deleted key is never shown again: its ciphertext goes (with the row, when permanent)
	DELETE FROM unkey.encrypted_keys e USING unkey.keys k
	 WHERE e.key_hash = k.key_hash AND k.id = unkey_delete_key.key_id;
	PERFORM unkey._audit('key.delete'::text, format('Deleted key %s%s', key_id, CASE WHEN permanent THEN ' permanently' ELSE '' END),
						 ARRAY['key', key_id]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_key(text, boolean) IS 'delete a key: soft by default (the hash stays taken), permanent frees the hash';

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
		PERFORM unkey._raise('not_found'::text, 'key not found'::text,
							 'Check the key id (key_...); a deleted key, or a key of a deleted API, cannot be used.'::text);
	END IF;
	RETURN h;
END
$$;
COMMENT ON FUNCTION unkey._key_hash_of(text) IS 'private: resolve a key id, for reading';

/*
 * The row of a live key of a live API, locked for the change the caller is
 * about to make; PT404 if there is none.  The lock orders the change against
 * concurrent verifications, deletes and other changes of the same key.  The
 * row is locked by its hash, found first by its id: on Citus a lock needs
 * the distribution column.
 */
CREATE FUNCTION unkey._lock_key(key_id text)
RETURNS unkey.keys
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k unkey.keys;
	h bytea := (SELECT kk.key_hash FROM unkey.keys kk WHERE kk.id = key_id AND kk.deleted_at IS NULL);
BEGIN
	SELECT kk.* INTO k FROM unkey.keys kk
	  JOIN unkey.apis a ON a.id = kk.api_id AND a.deleted_at IS NULL
	 WHERE kk.key_hash = h AND kk.id = key_id AND kk.deleted_at IS NULL
	   FOR UPDATE OF kk;
	IF k.key_hash IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'key not found'::text,
							 'Check the key id (key_...); a deleted key, or a key of a deleted API, cannot be used.'::text);
	END IF;
	RETURN k;
END
$$;
COMMENT ON FUNCTION unkey._lock_key(text) IS 'private: lock a key for a change';

-- Store every changeable field of a key row, and mark it updated
CREATE FUNCTION unkey._store_key(k unkey.keys)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE unkey.keys kk
	   SET (name, identity_id, meta, expires, enabled, remaining, refill_interval, refill_amount,
			refill_day, last_refill_at, updated_at)
		 = (k.name, k.identity_id, k.meta, k.expires, k.enabled, k.remaining, k.refill_interval,
			k.refill_amount, k.refill_day, k.last_refill_at, unkey.now())
	 WHERE kk.key_hash = k.key_hash;
END
$$;
COMMENT ON FUNCTION unkey._store_key(unkey.keys) IS 'private: write back a changed key row';

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
