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
	AS 'MODULE_PATHNAME', 'unkey_now' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION unkey.now() IS 'the clock used for expiry and refill (unkey.test_now pins it in tests)';

CREATE FUNCTION unkey._actor() RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_actor' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._actor() IS 'private: the calling role (current_user outside our SECURITY DEFINER functions)';

CREATE FUNCTION unkey._new_id(prefix text) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_new_id' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._new_id(text) IS 'private: a new random id with an Unkey-style prefix';

CREATE FUNCTION unkey._invalidate(rel regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_invalidate' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._invalidate(regclass) IS 'private: at commit, make every backend drop its caches of this table';

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
 * concurrent verifications, deletes and other changes of the same key.
 */
CREATE FUNCTION unkey._lock_key(key_id text)
RETURNS unkey.keys
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k unkey.keys;
BEGIN
	SELECT kk.* INTO k FROM unkey.keys kk
	  JOIN unkey.apis a ON a.id = kk.api_id AND a.deleted_at IS NULL
	 WHERE kk.id = key_id AND kk.deleted_at IS NULL
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
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE unkey.keys kk
	   SET (name, identity_id, meta, expires, enabled, remaining, refill_interval, refill_amount,
			refill_day, last_refill_at, updated_at)
		 = (k.name, k.identity_id, k.meta, k.expires, k.enabled, k.remaining, k.refill_interval,
			k.refill_amount, k.refill_day, k.last_refill_at, unkey.now())
	 WHERE kk.key_hash = k.key_hash
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
/*
 * credits.sql: the refill rule (C: src/credits.c), credit operations and
 * the bulk refill
 */

CREATE FUNCTION unkey._refill_due(last_refill_at timestamptz, refill_day integer, now timestamptz) RETURNS boolean
	AS 'MODULE_PATHNAME', 'unkey_refill_due' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._refill_due(timestamptz, integer, timestamptz) IS 'private: has a refill boundary passed since last_refill_at (refill_day NULL = daily)';

CREATE FUNCTION unkey._credits_now(remaining bigint, refill_amount bigint, refill_day integer,
								   last_refill_at timestamptz, now timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'unkey_credits_now' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._credits_now(bigint, bigint, integer, timestamptz, timestamptz) IS 'private: remaining credits after any refill that is due';

CREATE TYPE unkey.key_credits AS (
	remaining			bigint,
	refill_interval		text,
	refill_amount		bigint,
	refill_day			integer
);

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

CREATE FUNCTION unkey.unkey_update_credits(key_id text, operation text, value bigint DEFAULT NULL)
RETURNS unkey.key_credits
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ts timestamptz := unkey.now();
	k unkey.keys;
	balance bigint;
BEGIN
	IF operation IS NULL OR operation NOT IN ('set', 'increment', 'decrement') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'operation must be set, increment or decrement'::text,
							 'Pass ''set'', ''increment'' or ''decrement''.'::text);
	END IF;
	IF value < 0 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'value must not be negative'::text,
							 'Pass 0 or more; use ''decrement'' to lower the balance.'::text);
	END IF;
	IF operation <> 'set' AND value IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('value must be given to %s credits', operation),
							 'Pass the number of credits to add or take.'::text);
	END IF;
	-- the row lock orders this against concurrent verifications spending credits
	k := unkey._lock_key(key_id);
	IF operation <> 'set' AND k.remaining IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('cannot %s the credits of a key with unlimited credits', operation),
							 'Use ''set'' to give the key a balance first.'::text);
	END IF;
	-- any refill that is due happens first, as the next verification would apply it
	balance := unkey._credits_now(k.remaining, k.refill_amount, k.refill_day, k.last_refill_at, ts);
	IF operation = 'increment' AND balance::numeric + value > 9223372036854775807 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'credits would exceed the bigint range'::text,
							 'Set a smaller balance, or make the key unlimited with ''set'' and a NULL value.'::text);
	END IF;
	k := unkey._apply_key_changes(k, jsonb_build_object('credits',
		 CASE operation
			 WHEN 'set' THEN value
			 WHEN 'increment' THEN balance + value
			 ELSE greatest(balance - value, 0)
		 END), ts);
	PERFORM unkey._store_key(k);
	PERFORM unkey._audit('key.update'::text,
						 format('Updated key %s, set remaining to %s', k.id, coalesce(k.remaining::text, 'unlimited')),
						 ARRAY['key', k.id]);
	RETURN ROW(k.remaining, k.refill_interval, k.refill_amount, k.refill_day)::unkey.key_credits;
END
$$;
COMMENT ON FUNCTION unkey.unkey_update_credits(text, text, bigint) IS 'set, increment or decrement (clamped at 0) a key''s credits; set NULL makes it unlimited';
/*
 * permissions.sql: permissions, roles, what keys hold, and the permission
 * query language (C: src/permquery.c, src/permissions.c)
 */

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

-- pg_dump carries user data; the extension recreates everything else
SELECT pg_catalog.pg_extension_config_dump('unkey.permissions', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.roles', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.role_permissions', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.key_permissions', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.key_roles', '');

CREATE FUNCTION unkey.unkey_permissions_match(query text, permissions text[]) RETURNS boolean
	AS 'MODULE_PATHNAME', 'unkey_permissions_match' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey.unkey_permissions_match(text, text[]) IS 'does a permission query hold for these granted permissions (42601 if malformed)';

CREATE FUNCTION unkey.unkey_normalize_permission_query(query text) RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_normalize_permission_query' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey.unkey_normalize_permission_query(text) IS 'the canonical, fully parenthesised form of a permission query';

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
		PERFORM unkey._raise('invalid_parameter_value'::text, 'permissions must not contain null'::text,
							 'Remove the NULL elements from the array.'::text);
	END IF;
	SELECT p INTO bad FROM unnest(slugs) p WHERE p !~ '^[A-Za-z0-9_:.*-]{1,128}$' LIMIT 1;
	IF bad IS NOT NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('permission "%s" must be 1 to 128 characters of [A-Za-z0-9_:.*-]', bad),
							 'Use 1 to 128 letters, digits or _ : . * - such as documents.read.'::text);
	END IF;
	-- a concurrent creator of the same slug wins harmlessly
	INSERT INTO unkey.permissions (id, name, slug, created_at)
	SELECT unkey._new_id('perm'::text), p, p, unkey.now() FROM (SELECT DISTINCT p FROM unnest(slugs) p) s
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
		PERFORM unkey._raise('invalid_parameter_value'::text, 'roles must not contain null'::text,
							 'Remove the NULL elements from the array.'::text);
	END IF;
	SELECT r INTO missing FROM unnest(names) r
	 WHERE NOT EXISTS (SELECT FROM unkey.roles x WHERE x.name = r) LIMIT 1;
	IF missing IS NOT NULL THEN
		PERFORM unkey._raise('not_found'::text, format('role "%s" not found', missing),
							 'Create the role with unkey_create_role first; unkey_list_roles lists the roles.'::text);
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
	new_id text := unkey._new_id('perm'::text);
BEGIN
	IF name IS NULL OR char_length(name) NOT BETWEEN 1 AND 512 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'name must be 1 to 512 characters'::text,
							 'Pass a name of 1 to 512 characters.'::text);
	END IF;
	IF slug IS NULL OR slug !~ '^[A-Za-z0-9_:.*-]{1,128}$' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'slug must be 1 to 128 characters of [A-Za-z0-9_:.*-]'::text,
							 'Use 1 to 128 letters, digits or _ : . * - such as documents.read.'::text);
	END IF;
	IF char_length(description) > 512 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'description must be at most 512 characters'::text,
							 'Shorten the description to at most 512 characters.'::text);
	END IF;
	INSERT INTO unkey.permissions (id, name, slug, description, created_at)
	VALUES (new_id, name, slug, description, unkey.now())
	ON CONFLICT ON CONSTRAINT permissions_slug_key DO NOTHING;
	IF NOT FOUND THEN
		PERFORM unkey._raise('unique_violation'::text, format('a permission with slug "%s" already exists', slug),
							 'Use the existing permission, or pick another slug.'::text);
	END IF;
	PERFORM unkey._audit('permission.create'::text, format('Created permission %s', slug), ARRAY['permission', new_id]);
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
		PERFORM unkey._raise('not_found'::text, 'permission not found'::text,
							 'Pass the permission id (perm_...) or its slug; unkey_list_permissions lists them.'::text);
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
DECLARE
	perm unkey.permission := unkey.unkey_get_permission(permission);
BEGIN
	-- its links to roles and keys go with it
	DELETE FROM unkey.permissions p WHERE p.id = perm.permission_id;
	PERFORM unkey._audit('permission.delete'::text, format('Deleted permission %s', perm.slug), ARRAY['permission', perm.permission_id]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_permission(text) IS 'delete a permission and remove it from every role and key';

CREATE FUNCTION unkey.unkey_create_role(name text, description text DEFAULT NULL, permissions text[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_id text := unkey._new_id('role'::text);
BEGIN
	IF name IS NULL OR char_length(name) NOT BETWEEN 1 AND 128 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'name must be 1 to 128 characters'::text,
							 'Pass a name of 1 to 128 characters.'::text);
	END IF;
	IF char_length(description) > 512 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'description must be at most 512 characters'::text,
							 'Shorten the description to at most 512 characters.'::text);
	END IF;
	INSERT INTO unkey.roles (id, name, description, created_at)
	VALUES (new_id, name, description, unkey.now())
	ON CONFLICT ON CONSTRAINT roles_name_key DO NOTHING;
	IF NOT FOUND THEN
		PERFORM unkey._raise('unique_violation'::text, format('a role named "%s" already exists', name),
							 'Use the existing role, or pick another name.'::text);
	END IF;
	IF permissions IS NOT NULL THEN
		INSERT INTO unkey.role_permissions (role_id, permission_id)
		SELECT new_id, unnest(unkey._permission_ids(permissions));
	END IF;
	PERFORM unkey._audit('role.create'::text, format('Created role %s', name), ARRAY['role', new_id]);
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
		PERFORM unkey._raise('not_found'::text, 'role not found'::text,
							 'Pass the role id (role_...) or its name; unkey_list_roles lists them.'::text);
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
DECLARE
	r unkey.role := unkey.unkey_get_role(role);
BEGIN
	-- its links to permissions and keys go with it
	DELETE FROM unkey.roles x WHERE x.id = r.role_id;
	PERFORM unkey._audit('role.delete'::text, format('Deleted role %s', r.name), ARRAY['role', r.role_id]);
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
		PERFORM unkey._raise('invalid_parameter_value'::text, 'permissions must not be null'::text,
							 'Pass ''{}'' to remove every permission.'::text);
	END IF;
	ids := unkey._permission_ids(permissions);
	DELETE FROM unkey.role_permissions rp WHERE rp.role_id = rid AND rp.permission_id <> ALL (ids);
	INSERT INTO unkey.role_permissions (role_id, permission_id)
	SELECT rid, unnest(ids) ON CONFLICT DO NOTHING;
	PERFORM unkey._audit('role.update'::text, format('Set the permissions of role %s', rid), ARRAY['role', rid]);
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
	h bytea := (unkey._lock_key(key_id)).key_hash;
	ids text[];
BEGIN
	IF names IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('%s must not be null', kind),
							 'Pass ''{}'' for none.'::text);
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
	PERFORM unkey._audit(CASE action
						 WHEN 'set' THEN 'key.update'
						 ELSE format('authorization.%s_%s_and_key', CASE action WHEN 'add' THEN 'connect' ELSE 'disconnect' END,
									 CASE kind WHEN 'roles' THEN 'role' ELSE 'permission' END)
						 END,
						 format('%s %s of key %s: %s', initcap(action), kind, key_id, array_to_string(names, ', ')),
						 ARRAY['key', key_id]);
	RETURN unkey._key_grants(h, kind);
END
$$;
COMMENT ON FUNCTION unkey._change_key_grants(text, text[], text, text) IS 'private: add, remove or set the direct permissions or the roles of a key';

-- unkey_add_, unkey_remove_ and unkey_set_ key_permissions and key_roles:
-- one template over the three actions and the two kinds
DO $$
DECLARE
	w text[];
BEGIN
	FOREACH w SLICE 1 IN ARRAY ARRAY[
		['add', 'permissions', 'grant permissions to a key (missing slugs are created)'],
		['remove', 'permissions', 'take permissions from a key'],
		['set', 'permissions', 'replace the direct permissions of a key ({} clears)'],
		['add', 'roles', 'give roles to a key (they must exist)'],
		['remove', 'roles', 'take roles from a key'],
		['set', 'roles', 'replace the roles of a key ({} clears)']] LOOP
		EXECUTE format($f$
CREATE FUNCTION unkey.unkey_%1$s_key_%2$s(key_id text, %2$s text[]) RETURNS text[]
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $b$ SELECT unkey._change_key_grants(key_id, %2$s, %2$L::text, %1$L::text) $b$;
COMMENT ON FUNCTION unkey.unkey_%1$s_key_%2$s(text, text[]) IS %3$L$f$, w[1], w[2], w[3]);
	END LOOP;
END
$$;
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
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(jsonb_agg(jsonb_build_object('name', r.name, 'limit', r."limit", 'duration', r.duration_ms,
											 'autoApply', r.auto_apply) ORDER BY r.name COLLATE "C"), '[]')
  FROM (SELECT k.name, k."limit", k.duration_ms, k.auto_apply FROM unkey.key_ratelimits k WHERE k.key_hash = $1
		UNION ALL
		SELECT i.name, i."limit", i.duration_ms, i.auto_apply FROM unkey.identity_ratelimits i WHERE i.identity_id = $2) r
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
/*
 * lifecycle.sql: reading, changing, rerolling and migrating keys,
 * identities, and the audit log
 */

CREATE TABLE unkey.audit_log (
	id					bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time				timestamptz NOT NULL,
	event				text NOT NULL,
	actor				text NOT NULL,
	remote_ip			text,
	user_agent			text,
	correlation_id		bigint NOT NULL,
	targets				jsonb NOT NULL CHECK (jsonb_typeof(targets) = 'array'),
	description			text NOT NULL
);
COMMENT ON TABLE unkey.audit_log IS 'local: one row per change made through the extension; never a key or a hash';

-- pg_dump carries user data; the extension recreates everything else
SELECT pg_catalog.pg_extension_config_dump('unkey.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.audit_log_id_seq', '');

-- what unkey_get_key, unkey_whoami and unkey_list_keys show of a key
CREATE TYPE unkey.key_info AS (
	key_id				text,
	api_id				text,
	start				text,
	prefix				text,
	name				text,
	meta				jsonb,
	identity_id			text,
	external_id			text,
	identity_meta		jsonb,
	enabled				boolean,
	expires				timestamptz,
	credits				bigint,
	refill_interval		text,
	refill_amount		bigint,
	refill_day			integer,
	last_refill_at		timestamptz,
	ratelimits			jsonb,
	roles				text[],
	permissions			text[],
	created_at			timestamptz,
	updated_at			timestamptz,
	last_used_at		timestamptz,
	plaintext			text			-- only from unkey_get_key and unkey_list_keys with decrypt => true
);

CREATE TYPE unkey.key_page AS (
	keys				unkey.key_info[],
	cursor				text,
	has_more			boolean
);

CREATE TYPE unkey.identity AS (
	identity_id			text,
	external_id			text,
	meta				jsonb,
	ratelimits			jsonb,
	created_at			timestamptz,
	updated_at			timestamptz
);

CREATE TYPE unkey.identity_page AS (
	identities			unkey.identity[],
	cursor				text,
	has_more			boolean
);

CREATE TYPE unkey.migration_result AS (
	migrated			jsonb,
	failed				jsonb
);

-- A 32-byte SHA-256 given as base64 (Unkey's form) or hex; NULL if it is neither
CREATE FUNCTION unkey._decode_hash(hash text)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF hash ~ '^[0-9A-Fa-f]{64}$' THEN
		RETURN decode(hash, 'hex');
	END IF;
	IF hash ~ '^[A-Za-z0-9+/]{43}=$' THEN
		RETURN decode(hash, 'base64');
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION unkey._decode_hash(text) IS 'private: parse a key hash in base64 or hex';

-- One JSON field of a change set: the text of a value of this kind, NULL for JSON null or absent
CREATE FUNCTION unkey._json_field(changes jsonb, field text, kind text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v jsonb := changes -> field;
BEGIN
	IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(v) <> kind
	   OR (kind = 'number' AND (v::numeric <> trunc(v::numeric)
								OR v::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807)) THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('%s must be %s', field, CASE kind WHEN 'number' THEN 'an integer or null' WHEN 'boolean' THEN 'true or false' ELSE 'a ' || kind || ' or null' END),
							 'Give the field a value the message allows, or leave it out.'::text);
	END IF;
	IF kind = 'number' THEN
		RETURN trunc(v::numeric)::text;		-- 1.0 and 1e2 are integers too
	END IF;
	RETURN v #>> '{}';
END
$$;
COMMENT ON FUNCTION unkey._json_field(jsonb, text, text) IS 'private: read and type-check one field of a JSON change set';

-- A JSON array of strings as text[]; NULL for JSON null or absent
CREATE FUNCTION unkey._json_text_array(changes jsonb, field text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v jsonb := changes -> field;
BEGIN
	IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(v) <> 'array'
	   OR EXISTS (SELECT 1 FROM jsonb_array_elements(v) e WHERE jsonb_typeof(e) <> 'string') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('%s must be an array of strings or null', field),
							 'Pass an array of names, [] to remove all, or leave the field out to keep them.'::text);
	END IF;
	RETURN ARRAY(SELECT jsonb_array_elements_text(v));
END
$$;
COMMENT ON FUNCTION unkey._json_text_array(jsonb, text) IS 'private: read a string-array field of a JSON change set';

/*
 * Apply a JSON change set to a key row with Unkey's three-state rules: an
 * absent field is unchanged, null clears it, a value sets it.  Validates the
 * result (and the rate limits, roles and permissions in the set) before the
 * identity upsert, its only write.
 */
CREATE FUNCTION unkey._apply_key_changes(k unkey.keys, changes jsonb, ts timestamptz)
RETURNS unkey.keys
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	unknown text;
	ext text;
	v jsonb;
	day bigint;
BEGIN
	IF jsonb_typeof(changes) IS DISTINCT FROM 'object' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'changes must be a JSON object'::text,
							 'Pass an object such as {"name": "prod", "credits": 100}.'::text);
	END IF;
	SELECT string_agg(f, ', ' ORDER BY f) INTO unknown
	  FROM jsonb_object_keys(changes) f
	 WHERE f <> ALL (ARRAY['name', 'external_id', 'meta', 'expires', 'enabled', 'credits', 'refill_interval',
						   'refill_amount', 'refill_day', 'ratelimits', 'roles', 'permissions']);
	IF unknown IS NOT NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('unknown field: %s', unknown),
							 'The fields are the unkey_create_key parameter names: name, external_id, meta, expires, enabled, credits, refill_interval, refill_amount, refill_day, ratelimits, roles and permissions.'::text);
	END IF;

	-- bring the balance up to date first, as the next verification would
	IF k.refill_amount IS NOT NULL AND unkey._refill_due(k.last_refill_at, k.refill_day, ts) THEN
		k.remaining := unkey._credits_now(k.remaining, k.refill_amount, k.refill_day, k.last_refill_at, ts);
		k.last_refill_at := ts;
	END IF;

	IF changes ? 'name' THEN
		k.name := unkey._json_field(changes, 'name'::text, 'string'::text);
	END IF;
	IF changes ? 'external_id' THEN
		ext := unkey._json_field(changes, 'external_id'::text, 'string'::text);
		k.identity_id := NULL;
		IF ext IS NOT NULL THEN
			PERFORM unkey._check_external_id(ext);
		END IF;
	END IF;
	IF changes ? 'meta' THEN
		k.meta := nullif(changes -> 'meta', 'null');
	END IF;
	IF changes ? 'expires' THEN
		v := changes -> 'expires';
		BEGIN
			k.expires := CASE jsonb_typeof(v)
							 WHEN 'null' THEN NULL
							 WHEN 'string' THEN (v #>> '{}')::timestamptz
							 WHEN 'number' THEN to_timestamp(v::numeric / 1000)
						 END;
			IF jsonb_typeof(v) NOT IN ('null', 'string', 'number') OR NOT isfinite(k.expires) THEN
				RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';	-- answered just below
			END IF;
		EXCEPTION WHEN data_exception THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, 'expires must be a timestamp, Unix milliseconds or null'::text,
								 'Pass an ISO 8601 timestamp, Unix milliseconds, or null for no expiry.'::text);
		END;
	END IF;
	IF changes ? 'enabled' THEN
		k.enabled := unkey._json_field(changes, 'enabled'::text, 'boolean'::text)::boolean;
	END IF;
	IF changes ? 'credits' THEN
		k.remaining := unkey._json_field(changes, 'credits'::text, 'number'::text)::bigint;
		-- unlimited credits leave nothing to refill
		IF k.remaining IS NULL THEN
			k.refill_interval := NULL;
			k.refill_amount := NULL;
			k.refill_day := NULL;
		END IF;
	END IF;
	-- null clears the whole refill; daily has no refill day; absent parts stay
	IF changes ? 'refill_interval' THEN
		k.refill_interval := unkey._json_field(changes, 'refill_interval'::text, 'string'::text);
		IF k.refill_interval IS NULL THEN
			k.refill_amount := NULL;
		END IF;
		IF k.refill_interval IS DISTINCT FROM 'monthly' THEN
			k.refill_day := NULL;
		END IF;
	END IF;
	IF changes ? 'refill_amount' THEN
		k.refill_amount := unkey._json_field(changes, 'refill_amount'::text, 'number'::text)::bigint;
	END IF;
	IF changes ? 'refill_day' THEN
		day := unkey._json_field(changes, 'refill_day'::text, 'number'::text)::bigint;
		IF day NOT BETWEEN 1 AND 31 THEN
			PERFORM unkey._raise('invalid_parameter_value'::text, 'refill_day must be between 1 and 31'::text,
								 'Pass 1 to 31; 31 refills on the last day of shorter months.'::text);
		END IF;
		k.refill_day := day;
	END IF;
	k.last_refill_at := CASE WHEN k.refill_interval IS NOT NULL THEN coalesce(k.last_refill_at, ts) END;
	PERFORM unkey._check_key(k);

	IF jsonb_typeof(changes -> 'ratelimits') IS DISTINCT FROM 'null' AND changes ? 'ratelimits' THEN
		PERFORM unkey._check_ratelimits(changes -> 'ratelimits');
	END IF;
	PERFORM unkey._role_ids(unkey._json_text_array(changes, 'roles'::text));
	PERFORM unkey._json_text_array(changes, 'permissions'::text);

	IF ext IS NOT NULL THEN
		k.identity_id := unkey._upsert_identity(ext);
	END IF;
	RETURN k;
END
$$;
COMMENT ON FUNCTION unkey._apply_key_changes(unkey.keys, jsonb, timestamptz) IS 'private: apply and validate a three-state change set to a key';

-- Store the rate limits, roles and permissions of a change set (null or absent: unchanged)
CREATE FUNCTION unkey._apply_key_links(h bytea, changes jsonb)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT unkey._set_key_links(h, nullif(changes -> 'ratelimits', 'null'),
								unkey._json_text_array(changes, 'roles'::text),
								unkey._json_text_array(changes, 'permissions'::text))
$$;
COMMENT ON FUNCTION unkey._apply_key_links(bytea, jsonb) IS 'private: store the sets of a JSON change set';

-- The sorted role names or direct permission slugs of a key
CREATE FUNCTION unkey._key_grants(h bytea, kind text)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE kind
		   WHEN 'roles' THEN ARRAY(SELECT r.name FROM unkey.key_roles kr JOIN unkey.roles r ON r.id = kr.role_id
									WHERE kr.key_hash = h ORDER BY r.name COLLATE "C")
		   ELSE ARRAY(SELECT p.slug FROM unkey.key_permissions kp JOIN unkey.permissions p ON p.id = kp.permission_id
					   WHERE kp.key_hash = h ORDER BY p.slug COLLATE "C")
		   END
$$;
COMMENT ON FUNCTION unkey._key_grants(bytea, text) IS 'private: the roles or direct permissions of a key';

-- Everything shown of a live key of a live API; PT404 if there is none
CREATE FUNCTION unkey._key_info(h bytea)
RETURNS unkey.key_info
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result unkey.key_info;
BEGIN
	SELECT k.id, k.api_id, k.start, k.prefix, k.name, k.meta, k.identity_id, i.external_id, i.meta,
		   k.enabled, k.expires,
		   unkey._credits_now(k.remaining, k.refill_amount, k.refill_day, k.last_refill_at, unkey.now()),
		   k.refill_interval, k.refill_amount, k.refill_day, k.last_refill_at,
		   unkey._get_ratelimits(k.key_hash, NULL::text),
		   unkey._key_grants(k.key_hash, 'roles'::text), unkey._key_grants(k.key_hash, 'permissions'::text),
		   k.created_at, k.updated_at,
		   -- from the rollups of the verification events, not written by verification
		   (SELECT max(r.last_time) FROM unkey._rollups r
			 WHERE r.key_hash = k.key_hash AND r.granularity = 'month' AND r.key_id = k.id),
		   NULL::text
	  INTO result
	  FROM unkey.keys k
	  JOIN unkey.apis a ON a.id = k.api_id AND a.deleted_at IS NULL
	  LEFT JOIN unkey.identities i ON i.id = k.identity_id
	 WHERE k.key_hash = h AND k.deleted_at IS NULL;
	IF result.key_id IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'key not found'::text,
							 'Check the key id (key_...); a deleted key, or a key of a deleted API, cannot be used.'::text);
	END IF;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey._key_info(bytea) IS 'private: the key_info of a key hash';

/*
 * unkey_get_key and unkey_list_keys are C (src/vault.c): decrypt => true
 * needs the caller to be a member of unkey_decrypt, which a SECURITY
 * DEFINER function could not see; they check that as the caller, then run
 * unkey._get_key or unkey._list_keys as the extension's owner.
 */
CREATE FUNCTION unkey._get_key(key_id text, decrypt boolean)
RETURNS unkey.key_info
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h bytea;
	result unkey.key_info;
BEGIN
	IF decrypt IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'decrypt must not be null'::text,
							 'Pass true to show the plaintext of a recoverable key, or false.'::text);
	END IF;
	h := unkey._key_hash_of(key_id);
	result := unkey._key_info(h);
	IF decrypt THEN
		result.plaintext := (unkey._decrypt_keys(ARRAY[h]))[1];
	END IF;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey._get_key(text, boolean) IS 'private: unkey_get_key, run as the owner';

CREATE FUNCTION unkey.unkey_get_key(key_id text, decrypt boolean DEFAULT false)
RETURNS unkey.key_info
AS 'MODULE_PATHNAME', 'unkey_read_keys'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_get_key(text, boolean) IS 'a key''s settings, credits, limits, roles, permissions and last use; PT404 if missing; decrypt => true (role unkey_decrypt) adds the plaintext of a recoverable key';

CREATE FUNCTION unkey.unkey_whoami(key text)
RETURNS unkey.key_info
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF key IS NULL OR char_length(key) NOT BETWEEN 1 AND 512 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'key must be 1 to 512 characters'::text,
							 'Pass the whole key as it was shown when it was created.'::text);
	END IF;
	RETURN unkey._key_info(unkey._key_hash(key));
END
$$;
COMMENT ON FUNCTION unkey.unkey_whoami(text) IS 'the key_info of a plaintext key; PT404 if it does not exist';

CREATE FUNCTION unkey.unkey_get_key_by_hash(hash text)
RETURNS unkey.key_info
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h bytea := unkey._decode_hash(hash);
BEGIN
	IF h IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'hash must be the base64 or hex form of a SHA-256'::text,
							 'Pass the SHA-256 of the whole key as 44 characters of base64 (as Unkey shows it) or 64 hex digits.'::text);
	END IF;
	RETURN unkey._key_info(h);
END
$$;
COMMENT ON FUNCTION unkey.unkey_get_key_by_hash(text) IS 'the key_info of a key given by its SHA-256 (base64 as Unkey shows it, or hex)';

CREATE FUNCTION unkey._list_keys(api_id text, "limit" integer, cursor text, external_id text, decrypt boolean)
RETURNS unkey.key_page
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer := unkey._check_limit("limit");
	hashes bytea[];
	ids text[];
	infos unkey.key_info[];
	plaintexts text[];
BEGIN
	IF decrypt IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'decrypt must not be null'::text,
							 'Pass true to show the plaintexts of recoverable keys, or false.'::text);
	END IF;
	IF NOT EXISTS (SELECT FROM unkey.apis a WHERE a.id = _list_keys.api_id AND a.deleted_at IS NULL) THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	-- keyset pagination on (api_id, id): one more row than asked says whether there are more
	SELECT array_agg(p.key_hash ORDER BY p.id), array_agg(p.id ORDER BY p.id) INTO hashes, ids
	  FROM (SELECT k.key_hash, k.id FROM unkey.keys k
			 WHERE k.api_id = _list_keys.api_id AND k.deleted_at IS NULL
			   AND (_list_keys.cursor IS NULL OR k.id > _list_keys.cursor)
			   AND (_list_keys.external_id IS NULL OR k.identity_id =
					(SELECT i.id FROM unkey.identities i WHERE i.external_id = _list_keys.external_id))
			 ORDER BY k.id LIMIT n + 1) p;
	infos := ARRAY(SELECT unkey._key_info(u.h) FROM unnest(hashes[1:n]) WITH ORDINALITY u(h, i) ORDER BY u.i);
	IF decrypt AND cardinality(infos) > 0 THEN
		plaintexts := unkey._decrypt_keys(hashes[1:n]);
		FOR i IN 1 .. cardinality(infos) LOOP
			infos[i].plaintext := plaintexts[i];
		END LOOP;
	END IF;
	RETURN ROW(infos, CASE WHEN cardinality(ids) > n THEN ids[n] END,
			   coalesce(cardinality(ids) > n, false))::unkey.key_page;
END
$$;
COMMENT ON FUNCTION unkey._list_keys(text, integer, text, text, boolean) IS 'private: unkey_list_keys, run as the owner';

CREATE FUNCTION unkey.unkey_list_keys(api_id text, "limit" integer DEFAULT 100, cursor text DEFAULT NULL,
									  external_id text DEFAULT NULL, decrypt boolean DEFAULT false)
RETURNS unkey.key_page
AS 'MODULE_PATHNAME', 'unkey_read_keys'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_list_keys(text, integer, text, text, boolean) IS 'a page of an API''s live keys in id order; pass the returned cursor for the next page; decrypt => true (role unkey_decrypt) adds plaintexts';

CREATE FUNCTION unkey.unkey_update_key(key_id text, changes jsonb)
RETURNS unkey.key_info
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ts timestamptz := unkey.now();
	k unkey.keys;
BEGIN
	k := unkey._apply_key_changes(unkey._lock_key(key_id), changes, ts);
	PERFORM unkey._store_key(k);
	PERFORM unkey._apply_key_links(k.key_hash, changes);
	PERFORM unkey._audit('key.update'::text,
						 format('Updated key %s: %s', k.id,
								(SELECT string_agg(f, ', ' ORDER BY f) FROM jsonb_object_keys(changes) f)),
						 ARRAY['key', k.id]);
	RETURN unkey._key_info(k.key_hash);
END
$$;
COMMENT ON FUNCTION unkey.unkey_update_key(text, jsonb) IS 'change a key: fields absent from changes stay, null clears, a value sets; sets are replaced whole';

CREATE FUNCTION unkey.unkey_reroll_key(key_id text, expiration interval)
RETURNS unkey.created_key
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ts timestamptz := unkey.now();
	old unkey.keys;
	k unkey.keys;
	new_key text;
	ciphertext bytea;
BEGIN
	IF expiration IS NULL OR expiration < interval '0' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'expiration must be zero or positive'::text,
							 'Pass ''0'' to expire the old key at once, or how long it stays valid, such as ''1 hour''.'::text);
	END IF;
	-- lock the old key: a concurrent verification spends before or after the copy, never during it
	old := unkey._lock_key(key_id);
	-- the new key copies everything but its secret; the stored prefix keeps sk_live whole (D14)
	k := old;
	new_key := unkey._generate_key(old.prefix,
								   (SELECT a.default_byte_length FROM unkey.apis a WHERE a.id = old.api_id));
	k := unkey._with_secret(k, new_key);
	k.created_at := ts;
	k.updated_at := NULL;
	INSERT INTO unkey.keys VALUES (k.*);
	-- a recoverable key's successor is recoverable too, sealed under its own id
	IF EXISTS (SELECT FROM unkey.encrypted_keys e WHERE e.key_hash = old.key_hash) THEN
		ciphertext := unkey._encrypt_key(k.api_id, k.id, new_key);
		INSERT INTO unkey.encrypted_keys (key_hash, api_id, ciphertext, created_at)
		VALUES (k.key_hash, k.api_id, ciphertext, ts);
	END IF;
	INSERT INTO unkey.key_ratelimits (key_hash, name, "limit", duration_ms, auto_apply)
	SELECT k.key_hash, r.name, r."limit", r.duration_ms, r.auto_apply FROM unkey.key_ratelimits r WHERE r.key_hash = old.key_hash;
	INSERT INTO unkey.key_roles (key_hash, role_id)
	SELECT k.key_hash, r.role_id FROM unkey.key_roles r WHERE r.key_hash = old.key_hash;
	INSERT INTO unkey.key_permissions (key_hash, permission_id)
	SELECT k.key_hash, p.permission_id FROM unkey.key_permissions p WHERE p.key_hash = old.key_hash;

	UPDATE unkey.keys kk SET expires = ts + expiration, updated_at = ts WHERE kk.key_hash = old.key_hash;
	PERFORM unkey._audit('key.reroll'::text, format('Rerolled key %s into %s', old.id, k.id), ARRAY['key', old.id, 'key', k.id]);
	RETURN ROW(k.id, new_key)::unkey.created_key;
END
$$;
COMMENT ON FUNCTION unkey.unkey_reroll_key(text, interval) IS 'replace a key with a new secret and the same settings; the old key expires after expiration';

CREATE FUNCTION unkey.unkey_migrate_keys(api_id text, keys jsonb)
RETURNS unkey.migration_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ts timestamptz := unkey.now();
	live_api text;
	recoverable boolean;
	item jsonb;
	plain text;
	shown text;
	ciphertext bytea;
	n integer;
	k unkey.keys;
	migrated jsonb[] := '{}';
	failed text[] := '{}';
	ids text[] := '{}';
	state text;
	msg text;
	hint text;
BEGIN
	SELECT a.id, a.recoverable INTO live_api, recoverable
	  FROM unkey.apis a WHERE a.id = unkey_migrate_keys.api_id AND a.deleted_at IS NULL;
	IF live_api IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	IF jsonb_typeof(keys) IS DISTINCT FROM 'array' OR jsonb_array_length(keys) NOT BETWEEN 1 AND 1000 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'keys must be a JSON array of 1 to 1000 keys'::text,
							 'Split the keys into calls of at most 1,000.'::text);
	END IF;
	-- by index, in expressions: no query (nor its plan, for auto_explain) ever holds a plaintext
	FOR n IN 0 .. jsonb_array_length(keys) - 1 LOOP
		item := keys -> n;
		BEGIN
			IF jsonb_typeof(item) IS DISTINCT FROM 'object'
			   OR (item ? 'hash') = (item ? 'plaintext')
			   OR jsonb_typeof(coalesce(item -> 'hash', item -> 'plaintext')) <> 'string' THEN
				PERFORM unkey._raise('invalid_parameter_value'::text, 'must be an object with either a hash or a plaintext string'::text,
									 'Each key takes "hash" (its SHA-256) or "plaintext" (the key itself), and optionally the fields of unkey_update_key.'::text);
			END IF;
			k := NULL;
			-- a plaintext is hashed here, shown only by its hash, and stored only encrypted
			plain := item ->> 'plaintext';
			IF plain IS NOT NULL THEN
				IF char_length(plain) NOT BETWEEN 1 AND 512 THEN
					PERFORM unkey._raise('invalid_parameter_value'::text, 'plaintext must be 1 to 512 characters'::text,
										 'Pass the whole key, as the verification will present it.'::text);
				END IF;
				k.key_hash := unkey._key_hash(plain);
				shown := encode(k.key_hash, 'base64');
			ELSE
				k.key_hash := unkey._decode_hash(item ->> 'hash');
				shown := item ->> 'hash';
			END IF;
			-- a malformed or taken hash fails alone, before anything of it is written
			IF k.key_hash IS NULL OR EXISTS (SELECT FROM unkey.keys kk WHERE kk.key_hash = k.key_hash) THEN
				failed := failed || shown;
				CONTINUE;
			END IF;
			k.id := unkey._new_id('key'::text);
			k.api_id := live_api;
			-- Unkey's migration shows the first 4 characters; we do only of a key of 16 or more
			k.start := CASE WHEN char_length(plain) >= 16 THEN left(plain, 4) ELSE '' END;
			k.enabled := true;
			k.created_at := ts;
			k := unkey._apply_key_changes(k, item - 'hash' - 'plaintext', ts);
			ciphertext := CASE WHEN plain IS NOT NULL AND recoverable THEN unkey._encrypt_key(live_api, k.id, plain) END;
			-- a concurrent import of the same hash: the first one wins
			INSERT INTO unkey.keys VALUES (k.*) ON CONFLICT (key_hash) DO NOTHING;
			IF NOT FOUND THEN
				failed := failed || shown;
				CONTINUE;
			END IF;
			IF ciphertext IS NOT NULL THEN
				INSERT INTO unkey.encrypted_keys (key_hash, api_id, ciphertext, created_at)
				VALUES (k.key_hash, live_api, ciphertext, ts);
			END IF;
			PERFORM unkey._apply_key_links(k.key_hash, item - 'plaintext');
		EXCEPTION WHEN OTHERS THEN
			-- say which key was wrong, keeping the SQLSTATE
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
			RAISE EXCEPTION 'keys[%]: %', n, msg USING ERRCODE = state, HINT = hint;
		END;
		migrated := migrated || jsonb_build_object('hash', shown, 'keyId', k.id);
		ids := ids || ARRAY['key', k.id];
	END LOOP;
	PERFORM unkey._audit('key.create'::text, format('Migrated %s keys into API %s', cardinality(ids) / 2, live_api),
						 ARRAY['api', live_api] || ids);
	RETURN ROW(to_jsonb(migrated), to_jsonb(failed))::unkey.migration_result;
END
$$;
COMMENT ON FUNCTION unkey.unkey_migrate_keys(text, jsonb) IS 'import keys by their SHA-256 (base64 or hex) or their plaintext (stored encrypted when the API is recoverable); returns migrated [{hash, keyId}] and failed [hash]';

-- An identity as shown by the identity functions
CREATE FUNCTION unkey._identity_info(identity_id text)
RETURNS unkey.identity
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT ROW(i.id, i.external_id, i.meta,
			   unkey._get_ratelimits(NULL::bytea, i.id),
			   i.created_at, i.updated_at)::unkey.identity
	  FROM unkey.identities i WHERE i.id = identity_id
$$;
COMMENT ON FUNCTION unkey._identity_info(text) IS 'private: the unkey.identity row of an identity id';

CREATE FUNCTION unkey.unkey_create_identity(external_id text, meta jsonb DEFAULT NULL, ratelimits jsonb DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_id text;
BEGIN
	PERFORM unkey._check_external_id(external_id);
	PERFORM unkey._check_meta(meta, 'meta'::text);
	IF ratelimits IS NOT NULL THEN
		PERFORM unkey._check_ratelimits(ratelimits);
	END IF;
	INSERT INTO unkey.identities (id, external_id, meta, created_at)
	VALUES (unkey._new_id('id'::text), external_id, coalesce(meta, '{}'), unkey.now())
	ON CONFLICT ON CONSTRAINT identities_external_id_key DO NOTHING
	RETURNING id INTO new_id;
	IF new_id IS NULL THEN
		PERFORM unkey._raise('unique_violation'::text, format('an identity with external_id "%s" already exists', external_id),
							 'Change that identity with unkey_update_identity, or pick another external id.'::text);
	END IF;
	IF ratelimits IS NOT NULL THEN
		PERFORM unkey._replace_ratelimits(NULL::bytea, new_id, ratelimits);
	END IF;
	PERFORM unkey._audit('identity.create'::text, format('Created identity %s', new_id), ARRAY['identity', new_id]);
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_identity(text, jsonb, jsonb) IS 'create an identity; returns its id (id_…); 23505 if the external id is taken';

CREATE FUNCTION unkey.unkey_get_identity(identity text)
RETURNS unkey.identity
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._identity_info(unkey._identity_id(identity, false)) $$;
COMMENT ON FUNCTION unkey.unkey_get_identity(text) IS 'an identity by id or external id, with its rate limits; PT404 if missing';

CREATE FUNCTION unkey.unkey_list_identities("limit" integer DEFAULT 100, cursor text DEFAULT NULL)
RETURNS unkey.identity_page
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer := unkey._check_limit("limit");
	ids text[];
BEGIN
	ids := ARRAY(SELECT i.id FROM unkey.identities i
				  WHERE unkey_list_identities.cursor IS NULL OR i.id > unkey_list_identities.cursor
				  ORDER BY i.id LIMIT n + 1);
	RETURN ROW(ARRAY(SELECT unkey._identity_info(u.id) FROM unnest(ids[1:n]) WITH ORDINALITY u(id, i) ORDER BY u.i),
			   CASE WHEN cardinality(ids) > n THEN ids[n] END,
			   cardinality(ids) > n)::unkey.identity_page;
END
$$;
COMMENT ON FUNCTION unkey.unkey_list_identities(integer, text) IS 'a page of identities in id order; pass the returned cursor for the next page';

CREATE FUNCTION unkey.unkey_update_identity(identity text, meta jsonb DEFAULT NULL, ratelimits jsonb DEFAULT NULL)
RETURNS unkey.identity
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	iid text := unkey._identity_id(identity, lock => true);
BEGIN
	PERFORM unkey._check_meta(meta, 'meta'::text);
	-- NULL leaves a field unchanged (D13): meta '{}' clears it, ratelimits '[]' removes them all
	UPDATE unkey.identities i SET meta = coalesce(unkey_update_identity.meta, i.meta), updated_at = unkey.now()
	 WHERE i.id = iid;
	IF ratelimits IS NOT NULL THEN
		PERFORM unkey._replace_ratelimits(NULL::bytea, iid, ratelimits);
	END IF;
	PERFORM unkey._audit('identity.update'::text, format('Updated identity %s', iid), ARRAY['identity', iid]);
	RETURN unkey._identity_info(iid);
END
$$;
COMMENT ON FUNCTION unkey.unkey_update_identity(text, jsonb, jsonb) IS 'replace an identity''s meta and/or rate limits; NULL leaves them unchanged';

CREATE FUNCTION unkey.unkey_delete_identity(identity text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	iid text := unkey._identity_id(identity, lock => true);
BEGIN
	-- unlink its keys first: they keep working, without the identity's rate limits
	UPDATE unkey.keys k SET identity_id = NULL, updated_at = unkey.now() WHERE k.identity_id = iid;
	DELETE FROM unkey.identities i WHERE i.id = iid;
	PERFORM unkey._audit('identity.delete'::text, format('Deleted identity %s', iid), ARRAY['identity', iid]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_delete_identity(text) IS 'delete an identity and its rate limits; its keys are unlinked and keep working';

CREATE VIEW unkey.audit_trail AS
SELECT l.id, l.time, l.event, l.actor, l.remote_ip, l.user_agent, l.correlation_id,
	   ARRAY(SELECT (t ->> 'type') || ':' || (t ->> 'id') FROM jsonb_array_elements(l.targets) t) AS targets,
	   l.description
  FROM unkey.audit_log l;
COMMENT ON VIEW unkey.audit_trail IS 'the audit log, one row per change, targets as type:id';
/*
 * events.sql: the event tables the event writer fills (C: src/events.c),
 * rollups, retention and analytics
 */

-- Events are partitioned by day (UTC); the event writer creates the
-- partitions as events arrive, and the retention drops whole partitions.
CREATE TABLE unkey.verification_events (
	time				timestamptz NOT NULL,
	request_id			text,
	key_hash			bytea NOT NULL CHECK (octet_length(key_hash) = 32),
	api_id				text,
	key_id				text,
	identity_id			text,
	external_id			text,
	outcome				text NOT NULL,
	tags				text[],
	spent_credits		bigint NOT NULL DEFAULT 0,
	latency				double precision
) PARTITION BY RANGE (time);
COMMENT ON TABLE unkey.verification_events IS 'per-key: one row per verification, partitioned by day; NOT_FOUND rows carry the hash of the presented key';

CREATE TABLE unkey.ratelimit_events (
	time				timestamptz NOT NULL,
	request_id			text,
	namespace_id		text NOT NULL,
	namespace			text NOT NULL,
	identifier			text NOT NULL,
	passed				boolean NOT NULL,
	"limit"				bigint NOT NULL,
	remaining			bigint NOT NULL,
	reset				timestamptz NOT NULL,
	cost				bigint NOT NULL,
	override_id			text,
	latency				double precision
) PARTITION BY RANGE (time);
COMMENT ON TABLE unkey.ratelimit_events IS 'per-identifier: one row per unkey_ratelimit check, partitioned by day';

-- Verification counts per hour, day and month (UTC): the event writer adds
-- each batch to the hours; a day, and a month, is materialised from the finer
-- grain once it has closed (unkey._materialize_rollups), and a query adds the
-- finer rows of the buckets still open (unkey._rollups).  One narrow row per
-- bucket, key, identity and API, with the outcomes as columns and the
-- latencies as a histogram (see src/analytics.c): the shape of the common
-- answers (per day and key, per key).  Verifications with tags are counted a
-- second time per tag set, in verification_tag_rollups; those without tags
-- are the difference (unkey._tag_sets).
CREATE TABLE unkey.verification_rollups (
	granularity			text NOT NULL CHECK (granularity IN ('hour', 'day', 'month')),
	bucket				timestamptz NOT NULL,
	key_hash			bytea NOT NULL,		-- 32 zero bytes for NOT_FOUND: one row, not one per presented key
	api_id				text,
	key_id				text,
	identity_id			text,
	external_id			text,
	valid				bigint NOT NULL,
	not_found			bigint NOT NULL,
	forbidden			bigint NOT NULL,
	usage_exceeded		bigint NOT NULL,
	rate_limited		bigint NOT NULL,
	disabled			bigint NOT NULL,
	insufficient_permissions bigint NOT NULL,
	expired				bigint NOT NULL,
	spent_credits		bigint NOT NULL,
	latency_sum			double precision NOT NULL,
	latency_hist		bytea NOT NULL,
	last_time			timestamptz NOT NULL,
	CONSTRAINT verification_rollups_key
		UNIQUE NULLS NOT DISTINCT (key_hash, granularity, bucket, identity_id, api_id)
) WITH (fillfactor = 80);	-- room on the page for a key's next verifications in the hour (HOT updates)
CREATE INDEX verification_rollups_api_idx ON unkey.verification_rollups (api_id, granularity, bucket);
COMMENT ON TABLE unkey.verification_rollups IS 'per-key: verification counts per hour, day and month, by key and identity, one column per outcome';

-- The same for the verifications that carry tags, per tag set
CREATE TABLE unkey.verification_tag_rollups (
	LIKE unkey.verification_rollups,
	tags				text[] NOT NULL,	-- sorted and de-duplicated, never empty
	tags_id				uuid NOT NULL,		-- md5 of tags: 20 tags of 512 characters do not fit an index
	CONSTRAINT verification_tag_rollups_key
		UNIQUE NULLS NOT DISTINCT (key_hash, granularity, bucket, tags_id, identity_id, api_id)
) WITH (fillfactor = 80);
CREATE INDEX verification_tag_rollups_api_idx ON unkey.verification_tag_rollups (api_id, granularity, bucket);
COMMENT ON TABLE unkey.verification_tag_rollups IS 'per-key: verification counts of tagged verifications per hour, day and month, by key, identity and tag set';

-- How far the coarser grains are materialised: the day rollups hold every
-- day before day_done, the month rollups every month before month_done, and
-- the hourly rollups before hours_from were pruned.  No row: nothing
-- materialised yet.  Writers of rollups hold ROW SHARE on it, a
-- materialisation EXCLUSIVE, so neither misses the other's rows.
CREATE TABLE unkey.rollup_state (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	day_done			timestamptz NOT NULL,
	month_done			timestamptz NOT NULL,
	hours_from			timestamptz
);
COMMENT ON TABLE unkey.rollup_state IS 'local: how far day and month rollups are materialised, and hourly rollups pruned';

CREATE TABLE unkey.event_settings (
	singleton			boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	retention			interval CHECK (retention > interval '0'),
	hourly_retention	interval CHECK (hourly_retention >= interval '2 days')
);
COMMENT ON TABLE unkey.event_settings IS 'local: how long raw events (unkey_set_retention) and hourly rollups (unkey_set_hourly_retention) are kept; NULL keeps them forever';

-- Rate-limit checks per hour (UTC), namespace and identifier, kept up to date
-- as events are written; days and months are summed from the hours
CREATE TABLE unkey.ratelimit_rollups (
	bucket				timestamptz NOT NULL,
	namespace_id		text NOT NULL,
	identifier			text NOT NULL,
	passed				bigint NOT NULL,
	limited				bigint NOT NULL,
	last_time			timestamptz NOT NULL,
	PRIMARY KEY (namespace_id, identifier, bucket)
) WITH (fillfactor = 80);	-- room for an identifier's next checks in the hour (HOT updates)
COMMENT ON TABLE unkey.ratelimit_rollups IS 'per-identifier: rate-limit checks per hour, namespace and identifier, passed and limited';

-- pg_dump carries user data; the extension recreates everything else
SELECT pg_catalog.pg_extension_config_dump('unkey.verification_rollups', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.verification_tag_rollups', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.event_settings', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.ratelimit_rollups', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.rollup_state', '');

CREATE FUNCTION unkey._latency_hist(latencies double precision[]) RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_hist_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._latency_hist(double precision[]) IS 'private: the latency histogram of some latencies (ms)';
CREATE FUNCTION unkey._hist_add(a bytea, b bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_hist_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._hist_add(bytea, bytea) IS 'private: two latency histograms merged';
CREATE FUNCTION unkey._latency_quantile(hist bytea, q double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'unkey_hist_quantile_stored' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION unkey._latency_quantile(bytea, double precision) IS 'private: a quantile (ms) of a latency histogram, within a factor of two';
CREATE FUNCTION unkey._hist_sub(a bytea, b bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_hist_subtract' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION unkey._hist_sub(bytea, bytea) IS 'private: the latencies of a histogram beyond those of a part of it';
CREATE AGGREGATE unkey._latency_hist_sum(bytea) (SFUNC = unkey._hist_add, STYPE = bytea, COMBINEFUNC = unkey._hist_add, PARALLEL = SAFE);
COMMENT ON AGGREGATE unkey._latency_hist_sum(bytea) IS 'private: latency histograms merged';

-- The day partitions (UTC) of an event table for these times, created when missing
CREATE FUNCTION unkey._ensure_partitions(parent text, times timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	day timestamptz;
	part text;
BEGIN
	FOR day IN SELECT DISTINCT date_trunc('day', t, 'UTC') FROM unnest(times) t WHERE t IS NOT NULL LOOP
		part := parent || '_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
		CONTINUE WHEN to_regclass(format('unkey.%I', part)) IS NOT NULL;
		BEGIN
			-- the bounds in UTC, whatever the session's DateStyle and TimeZone
			EXECUTE format('CREATE TABLE unkey.%I PARTITION OF unkey.%I FOR VALUES FROM (%L) TO (%L)', part, parent,
						   to_char(day AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'),
						   to_char((day + interval '24 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
		EXCEPTION WHEN duplicate_table OR unique_violation THEN
			NULL;				-- another writer created it first
		END;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._ensure_partitions(text, timestamptz[]) IS 'private: create the day partitions these events need';

-- Write events given as arrays the way the event writer writes them (src/eventstore.c)
CREATE FUNCTION unkey._store_verifications(t timestamptz[], latency double precision[], key_hash bytea[],
										   request_id text[], api_id text[], key_id text[], identity_id text[],
										   external_id text[], outcome text[], tags text[], spent bigint[])
RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_store_verifications' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey._store_verifications(timestamptz[], double precision[], bytea[], text[], text[], text[], text[], text[], text[], text[], bigint[]) IS 'private: write verification events (tags as array literals) and roll them up, as the event writer does';
CREATE FUNCTION unkey._store_ratelimits(t timestamptz[], latency double precision[], request_id text[],
										namespace_id text[], namespace text[], identifier text[], override_id text[],
										passed boolean[], "limit" bigint[], remaining bigint[], reset timestamptz[],
										cost bigint[])
RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_store_ratelimits' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey._store_ratelimits(timestamptz[], double precision[], text[], text[], text[], text[], text[], boolean[], bigint[], bigint[], timestamptz[], bigint[]) IS 'private: write rate-limit events and roll them up per hour, as the event writer does';

/*
 * Materialise the days, and the months, that have closed by now from the
 * finer grain, set-based, and prune the hourly rollups past the hourly
 * retention (only what the days already hold).  One transaction: a crash
 * leaves all of it or none.
 */
CREATE FUNCTION unkey._materialize_rollups(now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	st unkey.rollup_state;
	step record;
	tab text;
	tagged boolean;
	done timestamptz;
	cut timestamptz;
	keep interval := (SELECT e.hourly_retention FROM unkey.event_settings e);
BEGIN
	-- each statement must see what committed before it, the batches the lock waited for included
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'rollups are materialised in read committed transactions only'::text,
							 'Leave it to the event writer, or SET TRANSACTION ISOLATION LEVEL READ COMMITTED.'::text);
	END IF;
	-- no batch is being added meanwhile: each is either in what we read, or waits and sees the new state
	LOCK TABLE unkey.rollup_state IN EXCLUSIVE MODE;
	SELECT * INTO st FROM unkey.rollup_state;
	IF NOT FOUND THEN
		-- the first time: after the days and months already there (a restore without this table's
		-- row), else from the oldest hour, or today when there is none
		st.day_done := coalesce((SELECT max(r.bucket) + interval '24 hours' FROM unkey.verification_rollups r
								  WHERE r.granularity = 'day'),
								date_trunc('day', coalesce((SELECT min(r.bucket) FROM unkey.verification_rollups r
															 WHERE r.granularity = 'hour'), now), 'UTC'));
		st.month_done := coalesce((SELECT date_trunc('month', max(r.bucket) + interval '32 days', 'UTC')
									 FROM unkey.verification_rollups r WHERE r.granularity = 'month'),
								  date_trunc('month', coalesce((SELECT min(r.bucket) FROM unkey.verification_rollups r
																 WHERE r.granularity IN ('day', 'hour')), now), 'UTC'));
	END IF;
	FOR step IN SELECT * FROM (VALUES ('hour', 'day'), ('day', 'month')) AS v(finer, coarser) LOOP
		done := CASE step.coarser WHEN 'day' THEN st.day_done ELSE st.month_done END;
		CONTINUE WHEN date_trunc(step.coarser, now, 'UTC') <= done;
		FOREACH tab IN ARRAY ARRAY['verification_rollups', 'verification_tag_rollups'] LOOP
			tagged := tab = 'verification_tag_rollups';
			EXECUTE format(
				'INSERT INTO unkey.%1$I (granularity, bucket, key_hash, api_id, key_id, identity_id, external_id,'
				' valid, not_found, forbidden, usage_exceeded, rate_limited, disabled, insufficient_permissions,'
				' expired, spent_credits, latency_sum, latency_hist, last_time%2$s)'
				' SELECT $1, date_trunc($1, r.bucket, ''UTC''), r.key_hash, r.api_id, max(r.key_id), r.identity_id,'
				' max(r.external_id), sum(r.valid), sum(r.not_found), sum(r.forbidden), sum(r.usage_exceeded),'
				' sum(r.rate_limited), sum(r.disabled), sum(r.insufficient_permissions), sum(r.expired),'
				' sum(r.spent_credits), sum(r.latency_sum), unkey._latency_hist_sum(r.latency_hist), max(r.last_time)%3$s'
				' FROM unkey.%1$I r WHERE r.granularity = $2 AND r.bucket >= $3 AND r.bucket < $4'
				' GROUP BY 2, r.key_hash, r.identity_id, r.api_id%4$s',
				tab, CASE WHEN tagged THEN ', tags, tags_id' ELSE '' END,
				CASE WHEN tagged THEN ', min(r.tags), r.tags_id' ELSE '' END,
				CASE WHEN tagged THEN ', r.tags_id' ELSE '' END)
			USING step.coarser, step.finer, done, date_trunc(step.coarser, now, 'UTC');
		END LOOP;
		IF step.coarser = 'day' THEN
			st.day_done := date_trunc('day', now, 'UTC');
		ELSE
			st.month_done := date_trunc('month', now, 'UTC');
		END IF;
	END LOOP;
	cut := least(st.day_done, date_trunc('day', now - keep, 'UTC'));
	IF keep IS NOT NULL AND cut > coalesce(st.hours_from, '-infinity') THEN
		DELETE FROM unkey.verification_rollups r WHERE r.granularity = 'hour' AND r.bucket < cut;
		DELETE FROM unkey.verification_tag_rollups r WHERE r.granularity = 'hour' AND r.bucket < cut;
		st.hours_from := cut;
	END IF;
	INSERT INTO unkey.rollup_state AS s VALUES (true, st.day_done, st.month_done, st.hours_from)
	ON CONFLICT (singleton) DO UPDATE
	   SET day_done = EXCLUDED.day_done, month_done = EXCLUDED.month_done, hours_from = EXCLUDED.hours_from;
END
$$;
COMMENT ON FUNCTION unkey._materialize_rollups(timestamptz) IS 'private: materialise the closed days and months of the verification rollups, and prune old hours';

-- Drop the event partitions that lie wholly before now - retention; returns their names
CREATE FUNCTION unkey._apply_retention(now timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	keep interval := (SELECT s.retention FROM unkey.event_settings s);
	part record;
BEGIN
	IF keep IS NULL THEN
		RETURN;
	END IF;
	FOR part IN
		SELECT c.relname
		  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent IN ('unkey.verification_events'::regclass, 'unkey.ratelimit_events'::regclass)
		   AND c.relname ~ '_p[0-9]{8}$'
		   AND (substring(c.relname FROM '_p([0-9]{8})$')::date::timestamp AT TIME ZONE 'UTC')
			   + interval '24 hours' <= now - keep
		 ORDER BY c.relname
	LOOP
		EXECUTE format('DROP TABLE unkey.%I', part.relname);
		RETURN NEXT part.relname;
	END LOOP;
END
$$;
COMMENT ON FUNCTION unkey._apply_retention(timestamptz) IS 'private: drop event partitions past the retention';

-- The event writer's upkeep, once a minute: partitions for today and tomorrow, then the retention
CREATE FUNCTION unkey._maintain_events(now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM unkey._ensure_partitions(p, ARRAY[now, now + interval '24 hours'])
	   FROM unnest(ARRAY['verification_events', 'ratelimit_events']) p;
	PERFORM unkey._apply_retention(now);
END
$$;
COMMENT ON FUNCTION unkey._maintain_events(timestamptz) IS 'private: create the coming partitions and apply the retention';

CREATE FUNCTION unkey.unkey_set_retention(retention interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF retention <= interval '0' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'retention must be positive, or NULL to keep events forever'::text,
							 'Pass an interval such as ''90 days'', or NULL to keep events forever.'::text);
	END IF;
	INSERT INTO unkey.event_settings AS s (retention) VALUES (retention)
	ON CONFLICT (singleton) DO UPDATE SET retention = EXCLUDED.retention;
	DELETE FROM unkey.event_settings s WHERE s.retention IS NULL AND s.hourly_retention IS NULL;
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_retention(interval) IS 'keep raw events this long (whole days); the event writer drops older partitions; NULL keeps them forever';

CREATE FUNCTION unkey.unkey_set_hourly_retention(retention interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF retention < interval '2 days' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'retention must be at least 2 days, or NULL to keep hourly rollups forever'::text,
							 'Pass an interval such as ''90 days''; the day and month rollups keep the history.'::text);
	END IF;
	INSERT INTO unkey.event_settings AS s (hourly_retention) VALUES (retention)
	ON CONFLICT (singleton) DO UPDATE SET hourly_retention = EXCLUDED.hourly_retention;
	DELETE FROM unkey.event_settings s WHERE s.retention IS NULL AND s.hourly_retention IS NULL;
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_hourly_retention(interval) IS 'keep hourly verification rollups this long (whole days, once their day is materialised); NULL keeps them forever';

CREATE FUNCTION unkey.unkey_apply_retention()
RETURNS SETOF text
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT unkey._apply_retention(unkey.now()) $$;
COMMENT ON FUNCTION unkey.unkey_apply_retention() IS 'apply the retention now (the event writer does it every minute); returns the dropped partitions';

CREATE FUNCTION unkey.unkey_flush_events() RETURNS bigint
	AS 'MODULE_PATHNAME', 'unkey_flush_events' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_flush_events() IS 'wait until the events buffered in this database are written; returns how many were buffered';

CREATE FUNCTION unkey.unkey_events_info(
	OUT database text, OUT buffered bigint, OUT buffered_bytes bigint, OUT buffer_bytes bigint,
	OUT appended bigint, OUT written bigint, OUT inline_writes bigint, OUT full_waits bigint,
	OUT discarded bigint, OUT writer_pid integer, OUT last_flush timestamptz)
RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'unkey_events_info' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_events_info() IS 'the event buffers in shared memory, one row per database using one';

-- Every grain complete up to the last flush, of both rollup tables
-- (unkey._rollups, unkey._tagged_rollups): the materialised rows, and for
-- the days and months still open the finer rows, truncated to the grain (not
-- added up: readers group).  One snapshot sees both sides of a
-- materialisation, so no bucket is counted twice or missed.
DO $$
DECLARE
	v text[];
	cols text := 'r.key_hash, r.api_id, r.key_id, r.identity_id, r.external_id, r.valid, r.not_found, r.forbidden,'
				 ' r.usage_exceeded, r.rate_limited, r.disabled, r.insufficient_permissions, r.expired,'
				 ' r.spent_credits, r.latency_sum, r.latency_hist, r.last_time';
BEGIN
	FOREACH v SLICE 1 IN ARRAY ARRAY[['_rollups', 'verification_rollups', ''],
									 ['_tagged_rollups', 'verification_tag_rollups', ', r.tags, r.tags_id']] LOOP
		EXECUTE format(
			'CREATE VIEW unkey.%1$I AS'
			' SELECT r.granularity, r.bucket, %3$s%4$s FROM unkey.%2$I r'
			' UNION ALL'
			' SELECT ''day''::text, date_trunc(''day'', r.bucket, ''UTC''), %3$s%4$s FROM unkey.%2$I r'
			'  WHERE r.granularity = ''hour'''
			'    AND r.bucket >= coalesce((SELECT s.day_done FROM unkey.rollup_state s), ''-infinity'')'
			' UNION ALL'
			' SELECT ''month''::text, date_trunc(''month'', r.bucket, ''UTC''), %3$s%4$s FROM unkey.%2$I r'
			'  WHERE r.granularity = ''day'''
			'    AND r.bucket >= coalesce((SELECT s.month_done FROM unkey.rollup_state s), ''-infinity'')'
			' UNION ALL'
			' SELECT ''month''::text, date_trunc(''month'', r.bucket, ''UTC''), %3$s%4$s FROM unkey.%2$I r'
			'  WHERE r.granularity = ''hour'''
			'    AND r.bucket >= coalesce((SELECT s.day_done FROM unkey.rollup_state s), ''-infinity'')',
			v[1], v[2], cols, v[3]);
		EXECUTE format('COMMENT ON VIEW unkey.%I IS %L', v[1],
					   format('private: %s at every grain, the open days and months from the finer grain', v[2]));
	END LOOP;
END
$$;

-- Per grain, bucket, key, identity, API and tag set: the tagged rollups, and
-- the verifications without tags as what the key's rollup holds beyond them
-- (tags '{}')
CREATE VIEW unkey._tag_sets AS
WITH tagged AS NOT MATERIALIZED (
	SELECT t.granularity, t.bucket, t.key_hash, t.identity_id, t.api_id, t.tags_id, max(t.key_id) AS key_id,
		   max(t.external_id) AS external_id, min(t.tags) AS tags, sum(t.valid) AS valid, sum(t.not_found) AS not_found,
		   sum(t.forbidden) AS forbidden, sum(t.usage_exceeded) AS usage_exceeded, sum(t.rate_limited) AS rate_limited,
		   sum(t.disabled) AS disabled, sum(t.insufficient_permissions) AS insufficient_permissions,
		   sum(t.expired) AS expired, sum(t.spent_credits) AS spent_credits, sum(t.latency_sum) AS latency_sum,
		   unkey._latency_hist_sum(t.latency_hist) AS latency_hist, max(t.last_time) AS last_time
	  FROM unkey._tagged_rollups t
	 GROUP BY t.granularity, t.bucket, t.key_hash, t.identity_id, t.api_id, t.tags_id
), everything AS (
	SELECT r.granularity, r.bucket, r.key_hash, r.identity_id, r.api_id, max(r.key_id) AS key_id,
		   max(r.external_id) AS external_id, sum(r.valid) AS valid, sum(r.not_found) AS not_found,
		   sum(r.forbidden) AS forbidden, sum(r.usage_exceeded) AS usage_exceeded, sum(r.rate_limited) AS rate_limited,
		   sum(r.disabled) AS disabled, sum(r.insufficient_permissions) AS insufficient_permissions,
		   sum(r.expired) AS expired, sum(r.spent_credits) AS spent_credits, sum(r.latency_sum) AS latency_sum,
		   unkey._latency_hist_sum(r.latency_hist) AS latency_hist, max(r.last_time) AS last_time
	  FROM unkey._rollups r
	 GROUP BY r.granularity, r.bucket, r.key_hash, r.identity_id, r.api_id
), tagged_per_key AS (
	SELECT t.granularity, t.bucket, t.key_hash, t.identity_id, t.api_id, sum(t.valid) AS valid,
		   sum(t.not_found) AS not_found, sum(t.forbidden) AS forbidden, sum(t.usage_exceeded) AS usage_exceeded,
		   sum(t.rate_limited) AS rate_limited, sum(t.disabled) AS disabled,
		   sum(t.insufficient_permissions) AS insufficient_permissions, sum(t.expired) AS expired,
		   sum(t.spent_credits) AS spent_credits, sum(t.latency_sum) AS latency_sum,
		   unkey._latency_hist_sum(t.latency_hist) AS latency_hist, max(t.last_time) AS last_time
	  FROM tagged t
	 GROUP BY t.granularity, t.bucket, t.key_hash, t.identity_id, t.api_id
)
SELECT t.granularity, t.bucket, t.key_hash, t.api_id, t.key_id, t.identity_id, t.external_id, t.tags, t.tags_id,
	   t.valid, t.not_found, t.forbidden, t.usage_exceeded, t.rate_limited, t.disabled, t.insufficient_permissions,
	   t.expired, t.spent_credits, t.latency_sum, t.latency_hist, t.last_time
  FROM tagged t
UNION ALL
SELECT e.granularity, e.bucket, e.key_hash, e.api_id, e.key_id, e.identity_id, e.external_id, '{}'::text[],
	   '99914b93-2bd3-7a50-b983-c5e7c90ae93b'::uuid,	-- md5('{}')
	   e.valid - coalesce(p.valid, 0), e.not_found - coalesce(p.not_found, 0), e.forbidden - coalesce(p.forbidden, 0),
	   e.usage_exceeded - coalesce(p.usage_exceeded, 0), e.rate_limited - coalesce(p.rate_limited, 0),
	   e.disabled - coalesce(p.disabled, 0), e.insufficient_permissions - coalesce(p.insufficient_permissions, 0),
	   e.expired - coalesce(p.expired, 0), e.spent_credits - coalesce(p.spent_credits, 0),
	   e.latency_sum - coalesce(p.latency_sum, 0), unkey._hist_sub(e.latency_hist, p.latency_hist),
	   -- the last untagged verification is not known apart: the key's last one, when it is not a tagged one
	   CASE WHEN p.last_time IS NULL OR e.last_time > p.last_time THEN e.last_time END
  FROM everything e
  LEFT JOIN tagged_per_key p
	ON p.granularity = e.granularity AND p.bucket = e.bucket AND p.key_hash = e.key_hash
   AND p.identity_id IS NOT DISTINCT FROM e.identity_id AND p.api_id IS NOT DISTINCT FROM e.api_id
 WHERE e.valid + e.not_found + e.forbidden + e.usage_exceeded + e.rate_limited + e.disabled
	   + e.insufficient_permissions + e.expired
	   > coalesce(p.valid + p.not_found + p.forbidden + p.usage_exceeded + p.rate_limited + p.disabled
				  + p.insufficient_permissions + p.expired, 0);
COMMENT ON VIEW unkey._tag_sets IS 'private: verification counts per grain, bucket, key, identity and tag set, tagged or not';

-- The rollups summed per bucket, key, identity and tag set, one column per outcome
CREATE VIEW unkey.verifications AS
SELECT r.granularity, r.bucket AS time, r.api_id, r.key_id, r.identity_id, r.external_id, min(r.tags) AS tags,
	   sum(r.valid) AS valid, sum(r.not_found) AS not_found, sum(r.forbidden) AS forbidden,
	   sum(r.usage_exceeded) AS usage_exceeded, sum(r.rate_limited) AS rate_limited, sum(r.disabled) AS disabled,
	   sum(r.insufficient_permissions) AS insufficient_permissions, sum(r.expired) AS expired,
	   sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited + r.disabled
		   + r.insufficient_permissions + r.expired) AS total,
	   sum(r.spent_credits) AS spent_credits,
	   sum(r.latency_sum) / sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited
								+ r.disabled + r.insufficient_permissions + r.expired) AS latency_avg,
	   unkey._latency_quantile(unkey._latency_hist_sum(r.latency_hist), 0.75::double precision) AS latency_p75,
	   unkey._latency_quantile(unkey._latency_hist_sum(r.latency_hist), 0.99::double precision) AS latency_p99
  FROM unkey._tag_sets r
 GROUP BY r.granularity, r.bucket, r.api_id, r.key_id, r.identity_id, r.external_id, r.tags_id;
COMMENT ON VIEW unkey.verifications IS 'verifications per hour, day or month (granularity), key, identity and tag set, one column per outcome';

-- the same per granularity: verifications_hourly, _daily and _monthly
DO $$
DECLARE
	g text[];
BEGIN
	FOREACH g SLICE 1 IN ARRAY ARRAY[['hourly', 'hour'], ['daily', 'day'], ['monthly', 'month']] LOOP
		EXECUTE format('CREATE VIEW unkey.verifications_%s AS'
					   ' SELECT time, api_id, key_id, identity_id, external_id, tags, valid, not_found, forbidden,'
					   ' usage_exceeded, rate_limited, disabled, insufficient_permissions, expired, total,'
					   ' spent_credits, latency_avg, latency_p75, latency_p99'
					   ' FROM unkey.verifications WHERE granularity = %L', g[1], g[2]);
		EXECUTE format('COMMENT ON VIEW unkey.verifications_%s IS %L', g[1],
					   format('verifications per %s (UTC), key, identity and tag set', g[2]));
	END LOOP;
END
$$;

-- Per key, all time: one column per outcome, and when it was last used
CREATE VIEW unkey.key_usage AS
SELECT r.key_id, max(r.api_id) AS api_id, sum(r.valid) AS valid, sum(r.forbidden) AS forbidden,
	   sum(r.usage_exceeded) AS usage_exceeded, sum(r.rate_limited) AS rate_limited, sum(r.disabled) AS disabled,
	   sum(r.insufficient_permissions) AS insufficient_permissions, sum(r.expired) AS expired,
	   sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited + r.disabled
		   + r.insufficient_permissions + r.expired) AS total,
	   sum(r.spent_credits) AS spent_credits, max(r.last_time) AS last_used_at
  FROM unkey._rollups r
 WHERE r.granularity = 'month' AND r.key_id IS NOT NULL
 GROUP BY r.key_id;
COMMENT ON VIEW unkey.key_usage IS 'verifications of each key, all time, one column per outcome, and its last use';

-- Rate-limit checks per namespace and identifier: ratelimits_hourly, _daily
-- and _monthly (UTC), summed from the hourly rollups
DO $$
DECLARE
	g text[];
BEGIN
	FOREACH g SLICE 1 IN ARRAY ARRAY[['hourly', 'hour'], ['daily', 'day'], ['monthly', 'month']] LOOP
		EXECUTE format('CREATE VIEW unkey.ratelimits_%s AS'
					   ' SELECT date_trunc(%L, r.bucket, ''UTC'') AS time, r.namespace_id, n.name AS namespace,'
					   ' r.identifier, sum(r.passed)::bigint AS passed, sum(r.limited)::bigint AS limited,'
					   ' sum(r.passed + r.limited)::bigint AS total, max(r.last_time) AS last_time'
					   ' FROM unkey.ratelimit_rollups r JOIN unkey.ratelimit_namespaces n ON n.id = r.namespace_id'
					   ' GROUP BY 1, r.namespace_id, n.name, r.identifier', g[1], g[2]);
		EXECUTE format('COMMENT ON VIEW unkey.ratelimits_%s IS %L', g[1],
					   format('rate-limit checks per %s (UTC), namespace and identifier: passed, limited and total', g[2]));
	END LOOP;
END
$$;

-- One row of unkey_get_verifications: the grouped columns, then one count per outcome
CREATE TYPE unkey.verification_count AS (
	time				timestamptz,
	key_id				text,
	identity_id			text,
	external_id			text,
	tags				text[],
	tag					text,
	valid				bigint,
	not_found			bigint,
	forbidden			bigint,
	usage_exceeded		bigint,
	rate_limited		bigint,
	disabled			bigint,
	insufficient_permissions bigint,
	expired				bigint,
	total				bigint
);

/*
 * The checked arguments of unkey_get_verifications: the grain to read, the
 * time unit grouped by (NULL: none), the range [first, stop) and the order.
 * Without a time group the hours are summed, from start rounded down to the
 * hour; from the day when the range reaches back into pruned hours.
 */
CREATE FUNCTION unkey._verification_query(api_id text, start timestamptz, "end" timestamptz, group_by text[],
										  tags text[], order_by text, "order" text, "limit" integer,
										  OUT gran text, OUT unit text, OUT first timestamptz, OUT stop timestamptz,
										  OUT sort_by text, OUT descending boolean, OUT tagged boolean,
										  OUT by_key boolean, OUT by_identity boolean, OUT by_tags boolean,
										  OUT by_tag boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	groups text[] := coalesce(group_by, '{}');
	hours_from timestamptz := (SELECT s.hours_from FROM unkey.rollup_state s);
BEGIN
	by_key := 'key' = ANY (groups);
	by_identity := 'identity' = ANY (groups);
	by_tags := 'tags' = ANY (groups);
	by_tag := 'tag' = ANY (groups);
	unit := (SELECT g FROM unnest(groups) g WHERE g IN ('hour', 'day', 'month') LIMIT 1);
	stop := coalesce("end", unkey.now());
	sort_by := coalesce(order_by, CASE WHEN unit IS NOT NULL THEN 'time' ELSE 'total' END);
	IF start IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'start must be given'::text,
							 'Pass the start of the range; the end defaults to now.'::text);
	END IF;
	IF NOT isfinite(start) OR NOT isfinite(stop) THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'start and end must be finite'::text,
							 'Pass real timestamps, not infinity.'::text);
	END IF;
	IF stop <= start THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'end must be after start'::text,
							 'Swap them, or widen the range.'::text);
	END IF;
	IF EXISTS (SELECT FROM unnest(groups) g
				WHERE g IS NULL OR g NOT IN ('key', 'identity', 'tag', 'tags', 'hour', 'day', 'month')) THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'group_by takes key, identity, tag, tags, hour, day and month'::text,
							 'Pass an array such as ''{day,key}''.'::text);
	END IF;
	IF (SELECT count(*) FROM unnest(groups) g WHERE g IN ('hour', 'day', 'month')) > 1 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'group_by takes at most one of hour, day and month'::text,
							 'Pick one time unit.'::text);
	END IF;
	IF by_tag AND by_tags THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'group_by takes tag or tags, not both'::text,
							 'tag counts each tag apart, tags each whole set of tags: pick one.'::text);
	END IF;
	IF sort_by NOT IN ('time', 'total', 'valid', 'not_found', 'forbidden', 'usage_exceeded', 'rate_limited',
					   'disabled', 'insufficient_permissions', 'expired')
	   OR (sort_by = 'time' AND unit IS NULL) THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'order_by must be time (with a time group), total or an outcome'::text,
							 'Order by time (with hour, day or month in group_by), total, or an outcome such as valid.'::text);
	END IF;
	IF "order" IS NOT NULL AND "order" NOT IN ('asc', 'desc') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'order must be asc or desc'::text,
							 'Pass ''asc'' or ''desc''.'::text);
	END IF;
	IF "limit" < 1 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'limit must be at least 1'::text,
							 'Pass a limit of 1 or more.'::text);
	END IF;
	IF NOT EXISTS (SELECT FROM unkey.apis a WHERE a.id = _verification_query.api_id) THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	descending := coalesce("order" = 'desc', sort_by <> 'time');
	-- tag sets are counted in the tagged rollups; without them, the key's rollups answer
	tagged := by_tag OR by_tags OR _verification_query.tags IS NOT NULL;
	gran := coalesce(unit, CASE WHEN start < hours_from THEN 'day' ELSE 'hour' END);
	-- an hourly series over pruned hours would show zeros where there were verifications
	IF unit = 'hour' AND start < hours_from THEN
		PERFORM unkey._raise('invalid_parameter_value'::text,
							 format('hourly rollups before %s were pruned', to_char(hours_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')),
							 'Start the hourly series later, or group by day or month (unkey_set_hourly_retention).'::text);
	END IF;
	first := date_trunc(gran, start, 'UTC');
	-- a time series has one row per bucket and group: keep it to a size a dashboard can use
	IF unit IS NOT NULL AND extract(epoch FROM stop - first) / extract(epoch FROM ('1 ' || unit)::interval) > 10000 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('the range holds more than 10000 %s', unit || 's'),
							 'Group by a longer unit, or ask for a shorter range.'::text);
	END IF;
END
$$;
COMMENT ON FUNCTION unkey._verification_query(text, timestamptz, timestamptz, text[], text[], text, text, integer) IS 'private: the checked arguments of unkey_get_verifications';

/*
 * Unkey's analytics.getVerifications, over the rollups: counts per outcome in
 * [start, end), grouped by any of key, identity, tag (each tag apart), tags
 * (the whole set) and one of hour, day or month.  A time series is gap-filled
 * with zero rows, for each group seen.  Buckets are UTC; start is rounded
 * down to the bucket (the hour when no time is grouped).  Plain SQL: it
 * reads the rollups of one grain (the key's, or the tag sets' when tags
 * matter) once, groups once, and builds the grid of buckets only for the
 * groups that miss one.
 */
CREATE FUNCTION unkey.unkey_get_verifications(
	api_id			text,
	start			timestamptz,
	"end"			timestamptz DEFAULT NULL,
	group_by		text[]	DEFAULT NULL,
	key_id			text	DEFAULT NULL,
	external_id		text	DEFAULT NULL,
	tags			text[]	DEFAULT NULL,
	order_by		text	DEFAULT NULL,
	"order"			text	DEFAULT NULL,
	"limit"			integer DEFAULT NULL)
RETURNS SETOF unkey.verification_count
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
AS $$
	WITH q AS MATERIALIZED (
		SELECT * FROM unkey._verification_query(api_id, start, "end", group_by, tags, order_by, "order", "limit")
	), src AS (
		-- the key's rollups, or with tags the tag sets; each tag apart only when grouped by tag
		SELECT k.bucket, k.key_id, k.identity_id, k.external_id, NULL::text[] AS tags, NULL::text AS tag,
			   k.valid, k.not_found, k.forbidden, k.usage_exceeded, k.rate_limited, k.disabled,
			   k.insufficient_permissions, k.expired
		  FROM unkey._rollups k
		 WHERE NOT (SELECT q.tagged FROM q)
		   AND k.api_id = unkey_get_verifications.api_id AND k.granularity = (SELECT q.gran FROM q)
		   AND k.bucket >= (SELECT q.first FROM q) AND k.bucket < (SELECT q.stop FROM q)
		   AND (unkey_get_verifications.key_id IS NULL OR k.key_id = unkey_get_verifications.key_id)
		   AND (unkey_get_verifications.external_id IS NULL OR k.external_id = unkey_get_verifications.external_id)
		UNION ALL
		SELECT t.bucket, t.key_id, t.identity_id, t.external_id, t.tags, one.tag,
			   t.valid, t.not_found, t.forbidden, t.usage_exceeded, t.rate_limited, t.disabled,
			   t.insufficient_permissions, t.expired
		  FROM unkey._tag_sets t
		  LEFT JOIN LATERAL unnest(CASE WHEN (SELECT q.by_tag FROM q) THEN t.tags END) AS one(tag) ON true
		 WHERE (SELECT q.tagged FROM q)
		   AND t.api_id = unkey_get_verifications.api_id AND t.granularity = (SELECT q.gran FROM q)
		   AND t.bucket >= (SELECT q.first FROM q) AND t.bucket < (SELECT q.stop FROM q)
		   AND (unkey_get_verifications.key_id IS NULL OR t.key_id = unkey_get_verifications.key_id)
		   AND (unkey_get_verifications.external_id IS NULL OR t.external_id = unkey_get_verifications.external_id)
		   AND (unkey_get_verifications.tags IS NULL OR t.tags @> unkey_get_verifications.tags)
	), agg AS (
		SELECT CASE WHEN (SELECT q.unit FROM q) IS NOT NULL THEN r.bucket END AS t,
			   -- bytewise comparisons: the grouping sorts hundreds of thousands of ids
			   CASE WHEN (SELECT q.by_key FROM q) THEN r.key_id END COLLATE "C" AS k,
			   CASE WHEN (SELECT q.by_identity FROM q) THEN r.identity_id END COLLATE "C" AS i,
			   CASE WHEN (SELECT q.by_identity FROM q) THEN r.external_id END COLLATE "C" AS x,
			   CASE WHEN (SELECT q.by_tags FROM q) THEN r.tags END AS g,
			   r.tag COLLATE "C" AS tg,
			   sum(r.valid)::bigint AS valid, sum(r.not_found)::bigint AS not_found,
			   sum(r.forbidden)::bigint AS forbidden, sum(r.usage_exceeded)::bigint AS usage_exceeded,
			   sum(r.rate_limited)::bigint AS rate_limited, sum(r.disabled)::bigint AS disabled,
			   sum(r.insufficient_permissions)::bigint AS insufficient_permissions, sum(r.expired)::bigint AS expired,
			   sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded + r.rate_limited + r.disabled
				   + r.insufficient_permissions + r.expired)::bigint AS total
		  FROM src r
		 GROUP BY 1, 2, 3, 4, 5, 6
	), buckets AS (
		-- every bucket of a time series, stepped in UTC wall time
		SELECT w AT TIME ZONE 'UTC' AS t
		  FROM q, generate_series(q.first AT TIME ZONE 'UTC', (q.stop - interval '1 microsecond') AT TIME ZONE 'UTC',
								  ('1 ' || q.unit)::interval) AS w
		 WHERE q.unit IS NOT NULL
	), gapped AS (
		-- the groups that miss a bucket (most have none); a time series alone always has its group
		SELECT a.k, a.i, a.x, a.g, a.tg FROM agg a
		 GROUP BY a.k, a.i, a.x, a.g, a.tg
		HAVING count(*) < (SELECT count(*) FROM buckets)
		UNION
		SELECT NULL, NULL, NULL, NULL, NULL
		 WHERE NOT (group_by && '{key,identity,tags,tag}'::text[]) AND (SELECT q.unit FROM q) IS NOT NULL
	), rows AS (
		SELECT a.* FROM agg a
		UNION ALL
		-- the missing buckets of those groups, as zeros ('' stands for NULL: no id, tag or tag set is empty)
		SELECT b.t, gp.k, gp.i, gp.x, gp.g, gp.tg, 0, 0, 0, 0, 0, 0, 0, 0, 0
		  FROM buckets b, gapped gp
		 WHERE NOT EXISTS (SELECT FROM agg a
							WHERE a.t = b.t AND coalesce(a.k, '') = coalesce(gp.k, '')
							  AND coalesce(a.i, '') = coalesce(gp.i, '') AND coalesce(a.x, '') = coalesce(gp.x, '')
							  AND coalesce(a.g, '{}') = coalesce(gp.g, '{}') AND coalesce(a.tg, '') = coalesce(gp.tg, ''))
	)
	-- ordered by time, or by a count (bigint, not through a numeric of both), then by the groups
	SELECT rw.t, rw.k, rw.i, rw.x, rw.g, rw.tg, rw.valid, rw.not_found, rw.forbidden, rw.usage_exceeded,
		   rw.rate_limited, rw.disabled, rw.insufficient_permissions, rw.expired, rw.total
	  FROM rows rw
	 ORDER BY CASE WHEN (SELECT q.sort_by = 'time' AND NOT q.descending FROM q) THEN rw.t END ASC,
			  CASE WHEN (SELECT q.sort_by = 'time' AND q.descending FROM q) THEN rw.t END DESC,
			  CASE WHEN (SELECT q.sort_by <> 'time' FROM q) THEN
				  CASE (SELECT q.sort_by FROM q)
					  WHEN 'total' THEN rw.total WHEN 'valid' THEN rw.valid
					  WHEN 'not_found' THEN rw.not_found WHEN 'forbidden' THEN rw.forbidden
					  WHEN 'usage_exceeded' THEN rw.usage_exceeded WHEN 'rate_limited' THEN rw.rate_limited
					  WHEN 'disabled' THEN rw.disabled WHEN 'insufficient_permissions' THEN rw.insufficient_permissions
					  ELSE rw.expired END
				  * CASE WHEN (SELECT q.descending FROM q) THEN -1 ELSE 1 END END ASC,
			  rw.t, rw.k COLLATE "C", rw.i COLLATE "C", rw.g::text COLLATE "C", rw.tg COLLATE "C"
	 -- through q, so that the arguments are checked even when nothing else reads them
	 LIMIT (SELECT "limit" FROM q)
$$;
COMMENT ON FUNCTION unkey.unkey_get_verifications(text, timestamptz, timestamptz, text[], text, text, text[], text, text, integer) IS 'verification counts per outcome, grouped and gap-filled, as Unkey''s analytics.getVerifications';
/*
 * vault.sql: recoverable keys (C: src/vault.c).  The root key is read at
 * server start from unkey.vault_key_file and never reaches SQL; each
 * recoverable API has a data key stored only wrapped by it, and each
 * recoverable key a ciphertext beside its hash.  Verification never reads
 * any of this.
 */

-- Decrypting is a privilege of its own: membership in this role (roles are
-- shared by every database of the cluster; DROP EXTENSION leaves it)
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'unkey_decrypt') THEN
		CREATE ROLE unkey_decrypt NOLOGIN;
	END IF;
END
$$;

CREATE FUNCTION unkey.unkey_vault_info(OUT configured boolean, OUT key_id text)
RETURNS record
	AS 'MODULE_PATHNAME', 'unkey_vault_info' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_vault_info() IS 'whether the server has a vault root key (unkey.vault_key_file), and the id that tells root keys apart; never the key';

-- One data key per recoverable API, wrapped by the root key root_key_id
CREATE TABLE unkey.vault_data_keys (
	api_id				text PRIMARY KEY REFERENCES unkey.apis (id),
	root_key_id			text NOT NULL,
	wrapped				bytea NOT NULL CHECK (octet_length(wrapped) = 72),
	created_at			timestamptz NOT NULL,
	rewrapped_at		timestamptz
);
COMMENT ON TABLE unkey.vault_data_keys IS 'reference: the data key of each recoverable API, wrapped by a root key (never stored)';

-- The ciphertext of each recoverable key, bound to its key id and API id
CREATE TABLE unkey.encrypted_keys (
	key_hash			bytea PRIMARY KEY REFERENCES unkey.keys (key_hash) ON DELETE CASCADE,
	api_id				text NOT NULL REFERENCES unkey.vault_data_keys (api_id),
	ciphertext			bytea NOT NULL CHECK (octet_length(ciphertext) > 40),
	created_at			timestamptz NOT NULL
);
COMMENT ON TABLE unkey.encrypted_keys IS 'per-key: the ciphertext of a recoverable key (nonce, XChaCha20-Poly1305 ciphertext and tag)';

-- pg_dump carries user data (ciphertexts and wrapped data keys only)
SELECT pg_catalog.pg_extension_config_dump('unkey.vault_data_keys', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.encrypted_keys', '');

CREATE FUNCTION unkey._vault_new_data_key(api_id text, OUT root_key_id text, OUT wrapped bytea)
RETURNS record
	AS 'MODULE_PATHNAME', 'unkey_vault_new_data_key' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._vault_new_data_key(text) IS 'private: a new data key for an API, wrapped by the current root key';

CREATE FUNCTION unkey._vault_rewrap(api_id text, root_key_id text, wrapped bytea)
RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_vault_rewrap' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._vault_rewrap(text, text, bytea) IS 'private: a data key wrapped again by the current root key';

CREATE FUNCTION unkey._vault_encrypt(api_id text, root_key_id text, wrapped bytea, key_id text, plaintext text)
RETURNS bytea
	AS 'MODULE_PATHNAME', 'unkey_vault_encrypt' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._vault_encrypt(text, text, bytea, text, text) IS 'private: seal a key under its API''s data key';

CREATE FUNCTION unkey._vault_decrypt(api_id text, root_key_id text, wrapped bytea, key_id text, key_hash bytea, ciphertext bytea)
RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_vault_decrypt' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION unkey._vault_decrypt(text, text, bytea, text, bytea, bytea) IS 'private: open a sealed key; XX001 unless it authenticates and hashes to key_hash';

-- The ciphertext of a new key of a recoverable API
CREATE FUNCTION unkey._encrypt_key(api_id text, key_id text, plaintext text)
RETURNS bytea
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d unkey.vault_data_keys;
BEGIN
	SELECT * INTO d FROM unkey.vault_data_keys dk WHERE dk.api_id = _encrypt_key.api_id;
	IF d.api_id IS NULL THEN
		PERFORM unkey._raise('precondition_failed'::text, 'This API does not support key encryption.'::text,
							 'Turn it on with unkey_set_api_recoverable(api_id, true).'::text);
	END IF;
	-- an expression, not a query: no plan (auto_explain) ever holds the plaintext
	RETURN unkey._vault_encrypt(d.api_id, d.root_key_id, d.wrapped, key_id, plaintext);
END
$$;
COMMENT ON FUNCTION unkey._encrypt_key(text, text, text) IS 'private: the ciphertext of a key of a recoverable API';

/*
 * The plaintexts of these keys (NULL for a key that is not recoverable), in
 * order, audited twice: a line in the server log for every call, which no
 * rollback takes back, and, on a primary, a row in unkey.audit_log in the
 * caller's transaction.  A READ ONLY transaction on a primary is refused:
 * its audit row could not be written.  The keys are opened one by one, in
 * order, so that no sort ever spills a plaintext to a temporary file.
 */
CREATE FUNCTION unkey._decrypt_keys(hashes bytea[])
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ids text[];
	apis text[];
	result text[] := array_fill(NULL::text, ARRAY[cardinality(hashes)]);
	r record;
BEGIN
	SELECT array_agg(k.id ORDER BY u.i), array_agg(DISTINCT k.api_id) INTO ids, apis
	  FROM unnest(hashes) WITH ORDINALITY u(h, i)
	  JOIN unkey.encrypted_keys e ON e.key_hash = u.h
	  JOIN unkey.keys k ON k.key_hash = u.h;
	IF ids IS NULL THEN
		RETURN result;
	END IF;
	IF NOT pg_catalog.pg_is_in_recovery() AND pg_catalog.current_setting('transaction_read_only')::boolean THEN
		PERFORM unkey._raise('read_only_sql_transaction'::text, 'decrypting keys needs a read-write transaction'::text,
							 'Every decryption is written to the audit log: call it outside a READ ONLY transaction (with PostgREST, by POST).'::text);
	END IF;
	RAISE LOG 'unkey: key.decrypt by role %: %', unkey._actor(), array_to_string(ids, ', ');

	FOR r IN SELECT u.i, k.api_id, d.root_key_id, d.wrapped, k.id, k.key_hash, e.ciphertext
			   FROM unnest(hashes) WITH ORDINALITY u(h, i)
			   JOIN unkey.encrypted_keys e ON e.key_hash = u.h
			   JOIN unkey.keys k ON k.key_hash = e.key_hash
			   JOIN unkey.vault_data_keys d ON d.api_id = e.api_id LOOP
		result[r.i] := unkey._vault_decrypt(r.api_id, r.root_key_id, r.wrapped, r.id, r.key_hash, r.ciphertext);
	END LOOP;

	IF NOT pg_catalog.pg_is_in_recovery() THEN
		PERFORM unkey._audit('key.decrypt'::text,
							 format('Decrypted %s', CASE cardinality(ids) WHEN 1 THEN 'key ' || ids[1]
													 ELSE cardinality(ids) || ' keys' END),
							 (SELECT array_agg(t ORDER BY o) FROM unnest(ids) WITH ORDINALITY x(id, o),
									 LATERAL unnest(ARRAY['key', x.id]) t)
							 || (SELECT array_agg(t) FROM unnest(apis) a, LATERAL unnest(ARRAY['api', a]) t));
	END IF;
	RETURN result;
END
$$;
COMMENT ON FUNCTION unkey._decrypt_keys(bytea[]) IS 'private: decrypt recoverable keys, audited';

CREATE FUNCTION unkey.unkey_set_api_recoverable(api_id text, enabled boolean)
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
	   SET recoverable = unkey_set_api_recoverable.enabled, updated_at = unkey.now()
	 WHERE a.id = unkey_set_api_recoverable.api_id AND a.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	-- the API's data key, made once (55000 without the vault); it outlives a later "off"
	IF enabled AND NOT EXISTS (SELECT FROM unkey.vault_data_keys d WHERE d.api_id = unkey_set_api_recoverable.api_id) THEN
		INSERT INTO unkey.vault_data_keys (api_id, root_key_id, wrapped, created_at)
		SELECT unkey_set_api_recoverable.api_id, n.root_key_id, n.wrapped, unkey.now()
		  FROM unkey._vault_new_data_key(unkey_set_api_recoverable.api_id) n;
	END IF;
	PERFORM unkey._audit('api.update'::text, format('Turned key recovery of API %s %s', api_id,
						 CASE WHEN enabled THEN 'on' ELSE 'off' END), ARRAY['api', api_id]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_set_api_recoverable(text, boolean) IS 'let an API''s new keys be created recoverable (stored encrypted), or stop it; never retroactive';

-- Re-wrap the data keys under the current root key, at most batch_size of them (NULL: all)
CREATE FUNCTION unkey.unkey_vault_rotate(batch_size integer DEFAULT NULL, OUT rewrapped bigint, OUT remaining bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	current_id text := (SELECT v.key_id FROM unkey.unkey_vault_info() v);
BEGIN
	IF current_id IS NULL THEN
		PERFORM unkey._raise('object_not_in_prerequisite_state'::text, 'the vault is not configured'::text,
							 'Set unkey.vault_key_file to the new root key and unkey.vault_previous_key_file to the old one, and restart the server.'::text);
	END IF;
	IF batch_size < 1 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'batch_size must be at least 1'::text,
							 'Pass how many data keys to re-wrap in this transaction, or NULL for all.'::text);
	END IF;
	WITH todo AS (
		SELECT d.api_id FROM unkey.vault_data_keys d
		 WHERE d.root_key_id <> current_id
		 ORDER BY d.api_id LIMIT batch_size
		   FOR UPDATE)
	UPDATE unkey.vault_data_keys d
	   SET wrapped = unkey._vault_rewrap(d.api_id, d.root_key_id, d.wrapped), root_key_id = current_id,
		   rewrapped_at = unkey.now()
	  FROM todo
	 WHERE d.api_id = todo.api_id;
	GET DIAGNOSTICS rewrapped = ROW_COUNT;
	SELECT count(*) INTO remaining FROM unkey.vault_data_keys d WHERE d.root_key_id <> current_id;
	IF rewrapped > 0 THEN
		PERFORM unkey._audit('vault.rotate'::text, format('Re-wrapped %s data keys under root key %s', rewrapped, current_id),
							 ARRAY[]::text[]);
	END IF;
END
$$;
COMMENT ON FUNCTION unkey.unkey_vault_rotate(integer) IS 'rotation: re-wrap the data keys still wrapped by the previous root key; returns how many it did and how many remain';
/*
 * gateway.sql: protect a PostgREST API with unkey keys (C: src/gateway.c).  unkey.pre_request()
 * is PostgREST's db-pre-request: it verifies the key of each request (from a
 * header or a cookie) against one API, with a cost and a permission query
 * from the request's method and path, answers with PostgREST's error
 * contract (SQLSTATE PGRST) when the key does not pass, and otherwise tells
 * the application who called (request.unkey.* settings), sets X-RateLimit-*
 * response headers, and may switch to a role.  It runs in the READ ONLY
 * transactions PostgREST uses for GET and HEAD.
 */

-- The gateway's settings: one row, made by unkey_gateway_configure (change it
-- through the functions: they tell every backend to read it again)
CREATE TABLE unkey.gateway (
	id					boolean PRIMARY KEY DEFAULT true CHECK (id),
	api_id				text NOT NULL REFERENCES unkey.apis (id),
	header				text NOT NULL DEFAULT 'x-api-key'
		CHECK (header ~ '^[a-z0-9-]{1,64}$' AND header NOT IN ('authorization', 'cookie')),
	cookie				text CHECK (cookie ~ '^[A-Za-z0-9_.-]{1,64}$'),
	derive_permissions	boolean NOT NULL DEFAULT true,
	read_cost			bigint NOT NULL DEFAULT 0 CHECK (read_cost >= 0),
	write_cost			bigint NOT NULL DEFAULT 1 CHECK (write_cost >= 0),
	roles				text[] NOT NULL DEFAULT '{}',
	role_field			text CHECK (char_length(role_field) BETWEEN 1 AND 64)
);
COMMENT ON TABLE unkey.gateway IS 'reference: the settings of unkey.pre_request (one row)';

-- Routes with their own permission query, cost or role
CREATE TABLE unkey.gateway_routes (
	method				text NOT NULL CHECK (method IN ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', '*')),
	path				text NOT NULL CHECK (path ~ '^/[^?#[:space:][:cntrl:]]{0,255}$'),
	permissions			text CHECK (char_length(permissions) BETWEEN 1 AND 1000),
	cost				bigint CHECK (cost >= 0),
	role				text,
	PRIMARY KEY (method, path)
);
COMMENT ON TABLE unkey.gateway_routes IS 'reference: per-route permission query, cost and role of unkey.pre_request';

SELECT pg_catalog.pg_extension_config_dump('unkey.gateway', '');
SELECT pg_catalog.pg_extension_config_dump('unkey.gateway_routes', '');

-- Verify the key of the PostgREST request being run (C: src/gateway.c); the role to switch to, or NULL
CREATE FUNCTION unkey.gateway_check()
RETURNS text
	AS 'MODULE_PATHNAME', 'unkey_gateway_check' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.gateway_check() IS 'verify the key of the PostgREST request being run (its request.* settings) and return the role the gateway would switch to; refuses with SQLSTATE PGRST';

-- PostgREST's db-pre-request.  Neither SECURITY DEFINER nor SET: it switches the request's role
CREATE FUNCTION unkey.pre_request()
RETURNS void
	AS 'MODULE_PATHNAME', 'unkey_pre_request' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.pre_request() IS 'PostgREST db-pre-request: refuse a request without a valid key (401, 403, 429), else describe the caller in request.unkey.* and switch role if configured';

CREATE FUNCTION unkey.unkey_gateway_configure(
	api_id				text,
	header				text	DEFAULT 'x-api-key',
	cookie				text	DEFAULT NULL,
	derive_permissions	boolean DEFAULT true,
	read_cost			bigint	DEFAULT 0,
	write_cost			bigint	DEFAULT 1,
	roles				text[]	DEFAULT '{}',
	role_field			text	DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	missing text;
BEGIN
	IF NOT EXISTS (SELECT FROM unkey.apis a WHERE a.id = unkey_gateway_configure.api_id AND a.deleted_at IS NULL) THEN
		PERFORM unkey._raise('not_found'::text, 'api not found'::text,
							 'Check the API id (api_...); a deleted API cannot be used.'::text);
	END IF;
	IF header IS NULL OR header !~ '^[a-z0-9-]{1,64}$' OR header IN ('authorization', 'cookie') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'header must be a lower-case header name other than authorization and cookie'::text,
							 'PostgREST lower-cases header names and reads Authorization as a JWT: use a header such as x-api-key.'::text);
	END IF;
	IF cookie !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'cookie must be a cookie name of 1 to 64 of [A-Za-z0-9_.-]'::text,
							 'Pass the cookie''s name, or NULL to read the header only.'::text);
	END IF;
	IF derive_permissions IS NULL OR read_cost IS NULL OR write_cost IS NULL OR read_cost < 0 OR write_cost < 0 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'derive_permissions, read_cost and write_cost must be given, the costs 0 or more'::text,
							 'GET and HEAD run read-only in PostgREST: keep read_cost 0 unless reads are routed by POST.'::text);
	END IF;
	SELECT string_agg(x, ', ') INTO missing FROM unnest(coalesce(roles, '{}')) x WHERE to_regrole(quote_ident(x)) IS NULL;
	IF roles IS NULL OR missing IS NOT NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('roles must name existing roles: %s', coalesce(missing, 'NULL')),
							 'Create the roles first, and grant them to PostgREST''s authenticator role.'::text);
	END IF;
	IF role_field IS NOT NULL AND char_length(role_field) NOT BETWEEN 1 AND 64 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'role_field must be 1 to 64 characters'::text,
							 'Name the field of a key''s meta that holds its role, such as role.'::text);
	END IF;
	INSERT INTO unkey.gateway AS gw (api_id, header, cookie, derive_permissions, read_cost, write_cost, roles, role_field)
	VALUES (api_id, header, cookie, derive_permissions, read_cost, write_cost, roles, role_field)
	ON CONFLICT (id) DO UPDATE
	   SET (api_id, header, cookie, derive_permissions, read_cost, write_cost, roles, role_field)
		 = (EXCLUDED.api_id, EXCLUDED.header, EXCLUDED.cookie, EXCLUDED.derive_permissions, EXCLUDED.read_cost,
			EXCLUDED.write_cost, EXCLUDED.roles, EXCLUDED.role_field);
	PERFORM unkey._invalidate('unkey.gateway'::regclass);
	PERFORM unkey._audit('gateway.configure'::text, format('Configured the gateway for API %s', api_id), ARRAY['api', api_id]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_gateway_configure(text, text, text, boolean, bigint, bigint, text[], text) IS 'set unkey.pre_request''s API, key header or cookie, permission and cost defaults, and the roles it may switch to';

CREATE FUNCTION unkey.unkey_gateway_set_route(method text, path text, permissions text DEFAULT NULL,
											  cost bigint DEFAULT NULL, role text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF method IS NULL OR upper(method) NOT IN ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', '*') THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'method must be GET, HEAD, POST, PUT, PATCH, DELETE or *'::text,
							 'Use * for every method.'::text);
	END IF;
	IF path IS NULL OR path !~ '^/[^?#[:space:][:cntrl:]]{0,255}$' THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'path must start with / and hold no query string, space or control character'::text,
							 'Pass the path as PostgREST sees it, such as /rpc/report or /items.'::text);
	END IF;
	IF permissions IS NOT NULL THEN
		PERFORM unkey.unkey_normalize_permission_query(permissions);
	END IF;
	IF cost < 0 THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'cost must not be negative'::text,
							 'Pass 0 or more, or NULL for the gateway''s default.'::text);
	END IF;
	IF role IS NOT NULL AND to_regrole(quote_ident(role)) IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, format('role "%s" does not exist', role),
							 'Create the role, grant it to PostgREST''s authenticator and list it in unkey_gateway_configure(roles).'::text);
	END IF;
	INSERT INTO unkey.gateway_routes AS gr (method, path, permissions, cost, role)
	VALUES (upper(method), path, permissions, cost, role)
	ON CONFLICT ON CONSTRAINT gateway_routes_pkey DO UPDATE
	   SET (permissions, cost, role) = (EXCLUDED.permissions, EXCLUDED.cost, EXCLUDED.role);
	PERFORM unkey._invalidate('unkey.gateway_routes'::regclass);
	PERFORM unkey._audit('gateway.set_route'::text, format('Set the gateway route %s %s', upper(method), path), ARRAY[]::text[]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_gateway_set_route(text, text, text, bigint, text) IS 'give a route (method or *, and path) its own permission query (NULL: none), cost and role';

CREATE FUNCTION unkey.unkey_gateway_delete_route(method text, path text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM unkey.gateway_routes gr WHERE gr.method = upper(unkey_gateway_delete_route.method)
										   AND gr.path = unkey_gateway_delete_route.path;
	IF NOT FOUND THEN
		PERFORM unkey._raise('not_found'::text, 'route not found'::text,
							 'SELECT * FROM unkey.gateway_routes lists the routes.'::text);
	END IF;
	PERFORM unkey._invalidate('unkey.gateway_routes'::regclass);
	PERFORM unkey._audit('gateway.delete_route'::text, format('Deleted the gateway route %s %s', upper(method), path), ARRAY[]::text[]);
END
$$;
COMMENT ON FUNCTION unkey.unkey_gateway_delete_route(text, text) IS 'remove a route: it gets the gateway''s defaults again';

/*
 * The roles of a PostgREST deployment, with the grants each needs: the
 * authenticator PostgREST logs in as (LOGIN NOINHERIT, a member of the
 * others, no password: set one), the anonymous role that can only pass the
 * gateway, a verifier and an admin.  Existing roles are kept and granted to.
 * Not SECURITY DEFINER: a superuser, or a role with CREATEROLE that owns
 * the extension, runs it.
 */
CREATE FUNCTION unkey.unkey_create_postgrest_roles(
	authenticator		text DEFAULT 'authenticator',
	anon				text DEFAULT 'unkey_anon',
	verifier			text DEFAULT 'unkey_verifier',
	admin				text DEFAULT 'unkey_admin')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	f regprocedure;
	r text;
BEGIN
	IF authenticator IS NULL OR anon IS NULL OR verifier IS NULL OR admin IS NULL THEN
		PERFORM unkey._raise('invalid_parameter_value'::text, 'every role name must be given'::text,
							 'Leave an argument out for its default name.'::text);
	END IF;
	IF to_regrole(quote_ident(authenticator)) IS NULL THEN
		EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT', authenticator);
	END IF;
	IF to_regrole(quote_ident(anon)) IS NULL THEN
		EXECUTE format('CREATE ROLE %I NOLOGIN', anon);
	END IF;
	IF to_regrole(quote_ident(verifier)) IS NULL THEN
		EXECUTE format('CREATE ROLE %I NOLOGIN', verifier);
	END IF;
	IF to_regrole(quote_ident(admin)) IS NULL THEN
		EXECUTE format('CREATE ROLE %I NOLOGIN', admin);
	END IF;
	FOR r IN SELECT x FROM unnest(ARRAY[anon, verifier, admin]) x WHERE NOT pg_has_role(authenticator, x, 'MEMBER') LOOP
		EXECUTE format('GRANT %I TO %I', r, authenticator);
	END LOOP;
	EXECUTE format('GRANT USAGE ON SCHEMA unkey TO %I, %I, %I', anon, verifier, admin);
	-- every request role passes the gateway
	EXECUTE format('GRANT EXECUTE ON FUNCTION unkey.pre_request(), unkey.gateway_check() TO %I, %I, %I',
				   anon, verifier, admin);
	EXECUTE format('GRANT EXECUTE ON FUNCTION unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet),
					unkey.unkey_ratelimit(text, text, bigint, interval, bigint), unkey.unkey_ratelimit_many(jsonb) TO %I',
				   verifier);
	-- the admin: every unkey_ function but the owner's (rotation, these roles)
	FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace = 'unkey'::regnamespace AND p.proname LIKE 'unkey\_%'
				AND p.proname NOT IN ('unkey_vault_rotate', 'unkey_create_postgrest_roles')
			  ORDER BY 1 LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, admin);
	END LOOP;
	EXECUTE format('GRANT SELECT ON unkey.audit_trail, unkey.verifications, unkey.verifications_hourly,
					unkey.verifications_daily, unkey.verifications_monthly, unkey.key_usage, unkey.ratelimits_hourly,
					unkey.ratelimits_daily, unkey.ratelimits_monthly TO %I', admin);
END
$$;
COMMENT ON FUNCTION unkey.unkey_create_postgrest_roles(text, text, text, text) IS 'create PostgREST''s authenticator and the anonymous, verifier and admin roles (or grant to existing ones); decrypting stays with unkey_decrypt';
/*
 * privileges.sql: nothing in schema unkey is usable by PUBLIC; applications
 * get exactly the grants the README shows
 */

-- functions are executable by PUBLIC by default: take that back from all of them
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA unkey FROM PUBLIC;
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
				  FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'unkey'::regnamespace
				UNION ALL
				SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, c.oid::regclass::text, c.relacl, c.relowner
				  FROM pg_catalog.pg_class c WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S')
				UNION ALL
				SELECT 'TYPE', t.oid::regtype::text, t.typacl, t.typowner
				  FROM pg_catalog.pg_type t WHERE t.typnamespace = 'unkey'::regnamespace AND t.typacl IS NOT NULL
				UNION ALL
				SELECT 'SCHEMA', 'unkey', n.nspacl, n.nspowner
				  FROM pg_catalog.pg_namespace n WHERE n.oid = 'unkey'::regnamespace) o(kind, name, acl, owner),
			   pg_catalog.aclexplode(o.acl) a
		  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
		 WHERE a.grantee <> o.owner
	LOOP
		EXECUTE stmt;
	END LOOP;
END
$$;
