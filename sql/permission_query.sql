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
