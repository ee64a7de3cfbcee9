# Copyright (c) unkey contributors
#
# Credits under real concurrency: 8 pgbench clients verify one key with 500
# credits 100 times each.  Exactly 500 of the 800 verifications may succeed,
# every other one is refused, and the balance ends at 0: no credit is spent
# twice and none is lost.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $clients      = 8;
my $transactions = 100;
my $credits      = 500;
my $total        = $clients * $transactions;

my $node = PostgreSQL::Test::Cluster->new('credits');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
max_connections = 20
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION unkey');

# the plaintext key is returned once; keep it for pgbench
my $key = $node->safe_psql('postgres', qq{
SELECT key FROM unkey.unkey_create_key(unkey.unkey_create_api('bench'), credits => $credits)
});
like($key, qr/^[1-9A-HJ-NP-Za-km-z]+$/, 'created a base58 key');

# prepared protocol: :key is sent as a bind parameter, never spliced into SQL
$node->pgbench(
	"--no-vacuum --client=$clients --jobs=$clients --transactions=$transactions"
	  . " --protocol=prepared --define=key=$key",
	0,
	[
		qr{number of transactions actually processed: $total/$total},
		qr{number of failed transactions: 0 }
	],
	[qr{^$}],
	'8 clients verify the key concurrently',
	{
		'001_credits_verify' =>
		  q{SELECT code FROM unkey.unkey_verify_key(:key);}
	});

$node->safe_psql('postgres', 'SELECT unkey.unkey_flush_events()');
is( $node->safe_psql(
		'postgres', q{
SELECT outcome, count(*), sum(spent_credits)
  FROM unkey.verification_events GROUP BY outcome ORDER BY outcome}),
	"USAGE_EXCEEDED|300|0\nVALID|500|500",
	'exactly 500 verifications spent a credit; the other 300 were refused');

is($node->safe_psql('postgres', 'SELECT remaining FROM unkey.keys'),
	'0', 'the balance ends at 0');

# one more verification after the rush is refused and reports 0 credits
is( $node->safe_psql(
		'postgres',
		"SELECT code, credits FROM unkey.unkey_verify_key('$key')"),
	'USAGE_EXCEEDED|0',
	'the key stays exhausted');

$node->stop;

done_testing();
