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
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- PL/pgSQL, not SQL: Citus plans a parameter of a SQL function over a distributed table as it cannot
	IF kind = 'roles' THEN
		RETURN ARRAY(SELECT r.name FROM unkey.key_roles kr JOIN unkey.roles r ON r.id = kr.role_id
					  WHERE kr.key_hash = h ORDER BY r.name COLLATE "C");
	END IF;
	RETURN ARRAY(SELECT p.slug FROM unkey.key_permissions kp JOIN unkey.permissions p ON p.id = kp.permission_id
				  WHERE kp.key_hash = h ORDER BY p.slug COLLATE "C");
END
$$;
COMMENT ON FUNCTION unkey._key_grants(bytea, text) IS 'private: the roles or direct permissions of a key';

-- Everything shown of a live key of a live API; PT404 if there is none.
-- One statement per table, each by its key: on Citus a statement that
-- joins a key's tables with functions that read others cannot run.
CREATE FUNCTION unkey._key_info(h bytea)
RETURNS unkey.key_info
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k unkey.keys;
	i unkey.identities;
	last_used timestamptz;
BEGIN
	SELECT kk.* INTO k FROM unkey.keys kk JOIN unkey.apis a ON a.id = kk.api_id AND a.deleted_at IS NULL
	 WHERE kk.key_hash = h AND kk.deleted_at IS NULL;
	IF k.key_hash IS NULL THEN
		PERFORM unkey._raise('not_found'::text, 'key not found'::text,
							 'Check the key id (key_...); a deleted key, or a key of a deleted API, cannot be used.'::text);
	END IF;
	SELECT ii.* INTO i FROM unkey.identities ii WHERE ii.id = k.identity_id;
	-- from the rollups of the verification events, not written by verification
	SELECT max(r.last_time) INTO last_used FROM unkey.verification_rollups r WHERE r.key_hash = h AND r.key_id = k.id;
	RETURN ROW(k.id, k.api_id, k.start, k.prefix, k.name, k.meta, k.identity_id, i.external_id, i.meta,
			   k.enabled, k.expires,
			   unkey._credits_now(k.remaining, k.refill_amount, k.refill_day, k.last_refill_at, unkey.now()),
			   k.refill_interval, k.refill_amount, k.refill_day, k.last_refill_at,
			   unkey._get_ratelimits(h, NULL::text), unkey._key_grants(h, 'roles'::text), unkey._key_grants(h, 'permissions'::text),
			   k.created_at, k.updated_at, last_used, NULL::text)::unkey.key_info;
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
	-- a call that migrated nothing changed nothing: no audit row
	IF cardinality(ids) > 0 THEN
		PERFORM unkey._audit('key.create'::text, format('Migrated %s keys into API %s', cardinality(ids) / 2, live_api),
							 ARRAY['api', live_api] || ids);
	END IF;
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
