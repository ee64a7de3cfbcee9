-- vault: recoverable keys.  The regression server has a random root key
-- (Makefile: tmp_check_vault); TAP 013 covers the key files, a server
-- without one, rotation, and byte searches of the heap, WAL, dumps and logs
SELECT configured, length(key_id) AS key_id_length FROM unkey.unkey_vault_info();
SELECT context FROM pg_settings WHERE name IN ('unkey.vault_key_file', 'unkey.vault_previous_key_file') ORDER BY name;
-- errors name keys and APIs by id: masked here
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE sql
	AS $$ SELECT regexp_replace(regress.err(stmt), '\m(key|api)_[A-Za-z0-9]{10,}', '\1_<id>', 'g') $$;
SELECT unkey.unkey_create_api('vault') AS vault_api \gset
SELECT unkey.unkey_create_api('plain') AS plain_api \gset

-- an API is opted in explicitly; before that a recoverable key is refused (Unkey's 412)
SELECT recoverable FROM unkey.unkey_get_api(:'vault_api');
SELECT pg_temp.err(format($$SELECT unkey.unkey_create_key(%L, recoverable => true)$$, :'vault_api'));
SELECT pg_temp.err(format($$SELECT unkey.unkey_create_key(%L, recoverable => NULL)$$, :'vault_api'));
SELECT pg_temp.err(format($$SELECT unkey.unkey_set_api_recoverable(%L, NULL)$$, :'vault_api'));
SELECT pg_temp.err($$SELECT unkey.unkey_set_api_recoverable('api_missing', true)$$);
SELECT count(*) AS nothing_written FROM unkey.keys WHERE api_id = :'vault_api';
SELECT unkey.unkey_set_api_recoverable(:'vault_api', true);
SELECT recoverable FROM unkey.unkey_get_api(:'vault_api');
-- one data key, 72 bytes wrapped (nonce, key, tag), under the server's root key
SELECT count(*), bool_and(octet_length(wrapped) = 72),
	   bool_and(root_key_id = (SELECT key_id FROM unkey.unkey_vault_info())) AS current_root
  FROM unkey.vault_data_keys WHERE api_id = :'vault_api';

-- round trip: the plaintext comes back with decrypt => true, and only then
SELECT key_id AS rk, key AS rk_key FROM unkey.unkey_create_key(:'vault_api', prefix => 'sk', recoverable => true) \gset
SELECT key_id AS pk, key AS pk_key FROM unkey.unkey_create_key(:'vault_api', prefix => 'sk') \gset
SELECT code FROM unkey.unkey_verify_key(:'rk_key');
SELECT plaintext IS NULL AS hidden FROM unkey.unkey_get_key(:'rk');
SELECT plaintext = :'rk_key' AS recovered FROM unkey.unkey_get_key(:'rk', decrypt => true);
-- a key that is not recoverable has no plaintext, and is not audited as decrypted
SELECT plaintext IS NULL AS not_recoverable FROM unkey.unkey_get_key(:'pk', decrypt => true);
SELECT pg_temp.err($$SELECT unkey.unkey_get_key('key_missing', decrypt => true)$$);
SELECT pg_temp.err(format($$SELECT unkey.unkey_get_key(%L, decrypt => NULL)$$, :'rk'));
-- what is stored: the hash and a ciphertext of nonce (24), the key, and tag (16); never the key
SELECT octet_length(e.ciphertext) = 24 + octet_length(:'rk_key') + 16 AS sealed_length,
	   position(convert_to(:'rk_key', 'UTF8') IN e.ciphertext) = 0 AS not_in_clear,
	   e.api_id = :'vault_api' AS same_api
  FROM unkey.encrypted_keys e JOIN unkey.keys k USING (key_hash) WHERE k.id = :'rk';
-- a ciphertext is random: the same plaintext sealed twice differs
SELECT unkey._encrypt_key(:'vault_api', :'rk', :'rk_key') <> unkey._encrypt_key(:'vault_api', :'rk', :'rk_key') AS random_nonce;

-- listing: plaintexts of the recoverable keys of the page, in order
SELECT k.key_id = :'rk' AS is_rk, k.plaintext = :'rk_key' AS recovered, k.plaintext IS NULL AS no_plaintext
  FROM unkey.unkey_list_keys(:'vault_api', decrypt => true) p, unnest(p.keys) k ORDER BY k.key_id = :'rk';
SELECT bool_and(k.plaintext IS NULL) AS hidden FROM unkey.unkey_list_keys(:'vault_api') p, unnest(p.keys) k;
SELECT key_id AS rk3, key AS rk3_key FROM unkey.unkey_create_key(:'vault_api', recoverable => true) \gset
SELECT count(*) FILTER (WHERE k.plaintext = :'rk_key' OR k.plaintext = :'rk3_key') AS recovered, count(*) AS listed
  FROM unkey.unkey_list_keys(:'vault_api', decrypt => true) p, unnest(p.keys) k;

-- every decryption is audited in the same transaction; the audit row holds ids, never the key
SELECT event, replace(description, :'rk', 'rk') AS description,
	   targets @> jsonb_build_array(jsonb_build_object('type', 'key', 'id', :'rk'), jsonb_build_object('type', 'api', 'id', :'vault_api')) AS names_rk_and_api,
	   targets @> jsonb_build_array(jsonb_build_object('type', 'key', 'id', :'rk3')) AS names_rk3,
	   jsonb_array_length(targets) AS targets
  FROM unkey.audit_log WHERE event = 'key.decrypt' ORDER BY id;
SELECT count(*) AS audit_rows_with_key FROM unkey.audit_log WHERE position(:'rk_key' IN description || targets::text) > 0;
-- on a primary a READ ONLY transaction cannot write the audit row: refused
BEGIN READ ONLY;
SELECT pg_temp.err(format($$SELECT unkey.unkey_get_key(%L, decrypt => true)$$, :'rk'));
ROLLBACK;
-- a READ ONLY transaction that decrypts nothing is fine
BEGIN READ ONLY;
SELECT plaintext IS NULL AS nothing_to_decrypt FROM unkey.unkey_get_key(:'pk', decrypt => true);
ROLLBACK;

-- decrypting is a privilege of its own: membership in unkey_decrypt
CREATE ROLE vault_reader;
CREATE ROLE vault_admin;
GRANT USAGE ON SCHEMA unkey TO vault_reader, vault_admin;
GRANT EXECUTE ON FUNCTION unkey.unkey_get_key(text, boolean), unkey.unkey_list_keys(text, integer, text, text, boolean),
	unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet) TO vault_reader, vault_admin;
GRANT unkey_decrypt TO vault_admin;
SELECT count(*) AS audit_before FROM unkey.audit_log WHERE event = 'key.decrypt' \gset
SET ROLE vault_reader;
SELECT key_id = :'rk' AS reads_without_decrypt FROM unkey.unkey_get_key(:'rk');
SELECT pg_temp.err(format($$SELECT unkey.unkey_get_key(%L, decrypt => true)$$, :'rk'));
SELECT pg_temp.err(format($$SELECT unkey.unkey_list_keys(%L, decrypt => true)$$, :'vault_api'));
-- granting verification does not grant decryption
SELECT code FROM unkey.unkey_verify_key(:'rk_key');
RESET ROLE;
SELECT count(*) - :audit_before AS audited_refusals FROM unkey.audit_log WHERE event = 'key.decrypt';
-- PostgREST switches roles with SET LOCAL ROLE: the role it switches to is the caller
BEGIN;
SET LOCAL ROLE vault_admin;
SELECT plaintext = :'rk_key' AS admin_recovers FROM unkey.unkey_get_key(:'rk', decrypt => true);
COMMIT;
SELECT actor, event FROM unkey.audit_log ORDER BY id DESC LIMIT 1;
-- a SECURITY DEFINER function runs as its owner, who must be a member too
CREATE FUNCTION public.reader_shows(key_id text) RETURNS text LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp AS $$ SELECT plaintext FROM unkey.unkey_get_key(key_id, decrypt => true) $$;
ALTER FUNCTION public.reader_shows(text) OWNER TO vault_reader;
GRANT EXECUTE ON FUNCTION public.reader_shows(text) TO vault_admin;
SET ROLE vault_admin;
SELECT pg_temp.err(format($$SELECT public.reader_shows(%L)$$, :'rk'));
RESET ROLE;
DROP FUNCTION public.reader_shows(text);

-- tampering: a changed byte, a ciphertext moved to another key, a data key
-- moved to another API, all refuse with XX001 and show nothing
SELECT key_id AS rk2, key AS rk2_key FROM unkey.unkey_create_key(:'vault_api', recoverable => true) \gset
CREATE TEMP TABLE saved AS SELECT * FROM unkey.encrypted_keys;
UPDATE unkey.encrypted_keys e SET ciphertext = set_byte(e.ciphertext, 30, get_byte(e.ciphertext, 30) # 1)
  FROM unkey.keys k WHERE k.key_hash = e.key_hash AND k.id = :'rk';
SELECT pg_temp.err(format($$SELECT unkey.unkey_get_key(%L, decrypt => true)$$, :'rk'));
SELECT pg_temp.err(format($$SELECT unkey.unkey_list_keys(%L, decrypt => true)$$, :'vault_api'));
-- the key itself still verifies: verification reads only the hash
SELECT code FROM unkey.unkey_verify_key(:'rk_key');
-- rk2's ciphertext on rk's row
UPDATE unkey.encrypted_keys e SET ciphertext = (SELECT s.ciphertext FROM saved s JOIN unkey.keys k USING (key_hash) WHERE k.id = :'rk2')
  FROM unkey.keys k WHERE k.key_hash = e.key_hash AND k.id = :'rk';
SELECT pg_temp.err(format($$SELECT unkey.unkey_get_key(%L, decrypt => true)$$, :'rk'));
-- an authentic ciphertext of another plaintext, sealed under rk's own id: it opens, but
-- does not hash to rk's hash
UPDATE unkey.encrypted_keys e SET ciphertext = unkey._encrypt_key(:'vault_api', :'rk', 'sk_not_this_key')
  FROM unkey.keys k WHERE k.key_hash = e.key_hash AND k.id = :'rk';
SELECT pg_temp.err(format($$SELECT unkey.unkey_get_key(%L, decrypt => true)$$, :'rk'));
UPDATE unkey.encrypted_keys e SET ciphertext = s.ciphertext FROM saved s WHERE s.key_hash = e.key_hash;
SELECT plaintext = :'rk_key' AS restored FROM unkey.unkey_get_key(:'rk', decrypt => true);
-- another API's data key in place of this one's
SELECT unkey.unkey_create_api('other') AS other_api \gset
SELECT unkey.unkey_set_api_recoverable(:'other_api', true);
CREATE TEMP TABLE saved_dek AS SELECT * FROM unkey.vault_data_keys WHERE api_id = :'vault_api';
UPDATE unkey.vault_data_keys d SET wrapped = (SELECT o.wrapped FROM unkey.vault_data_keys o WHERE o.api_id = :'other_api')
 WHERE d.api_id = :'vault_api';
SELECT pg_temp.err(format($$SELECT unkey.unkey_get_key(%L, decrypt => true)$$, :'rk'));
-- a data key wrapped by a root key this server does not have
UPDATE unkey.vault_data_keys d SET wrapped = s.wrapped, root_key_id = '0123456789abcdef' FROM saved_dek s WHERE s.api_id = d.api_id;
SELECT pg_temp.err(format($$SELECT unkey.unkey_get_key(%L, decrypt => true)$$, :'rk'));
SELECT pg_temp.err(format($$SELECT unkey.unkey_create_key(%L, recoverable => true)$$, :'vault_api'));
UPDATE unkey.vault_data_keys d SET root_key_id = s.root_key_id FROM saved_dek s WHERE s.api_id = d.api_id;
SELECT plaintext = :'rk_key' AS restored FROM unkey.unkey_get_key(:'rk', decrypt => true);

-- reroll: the successor of a recoverable key is recoverable, sealed under its own id
SELECT key_id AS rr, key AS rr_key FROM unkey.unkey_reroll_key(:'rk', '1 hour') \gset
SELECT plaintext = :'rr_key' AS rerolled_recovered FROM unkey.unkey_get_key(:'rr', decrypt => true);
SELECT plaintext = :'rk_key' AS old_still_recovered FROM unkey.unkey_get_key(:'rk', decrypt => true);
SELECT key_id AS pr FROM unkey.unkey_reroll_key(:'pk', '0') \gset
SELECT plaintext IS NULL AS plain_stays_plain FROM unkey.unkey_get_key(:'pr', decrypt => true);

-- migration takes plaintexts as well as hashes; a recoverable API stores their ciphertexts
SELECT migrated, failed FROM unkey.unkey_migrate_keys(:'vault_api',
	'[{"plaintext": "legacy_key_0123456789abcdef", "name": "legacy"}, {"plaintext": "legacy_key_0123456789abcdef"}]')
	\gset
SELECT :'migrated'::jsonb -> 0 ->> 'hash' = unkey.unkey_hash_key('legacy_key_0123456789abcdef') AS hash_shown,
	   :'failed'::jsonb = jsonb_build_array(unkey.unkey_hash_key('legacy_key_0123456789abcdef')) AS taken_shown_by_hash,
	   position('legacy_key_0123456789abcdef' IN :'migrated' || :'failed') = 0 AS plaintext_not_echoed;
SELECT code FROM unkey.unkey_verify_key('legacy_key_0123456789abcdef');
SELECT start, name, plaintext = 'legacy_key_0123456789abcdef' AS recovered
  FROM unkey.unkey_get_key(:'migrated'::jsonb -> 0 ->> 'keyId', decrypt => true);
-- a short plaintext shows no start (a start of 4 characters would be most of it)
SELECT migrated -> 0 ->> 'keyId' AS sk FROM unkey.unkey_migrate_keys(:'vault_api', '[{"plaintext": "short_key_12345"}]') \gset
SELECT start = '' AS no_start, plaintext = 'short_key_12345' AS recovered FROM unkey.unkey_get_key(:'sk', decrypt => true);
-- into an API that is not recoverable: the hash only
SELECT migrated -> 0 ->> 'keyId' AS mk FROM unkey.unkey_migrate_keys(:'plain_api', '[{"plaintext": "legacy_plain_0123456789abcdef"}]') \gset
SELECT code FROM unkey.unkey_verify_key('legacy_plain_0123456789abcdef');
SELECT plaintext IS NULL AS hash_only FROM unkey.unkey_get_key(:'mk', decrypt => true);
-- bad items name the item and never the key
SELECT pg_temp.err(format($$SELECT unkey.unkey_migrate_keys(%L, '[{"plaintext": "sk_secret_1", "hash": "%s"}]')$$,
						  :'vault_api', repeat('a', 64)));
SELECT pg_temp.err(format($$SELECT unkey.unkey_migrate_keys(%L, '[{"plaintext": 5}]')$$, :'vault_api'));
SELECT pg_temp.err(format($$SELECT unkey.unkey_migrate_keys(%L, '[{"plaintext": ""}]')$$, :'vault_api'));
SELECT pg_temp.err(format($$SELECT unkey.unkey_migrate_keys(%L, '[{"plaintext": "sk_secret_2", "credits": -1}]')$$, :'vault_api'));
SELECT pg_temp.err(format($$SELECT unkey.unkey_migrate_keys(%L, '[{"plaintext": "sk_secret_3", "colour": 1}]')$$, :'vault_api'));
SELECT count(*) AS nothing_half_written FROM unkey.keys
 WHERE key_hash IN (unkey._key_hash('sk_secret_1'), unkey._key_hash('sk_secret_2'), unkey._key_hash('sk_secret_3'));

-- turning recovery off stops new recoverable keys; existing ones stay readable
SELECT unkey.unkey_set_api_recoverable(:'vault_api', false);
SELECT pg_temp.err(format($$SELECT unkey.unkey_create_key(%L, recoverable => true)$$, :'vault_api'));
SELECT plaintext = :'rr_key' AS still_recovered FROM unkey.unkey_get_key(:'rr', decrypt => true);
SELECT unkey.unkey_set_api_recoverable(:'vault_api', true);
SELECT count(*) AS one_data_key FROM unkey.vault_data_keys WHERE api_id = :'vault_api';

-- a deleted key is never shown again: its ciphertext goes with it
SELECT unkey.unkey_delete_key(:'rr');
SELECT count(*) AS ciphertext_left FROM unkey.encrypted_keys e JOIN unkey.keys k USING (key_hash) WHERE k.id = :'rr';
SELECT key_id AS gone FROM unkey.unkey_create_key(:'vault_api', recoverable => true) \gset
SELECT unkey.unkey_delete_key(:'gone', permanent => true);
SELECT count(*) AS ciphertexts FROM unkey.encrypted_keys e WHERE NOT EXISTS (SELECT FROM unkey.keys k WHERE k.key_hash = e.key_hash);

-- a deleted API's keys are never shown again either: their ciphertexts go
SELECT unkey.unkey_create_api('doomed') AS doomed_api \gset
SELECT unkey.unkey_set_api_recoverable(:'doomed_api', true);
SELECT count(*) AS created FROM unkey.unkey_create_key(:'doomed_api', recoverable => true);
SELECT unkey.unkey_delete_api(:'doomed_api');
SELECT count(*) AS ciphertexts_left FROM unkey.encrypted_keys WHERE api_id = :'doomed_api';

-- rotation with a single root key has nothing to do
SELECT rewrapped, remaining FROM unkey.unkey_vault_rotate();
SELECT pg_temp.err('SELECT unkey.unkey_vault_rotate(0)');
-- a data key under a root key the server lacks stays where it is
UPDATE unkey.vault_data_keys SET root_key_id = '0123456789abcdef' WHERE api_id = :'other_api';
SELECT pg_temp.err('SELECT unkey.unkey_vault_rotate()');
UPDATE unkey.vault_data_keys d SET root_key_id = (SELECT key_id FROM unkey.unkey_vault_info()) WHERE api_id = :'other_api';
REVOKE ALL ON SCHEMA unkey FROM vault_reader, vault_admin;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA unkey FROM vault_reader, vault_admin;
DROP ROLE vault_reader;
DROP ROLE vault_admin;
