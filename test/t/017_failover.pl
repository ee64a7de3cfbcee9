# Copyright (c) unkey contributors
#
# Failover (issue 17): a primary with a synchronous standby
# (synchronous_commit = remote_apply).  8 pgbench clients spend the credits
# of their own key (500 each) until they run out; the primary is killed
# (kill -9) in the middle, and the standby promoted.  On the new primary:
#
# - every deduction a client saw committed is there, and at most one more
#   per client (the one in flight): seen <= spent <= seen + 1;
# - no key was over-granted: the successes the clients saw before and after
#   the failover never exceed its credits, and no balance is negative;
# - a key revoked on the primary before the kill is refused;
# - rate-limit counters start from zero on the new primary (they live in
#   each server's memory), and its event pipeline runs.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $clients = 8;
# enough that no key runs out before the kill, however slow the machine: a
# client's every committed verification then spent one credit
my $credits = 5000;
my $primary = PostgreSQL::Test::Cluster->new('failover_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
max_connections = 30
});
$primary->start;
$primary->safe_psql('postgres', qq{
CREATE EXTENSION unkey;
CREATE TABLE bench_keys (client integer PRIMARY KEY, key_id text, key text);
INSERT INTO bench_keys
SELECT c, k.key_id, k.key
  FROM generate_series(0, $clients - 1) c,
	   LATERAL unkey.unkey_create_key(unkey.unkey_create_api('failover ' || c), credits => $credits,
			ratelimits => '[{"name": "requests", "limit": 1000000000, "duration": 60000, "autoApply": true}]') k;
});
my ($revoked_id, $revoked) = split /\|/, $primary->safe_psql('postgres',
	q{SELECT key_id, key FROM unkey.unkey_create_key(unkey.unkey_create_api('revoked'))});

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('failover_standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->append_conf('postgresql.conf', "synchronous_standby_names = '*'\nsynchronous_commit = remote_apply\n");
$primary->reload;
ok($primary->poll_query_until('postgres', q{SELECT sync_state = 'sync' FROM pg_stat_replication}),
	'the standby is synchronous, remote_apply');

# revoked on the primary before the kill
$primary->safe_psql('postgres', "SELECT unkey.unkey_delete_key('$revoked_id')");

my $dir = PostgreSQL::Test::Utils::tempdir();
open my $fh, '>', "$dir/spend.sql" or die;
print $fh q{SELECT code FROM unkey.unkey_verify_key((SELECT key FROM bench_keys WHERE client = :client_id));
};
close $fh;
my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-M', 'prepared', '-c', $clients, '-j', 2, '-T', 30, '-f', "$dir/spend.sql",
	  '-l', "--log-prefix=$dir/log", '-h', $primary->host, '-p', $primary->port, 'postgres' ],
	'>', \$out, '2>', \$err);
# kill the primary while the keys are still being spent
$primary->poll_query_until('postgres', q{
SELECT min(k.remaining) < 4900 FROM bench_keys b JOIN unkey.keys k ON k.id = b.key_id});
my @pids = split /\n/, $primary->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
$primary->kill9;
kill 'KILL', @pids;
$pgbench->finish;
$standby->promote;
ok($standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'), 'the standby is promoted');

# what the clients saw: pgbench's log has one line per transaction that committed
my %seen;
for my $file (glob("$dir/log.*"))
{
	open my $lf, '<', $file or die;
	while (<$lf>) { my ($client) = split / /; $seen{$client}++; }
	close $lf;
}
my %left = map { split /\|/ } split /\n/, $standby->safe_psql('postgres',
	q{SELECT b.client, k.remaining FROM bench_keys b JOIN unkey.keys k ON k.id = b.key_id});
my ($total_seen, @bad) = (0);
for my $c (0 .. $clients - 1)
{
	my $spent = $credits - $left{$c};
	my $s = $seen{$c} // 0;
	$total_seen += $s;
	push @bad, "client $c: saw $s, the key lost $spent" unless $s <= $spent && $spent <= $s + 1;
}
cmp_ok($total_seen, '>', 100, "the clients saw $total_seen spending verifications commit before the kill");
is(join('; ', @bad), '', 'on the promoted standby every deduction a client saw is there, and at most one more');

# spend the rest on the new primary: never more successes than credits
my @over;
for my $c (0 .. $clients - 1)
{
	my $key = $standby->safe_psql('postgres', "SELECT key FROM bench_keys WHERE client = $c");
	my $valid = $standby->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE v.code = 'VALID') FROM generate_series(1, $credits) i,
	LATERAL (SELECT code FROM unkey.unkey_verify_key('$key' || repeat('', i))) v});
	my $s = $seen{$c} // 0;
	push @over, "client $c: $s before and $valid after, of $credits" if $s + $valid > $credits;
	push @over, "client $c: $valid after, $left{$c} were left" if $valid != $left{$c};
}
is(join('; ', @over), '', 'the new primary grants exactly the credits left: none is granted twice');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM unkey.keys WHERE remaining < 0'), '0', 'no balance is negative');
is($standby->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$revoked')"), 'NOT_FOUND',
	'a key revoked on the primary before the kill is refused by the promoted standby');

# rate-limit counters are per server: the new primary starts from zero, and counts
is($standby->safe_psql('postgres', 'SELECT entries FROM unkey.unkey_ratelimit_info()') > 0 ? 'counting' : 'empty',
	'counting', 'the new primary counts rate limits in its own memory');
ok( $standby->poll_query_until('postgres', q{SELECT count(*) > 0 FROM unkey.verification_events}),
	'and writes its own verification events');

$standby->stop;
done_testing();
