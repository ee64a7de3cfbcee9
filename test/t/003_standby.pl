# Copyright (c) unkey contributors
#
# Verification on a hot standby: a check (cost 0) answers from the replica
# and writes nothing; spending credits, which needs a write, raises 25006
# with a hint before anything moves.  Management functions cannot write
# there either.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'unkey'\n");
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION unkey');
my ($key_id, $key) = split /\|/, $primary->safe_psql('postgres', q{
SELECT key_id, key FROM unkey.unkey_create_key(unkey.unkey_create_api('standby'), credits => 5)});
my (undef, $unlimited) = split /\|/, $primary->safe_psql('postgres', q{
SELECT key_id, key FROM unkey.unkey_create_key((SELECT id FROM unkey.apis WHERE name = 'standby'))});

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

is( $standby->safe_psql(
		'postgres', "SELECT code, credits FROM unkey.unkey_verify_key('$key', cost => 0)"),
	'VALID|5',
	'a check with cost 0 works on the standby');
is( $standby->safe_psql(
		'postgres', "SELECT code, credits FROM unkey.unkey_verify_key('$unlimited')"),
	'VALID|',
	'an unlimited key verifies on the standby');
is( $standby->safe_psql(
		'postgres', "SELECT code FROM unkey.unkey_verify_key('${key}_not')"),
	'NOT_FOUND',
	'an unknown key is NOT_FOUND on the standby');

my ($ret, $stdout, $stderr) = $standby->psql('postgres',
	"SELECT code FROM unkey.unkey_verify_key('$key')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'spending a credit on the standby fails');
like($stderr, qr/25006: cannot spend credits during recovery/, 'with SQLSTATE 25006');
like($stderr, qr/HINT:  Verify with cost => 0 on a standby/, 'and a hint');

($ret, $stdout, $stderr) = $standby->psql('postgres',
	"SELECT unkey.unkey_create_api('nope')", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($stderr, qr/25006/, 'management functions cannot write on the standby either');

is( $primary->safe_psql(
		'postgres', q{
SELECT (SELECT remaining FROM unkey.keys WHERE remaining IS NOT NULL),
       (SELECT count(*) FROM unkey.verification_events)}),
	'5|0',
	'nothing was spent and no event was written');

is( $primary->safe_psql(
		'postgres', "SELECT code, credits FROM unkey.unkey_verify_key('$key')"),
	'VALID|4',
	'the primary spends as usual');

$standby->stop;
$primary->stop;
done_testing();
