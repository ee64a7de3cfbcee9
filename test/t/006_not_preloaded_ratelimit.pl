# Copyright (c) unkey contributors
#
# The rate limiter without shared_preload_libraries: its counters live in
# shared memory, which only a preloaded library can ask for, so every call
# that would touch them raises 55000 with a hint, before anything is
# written.  Verifying a key that checks no rate limit still works.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rl_not_preloaded');
$node->init;
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'unkey is not preloaded');
$node->safe_psql('postgres', 'CREATE EXTENSION unkey');

# Run one statement that must fail with 55000 and the hint
sub fails_55000
{
	my ($sql, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	isnt($ret, 0, "$name fails");
	like($stderr, qr/ERROR:  55000: the unkey rate limiter needs shared memory/,
		"$name: SQLSTATE 55000");
	like($stderr,
		qr/HINT:  Add unkey to shared_preload_libraries and restart the server\./,
		"$name: the hint says what to do");
	return;
}

fails_55000(q{SELECT * FROM unkey.unkey_ratelimit('ns', 'user_1', 10, '1 minute')},
	'unkey_ratelimit');
fails_55000(
	q{SELECT unkey.unkey_ratelimit_many('[{"namespace": "ns", "identifier": "user_1", "limit": 10, "duration": 60000}]')},
	'unkey_ratelimit_many');
fails_55000(q{SELECT * FROM unkey.unkey_ratelimit_info()}, 'unkey_ratelimit_info');

is( $node->safe_psql('postgres', 'SELECT count(*) FROM unkey.ratelimit_namespaces'),
	'0', 'the failed calls created no namespace');

# keys: one without rate limits, one with a limit that is not auto-applied,
# one with an auto-applied limit
my $api = $node->safe_psql('postgres', q{SELECT unkey.unkey_create_api('rl')});
my $plain = $node->safe_psql('postgres', qq{
SELECT key FROM unkey.unkey_create_key('$api', credits => 5)});
my $manual = $node->safe_psql('postgres', qq{
SELECT key FROM unkey.unkey_create_key('$api',
  ratelimits => '[{"name": "requests", "limit": 10, "duration": 60000}]')});
my ($auto_id, $auto) = split /\|/, $node->safe_psql('postgres', qq{
SELECT key_id, key FROM unkey.unkey_create_key('$api', credits => 5,
  ratelimits => '[{"name": "requests", "limit": 10, "duration": 60000, "autoApply": true}]')});

is( $node->safe_psql(
		'postgres', "SELECT code, credits, ratelimits FROM unkey.unkey_verify_key('$plain')"),
	'VALID|4|',
	'a key without rate limits verifies and spends a credit');
is( $node->safe_psql(
		'postgres', "SELECT code, ratelimits FROM unkey.unkey_verify_key('$manual')"),
	'VALID|',
	'a key whose limit is not auto-applied verifies: no limit is checked');

fails_55000(qq{SELECT code FROM unkey.unkey_verify_key('$auto')},
	'verifying a key with an autoApply limit');
fails_55000(qq{SELECT code FROM unkey.unkey_verify_key('$manual', ratelimits => '[{"name": "requests"}]')},
	'verifying a key and naming its limit');
fails_55000(
	qq{SELECT code FROM unkey.unkey_verify_key('$plain', ratelimits => '[{"name": "inline", "limit": 5, "duration": 1000}]')},
	'verifying a key with an inline limit');

is( $node->safe_psql(
		'postgres', qq{
SELECT (SELECT remaining FROM unkey.keys WHERE id = '$auto_id'),
       (SELECT count(*) FROM unkey.verification_events)}),
	'5|2',
	'the failed verifications spent no credit and recorded no event');

$node->stop;

done_testing();
