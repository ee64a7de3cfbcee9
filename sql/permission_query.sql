-- permission_query: the query language's parser, evaluator and errors

-- precedence: AND binds tighter than OR; chains are left-associative; parentheses win
SELECT q, unkey.unkey_normalize_permission_query(q) AS canonical
  FROM unnest(ARRAY['a', 'a OR b AND c', 'a AND b OR c', '(a OR b) AND c', 'a AND b AND c',
					'a OR b OR c', 'a and (b or (c and d)) or e', '((a))', 'a AND (b)']) WITH ORDINALITY t(q, n)
 ORDER BY n;

-- keywords are case-insensitive; anything else made of permission characters is a permission
SELECT q, unkey.unkey_normalize_permission_query(q) AS canonical
  FROM unnest(ARRAY['a and b', 'a AnD b', 'a oR b', 'ANDperm OR ORACLE', 'a.b:c_d-e/f*g',
					'api.* AND *']) WITH ORDINALITY t(q, n)
 ORDER BY n;

-- whitespace is space, tab, CR and LF
SELECT unkey.unkey_normalize_permission_query(E' \t\r\na\tAND\nb\r\n ') AS canonical;

-- evaluation: exact, case-sensitive membership; * is literal (D1)
SELECT q, p AS granted, unkey.unkey_permissions_match(q, p) AS matches
  FROM (VALUES ('documents.read AND (documents.write OR admin)', '{documents.read,admin}'::text[]),
			   ('documents.read AND (documents.write OR admin)', '{documents.read}'),
			   ('a OR b AND c', '{a}'), ('a OR b AND c', '{b}'), ('a OR b AND c', '{b,c}'),
			   ('(a OR b) AND c', '{a}'), ('(a OR b) AND c', '{a,c}'),
			   ('api.*', '{api.read}'), ('api.read', '{api.*}'), ('api.*', '{api.*}'),
			   ('Admin', '{admin}'), ('a', '{}'), ('a', ARRAY[NULL, 'a']),
			   ('a AND b', ARRAY['b', NULL, 'a'])) v(q, p);

-- every error form, with its position (0-based bytes; the end of input is the length)
SELECT q, regress.err(format('SELECT unkey.unkey_permissions_match(%L, %L)', q, '{a}'))
  FROM unnest(ARRAY['', '   ', E'\t\n', 'a AND', 'a OR', 'AND a', 'OR', '(a', '((a)', 'a AND (b',
					'()', 'a AND ()', '(a))', 'a b', 'a AND b c', ')', 'a )',
					'perm1(perm2)', 'a $ b', 'a&b', 'a,b', 'ключ', 'a AND ключ', '(a) OR é']) WITH ORDINALITY t(q, n)
 ORDER BY n;

-- length: 1,000 characters pass, 1,001 do not
SELECT length(q) AS chars, unkey.unkey_permissions_match(q, ARRAY[q]) AS matches
  FROM (SELECT repeat('p', 1000) AS q) s;
SELECT regress.err(format('SELECT unkey.unkey_permissions_match(%L, %L)', repeat('p', 1001), '{a}'));
SELECT unkey.unkey_permissions_match(repeat('b OR ', 199) || 'a', '{a}') AS chain_of_200;
SELECT unkey.unkey_permissions_match(repeat('a AND ', 166) || 'a', '{a}') AS chain_of_167;

-- nesting: 100 levels of parentheses pass, 101 do not
SELECT unkey.unkey_permissions_match(repeat('(', 100) || 'a' || repeat(')', 100), '{a}') AS depth_100;
SELECT regress.err(format('SELECT unkey.unkey_permissions_match(%L, %L)',
						  repeat('(', 101) || 'a' || repeat(')', 101), '{a}')) AS depth_101;

-- NULL in, NULL out; the normaliser reports the same errors
SELECT unkey.unkey_permissions_match(NULL, '{a}') IS NULL AS null_query,
	   unkey.unkey_permissions_match('a', NULL) IS NULL AS null_permissions;
SELECT regress.err($$SELECT unkey.unkey_normalize_permission_query('a AND')$$);

----------------------------------------------------------------------------
-- permission queries in verification
----------------------------------------------------------------------------
SELECT unkey.unkey_create_api('pq-verify') AS api \gset
INSERT INTO unkey.roles (id, name, created_at) VALUES ('role_pq_editor', 'pq-editor', now());
INSERT INTO unkey.permissions (id, name, slug, created_at)
VALUES ('perm_pq_write', 'docs write', 'docs.write', now()), ('perm_pq_read', 'docs read', 'docs.read', now());
INSERT INTO unkey.role_permissions VALUES ('role_pq_editor', 'perm_pq_write'), ('role_pq_editor', 'perm_pq_read');
CREATE TEMP TABLE pk (label text PRIMARY KEY, key_id text, key text);
INSERT INTO pk SELECT 'reader', * FROM unkey.unkey_create_key(:'api', permissions => '{docs.read}', credits => 5,
	ratelimits => '[{"name": "requests", "limit": 100, "duration": 60000, "autoApply": true}]');
INSERT INTO pk SELECT 'editor', * FROM unkey.unkey_create_key(:'api', roles => '{pq-editor}');
INSERT INTO pk SELECT 'off', * FROM unkey.unkey_create_key(:'api', enabled => false);

-- direct permissions and permissions through roles
SELECT p.label, q, v.code, v.permissions, v.roles
  FROM (VALUES ('reader', 'docs.read'), ('reader', 'docs.read AND docs.write'), ('reader', 'docs.write OR docs.read'),
			   ('editor', 'docs.read AND docs.write'), ('editor', 'admin')) t(label, q)
  JOIN pk p USING (label), LATERAL unkey.unkey_verify_key(p.key, permissions => t.q, cost => 0) v
 ORDER BY p.label, q;

-- INSUFFICIENT_PERMISSIONS consumes neither credits nor rate-limit tokens
SELECT code, credits, ratelimits->0->'remaining' AS tokens_left
  FROM unkey.unkey_verify_key((SELECT key FROM pk WHERE label = 'reader'), permissions => 'admin');
SELECT code, credits, ratelimits->0->'remaining' AS tokens_left
  FROM unkey.unkey_verify_key((SELECT key FROM pk WHERE label = 'reader'), permissions => 'docs.read');
SELECT code, credits FROM unkey.unkey_verify_key((SELECT key FROM pk WHERE label = 'reader'), permissions => 'admin');

-- a malformed query is an error for a key that exists, even a disabled one, and spends nothing;
-- for an unknown key the answer is NOT_FOUND, since the query is never read
SELECT regress.err(format('SELECT unkey.unkey_verify_key(%L, permissions => %L)', (SELECT key FROM pk WHERE label = 'reader'), 'docs.read AND'));
SELECT regress.err(format('SELECT unkey.unkey_verify_key(%L, permissions => %L)', (SELECT key FROM pk WHERE label = 'off'), '()'));
SELECT code FROM unkey.unkey_verify_key('pq_unknown_key', permissions => 'docs.read AND');
SELECT remaining FROM unkey.keys WHERE id = (SELECT key_id FROM pk WHERE label = 'reader');
