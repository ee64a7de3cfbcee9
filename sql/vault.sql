-- vault: the root key is read at server start from unkey.vault_key_file
-- (TAP 013 covers the files); the regression server runs without one
SELECT configured, key_id FROM unkey.unkey_vault_info();
SHOW unkey.vault_key_file;
-- its setting can only be changed by a restart
SELECT context FROM pg_settings WHERE name = 'unkey.vault_key_file';
-- recoverable keys still fail clearly (the rest of issue 14)
SELECT unkey.unkey_create_api('vault') AS vault_api \gset
SELECT regress.err(format($$SELECT unkey.unkey_create_key(%L, recoverable => true)$$, :'vault_api'));
