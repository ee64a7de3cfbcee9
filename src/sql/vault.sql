/*
 * vault.sql: the vault (C: src/vault.c); its root key is read at server
 * start from unkey.vault_key_file and never reaches SQL
 */

CREATE FUNCTION unkey.unkey_vault_info(OUT configured boolean, OUT key_id text)
RETURNS record
	AS 'MODULE_PATHNAME', 'unkey_vault_info' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION unkey.unkey_vault_info() IS 'whether the server has a vault root key (unkey.vault_key_file), and the id that tells root keys apart; never the key';

