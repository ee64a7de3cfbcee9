# Copyright (c) unkey contributors
#
# Crash safety under load (issue 17): 8 pgbench clients verify keys with
# credits and an auto-applied rate limit, each client its own key, and
# pgbench logs every transaction it saw commit.  Then the server crashes:
# round 1 kill -9 of the postmaster, round 2 kill -9 of one backend in the
# middle of its verifications, round 3 kill -9 of the event writer in the
# middle of its batches (the postmaster then resets every process).
# After the restart, for every client:
#
#   seen <= spent <= seen + 1
#
# where seen is the transactions pgbench saw commit and spent is what the
# key's balance lost: every deduction a client saw committed is there, and
# at most one more, the one in flight when the server died (its commit may
# have reached the WAL without its answer reaching the client).  No key,
# identity or audit row is lost or half-written, the events lost are at
# most those that were buffered, and the event pipeline resumes by itself.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $clients = 8;
my $credits = 1_000_000;
my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
max_connections = 30
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', qq{
CREATE EXTENSION unkey;
CREATE TABLE bench_keys (client integer PRIMARY KEY, key_id text, key text);
INSERT INTO bench_keys
SELECT c, k.key_id, k.key
  FROM generate_series(0, $clients - 1) c,
	   LATERAL unkey.unkey_create_key(unkey.unkey_create_api('crash ' || c), external_id => 'customer-' || c,
			credits => $credits, ratelimits => '[{"name": "requests", "limit": 1000000000, "duration": 60000, "autoApply": true}]') k;
});
my $state_sql = q{
SELECT (SELECT count(*) FROM unkey.keys) || '/' || (SELECT count(*) FROM unkey.identities) || '/' ||
       (SELECT count(*) FROM unkey.audit_log) || '/' || (SELECT count(*) FROM unkey.key_ratelimits)};
my $state = $node->safe_psql('postgres', $state_sql);

my $dir = PostgreSQL::Test::Utils::tempdir();
open my $fh, '>', "$dir/verify.sql" or die;
print $fh q{SELECT code FROM unkey.unkey_verify_key((SELECT key FROM bench_keys WHERE client = :client_id));
};
close $fh;

# One round: run the load, crash the server with $crash->(), restart; check the invariants
sub round
{
	my ($name, $crash) = @_;
	my %before = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
		q{SELECT b.client, k.remaining FROM bench_keys b JOIN unkey.keys k ON k.id = b.key_id});
	my $events_before = $node->safe_psql('postgres', 'SELECT count(*) FROM unkey.verification_events');
	unlink glob("$dir/log.*");
	my ($out, $err) = ('', '');
	my $pgbench = IPC::Run::start(
		[ 'pgbench', '-n', '-M', 'prepared', '-c', $clients, '-j', 2, '-T', 30, '-f', "$dir/verify.sql",
		  '-l', "--log-prefix=$dir/log", '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$out, '2>', \$err);
	# let the load run, then crash while it does
	sleep 3;
	my $log_offset = -s $node->logfile;
	$crash->();
	$pgbench->finish;
	$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset)
	  if $name ne 'postmaster';
	if ($name eq 'postmaster')
	{
		$node->_update_pid(0);
		$node->start;
	}
	ok($node->poll_query_until('postgres', 'SELECT 1', '1'), "$name: the server is back");

	my %seen;
	for my $file (glob("$dir/log.*"))
	{
		open my $lf, '<', $file or die;
		while (<$lf>)
		{
			my ($client, undef, $latency) = split / /;
			$seen{$client}++ if defined $latency && $latency ne 'failed';
		}
		close $lf;
	}
	my %after = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
		q{SELECT b.client, k.remaining FROM bench_keys b JOIN unkey.keys k ON k.id = b.key_id});
	my ($total_seen, $total_spent, @bad) = (0, 0);
	for my $c (0 .. $clients - 1)
	{
		my $spent = $before{$c} - $after{$c};
		my $s = $seen{$c} // 0;
		$total_seen += $s;
		$total_spent += $spent;
		push @bad, "client $c: saw $s commits, the key lost $spent credits" unless $s <= $spent && $spent <= $s + 1;
	}
	cmp_ok($total_seen, '>', 1000, "$name: the clients saw $total_seen verifications commit before the crash");
	is(join('; ', @bad), '', "$name: every client: seen <= spent <= seen + 1 (spent $total_spent, seen $total_seen)");
	is($node->safe_psql('postgres', $state_sql), $state, "$name: no key, identity, rate-limit config or audit row lost or added");
	is($node->safe_psql('postgres', q{SELECT count(*) FROM unkey.keys WHERE remaining < 0 OR remaining > } . $credits), '0',
		"$name: every balance is whole");

	# the events: those written are at most the verifications made; the pipeline resumes by itself
	my $events = $node->safe_psql('postgres', 'SELECT count(*) FROM unkey.verification_events') - $events_before;
	cmp_ok($events, '<=', $total_spent, "$name: $events events kept of $total_spent verifications (the buffered ones are lost)");
	my $key0 = $node->safe_psql('postgres', 'SELECT key FROM bench_keys WHERE client = 0');
	$node->safe_psql('postgres', "SELECT unkey.unkey_verify_key('$key0', tags => '{after-$name}')");
	ok( $node->poll_query_until('postgres',
			qq{SELECT count(*) > 0 FROM unkey.verification_events WHERE tags = '{after-$name}'}),
		"$name: a verification after the restart reaches the event table without help");
}

round(
	'postmaster',
	sub {
		# as a power loss would: the postmaster and every process of the server at once
		my @pids = split /\n/, $node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
		$node->kill9;
		kill 'KILL', @pids;
		sleep 1;
		# the lock files stay, as after a power loss
		unlink $node->data_dir . '/postmaster.pid', $node->host . '/.s.PGSQL.' . $node->port . '.lock';
	});
round(
	'backend',
	sub {
		my $pid = $node->safe_psql('postgres', q{
SELECT pid FROM pg_stat_activity WHERE query LIKE '%unkey_verify_key%' AND pid <> pg_backend_pid() LIMIT 1});
		ok(kill('KILL', $pid), 'SIGKILL sent to a backend in the middle of its verifications');
	});
round(
	'writer',
	sub {
		my $pid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'unkey event writer'});
		ok(kill('KILL', $pid), 'SIGKILL sent to the event writer in the middle of its batches');
	});

$node->stop;
done_testing();
