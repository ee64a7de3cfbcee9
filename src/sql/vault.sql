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
