# Copyright (c) unkey contributors
#
# Rate-limit counters across restarts.  A clean (fast) shutdown writes them
# to pg_stat/unkey_ratelimit.stat and the next start reads them back and
# removes the file; after a crash (a backend killed with SIGKILL) the server
# reinitialises, the limiter keeps working and credits, which live in
# tables, are intact; with unkey.ratelimit_save = off a clean restart starts
# the counters from zero.
#
# The clock is not pinned: the window is 30 days (aligned to the Unix
# epoch), so it does not roll during the few seconds the test takes.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rl_restart');
$node->init;
# the test framework turns restart_after_crash off; the crash test needs it
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION unkey');

my $dump = $node->data_dir . '/pg_stat/unkey_ratelimit.stat';
my $call = q{SELECT success, remaining, reset
  FROM unkey.unkey_ratelimit('restart', 'user_1', 5, '30 days')};

# 3 of 5 used
my $out = $node->safe_psql('postgres', "$call; $call; $call");
my @rows = split /\n/, $out;
is(scalar(@rows), 3, 'three calls');
my (undef, undef, $reset) = split /\|/, $rows[0];
is(join(' ', map { (split /\|/)[0] . '/' . (split /\|/)[1] } @rows),
	't/4 t/3 t/2', 'three calls pass, remaining 4, 3, 2');

# clean (fast) shutdown: the counters are written out, then read back
$node->stop;
ok(-f $dump, 'a clean shutdown wrote pg_stat/unkey_ratelimit.stat');
$node->start;
ok(!-e $dump, 'the file is removed once loaded');
ok($node->safe_psql('postgres', 'SELECT entries > 0 FROM unkey.unkey_ratelimit_info()') eq 't',
	'the counters are in shared memory again before any call');
is($node->safe_psql('postgres', $call), "t|1|$reset",
	'after a clean restart the next call sees 3 + 1 = 4 used: remaining 1, same window');

# credits live in a table and must survive a crash
my $key = $node->safe_psql('postgres', q{
SELECT key FROM unkey.unkey_create_key(unkey.unkey_create_api('crash'), credits => 5)});
is( $node->safe_psql(
		'postgres', qq{
SELECT code, credits FROM unkey.unkey_verify_key('$key');
SELECT code, credits FROM unkey.unkey_verify_key('$key');}),
	"VALID|4\nVALID|3",
	'two verifications spend 2 of 5 credits');

# crash: kill a backend with SIGKILL; the postmaster resets shared memory
my $bg = $node->background_psql('postgres');
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
like($pid, qr/^\d+$/, 'a backend to kill');
my $log_offset = -s $node->logfile;
ok(kill('KILL', $pid), 'SIGKILL sent to the backend');
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
eval { $bg->quit };
ok($node->poll_query_until('postgres', 'SELECT 1', '1'), 'the server is back after the crash');
ok($node->log_contains("server process \\(PID $pid\\) was terminated by signal 9", $log_offset),
	'the postmaster saw the backend die');

my $entries = $node->safe_psql('postgres', 'SELECT entries FROM unkey.unkey_ratelimit_info()');
note("counters in shared memory after crash recovery: $entries");
my ($ok, $remaining) = split /\|/, $node->safe_psql('postgres', $call);
is($ok, 't', 'the limiter works after crash recovery');
ok($remaining >= 0 && $remaining <= 4, "remaining $remaining is within 0..4");
is( $node->safe_psql(
		'postgres', "SELECT code, credits FROM unkey.unkey_verify_key('$key', cost => 0)"),
	'VALID|3',
	'credits are intact after crash recovery');

# unkey.ratelimit_save = off: a clean restart forgets the counters
$node->safe_psql('postgres', q{
ALTER SYSTEM SET unkey.ratelimit_save = off;
SELECT pg_reload_conf();});
$node->poll_query_until('postgres', 'SHOW unkey.ratelimit_save', 'off');
$node->safe_psql('postgres', "$call; $call");
$node->stop;
ok(!-e $dump, 'with ratelimit_save off no file is written');
$node->start;
is($node->safe_psql('postgres', 'SELECT entries FROM unkey.unkey_ratelimit_info()'),
	'0', 'no counters after a clean restart with ratelimit_save off');
is($node->safe_psql('postgres', $call), "t|4|$reset",
	'the counters start from zero: remaining 4 after one call');

$node->stop;

done_testing();
