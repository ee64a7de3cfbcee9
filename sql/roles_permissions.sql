-- roles_permissions: managing permissions, roles, and the grants of keys

-- permissions: create, get by id or slug, list, duplicates
SELECT unkey.unkey_create_permission('Read documents', 'rp.docs.read', 'may read') AS p_read \gset
SELECT :'p_read' ~ '^perm_' AS id_format;
SELECT name, slug, description FROM unkey.unkey_get_permission('rp.docs.read');
SELECT slug FROM unkey.unkey_get_permission(:'p_read');
SELECT a, regress.err(a) FROM unnest(ARRAY[
	$$SELECT unkey.unkey_create_permission('again', 'rp.docs.read')$$,
	$$SELECT unkey.unkey_create_permission('', 'rp.x')$$,
	$$SELECT unkey.unkey_create_permission(repeat('n', 513), 'rp.x')$$,
	$$SELECT unkey.unkey_create_permission('x', 'has space')$$,
	$$SELECT unkey.unkey_create_permission('x', repeat('s', 129))$$,
	$$SELECT unkey.unkey_create_permission('x', NULL)$$,
	$$SELECT unkey.unkey_create_permission('x', 'rp.x', repeat('d', 513))$$,
	$$SELECT unkey.unkey_get_permission('rp.nothing')$$,
	$$SELECT unkey.unkey_delete_permission('rp.nothing')$$
]) WITH ORDINALITY t(a, n) ORDER BY n;
SELECT regress.err($$SELECT unkey.unkey_create_permission('x', repeat('s', 128))$$) AS slug_128;

-- roles: create with permissions (missing slugs are created), get by id or name, list, duplicates
SELECT unkey.unkey_create_role('rp editor', 'edits docs', '{rp.docs.read, rp.docs.write}') AS r_editor \gset
SELECT name, description, permissions FROM unkey.unkey_get_role('rp editor');
SELECT name FROM unkey.unkey_get_role(:'r_editor');
SELECT slug, name FROM unkey.unkey_get_permission('rp.docs.write');
SELECT unkey.unkey_create_role('rp viewer') IS NOT NULL AS viewer_created;
SELECT name, permissions FROM unkey.unkey_list_roles() WHERE name LIKE 'rp %';
SELECT a, regress.err(a) FROM unnest(ARRAY[
	$$SELECT unkey.unkey_create_role('rp editor')$$,
	$$SELECT unkey.unkey_create_role('')$$,
	$$SELECT unkey.unkey_create_role(repeat('r', 129))$$,
	$$SELECT unkey.unkey_create_role('rp bad', permissions => '{"bad slug"}')$$,
	$$SELECT unkey.unkey_get_role('rp nobody')$$,
	$$SELECT unkey.unkey_delete_role('rp nobody')$$,
	$$SELECT unkey.unkey_set_role_permissions('rp nobody', '{}')$$,
	$$SELECT unkey.unkey_set_role_permissions('rp editor', NULL)$$
]) WITH ORDINALITY t(a, n) ORDER BY n;
SELECT count(*) AS no_half_written_role FROM unkey.roles WHERE name = 'rp bad';

-- set_role_permissions replaces the set; {} clears it
SELECT unkey.unkey_set_role_permissions('rp viewer', '{rp.docs.read, rp.comments.read}');
SELECT unkey.unkey_set_role_permissions('rp viewer', '{rp.docs.read}');
SELECT unkey.unkey_set_role_permissions('rp viewer', '{}');
SELECT unkey.unkey_set_role_permissions('rp viewer', '{rp.docs.read}');

-- a key's permissions and roles: add, remove, set; verification sees the change at once
SELECT unkey.unkey_create_api('rp') AS api \gset
SELECT * FROM unkey.unkey_create_key(:'api') \gset k_
SELECT unkey.unkey_add_key_permissions(:'k_key_id', '{rp.admin, rp.docs.read}');
SELECT unkey.unkey_add_key_permissions(:'k_key_id', '{rp.admin}');
SELECT unkey.unkey_remove_key_permissions(:'k_key_id', '{rp.admin, rp.never.created}');
SELECT count(*) AS remove_creates_nothing FROM unkey.permissions WHERE slug = 'rp.never.created';
SELECT unkey.unkey_set_key_permissions(:'k_key_id', '{rp.billing}');
SELECT unkey.unkey_add_key_roles(:'k_key_id', '{rp editor}');
SELECT code, permissions, roles FROM unkey.unkey_verify_key(:'k_key', permissions => 'rp.billing AND rp.docs.write', cost => 0);
SELECT unkey.unkey_set_key_roles(:'k_key_id', '{rp viewer}');
SELECT code, permissions, roles FROM unkey.unkey_verify_key(:'k_key', permissions => 'rp.docs.write', cost => 0);
SELECT unkey.unkey_remove_key_roles(:'k_key_id', '{rp viewer}');
SELECT unkey.unkey_set_key_permissions(:'k_key_id', '{}');
SELECT code, permissions, roles FROM unkey.unkey_verify_key(:'k_key', cost => 0);
SELECT a, regress.err(format(a, :'k_key_id')) FROM unnest(ARRAY[
	$$SELECT unkey.unkey_add_key_roles(%L, '{rp nobody}')$$,
	$$SELECT unkey.unkey_set_key_roles(%L, NULL)$$,
	$$SELECT unkey.unkey_add_key_permissions(%L, '{"bad slug"}')$$,
	$$SELECT unkey.unkey_add_key_permissions(%L, ARRAY[NULL])$$
]) WITH ORDINALITY t(a, n) ORDER BY n;
SELECT regress.err($$SELECT unkey.unkey_add_key_permissions('key_missing', '{a}')$$) AS unknown_key;

-- deleting a role or a permission removes its links, from roles and keys alike
SELECT unkey.unkey_add_key_roles(:'k_key_id', '{rp editor}');
SELECT unkey.unkey_add_key_permissions(:'k_key_id', '{rp.docs.write}');
SELECT unkey.unkey_delete_permission('rp.docs.write');
SELECT permissions FROM unkey.unkey_get_role('rp editor');
SELECT unkey.unkey_delete_role('rp editor');
SELECT code, permissions, roles FROM unkey.unkey_verify_key(:'k_key', cost => 0);
SELECT count(*) AS permissions_left FROM unkey.unkey_list_permissions() WHERE slug = 'rp.docs.write';
