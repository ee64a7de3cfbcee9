-- citus_lint: the schema rules that keep the door open to scale-out (the
-- SQL contract, last section), checked on the installed schema: every query
-- below lists violations and must return no row

-- the tables of schema unkey (partitions are checked through their parent)
CREATE TEMP VIEW lint_tables AS
SELECT c.oid, c.relname, split_part(obj_description(c.oid, 'pg_class'), ':', 1) AS class
  FROM pg_class c
 WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition;

SELECT count(*) > 20 AS tables_checked FROM lint_tables;

-- 1. every table has one of four classes, first in its COMMENT ON TABLE
SELECT relname, class AS unknown_class FROM lint_tables
 WHERE class IS NULL OR class NOT IN ('per-key', 'per-identifier', 'reference', 'local') ORDER BY 1;
SELECT class, count(*) FROM lint_tables GROUP BY class ORDER BY class;

-- 2. per-key tables carry key_hash bytea NOT NULL ...
SELECT t.relname AS per_key_without_key_hash FROM lint_tables t
 WHERE t.class = 'per-key' AND NOT EXISTS (
	SELECT FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'key_hash'
	   AND a.atttypid = 'bytea'::regtype AND a.attnotnull AND NOT a.attisdropped) ORDER BY 1;
-- ... in every primary key, unique and exclusion constraint ...
SELECT t.relname, con.conname AS constraint_without_key_hash
  FROM lint_tables t JOIN pg_constraint con ON con.conrelid = t.oid
 WHERE t.class = 'per-key' AND con.contype IN ('p', 'u', 'x')
   AND NOT (SELECT attnum FROM pg_attribute WHERE attrelid = t.oid AND attname = 'key_hash') = ANY (con.conkey)
 ORDER BY 1, 2;
-- ... and in every unique index, constraint or not
SELECT t.relname, i.indexrelid::regclass AS unique_index_without_key_hash
  FROM lint_tables t JOIN pg_index i ON i.indrelid = t.oid
 WHERE t.class = 'per-key' AND i.indisunique
   AND NOT (SELECT attnum FROM pg_attribute WHERE attrelid = t.oid AND attname = 'key_hash') = ANY (i.indkey::int2[])
 ORDER BY 1, 2;
-- keys itself is unique on key_hash alone
SELECT count(*) AS keys_unique_on_key_hash FROM pg_index i
 WHERE i.indrelid = 'unkey.keys'::regclass AND i.indisunique AND i.indnkeyatts = 1
   AND i.indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = 'unkey.keys'::regclass AND attname = 'key_hash');

-- foreign keys: between per-key tables they include key_hash; none from a reference table to a per-key one
SELECT src.relname, con.conname AS per_key_link_without_key_hash
  FROM pg_constraint con JOIN lint_tables src ON src.oid = con.conrelid JOIN lint_tables dst ON dst.oid = con.confrelid
 WHERE con.contype = 'f' AND src.class = 'per-key' AND dst.class = 'per-key'
   AND NOT (SELECT attnum FROM pg_attribute WHERE attrelid = src.oid AND attname = 'key_hash') = ANY (con.conkey)
 ORDER BY 1, 2;
SELECT src.relname, con.conname AS reference_to_per_key
  FROM pg_constraint con JOIN lint_tables src ON src.oid = con.conrelid JOIN lint_tables dst ON dst.oid = con.confrelid
 WHERE con.contype = 'f' AND src.class = 'reference' AND dst.class = 'per-key'
 ORDER BY 1, 2;

-- 3. no triggers (the ones PostgreSQL makes for foreign keys are internal)
SELECT t.tgrelid::regclass, t.tgname AS trigger FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'unkey'::regnamespace AND NOT t.tgisinternal ORDER BY 1, 2;

-- 4. no serial or int sequences: a sequence is a bigint identity
SELECT s.seqrelid::regclass AS sequence_not_bigint FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = 'unkey'::regnamespace AND s.seqtypid <> 'int8'::regtype ORDER BY 1;
SELECT c.oid::regclass AS sequence_not_an_identity FROM pg_class c
 WHERE c.relnamespace = 'unkey'::regnamespace AND c.relkind = 'S'
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i') ORDER BY 1;
SELECT a.attrelid::regclass, a.attname AS serial_column FROM pg_attribute a JOIN lint_tables t ON t.oid = a.attrelid
 WHERE pg_get_expr((SELECT adbin FROM pg_attrdef WHERE adrelid = a.attrelid AND adnum = a.attnum), a.attrelid) LIKE 'nextval(%'
 ORDER BY 1, 2;

-- (rule 7, no planner, executor or utility hooks, is checked on the sources by test/layout.sh)
DROP VIEW lint_tables;

-- Running on Citus (src/sql/citus.sql), here without Citus: the entry point
-- keyed by the hash answers as unkey_verify_key, and only with the key's hash
SELECT unkey.unkey_create_api('citus lint') AS citus_api \gset
SELECT (unkey.unkey_create_key(:'citus_api', credits => 2)).key AS citus_key \gset
SELECT code, credits FROM unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key(:'citus_key'), 'base64'), :'citus_key', :'citus_api');
SELECT code, credits FROM unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key(:'citus_key'), 'base64'), :'citus_key', :'citus_api', cost => 2);
SELECT regress.err(format($$SELECT unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key('another key'), 'base64'), %L)$$, :'citus_key'));
SELECT regress.err($$SELECT unkey.unkey_verify_key_by_hash(NULL, 'a key')$$);
SELECT regress.err($$SELECT unkey.unkey_verify_key_by_hash('\x00', 'a key')$$);
-- distributing needs Citus; undistributing without it has nothing to do
SELECT regress.err($$SELECT unkey.citus_distribute()$$);
SELECT unkey.citus_undistribute();
-- the order citus_distribute() takes: each class, each table after those it references
SELECT c AS class, string_agg(t::text, ' ' ORDER BY n) AS tables
  FROM unnest(ARRAY['reference', 'per-key', 'per-identifier']) c,
	   LATERAL unkey._tables_of_class(c) WITH ORDINALITY x(t, n)
 GROUP BY c ORDER BY c;
