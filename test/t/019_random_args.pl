# Copyright (c) unkey contributors
#
# A random-argument run over every public function (issue 17): each
# unkey_* function is called many times with arguments drawn, per type,
# from NULLs, empty and 1 MB strings, odd Unicode, malformed and deeply
# nested JSON, negative, zero and huge numbers, infinite times and odd
# intervals, and with the ids of real objects some of the time.  Every call
# runs in its own subtransaction.  Only the SQLSTATEs the README documents
# may come back, and the server must never crash.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $calls = $ENV{UNKEY_RANDOM_CALLS} // 40;
my $node = PostgreSQL::Test::Cluster->new('random_args');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'unkey'\nlog_min_messages = fatal\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION unkey;
SELECT unkey.unkey_create_key(unkey.unkey_create_api('random'), external_id => 'acme', credits => 10);
SELECT unkey.unkey_create_permission('Read', 'doc.read');
SELECT unkey.unkey_create_role('reader', NULL, ARRAY['doc.read']);
SELECT unkey.unkey_ratelimit('ns', 'id', 5, '1 minute');
});

# the documented SQLSTATEs (README, Errors), and those of PostgreSQL's own
# input checks that a call with a bad argument can meet
my @allowed = qw(22023 42601 PT404 PT410 PT412 23505 42501 55000 25006 XX001 53200
  22P02 22003 22007 22008 22004 2202E 54001 54000);

my $report = $node->safe_psql('postgres', qq{
SELECT setseed(0.4);
CREATE TEMP TABLE outcomes (func text, state text);
DO \$run\$
DECLARE
	f record;
	args text[];
	sql text;
	st text;
	pool jsonb := jsonb_build_object(
		'text', jsonb_build_array(NULL, '', 'x', repeat('k', 1048576), E'\\u0915\\u094D\\u0937 \\u202E rtl \\uFEFF',
			'sk_' || repeat('z', 600), 'api_' || (SELECT id FROM unkey.apis LIMIT 1),
			(SELECT id FROM unkey.keys LIMIT 1), 'acme', 'doc.read', 'reader', 'ns', '*', 'a AND (', '%', 'GET', '/rpc/x'),
		'jsonb', jsonb_build_array(NULL, '{}', '[]', 'null', '1', '"s"', '{"name": 1}', '[{"name": null}]',
			repeat('[', 5000) || repeat(']', 5000), '{"credits": -1}', '{"meta": ' || repeat('{"a":', 200) || '1' || repeat('}', 200) || '}',
			'[{"hash": "x"}]', '[{"plaintext": ""}]', '[{"namespace": "ns", "identifier": "i", "limit": 1, "duration": 1000}]'),
		'bigint', jsonb_build_array(NULL, 0, -1, 1, 9223372036854775807, -9223372036854775808, 1000000000000),
		'integer', jsonb_build_array(NULL, 0, -1, 1, 2147483647, -2147483648, 100),
		'boolean', jsonb_build_array(NULL, true, false),
		'interval', jsonb_build_array(NULL, '0', '-1 second', '1 millisecond', '1000 years', '1.5 ms', '1 minute'),
		'timestamp with time zone', jsonb_build_array(NULL, 'infinity', '-infinity', '1970-01-01', '2999-12-31', 'now'),
		'text[]', jsonb_build_array(NULL, '{}', '{NULL}', '{a,b}', '{doc.read}', '{reader}', '{"a AND"}'),
		'inet', jsonb_build_array(NULL, '::1', '10.0.0.1', '0.0.0.0/0'));
BEGIN
	FOR f IN SELECT p.oid, p.oid::regprocedure AS sig, p.proname,
					ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t) AS types
			   FROM pg_proc p
			  WHERE p.pronamespace = 'unkey'::regnamespace AND p.proname LIKE 'unkey\\_%'
				AND p.proname NOT IN ('unkey_vault_rotate', 'unkey_create_postgrest_roles', 'unkey_flush_events')
			  ORDER BY 1 LOOP
		FOR i IN 1 .. $calls LOOP
			args := ARRAY(SELECT CASE WHEN v IS NULL OR jsonb_typeof(v) = 'null' THEN 'NULL'
									  ELSE quote_literal(v #>> '{}') END || '::' || t
							FROM unnest(f.types) t,
								 LATERAL (SELECT pool -> t -> floor(random() * jsonb_array_length(pool -> t))::int AS v) x);
			sql := format('SELECT unkey.%I(%s)', f.proname, array_to_string(args, ', '));
			BEGIN
				EXECUTE sql;
				st := 'ok';
			EXCEPTION WHEN OTHERS THEN
				st := SQLSTATE;
			END;
			INSERT INTO outcomes VALUES (f.proname, st);
		END LOOP;
	END LOOP;
END
\$run\$;
SELECT count(*) || ' calls of ' || count(DISTINCT func) || ' functions: ' ||
	   (SELECT string_agg(state || ' ' || n, ', ' ORDER BY n DESC)
		  FROM (SELECT state, count(*) n FROM outcomes GROUP BY state) s) FROM outcomes;
SELECT string_agg(DISTINCT func || ' ' || state, ', ') FROM outcomes
 WHERE state NOT IN ('ok', } . join(', ', map { "'$_'" } @allowed) . q{);
}, extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
my ($summary, $undocumented) = (split /\n/, $report, -1)[ -2, -1 ];
note "random arguments: $summary";
like($summary, qr/^\d+ calls of \d+ functions/, 'every public function was called with random arguments');
is($undocumented // '', '', 'only documented SQLSTATEs came back');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'and the server never crashed');
ok(!$node->log_contains('terminated by signal'), 'no backend died');
$node->stop;
done_testing();
