-- delete: soft delete keeps the hash taken, permanent delete frees it
SELECT unkey.unkey_create_api('delete') AS api \gset
INSERT INTO unkey.roles (id, name, created_at) VALUES ('role_deleter', 'deleter', now());
SELECT key_id AS soft_id, key AS soft_key FROM unkey.unkey_create_key(:'api', credits => 5) \gset
SELECT key_id AS hard_id, key AS hard_key FROM unkey.unkey_create_key(:'api',
	roles => '{deleter}', permissions => '{delete.me}',
	ratelimits => '[{"name": "requests", "limit": 5, "duration": 1000}]') \gset

-- soft: verification answers NOT_FOUND, but the row and its hash stay
SELECT unkey.unkey_delete_key(:'soft_id');
SELECT valid, code, key_id IS NULL AS no_data FROM unkey.unkey_verify_key(:'soft_key');
SELECT deleted_at IS NOT NULL AS deleted, remaining AS credits_untouched
  FROM unkey.keys WHERE key_hash = unkey._key_hash(:'soft_key');
-- a second soft delete is PT404; a permanent delete of a soft-deleted key works
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L)', :'soft_id'));
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L, permanent => true)', :'soft_id'));
SELECT count(*) AS rows_left FROM unkey.keys WHERE id = :'soft_id';

-- permanent: the row, its links and its rate-limit configs are gone; the hash is free
SELECT unkey.unkey_delete_key(:'hard_id', permanent => true);
SELECT (SELECT count(*) FROM unkey.keys WHERE key_hash = unkey._key_hash(:'hard_key')) AS keys,
	   (SELECT count(*) FROM unkey.key_roles WHERE key_hash = unkey._key_hash(:'hard_key')) AS roles,
	   (SELECT count(*) FROM unkey.key_permissions WHERE key_hash = unkey._key_hash(:'hard_key')) AS perms,
	   (SELECT count(*) FROM unkey.key_ratelimits WHERE key_hash = unkey._key_hash(:'hard_key')) AS ratelimits;
-- the role and the permission themselves are not deleted
SELECT (SELECT count(*) FROM unkey.roles WHERE name = 'deleter') AS role_kept,
	   (SELECT count(*) FROM unkey.permissions WHERE slug = 'delete.me') AS permission_kept;
SELECT code FROM unkey.unkey_verify_key(:'hard_key');
-- the freed hash can be taken again (as a migration by hash would)
INSERT INTO unkey.keys (key_hash, id, api_id, start, created_at)
VALUES (unkey._key_hash(:'hard_key'), 'key_reused', :'api', 'x', now());
SELECT code, key_id FROM unkey.unkey_verify_key(:'hard_key');

-- errors
SELECT regress.err($$SELECT unkey.unkey_delete_key('key_missing')$$);
SELECT regress.err($$SELECT unkey.unkey_delete_key('key_missing', permanent => true)$$);
SELECT regress.err($$SELECT unkey.unkey_delete_key(NULL)$$);
SELECT regress.err(format('SELECT unkey.unkey_delete_key(%L, permanent => NULL)', 'key_reused'));
