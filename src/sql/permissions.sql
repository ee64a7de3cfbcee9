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
