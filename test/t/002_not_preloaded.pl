# Copyright (c) unkey contributors
#
# unkey without shared_preload_libraries: the library is loaded on first use,
# and creating the extension, APIs and keys and verifying keys all work,
# since none of them needs shared memory.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('not_preloaded');
$node->init;
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'unkey is not preloaded');

$node->safe_psql('postgres', 'CREATE EXTENSION unkey');

my ($key_id, $key) = split /\|/, $node->safe_psql('postgres', q{
SELECT key_id, key FROM unkey.unkey_create_key(unkey.unkey_create_api('plain'), credits => 2)
});
like($key_id, qr/^key_/, 'created a key');

# each psql run is a new backend, which loads the library itself
is( $node->safe_psql(
		'postgres',
		"SELECT code, credits FROM unkey.unkey_verify_key('$key')"),
	'VALID|1',
	'a fresh backend verifies the key and spends a credit');
is( $node->safe_psql(
		'postgres', qq{
SELECT code, credits FROM unkey.unkey_verify_key('$key');
SELECT code, credits FROM unkey.unkey_verify_key('$key');
SELECT code FROM unkey.unkey_verify_key('${key}x');}),
	"VALID|0\nUSAGE_EXCEEDED|0\nNOT_FOUND",
	'credits run out, and an unknown key is NOT_FOUND');

$node->safe_psql('postgres', "SELECT unkey.unkey_delete_key('$key_id')");
is( $node->safe_psql(
		'postgres', "SELECT code FROM unkey.unkey_verify_key('$key')"),
	'NOT_FOUND',
	'a deleted key is NOT_FOUND');

is( $node->safe_psql(
		'postgres', q{
SELECT outcome, count(*) FROM unkey.verification_events
 GROUP BY outcome ORDER BY outcome}),
	"NOT_FOUND|2\nUSAGE_EXCEEDED|1\nVALID|2",
	'every verification was recorded');

# without the buffer, events and rollups are written by the callers themselves:
# concurrent callers update the same rollup rows in the same order, so they never deadlock
my ($unlimited) = $node->safe_psql('postgres', q{
SELECT key FROM unkey.unkey_create_key((SELECT id FROM unkey.apis WHERE name = 'plain'))});
$node->pgbench(
	'--no-vacuum --client=8 --transactions=200',
	0,
	[qr{processed: 1600/1600}],
	[qr{^$}],
	'8 clients verify one key with the same tags, with no error',
	{
		'002_same_rows' =>
		  qq{SELECT code FROM unkey.unkey_verify_key('$unlimited', tags => ARRAY['a', 'b']);}
	});
is( $node->safe_psql('postgres', q{
SELECT (SELECT count(*) FROM unkey.verification_events WHERE tags = '{a,b}'),
       (SELECT sum(valid) FROM unkey.verification_tag_rollups WHERE tags = '{a,b}' AND granularity = 'hour')}),
	'1600|1600', 'every event is written and rolled up');
# a read-only transaction cannot write the event: verification still answers, with a warning
my ($ret, $out, $err) = $node->psql('postgres',
	"BEGIN READ ONLY; SELECT code FROM unkey.unkey_verify_key('$unlimited', cost => 0); COMMIT;");
is($out, 'VALID', 'a read-only transaction still gets its answer');
like($err, qr/the event of this call was not recorded: the transaction is read-only/, 'and a warning');

# one session verifies, reinstalls the extension and verifies again: the
# backend's cached table and index OIDs must follow the new relations
is( $node->safe_psql(
		'postgres', q{
SELECT code FROM unkey.unkey_verify_key('no_such_key');
DROP EXTENSION unkey;
CREATE EXTENSION unkey;
CREATE TEMP TABLE k AS SELECT * FROM unkey.unkey_create_key(unkey.unkey_create_api('again'), credits => 1);
SELECT code, credits FROM unkey.unkey_verify_key((SELECT key FROM k));
SELECT code FROM unkey.unkey_verify_key('no_such_key');}),
	"NOT_FOUND\nVALID|0\nNOT_FOUND",
	'verification works after DROP and CREATE EXTENSION in the same session');

$node->stop;

done_testing();
