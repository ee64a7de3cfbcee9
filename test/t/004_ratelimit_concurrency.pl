# Copyright (c) unkey contributors
#
# The shared-memory limiter under real concurrency, on the real clock: 8
# pgbench clients call unkey_ratelimit on one identifier (100 per 10 s) for 3
# seconds and log every answer.  The log must agree with the sliding window
# of §5.2:
#
#  - no window (grouped by the reset returned) ever admits more than 100;
#  - the first window the run touches has no usage before it, so exactly
#    min(100, attempts) of its calls succeed;
#  - in every window, at each success, the successes so far plus the part
#    of the previous window still carried over stay within the limit (no
#    over-admission), and at each denial they had reached it (no
#    under-admission);
#  - no transaction fails.
#
# Each logged row carries t0 = statement_timestamp(), taken before the call,
# and t1 = clock_timestamp(), taken after it, so the limiter's own clock
# reading lies in [t0, t1].  The bounds below use t1 where a later time
# can only loosen the check and t0 where an earlier time can only loosen it,
# so they hold however the calls interleave and however loaded the machine
# is: they never depend on when the scheduler ran whom.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $limit    = 100;
my $window_s = 10;

my $node = PostgreSQL::Test::Cluster->new('rl_concurrency');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
max_connections = 20
synchronous_commit = off
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION unkey;
CREATE TABLE rl_log (t0 timestamptz NOT NULL, t1 timestamptz NOT NULL,
                     success boolean NOT NULL, reset timestamptz NOT NULL);
});

my $script = PostgreSQL::Test::Utils::tempdir() . '/ratelimit.sql';
PostgreSQL::Test::Utils::append_to_file($script, qq{
INSERT INTO rl_log
SELECT statement_timestamp(), clock_timestamp(), r.success, r.reset
  FROM unkey.unkey_ratelimit('conc', 'hot', $limit, '$window_s seconds') r;
});

# The checks hold wherever the windows fall, but they say most when the run
# crosses a window boundary.  Windows are aligned to the Unix epoch, so
# start 7.5 s or more into one: the boundary then falls inside the 3 s run.
my $now   = time();
my $phase = $now - $window_s * int($now / $window_s);
sleep(7.5 - $phase) if $phase < 7.5;

my ($stdout, $stderr) = ('', '');
my $ok = IPC::Run::run(
	[
		'pgbench', '--no-vacuum', '--client=8', '--jobs=2', '--time=3',
		'--host=' . $node->host, '--port=' . $node->port,
		"--file=$script", 'postgres'
	],
	'>', \$stdout, '2>', \$stderr);
ok($ok, '8 pgbench clients ran for 3 seconds') or diag("stdout:\n$stdout\nstderr:\n$stderr");
like($stdout, qr/number of failed transactions: 0 /, 'no transaction failed');
my ($processed) = $stdout =~ /number of transactions actually processed: (\d+)/;
is($node->safe_psql('postgres', 'SELECT count(*) FROM rl_log'),
	$processed, 'every processed transaction logged its answer');
ok($node->safe_psql('postgres', 'SELECT bool_and(t0 <= t1) FROM rl_log') eq 't',
	'statement_timestamp() <= clock_timestamp() in every row');

# one row per window: attempts, successes, denials
my $windows = $node->safe_psql('postgres', q{
SELECT to_char(reset AT TIME ZONE 'UTC', 'HH24:MI:SS'), count(*),
       count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success)
  FROM rl_log GROUP BY reset ORDER BY reset});
note("window ending (UTC) | attempts | successes | denials");
note($_) for split /\n/, $windows;
my @windows = split /\n/, $windows;
ok(@windows >= 1 && @windows <= 2, 'a 3 s run touches one or two 10 s windows');
note(@windows == 2
	? 'the run crossed a window boundary: the sliding part was exercised'
	: 'the run stayed inside one window: only the first-window checks had work');

is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM (SELECT reset FROM rl_log GROUP BY reset
                      HAVING count(*) FILTER (WHERE success) > $limit) w}),
	'0',
	"no window admits more than $limit");

is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FILTER (WHERE success) = least($limit, count(*))
  FROM rl_log WHERE reset = (SELECT min(reset) FROM rl_log)}),
	't',
	"the first window admits exactly min($limit, attempts)");

# The successes of each window, and the carry-over term of §5.2 computed in
# float8 exactly as the C code does, for a clock reading of Unix ms
my $common = qq{
WITH w AS (
	SELECT reset, count(*) FILTER (WHERE success) AS ok,
	       (extract(epoch FROM reset) * 1000)::bigint - ${window_s}000 AS start_ms
	  FROM rl_log GROUP BY reset),
l AS (
	SELECT l.*, w.start_ms,
	       coalesce((SELECT p.ok FROM w p WHERE p.reset = l.reset - interval '$window_s seconds'), 0) AS prev,
	       floor(extract(epoch FROM l.t0) * 1000)::bigint AS t0_ms,
	       floor(extract(epoch FROM l.t1) * 1000)::bigint AS t1_ms
	  FROM rl_log l JOIN w USING (reset)),
c AS (
	SELECT l.*,
	       trunc(prev::float8 * (1.0::float8 - least(1, greatest(0,
	           (t1_ms - start_ms)::float8 / ${window_s}000::float8))))::bigint AS carry_t1,
	       trunc(prev::float8 * (1.0::float8 - least(1, greatest(0,
	           (t0_ms - start_ms)::float8 / ${window_s}000::float8))))::bigint AS carry_t0
	  FROM l),
s AS MATERIALIZED (SELECT reset, t0, t1 FROM rl_log WHERE success)
};

# No over-admission.  Take a success B and every success S of its window
# with t1(S) <= t1(B); let L be the last of them the limiter counted.  It
# counted all of them by then, and its clock read at most t1(B), so its
# carry-over was at least carry(t1(B)); it passed, so
#   #{S} + carry(t1(B)) <= limit.
is( $node->safe_psql(
		'postgres', $common . qq{
SELECT count(*) FROM c b
 WHERE b.success
   AND (SELECT count(*) FROM s WHERE s.reset = b.reset AND s.t1 <= b.t1)
       + b.carry_t1 > $limit}),
	'0',
	'at every success, successes so far + carry-over of the previous window <= limit');

# No under-admission.  A denial D saw only successes counted before it, and
# each of those started (t0) before D ended (t1); its clock read at least
# t0(D), so its carry-over was at most carry(t0(D)); it was denied, so
#   #{S : t0(S) <= t1(D)} + carry(t0(D)) + 1 > limit.
is( $node->safe_psql(
		'postgres', $common . qq{
SELECT count(*) FROM c d
 WHERE NOT d.success
   AND (SELECT count(*) FROM s WHERE s.reset = d.reset AND s.t0 <= d.t1)
       + d.carry_t0 + 1 <= $limit}),
	'0',
	'at every denial, the window was full: successes so far + carry-over + 1 > limit');

# The race the checks above can catch but rarely meet: a call reads the
# clock, then waits for the partition lock while calls that read the clock
# after a window boundary take it first and roll the counter to the new
# window.  The straggler still carries a time in the old window.  Pinned
# clocks replay that order deterministically: fill window [0 s, 10 s),
# count one call at 10.5 s, then one whose clock reads 9.999 s.  The old
# window is full, so the straggler must not add a 101st success to it, and
# it must not wipe the counter: the next call at 10.5 s still sees the
# carry-over of the full window (remaining at most 3).
my @r = split /\n/, $node->safe_psql('postgres', qq{
SET unkey.test_now = '2026-01-01 00:00:05+00';
SELECT count(*) FILTER (WHERE (unkey.unkey_ratelimit('stale', 'x', $limit, '$window_s seconds')).success)
  FROM generate_series(1, $limit + 1);
SET unkey.test_now = '2026-01-01 00:00:10.5+00';
SELECT remaining FROM unkey.unkey_ratelimit('stale', 'x', $limit, '$window_s seconds');
SET unkey.test_now = '2026-01-01 00:00:09.999+00';
SELECT success AND reset = '2026-01-01 00:00:10+00'
  FROM unkey.unkey_ratelimit('stale', 'x', $limit, '$window_s seconds');
SET unkey.test_now = '2026-01-01 00:00:10.5+00';
SELECT remaining FROM unkey.unkey_ratelimit('stale', 'x', $limit, '$window_s seconds');});
is("$r[0] $r[1]", "$limit 4", 'pinned replay: window 0 full, 4 left at 10.5 s');
# a call whose clock reads an older window than the counter's last use is
# decided as of that last use: it cannot succeed in the full old window, and
# it does not wipe the counter
is($r[2], 'f', 'a straggler from the full old window does not succeed in it');
cmp_ok($r[3], '<=', 3, 'the straggler does not reset the counter');

$node->stop;

done_testing();
