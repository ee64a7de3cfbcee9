-- audit: one row per change, in the same transaction, never a key or a hash
SET unkey.test_now = '2030-01-15 12:00:00+00';
SET timezone = 'UTC';
SELECT coalesce(max(id), 0) AS start_id FROM unkey.audit_log \gset

-- every mutating call, each with the event it must write
CREATE TEMP TABLE calls (n int PRIMARY KEY, expected text, stmt text);
INSERT INTO calls VALUES
	(1, 'api.create', $$SELECT unkey.unkey_create_api('audit') $$),
	(2, 'api.update', $$SELECT unkey.unkey_set_api_delete_protection((SELECT id FROM unkey.apis WHERE name = 'audit'), true)$$),
	(3, 'permission.create', $$SELECT unkey.unkey_create_permission('audit read', 'audit.read')$$),
	(4, 'role.create', $$SELECT unkey.unkey_create_role('auditor', permissions => ARRAY['audit.read'])$$),
	(5, 'role.update', $$SELECT unkey.unkey_set_role_permissions('auditor', ARRAY['audit.read', 'audit.write'])$$),
	(6, 'identity.create', $$SELECT unkey.unkey_create_identity('audit-customer')$$),
	(7, 'identity.update', $$SELECT unkey.unkey_update_identity('audit-customer', meta => '{"a": 1}')$$),
	(8, 'identity.update', $$SELECT unkey.unkey_set_identity_ratelimit('audit-customer', 'requests', 10, '1 minute')$$),
	(9, 'identity.update', $$SELECT unkey.unkey_delete_identity_ratelimit('audit-customer', 'requests')$$),
	(10, 'key.create', $$SELECT unkey.unkey_create_key((SELECT id FROM unkey.apis WHERE name = 'audit'), name => 'audited', credits => 5, roles => ARRAY['auditor'])$$),
	(11, 'key.update', $$SELECT unkey.unkey_update_key((SELECT id FROM unkey.keys WHERE name = 'audited'), '{"meta": {"x": 1}}')$$),
	(12, 'key.update', $$SELECT unkey.unkey_update_credits((SELECT id FROM unkey.keys WHERE name = 'audited'), 'increment', 5)$$),
	(13, 'key.update', $$SELECT unkey.unkey_set_key_ratelimit((SELECT id FROM unkey.keys WHERE name = 'audited'), 'tokens', 5, '1 second')$$),
	(14, 'key.update', $$SELECT unkey.unkey_delete_key_ratelimit((SELECT id FROM unkey.keys WHERE name = 'audited'), 'tokens')$$),
	(15, 'authorization.connect_permission_and_key', $$SELECT unkey.unkey_add_key_permissions((SELECT id FROM unkey.keys WHERE name = 'audited'), ARRAY['audit.extra'])$$),
	(16, 'authorization.disconnect_permission_and_key', $$SELECT unkey.unkey_remove_key_permissions((SELECT id FROM unkey.keys WHERE name = 'audited'), ARRAY['audit.extra'])$$),
	(17, 'key.update', $$SELECT unkey.unkey_set_key_permissions((SELECT id FROM unkey.keys WHERE name = 'audited'), ARRAY['audit.extra'])$$),
	(18, 'authorization.disconnect_role_and_key', $$SELECT unkey.unkey_remove_key_roles((SELECT id FROM unkey.keys WHERE name = 'audited'), ARRAY['auditor'])$$),
	(19, 'authorization.connect_role_and_key', $$SELECT unkey.unkey_add_key_roles((SELECT id FROM unkey.keys WHERE name = 'audited'), ARRAY['auditor'])$$),
	(20, 'key.update', $$SELECT unkey.unkey_set_key_roles((SELECT id FROM unkey.keys WHERE name = 'audited'), ARRAY[]::text[])$$),
	(21, 'key.reroll', $$SELECT unkey.unkey_reroll_key((SELECT id FROM unkey.keys WHERE name = 'audited' ORDER BY created_at, id LIMIT 1), '0')$$),
	(22, 'key.create', $$SELECT unkey.unkey_migrate_keys((SELECT id FROM unkey.apis WHERE name = 'audit'), ('[{"hash": "' || encode(digest('audit legacy', 'sha256'), 'base64') || '"}]')::jsonb)$$),
	(23, 'key.delete', $$SELECT unkey.unkey_delete_key((SELECT id FROM unkey.keys WHERE start = '' AND api_id = (SELECT id FROM unkey.apis WHERE name = 'audit')))$$),
	(24, 'ratelimit.set_override', $$SELECT unkey.unkey_set_override('audit-ns', 'user_*', 5, '1 minute')$$),
	(25, 'ratelimit.delete_override', $$SELECT unkey.unkey_delete_override('audit-ns', 'user_*')$$),
	(26, 'ratelimitNamespace.delete', $$SELECT unkey.unkey_delete_namespace('audit-ns')$$),
	(27, 'identity.delete', $$SELECT unkey.unkey_delete_identity('audit-customer')$$),
	(28, 'role.delete', $$SELECT unkey.unkey_delete_role('auditor')$$),
	(29, 'permission.delete', $$SELECT unkey.unkey_delete_permission('audit.write')$$),
	(30, 'api.update', $$SELECT unkey.unkey_set_api_delete_protection((SELECT id FROM unkey.apis WHERE name = 'audit'), false)$$),
	(31, 'api.delete', $$SELECT unkey.unkey_delete_api((SELECT id FROM unkey.apis WHERE name = 'audit'))$$);
-- the namespace of calls 24..26 exists once it is used
SELECT success FROM unkey.unkey_ratelimit('audit-ns', 'user_1', 10, '1 minute');

-- run each call and count the audit rows it wrote: exactly one, with its event
CREATE TEMP TABLE written (n int, ok text, rows bigint, events text[]);
DO $$
DECLARE
	c record;
	before bigint;
	result text;
BEGIN
	FOR c IN SELECT * FROM calls ORDER BY n LOOP
		SELECT coalesce(max(id), 0) INTO before FROM unkey.audit_log;
		result := regress.err(c.stmt);
		INSERT INTO written
		SELECT c.n, result, count(*), array_agg(l.event ORDER BY l.id) FROM unkey.audit_log l WHERE l.id > before;
	END LOOP;
END
$$;
SELECT c.n, c.expected, w.ok, w.rows, w.events = ARRAY[c.expected] AS right_event
  FROM calls c JOIN written w USING (n) ORDER BY c.n;

-- the rows: time, actor, targets by id, a description
SELECT id - :start_id AS n, time, event, actor, remote_ip, user_agent,
	   ARRAY(SELECT t ->> 'type' FROM jsonb_array_elements(targets) t) AS target_types, description ~ '^[A-Z]' AS described
  FROM unkey.audit_log WHERE id > :start_id ORDER BY id LIMIT 5;
-- the DO block ran every call in one transaction: one correlation id for all of them
SELECT count(DISTINCT correlation_id) AS correlation_ids, count(*) AS audit_rows FROM unkey.audit_log WHERE id > :start_id;
-- the view shows targets as type:id
SELECT event, targets[1] ~ '^key:key_' AS key_target, cardinality(targets) AS targets
  FROM unkey.audit_trail WHERE id > :start_id AND event = 'key.reroll';

-- reads and verifications write nothing
SELECT key_id AS r_id, key AS r_key FROM unkey.unkey_create_key(unkey.unkey_create_api('audit reads')) \gset
SELECT max(id) AS before FROM unkey.audit_log \gset
SELECT code FROM unkey.unkey_verify_key(:'r_key');
SELECT count(*) FROM unkey.unkey_get_key(:'r_id');
SELECT count(*) FROM unkey.unkey_whoami(:'r_key');
SELECT count(*) FROM unkey.unkey_list_identities();
SELECT count(*) AS rows_written_by_reads FROM unkey.audit_log WHERE id > :before;

-- a rolled-back change leaves no row, and a failed call writes none
BEGIN;
SELECT name FROM unkey.unkey_update_key(:'r_id', '{"name": "rolled back"}');
SELECT count(*) AS rows_inside FROM unkey.audit_log WHERE id > :before;
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM unkey.audit_log WHERE id > :before;
SELECT regress.err(format('SELECT unkey.unkey_update_key(%L, %L)', :'r_id', '{"credits": -1}'));
SELECT count(*) AS rows_after_error FROM unkey.audit_log WHERE id > :before;

-- the actor is the caller's role (also after SET ROLE), not the functions' owner
CREATE ROLE regress_audit_admin;
GRANT USAGE ON SCHEMA unkey TO regress_audit_admin;
GRANT EXECUTE ON FUNCTION unkey.unkey_create_api(text, text[], boolean, text, integer) TO regress_audit_admin;
SET ROLE regress_audit_admin;
SELECT unkey.unkey_create_api('audit by role') IS NOT NULL AS created;
RESET ROLE;
-- PostgREST's request.headers give the client address and user agent
SET request.headers = '{"x-forwarded-for": "203.0.113.7, 10.0.0.1", "user-agent": "curl/8.0"}';
SELECT unkey.unkey_create_api('audit over http') IS NOT NULL AS created;
SET request.headers = '{"x-forwarded-for": "", "x-real-ip": "198.51.100.2"}';
SELECT unkey.unkey_create_api('audit empty forwarded') IS NOT NULL AS created;
SET request.headers = 'not json';
SELECT unkey.unkey_create_api('audit bad headers') IS NOT NULL AS created;
RESET request.headers;
SELECT actor, remote_ip, user_agent, description ~ '^Created API api_' AS described
  FROM unkey.audit_log WHERE id > :before ORDER BY id;
-- separate statements are separate transactions
SELECT count(DISTINCT correlation_id) AS correlation_ids FROM unkey.audit_log WHERE id > :before;

-- never a key or a hash: no audit column holds any key's plaintext, base64 or hex hash
SELECT count(*) > 3 AS keys_checked,
	   count(*) FILTER (WHERE EXISTS (
		   SELECT FROM unkey.audit_log l
			WHERE strpos(l::text, encode(k.key_hash, 'base64')) > 0
			   OR strpos(l::text, encode(k.key_hash, 'hex')) > 0)) AS hits
  FROM unkey.keys k;
SELECT strpos(string_agg(l::text, ' '), :'r_key') AS plaintext_position FROM unkey.audit_log l;

-- errors: the log is not writable by the application, the view not readable without a grant
SET ROLE regress_audit_admin;
SELECT regress.err('SELECT count(*) FROM unkey.audit_trail');
SELECT regress.err($$INSERT INTO unkey.audit_log (time, event, actor, correlation_id, targets, description) VALUES (now(), 'x', 'x', 1, '[]', 'x')$$);
RESET ROLE;
DROP OWNED BY regress_audit_admin;
DROP ROLE regress_audit_admin;
DROP TABLE calls, written;
RESET unkey.test_now;
RESET timezone;
