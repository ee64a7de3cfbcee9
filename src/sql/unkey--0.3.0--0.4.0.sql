/* unkey--0.3.0--0.4.0.sql: from release 0.3.0 to 0.4.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION unkey UPDATE TO '0.4.0'" to load this file. \quit

-- the schema must still be ours alone (see unkey._check_schema)
SELECT unkey._check_schema();

/*
 * 0.4.0 adds recoverable keys (the vault): an API may keep its new keys
 * encrypted, so that unkey_get_key and unkey_list_keys can show them again
 * with decrypt => true, to members of role unkey_decrypt.  Those two become
 * C functions that are not SECURITY DEFINER (a definer hides who calls);
 * they take a new argument, so they are dropped and created again, and
 * keep the grants made on them.
 */
ALTER TABLE unkey.apis ADD COLUMN recoverable boolean NOT NULL DEFAULT false;
ALTER TYPE unkey.api ADD ATTRIBUTE recoverable boolean;
ALTER TYPE unkey.key_info ADD ATTRIBUTE plaintext text;
-- the limiter no longer forgets a counter whose window is open: it counts what it refuses instead
ALTER TYPE unkey.ratelimit_info ADD ATTRIBUTE refused_full bigint;
COMMENT ON FUNCTION unkey.unkey_ratelimit_info() IS 'counters in shared memory, how many were evicted (only expired ones since 0.4.0), and how many requests were refused for want of room';

-- Decrypting is a privilege of its own: membership in this role (roles are
-- shared by every database of the cluster; DROP EXTENSION leaves it)
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'unkey_decrypt') THEN
		CREATE ROLE unkey_decrypt NOLOGIN;
	END IF;
END
$$;

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

-- what changes in the functions of 0.3.0
CREATE OR REPLACE FUNCTION unkey.unkey_get_api(api_id text)
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

CREATE OR REPLACE FUNCTION unkey.unkey_create_key(
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

CREATE OR REPLACE FUNCTION unkey.unkey_delete_api(api_id text)
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

CREATE OR REPLACE FUNCTION unkey.unkey_delete_key(key_id text, permanent boolean DEFAULT false)
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

-- Everything shown of a live key of a live API; PT404 if there is none
CREATE OR REPLACE FUNCTION unkey._key_info(h bytea)
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

CREATE OR REPLACE FUNCTION unkey.unkey_reroll_key(key_id text, expiration interval)
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

CREATE OR REPLACE FUNCTION unkey.unkey_migrate_keys(api_id text, keys jsonb)
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

-- unkey_get_key and unkey_list_keys take decrypt: created again, and given
-- the grants made on the old ones (dropped at the end)
ALTER FUNCTION unkey.unkey_get_key(text) RENAME TO unkey_get_key_030;
ALTER FUNCTION unkey.unkey_list_keys(text, integer, text, text) RENAME TO unkey_list_keys_030;

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



/*
 * The PostgREST gateway: unkey.pre_request() for db-pre-request, its
 * settings and routes, and the roles of a deployment (src/sql/gateway.sql).
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

-- what this script created is for no one but the owner, as in a fresh install
REVOKE ALL ON FUNCTION unkey._vault_new_data_key(text), unkey._vault_rewrap(text, text, bytea),
	unkey._vault_encrypt(text, text, bytea, text, text), unkey._vault_decrypt(text, text, bytea, text, bytea, bytea),
	unkey._encrypt_key(text, text, text), unkey._decrypt_keys(bytea[]), unkey.unkey_set_api_recoverable(text, boolean),
	unkey.unkey_vault_rotate(integer), unkey._get_key(text, boolean), unkey._list_keys(text, integer, text, text, boolean),
	unkey.unkey_get_key(text, boolean), unkey.unkey_list_keys(text, integer, text, text, boolean),
	unkey.gateway_check(),
	unkey.pre_request(), unkey.unkey_gateway_configure(text, text, text, boolean, bigint, bigint, text[], text), unkey.unkey_gateway_set_route(text, text, text, bigint, text),
	unkey.unkey_gateway_delete_route(text, text), unkey.unkey_create_postgrest_roles(text, text, text, text) FROM PUBLIC;
-- and not for the roles the installing role's default privileges name
-- (their initial privileges are recorded only when the script ends, so the
-- installing role's default privileges are taken back from this list)
DO $$
DECLARE
	stmt text;
BEGIN
	FOR stmt IN
		SELECT DISTINCT format('REVOKE ALL ON %s %s FROM %s', o.kind, o.name,
							   CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END)
		  FROM (SELECT 'ROUTINE', p.oid::regprocedure::text, p.proacl, p.proowner
				  FROM pg_catalog.pg_proc p
				 WHERE p.oid = ANY (ARRAY['unkey._vault_new_data_key(text)', 'unkey._vault_rewrap(text, text, bytea)',
										  'unkey._vault_encrypt(text, text, bytea, text, text)',
										  'unkey._vault_decrypt(text, text, bytea, text, bytea, bytea)',
										  'unkey._encrypt_key(text, text, text)', 'unkey._decrypt_keys(bytea[])',
										  'unkey.unkey_set_api_recoverable(text, boolean)', 'unkey.unkey_vault_rotate(integer)',
										  'unkey._get_key(text, boolean)', 'unkey._list_keys(text, integer, text, text, boolean)',
										  'unkey.unkey_get_key(text, boolean)',
										  'unkey.unkey_list_keys(text, integer, text, text, boolean)',
										  'unkey.gateway_check()',
										  'unkey.pre_request()',
										  'unkey.unkey_gateway_configure(text, text, text, boolean, bigint, bigint, text[], text)',
										  'unkey.unkey_gateway_set_route(text, text, text, bigint, text)',
										  'unkey.unkey_gateway_delete_route(text, text)',
										  'unkey.unkey_create_postgrest_roles(text, text, text, text)']::regprocedure[])
				UNION ALL
				SELECT 'TABLE', c.oid::regclass::text, c.relacl, c.relowner
				  FROM pg_catalog.pg_class c
				 WHERE c.oid = ANY (ARRAY['unkey.vault_data_keys', 'unkey.encrypted_keys', 'unkey.gateway',
										  'unkey.gateway_routes']::regclass[])) o(kind, name, acl, owner),
			   pg_catalog.aclexplode(o.acl) a
		 WHERE a.grantee <> o.owner
	LOOP
		EXECUTE stmt;
	END LOOP;
END
$$;

-- and the recreated entry points get the grants made on the old ones
DO $$
DECLARE
	g record;
BEGIN
	FOR g IN SELECT p.proname, a.privilege_type, a.grantee, a.is_grantable
			   FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
			  WHERE p.oid IN ('unkey.unkey_get_key_030(text)'::regprocedure,
							  'unkey.unkey_list_keys_030(text, integer, text, text)'::regprocedure)
				AND a.grantee <> p.proowner LOOP
		EXECUTE format('GRANT %s ON FUNCTION %s TO %s%s', g.privilege_type,
					   CASE g.proname WHEN 'unkey_get_key_030' THEN 'unkey.unkey_get_key(text, boolean)'
					   ELSE 'unkey.unkey_list_keys(text, integer, text, text, boolean)' END,
					   CASE g.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END,
					   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;
DROP FUNCTION unkey.unkey_get_key_030(text);
DROP FUNCTION unkey.unkey_list_keys_030(text, integer, text, text);

/*
 * pg_init_privs records every grant made while an extension script runs,
 * the ones carried over above too, and pg_dump leaves out what it records:
 * a restore would lose those grants.  A fresh install records only the
 * owner's own privileges (granted by the owner to the owner), so that is
 * what is kept of each entry of our functions and tables; an owner changed
 * since (REASSIGN OWNED) keeps its entries too.  (0.3.0's update recorded
 * the grants it carried to verification_rollups the same way; this sets
 * them right too.)
 */
UPDATE pg_catalog.pg_init_privs i
   SET initprivs = o.kept
  FROM (SELECT c.classoid, c.objoid,
			   (SELECT pg_catalog.array_agg(x.item ORDER BY x.n)
				  FROM pg_catalog.unnest(ip.initprivs) WITH ORDINALITY x(item, n)
				 WHERE (SELECT e.grantee = e.grantor OR e.grantee = c.owner
						  FROM pg_catalog.aclexplode(ARRAY[x.item]) e LIMIT 1)) AS kept
		  FROM (SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid, p.proowner
				  FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'unkey'::pg_catalog.regnamespace
				UNION ALL
				SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, r.oid, r.relowner
				  FROM pg_catalog.pg_class r WHERE r.relnamespace = 'unkey'::pg_catalog.regnamespace) c(classoid, objoid, owner)
		  JOIN pg_catalog.pg_init_privs ip ON ip.classoid = c.classoid AND ip.objoid = c.objoid
										  AND ip.objsubid = 0 AND ip.privtype = 'e') o
 WHERE i.classoid = o.classoid AND i.objoid = o.objoid AND i.objsubid = 0 AND i.privtype = 'e'
   AND o.kept IS NOT NULL AND o.kept <> i.initprivs;
