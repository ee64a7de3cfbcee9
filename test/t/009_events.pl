# Copyright (c) unkey contributors
#
# The event pipeline under restarts, a killed writer, a storm bigger than
# the buffer, and two databases.
#
# - A clean restart loses no event: with a flush interval far longer than
#   the test, the events are still buffered when the server stops; the
#   writer writes them as it exits (and the postmaster saves whatever came
#   later to pg_stat/unkey_events.stat), so they are all there afterwards.
# - A writer that is terminated is replaced: the next event starts a new one.
# - With a 64 kB buffer and a writer slowed to 10 events per transaction,
#   a pgbench storm of 8,000 verifications fills the buffer: verifications
#   wait for room, or write their event themselves, and unkey_events_info()
#   counts both.  No verification fails and every event arrives.
# - Two databases each get their own events, in their own tables.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
unkey.events_flush_interval = '60s'
});
$node->start;

sub setup_db
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db") if $db ne 'postgres';
	$node->safe_psql($db, 'CREATE EXTENSION unkey');
	return $node->safe_psql($db, q{
SELECT key FROM unkey.unkey_create_key(unkey.unkey_create_api('events'))});
}

sub count_events
{
	my ($db, $where) = @_;
	$node->safe_psql($db, 'SELECT unkey.unkey_flush_events()');
	return $node->safe_psql($db,
		"SELECT count(*) FROM unkey.verification_events WHERE " . ($where // 'true'));
}

# one statement of n verifications, each its own event
sub verify_many
{
	my ($db, $key, $n, $tag) = @_;
	return $node->safe_psql($db, qq{
SELECT count(*) FILTER (WHERE v.code = 'VALID')
  FROM generate_series(1, $n) i,
       LATERAL (SELECT code FROM unkey.unkey_verify_key('$key', tags => ARRAY['$tag', i::text])) v});
}

my $key = setup_db('postgres');

# a clean restart loses no event
is(verify_many('postgres', $key, 500, 'restart'), '500', '500 verifications');
is( $node->safe_psql('postgres',
		q{SELECT buffered FROM unkey.unkey_events_info() WHERE database = 'postgres'}),
	'500', 'they are buffered (the flush interval is 60 s)');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM unkey.verification_events WHERE 'restart' = ANY (tags)}),
	'0', 'and not yet in the table');
$node->restart;
is(count_events('postgres', q{'restart' = ANY (tags)}), '500', 'all 500 are there after a clean restart');
ok(!-e $node->data_dir . '/pg_stat/unkey_events.stat', 'no saved events are left behind');

# the saved-events file: events appended while the writer cannot run are kept
# across the restart by the postmaster and written afterwards
$node->safe_psql('postgres', q{ALTER SYSTEM SET max_worker_processes = 0});
$node->restart;
is(verify_many('postgres', $key, 50, 'noworker'), '50', '50 verifications with no worker slot');
$node->stop;
ok(-e $node->data_dir . '/pg_stat/unkey_events.stat', 'the postmaster saved the buffered events');
$node->start;
$node->safe_psql('postgres', q{ALTER SYSTEM RESET max_worker_processes});
$node->restart;
$node->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$key', tags => ARRAY['wake'])");
is(count_events('postgres', q{'noworker' = ANY (tags)}), '50', 'the 50 saved events were written after the restart');

# a terminated writer is replaced by the next event
verify_many('postgres', $key, 10, 'before-kill');
my $pid = $node->safe_psql('postgres',
	q{SELECT writer_pid FROM unkey.unkey_events_info() WHERE database = 'postgres'});
like($pid, qr/^\d+$/, 'a writer is running');
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't', 'terminate it');
$node->poll_query_until('postgres',
	"SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid)")
  or die 'the writer did not exit';
verify_many('postgres', $key, 10, 'after-kill');
is(count_events('postgres', q{'before-kill' = ANY (tags) OR 'after-kill' = ANY (tags)}), '20',
	'events before and after the kill all arrive');
isnt($node->safe_psql('postgres',
		q{SELECT writer_pid FROM unkey.unkey_events_info() WHERE database = 'postgres'}),
	$pid, 'a new writer took over');

# a storm bigger than the buffer: nothing lost, no error
$node->append_conf('postgresql.conf', qq{
unkey.events_buffer_size = '64kB'
unkey.events_batch_size = 10
unkey.events_full_wait = '50ms'
unkey.events_flush_interval = '10ms'
});
$node->restart;
$node->pgbench(
	'--no-vacuum --client=8 --transactions=1000',
	0,
	[qr{processed: 8000/8000}],
	[qr{^$}],
	'8 clients verify 1000 times each, with no error',
	{
		'009_storm' => qq{SELECT code FROM unkey.unkey_verify_key('$key', tags => ARRAY['storm']);}
	});
is(count_events('postgres', q{'storm' = ANY (tags)}), '8000', 'all 8,000 events arrived');
my ($waits, $inline) = split /\|/, $node->safe_psql('postgres',
	q{SELECT full_waits, inline_writes FROM unkey.unkey_events_info() WHERE database = 'postgres'});
cmp_ok($waits + $inline, '>', 0, "the full buffer was counted: $waits waits, $inline inline writes");
is($node->safe_psql('postgres',
		q{SELECT discarded FROM unkey.unkey_events_info() WHERE database = 'postgres'}),
	'0', 'nothing was discarded');

# the writer applies the retention itself: a new writer does its upkeep first
$node->safe_psql('postgres', qq{
SET unkey.test_now = '2020-01-01 12:00:00+00';
SELECT code FROM unkey.unkey_verify_key('$key', tags => ARRAY['old']);
RESET unkey.test_now;
SELECT unkey.unkey_flush_events();
SELECT unkey.unkey_set_retention('30 days');});
is($node->safe_psql('postgres', q{SELECT to_regclass('unkey.verification_events_p20200101') IS NOT NULL}),
	't', 'an old partition exists');
$pid = $node->safe_psql('postgres',
	q{SELECT writer_pid FROM unkey.unkey_events_info() WHERE database = 'postgres'});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)") if $pid ne '';
verify_many('postgres', $key, 1, 'new-writer');
ok( $node->poll_query_until('postgres',
		q{SELECT to_regclass('unkey.verification_events_p20200101') IS NULL}),
	'the new writer dropped the partition past the retention');
is(count_events('postgres', q{'new-writer' = ANY (tags)}), '1', 'and kept today\'s events');
ok( $node->safe_psql('postgres',
		q{SELECT to_regclass(format('unkey.verification_events_p%s', to_char(now() AT TIME ZONE 'UTC' + interval '1 day', 'YYYYMMDD'))) IS NOT NULL}) eq 't',
	'it created tomorrow\'s partition ahead of time');
$node->safe_psql('postgres', 'SELECT unkey.unkey_set_retention(NULL)');

# two databases, each with its own events
my $key1 = setup_db('db1');
my $key2 = setup_db('db2');
verify_many('db1', $key1, 30, 'db1');
verify_many('db2', $key2, 20, 'db2');
is(count_events('db1'), '30', 'db1 has its 30 events');
is(count_events('db2'), '20', 'db2 has its 20 events');
is(count_events('db1', q{'db2' = ANY (tags)}), '0', 'and none of the other database');

$node->stop;

done_testing();
