# Copyright (c) unkey contributors
#
# Materialising the rollups survives crashes (issue 13).  The event writer
# materialises the closed days and months of the hourly rollups in its
# upkeep, in one transaction with rollup_state.  Ten days of hourly rollups
# for 2,000 keys (480,000 events) are written, and the writer is started:
#
# - kill -9 of the writer while it materialises (the postmaster then
#   restarts every backend), and kill -9 of the postmaster while it
#   materialises, then a restart: every total, per hour, day and month and
#   key, still equals a GROUP BY of the raw events, and after the writer has
#   materialised again it still does, with the days and months materialised
#   (no bucket counted twice or lost);
# - a clean restart after materialising changes nothing.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rollups_crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION unkey');
my $key = $node->safe_psql('postgres',
	q{SELECT key FROM unkey.unkey_create_key(unkey.unkey_create_api('crash'))});

# ten days that closed long ago, every key verified every hour; written the
# way the writer writes, without a writer (nothing materialises meanwhile)
$node->safe_psql('postgres', q{
DO $$
DECLARE
	d int;
BEGIN
	FOR d IN 0 .. 9 LOOP
		PERFORM unkey._store_verifications(array_agg(t), array_agg(0.05::float8), array_agg(h), array_agg(NULL::text),
										   array_agg('api_crash'::text), array_agg(k), array_agg(NULL::text),
										   array_agg(NULL::text), array_agg('VALID'::text), array_agg(NULL::text),
										   array_agg(0::bigint))
		  FROM (SELECT '2026-01-01'::timestamptz + make_interval(days => d, hours => hr) AS t,
					   sha256(('crash_' || i)::bytea) AS h, 'key_crash_' || i AS k
				  FROM generate_series(0, 23) hr, generate_series(1, 2000) i) e;
		COMMIT;
	END LOOP;
END
$$});
is($node->safe_psql('postgres', q{SELECT count(*) FROM unkey.verification_rollups WHERE granularity = 'hour'}),
	'480000', '480,000 hourly rollup rows, nothing materialised yet');

# every total per grain, bucket and key that differs from the raw events (both ways)
my $mismatches = q{
WITH raw AS (
	SELECT g, date_trunc(g, e.time, 'UTC') AS b, e.key_id, count(*) AS n
	  FROM unkey.verification_events e, unnest('{hour,day,month}'::text[]) g GROUP BY 1, 2, 3
), rolled AS (
	SELECT r.granularity, r.bucket, r.key_id, sum(r.valid + r.not_found + r.forbidden + r.usage_exceeded
			   + r.rate_limited + r.disabled + r.insufficient_permissions + r.expired)::bigint
	  FROM unkey._rollups r GROUP BY 1, 2, 3
)
SELECT count(*) FROM ((SELECT * FROM raw EXCEPT ALL SELECT * FROM rolled)
					  UNION ALL (SELECT * FROM rolled EXCEPT ALL SELECT * FROM raw)) d};
my $materialised = q{SELECT (SELECT count(*) FROM unkey.verification_rollups WHERE granularity = 'day'),
	(SELECT count(*) FROM unkey.verification_rollups WHERE granularity = 'month'),
	(SELECT count(*) FROM unkey.rollup_state)};
is($node->safe_psql('postgres', $mismatches), '0', 'before: the rollups equal the raw events at every grain');

# Start a writer (one verification) and wait until its upkeep is materialising
sub catch_materialising
{
	# a writer still running would do its next upkeep only a minute later: let it leave first
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'unkey event writer'})
	  or die "the writer did not leave";
	$node->safe_psql('postgres', "SELECT unkey.unkey_verify_key('$key', cost => 0)");
	return $node->safe_psql('postgres', q{
DO $$
BEGIN
	FOR i IN 1 .. 60000 LOOP
		PERFORM FROM pg_stat_activity
		  WHERE backend_type = 'unkey event writer' AND query LIKE 'unkey: upkeep%' AND state = 'active';
		IF FOUND THEN
			RETURN;
		END IF;
		PERFORM pg_sleep(0.001);
		PERFORM pg_stat_clear_snapshot();
	END LOOP;
	RAISE EXCEPTION 'the writer never materialised';
END
$$;
SELECT pid FROM pg_stat_activity WHERE backend_type = 'unkey event writer'});
}

# Wait until the writer has materialised, and check
sub materialised_again
{
	my ($what) = @_;
	$node->safe_psql('postgres', "SELECT unkey.unkey_verify_key('$key', cost => 0)");
	$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM unkey.rollup_state})
	  or die "the writer did not materialise";
	$node->safe_psql('postgres', 'SELECT unkey.unkey_flush_events()');
	is($node->safe_psql('postgres', $mismatches), '0', "$what: after the writer materialised, still equal");
	is($node->safe_psql('postgres', $materialised), '20000|2000|1', "$what: the days and the month are materialised");
}

# 1. kill -9 of the writer in the middle of materialising
my $writer = catch_materialising();
ok($writer > 0, "the writer ($writer) is materialising");
kill 'KILL', $writer;
$node->poll_query_until('postgres', 'SELECT true') or die "the server did not come back";
is($node->safe_psql('postgres', $materialised), '0|0|0', 'writer killed: nothing of the materialisation was kept');
is($node->safe_psql('postgres', $mismatches), '0', 'writer killed: the rollups still equal the raw events');
materialised_again('writer killed');

# 2. kill -9 of the postmaster in the middle of materialising
$node->safe_psql('postgres', q{
DELETE FROM unkey.verification_rollups WHERE granularity <> 'hour';
DELETE FROM unkey.rollup_state});
is($node->safe_psql('postgres', $mismatches), '0', 'reset: the days and months are answered from the hours');
$writer = catch_materialising();
ok($writer > 0, "the writer ($writer) is materialising again");
# as a power loss would: the postmaster and every process of the server at once
my @pids = split /\n/, $node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
$node->kill9;
kill 'KILL', @pids;
sleep 1;
# the lock files stay, as after a power loss; a killed postmaster may linger
# as a zombie where nothing reaps orphans, which start would take for a server
unlink $node->data_dir . '/postmaster.pid', $node->host . '/.s.PGSQL.' . $node->port . '.lock';
$node->start;
is($node->safe_psql('postgres', $materialised), '0|0|0', 'postmaster killed: nothing of the materialisation was kept');
is($node->safe_psql('postgres', $mismatches), '0', 'postmaster killed: the rollups still equal the raw events');
materialised_again('postmaster killed');

# 3. a clean restart changes nothing
$node->restart;
is($node->safe_psql('postgres', $mismatches), '0', 'clean restart: the rollups still equal the raw events');
is($node->safe_psql('postgres', $materialised), '20000|2000|1', 'clean restart: the materialised rollups are kept');

$node->stop;
done_testing();
