# Copyright (c) unkey contributors
#
# Verification on a hot standby: a check (cost 0) answers from the replica
# and writes nothing; spending credits, which needs a write, raises 25006
# with a hint before anything moves, rate-limit tokens included.  Rate
# limits are counted per node.  A revocation committed on the primary with
# synchronous_commit = remote_apply is refused by the standby's next
# verification.  Management functions cannot write there either.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'unkey'\n");
$primary->start;
# the standby is synchronous: a commit returns once the standby has applied it
$primary->append_conf('postgresql.conf', "synchronous_standby_names = '*'\nsynchronous_commit = remote_apply\n");
$primary->safe_psql('postgres', 'CREATE EXTENSION unkey');
my ($key_id, $key) = split /\|/, $primary->safe_psql('postgres', q{
SELECT key_id, key FROM unkey.unkey_create_key(unkey.unkey_create_api('standby'), credits => 5)});
my (undef, $unlimited) = split /\|/, $primary->safe_psql('postgres', q{
SELECT key_id, key FROM unkey.unkey_create_key((SELECT id FROM unkey.apis WHERE name = 'standby'))});
my ($limited_id, $limited) = split /\|/, $primary->safe_psql('postgres', q{
SELECT key_id, key FROM unkey.unkey_create_key((SELECT id FROM unkey.apis WHERE name = 'standby'), credits => 10,
	ratelimits => '[{"name": "hourly", "limit": 2, "duration": 3600000, "autoApply": true}]')});
my ($revoked_id, $revoked) = split /\|/, $primary->safe_psql('postgres', q{
SELECT key_id, key FROM unkey.unkey_create_key((SELECT id FROM unkey.apis WHERE name = 'standby'))});

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->reload;
$primary->wait_for_catchup($standby);
ok($primary->poll_query_until('postgres', q{SELECT sync_state = 'sync' FROM pg_stat_replication}),
	'the standby is synchronous');

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

# spending fails before the key's rate limits take a token: the limit of 2 is still whole
($ret, $stdout, $stderr) = $standby->psql('postgres',
	"SELECT code FROM unkey.unkey_verify_key('$limited')", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($stderr, qr/25006: cannot spend credits during recovery/, 'spending a limited key on the standby fails');
is( join(',', map { $standby->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$limited', cost => 0)") } 1 .. 3),
	'VALID,VALID,RATE_LIMITED',
	'and took no rate-limit token: two checks with cost 0 pass, the third is rate-limited');
# rate limits are counted per node: the primary's counter is its own
is( join(',', map { $primary->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$limited', cost => 0)") } 1 .. 3),
	'VALID,VALID,RATE_LIMITED',
	'the primary counts the same limit apart from the standby');

# a revocation committed on the primary (synchronous, remote_apply) is refused at once on the standby
is($standby->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$revoked', cost => 0)"), 'VALID',
	'a key verifies on the standby');
$primary->safe_psql('postgres', "SELECT unkey.unkey_delete_key('$revoked_id')");
is($standby->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$revoked', cost => 0)"), 'NOT_FOUND',
	'revoked on the primary, it is refused on the standby by the very next verification');

is( $primary->safe_psql(
		'postgres', q{
SELECT (SELECT string_agg(remaining::text, ',' ORDER BY remaining) FROM unkey.keys WHERE remaining IS NOT NULL),
       (SELECT count(*) FROM unkey.verification_events WHERE outcome <> 'RATE_LIMITED' AND outcome <> 'VALID')}),
	'5,10|0',
	'nothing was spent on the standby');

is( $primary->safe_psql(
		'postgres', "SELECT code, credits FROM unkey.unkey_verify_key('$key')"),
	'VALID|4',
	'the primary spends as usual');

$standby->stop;
$primary->stop;
done_testing();
