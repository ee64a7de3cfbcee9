# Copyright (c) unkey contributors
#
# unkey on Citus (issue 18): a coordinator and two workers on unix sockets,
# unkey.citus_distribute(), then:
#
# - keys created on the coordinator verify VALID from every node, through
#   the entry point keyed by the hash (which Citus runs on the key's node)
#   and through unkey_verify_key (which sends the key there itself);
# - 8 clients on the three nodes spending 500 credits of one key get exactly
#   500 VALID; a key changed or deleted on the coordinator is refused at once;
# - every verification is one event, in its key's shard, counted once by the
#   analytics on any node; rate-limit events and rollups likewise;
# - rate limits count per node (the documented bound), and an override set
#   on the coordinator reaches a worker's long-lived session at once;
# - PostgREST's statements, the gateway and Unkey's v2 verifyKey work through
#   the coordinator; v2 analytics queries are refused (501);
# - unkey.citus_undistribute() and DROP EXTENSION leave no shard behind.
#
# Citus is not a Debian package: the test runs where Citus is installed
# into this PostgreSQL (README: Running on Citus) and is skipped otherwise.

use strict;
use warnings;

use DBI;
use FindBin;
use JSON::PP;
use POSIX ();
use lib $FindBin::RealBin;
use PostgrestReplay;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => 'Citus is not installed into this PostgreSQL' unless -f "$pkglibdir/citus.so";

my @nodes = map {
	my $n = PostgreSQL::Test::Cluster->new($_);
	$n->init;
	$n->append_conf('postgresql.conf', "shared_preload_libraries = 'citus,unkey'\nmax_connections = 60\n");
	$n->start;
	$n->safe_psql('postgres', 'CREATE EXTENSION citus');
	$n
} qw(coordinator worker1 worker2);
my ($coordinator, @workers) = @nodes;
my $host = $coordinator->host;
$coordinator->safe_psql('postgres', sprintf(q{
SELECT citus_set_coordinator_host('%s', %d);
SELECT citus_add_node('%s', %d);
SELECT citus_add_node('%s', %d);
CREATE EXTENSION unkey;
SELECT unkey.citus_distribute();
}, $host, $coordinator->port, map { ($host, $_->port) } @workers));

# (the day partitions of the event tables, which the coordinator's event writer
# may create meanwhile, are distributed with them and not counted)
my $tables = q{FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
	WHERE c.relnamespace = 'unkey'::regnamespace AND NOT c.relispartition};
is($coordinator->safe_psql('postgres', "SELECT string_agg(logicalrelid::text, ' ' ORDER BY logicalrelid::text) $tables AND partmethod = 'h'"),
	'unkey.encrypted_keys unkey.key_permissions unkey.key_ratelimits unkey.key_roles unkey.keys unkey.ratelimit_events '
	  . 'unkey.ratelimit_rollups unkey.root_keys unkey.verification_events unkey.verification_rollups unkey.verification_tag_rollups',
	'the per-key tables, events and rollups included, and the per-identifier ones are distributed by hash');
is($coordinator->safe_psql('postgres', "SELECT count(*) $tables AND partmethod = 'n'"), '13', 'and 13 are reference tables');
is($coordinator->safe_psql('postgres', q{SELECT string_agg(DISTINCT colocationid::text, ' ') FROM pg_dist_partition
	WHERE logicalrelid::text ~ '^unkey\.(keys|verification_)'}) =~ tr/ //, 0, 'the verification events and rollups are colocated with the keys');

sub q1 { my ($node, $sql) = @_; return $node->safe_psql('postgres', $sql); }
my $api = q1($coordinator, q{SELECT unkey.unkey_create_api('citus')});
my @keys = map { q1($coordinator, "SELECT key FROM unkey.unkey_create_key('$api')") } 1 .. 6;

# every key verifies from every node, through the entry point Citus delegates
for my $node (@nodes)
{
	my @codes = map {
		q1($node, "SELECT code FROM unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key('$_'), 'base64'), '$_', '$api')")
	} @keys;
	is("@codes", join(' ', ('VALID') x 6), 'keys created on the coordinator verify VALID from ' . $node->name);
}

# the plain entry point, on any node, sends a key whose shard is elsewhere to
# that node (one statement Citus delegates): VALID everywhere, in a
# transaction too, and the verification counted once, on the key's node
for my $node (@nodes)
{
	my @codes = map { q1($node, "BEGIN; SELECT code FROM unkey.unkey_verify_key('$_', '$api'); COMMIT;") } @keys;
	is("@codes", join(' ', ('VALID') x 6), 'unkey_verify_key verifies from ' . $node->name . ', wherever the key\'s shard is');
}

# a hash that is not the key's is refused
my ($ret, $out, $err) = $coordinator->psql('postgres',
	"SELECT code FROM unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key('$keys[0]'), 'base64'), '$keys[1]', '$api')");
like($err, qr/key_hash is not the hash of key/, 'a key with another key\'s hash is 22023');

# credits stay exact: 8 clients spend 500 credits, 100 calls each
my $spent = q1($coordinator, "SELECT key FROM unkey.unkey_create_key('$api', credits => 500)");
my @pids;
my $dir = PostgreSQL::Test::Utils::tempdir;
for my $c (1 .. 8)
{
	my $node = $nodes[ $c % 3 ];
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
			undef, undef, { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
		my $sth = $dbh->prepare(q{SELECT valid FROM unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key($1), 'base64'), $1, $2)});
		my $valid = 0;
		for (1 .. 100)
		{
			$sth->execute($spent, $api);
			$valid++ if ($sth->fetchrow_array)[0];
			$sth->finish;
		}
		$dbh->disconnect;
		open my $f, '>', "$dir/client$c" or die;
		print $f $valid;
		close $f;
		# not exit: the test's END blocks would stop the nodes
		POSIX::_exit(0);
	}
	push @pids, $pid;
}
waitpid $_, 0 for @pids;
my $valid = 0;
$valid += slurp_file("$dir/client$_") for 1 .. 8;
is($valid, 500, '8 clients on 3 nodes, 800 verifications of a key with 500 credits: exactly 500 VALID');
is(q1($coordinator, "SELECT remaining FROM unkey.keys WHERE key_hash = decode(unkey.unkey_hash_key('$spent'), 'base64')"),
	'0', 'and the key has 0 credits left');

# a revoked key is refused at once, from every node
my $revoked = q1($coordinator, "SELECT id FROM unkey.keys WHERE key_hash = decode(unkey.unkey_hash_key('$keys[0]'), 'base64')");
q1($coordinator, "SELECT unkey.unkey_delete_key('$revoked')");
is(join(' ', map { q1($_, "SELECT code FROM unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key('$keys[0]'), 'base64'), '$keys[0]', '$api')") } @nodes),
	'NOT_FOUND NOT_FOUND NOT_FOUND', 'a key deleted on the coordinator is NOT_FOUND from every node at once');

# the key's settings are read and changed on the coordinator, through its shard
my $changed = q1($coordinator, "SELECT key FROM unkey.unkey_create_key('$api', name => 'before', ratelimits => '[{\"name\": \"req\", \"limit\": 5, \"duration\": 60000}]')");
my $changed_id = q1($coordinator, "SELECT key_id FROM unkey.unkey_whoami('$changed')");
like($changed_id, qr/^key_/, 'unkey_whoami works on the coordinator');
is(q1($coordinator, "SELECT (unkey.unkey_update_key('$changed_id', '{\"name\": \"after\", \"enabled\": false}')).name"),
	'after', 'unkey_update_key works on the coordinator');
is(q1($workers[1], "SELECT code FROM unkey.unkey_verify_key_by_hash(decode(unkey.unkey_hash_key('$changed'), 'base64'), '$changed', '$api')"),
	'DISABLED', 'and a worker verifies the key as disabled at once');
is(q1($coordinator, "SELECT name || ' ' || (ratelimits -> 0 ->> 'name') FROM unkey.unkey_get_key('$changed_id')"),
	'after req', 'unkey_get_key reads the key with its limits');

# every event is written once, wherever it was recorded, to its key's shard:
# 36 VALID from every node (18 by hash, 18 plain), 800 spending, 3 NOT_FOUND
# after the revocation, 1 DISABLED; the coordinator reads them all, raw and
# rolled up
q1($_, 'SELECT unkey.unkey_flush_events()') for @nodes;
for my $node (@nodes)
{
	is(q1($node, "SELECT count(*) FROM unkey.verification_events WHERE api_id = '$api'"), 6 * 6 + 800 + 3 + 1,
		'every verification of the three nodes is one raw event, read from ' . $node->name);
}
is(q1($coordinator, qq{SELECT sum(valid) || ' ' || sum(usage_exceeded) || ' ' || sum(disabled)
	FROM unkey.unkey_get_verifications('$api', now() - interval '1 day')}), (6 * 6 + 500) . ' 300 1',
	'unkey_get_verifications on the coordinator counts each once: 536 VALID, 300 USAGE_EXCEEDED, 1 DISABLED');
is(q1($coordinator, qq{SELECT sum(valid + usage_exceeded) FROM unkey.verifications_hourly WHERE api_id = '$api'}),
	6 * 6 + 800, 'and the hourly rollups of all nodes add up to the same');
is(q1($workers[1], qq{SELECT (SELECT sum(valid) FROM unkey.unkey_get_verifications('$api', now() - interval '1 day', key_id => '$changed_id'))
	 || ' ' || (SELECT sum(disabled) FROM unkey.unkey_get_verifications('$api', now() - interval '1 day', key_id => '$changed_id'))}),
	'0 1', 'a worker reads the same analytics, filtered by key');
is(q1($coordinator, "SELECT last_used_at IS NOT NULL FROM unkey.unkey_get_key('$changed_id')"), 't',
	'a key\'s last use is read from its shard\'s rollups');

# rate limits count per node: an identifier spread over the three nodes gets the limit on each
my @passed = map { q1($_, q{SELECT count(*) FILTER (WHERE (unkey.unkey_ratelimit('citus', 'spread', 3, '1 minute')).success)
	FROM generate_series(1, 5)}) } @nodes;
is("@passed", '3 3 3', 'a limit of 3 passes 3 checks on each node (documented bound: nodes x limit)');
q1($_, 'SELECT unkey.unkey_flush_events()') for @nodes;
is(q1($coordinator, q{SELECT count(*) FROM unkey.ratelimit_events WHERE identifier = 'spread'})
	  . ' ' . q1($coordinator, q{SELECT sum(passed) || ' ' || sum(limited) FROM unkey.ratelimit_rollups WHERE identifier = 'spread'}),
	'15 9 6', 'the 15 checks of the three nodes are 15 rate-limit events, 9 passed and 6 limited in the rollups');

# an override set on the coordinator reaches a long-lived session on a worker
my $worker_dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $workers[0]->host . ';port=' . $workers[0]->port,
	undef, undef, { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
my $limit_sql = q{SELECT "limit" FROM unkey.unkey_ratelimit('citus', 'vip', 2, '1 minute')};
is(($worker_dbh->selectrow_array($limit_sql))[0], 2, 'a worker session checks vip with the caller\'s limit');
q1($coordinator, q{SELECT unkey.unkey_set_override('citus', 'vip', 100, '1 minute')});
is(($worker_dbh->selectrow_array($limit_sql))[0], 100, 'the same session sees the override set on the coordinator at once');
q1($coordinator, q{SELECT unkey.unkey_delete_override('citus', 'vip')});
is(($worker_dbh->selectrow_array($limit_sql))[0], 2, 'and its removal');
$worker_dbh->disconnect;

# PostgREST, the gateway and Unkey's v2 API, all through the coordinator:
# PostgREST's statements (test/t/PostgrestReplay.pm) call the plain entry
# point, which sends each key to its node
q1($coordinator, "SELECT unkey.unkey_create_postgrest_roles('authenticator', 'anon', 'verifier', 'admin')");
my $pgrst = PostgrestReplay->new(host => $host, port => $coordinator->port, dbname => 'postgres', user => 'authenticator',
	schemas => ['unkey'], extra_search_path => [], anon_role => 'anon', pre_request => undef);
my $three = q1($coordinator, "SELECT key FROM unkey.unkey_create_key('$api', credits => 3)");
my @answers = map {
	$pgrst->request(method => 'POST', path => '/rpc/unkey_verify_key', role => 'verifier',
		body => encode_json({ key => $three, api_id => $api }))
} 1 .. 5;
is(join(' ', map { $_->{status} . ':' . (decode_json($_->{body})->{code} // $_->{body}) } @answers),
	'200:VALID 200:VALID 200:VALID 200:USAGE_EXCEEDED 200:USAGE_EXCEEDED',
	'PostgREST\'s POST /rpc/unkey_verify_key on the coordinator spends a key of 3 credits exactly');
# PostgREST's query around the call keeps Citus from delegating the entry
# point keyed by the hash: it runs on the coordinator, reads the key
# through Citus and spends it in its shard, still exactly
my $hex = q1($coordinator, "SELECT encode(decode(unkey.unkey_hash_key('$three'), 'base64'), 'hex')");
q1($coordinator, "SELECT unkey.unkey_update_credits((SELECT key_id FROM unkey.unkey_whoami('$three')), 'set', 1)");
@answers = map {
	$pgrst->request(method => 'POST', path => '/rpc/unkey_verify_key_by_hash', role => 'verifier',
		body => encode_json({ key_hash => "\\x$hex", key => $three, api_id => $api }))
} 1 .. 2;
is(join(' ', map { $_->{status} . ':' . (decode_json($_->{body})->{code} // $_->{body}) } @answers),
	'200:VALID 200:USAGE_EXCEEDED', 'PostgREST\'s POST /rpc/unkey_verify_key_by_hash on the coordinator spends the last credit once');
$pgrst->disconnect;

q1($coordinator, "SELECT unkey.unkey_gateway_configure('$api', derive_permissions => false)");
is((split /\n/, q1($coordinator, qq{BEGIN;
SELECT set_config('request.headers', '{"x-api-key": "$keys[1]"}', true), set_config('request.method', 'GET', true),
	   set_config('request.path', '/rpc/report', true);
SELECT unkey.pre_request();
SELECT current_setting('request.unkey.key_id');
COMMIT;}))[-1], q1($coordinator, "SELECT id FROM unkey.keys WHERE key_hash = decode(unkey.unkey_hash_key('$keys[1]'), 'base64')"), 'the gateway (unkey.pre_request) admits a key whose shard is on a worker, and names it');

# the whole gateway, as PostgREST runs it (as the request's role): a key of a
# worker's shard passes, and one without credits gets 429 with its refill
q1($coordinator, q{CREATE FUNCTION public.hello() RETURNS text LANGUAGE sql AS $$ SELECT 'hello' $$;
	GRANT EXECUTE ON FUNCTION public.hello() TO anon});
my $gw = PostgrestReplay->new(host => $host, port => $coordinator->port, dbname => 'postgres', user => 'authenticator',
	schemas => ['public'], extra_search_path => [], anon_role => 'anon', pre_request => 'unkey.pre_request');
my $dry = q1($coordinator, "SELECT key FROM unkey.unkey_create_key('$api', credits => 0, refill_interval => 'daily', refill_amount => 5)");
my $passed = $gw->request(method => 'POST', path => '/rpc/hello', headers => { 'x-api-key' => $keys[3] }, body => '{}');
my $refused = $gw->request(method => 'POST', path => '/rpc/hello', headers => { 'x-api-key' => $dry }, body => '{}');
is("$passed->{status} $refused->{status} " . ($refused->{headers}{'Retry-After'} // 'no Retry-After')
	  . ' ' . ($refused->{headers}{'X-RateLimit-Limit'} // 'no limit'),
	'200 429 ' . ($refused->{headers}{'Retry-After'} // 'x') . ' 5',
	'PostgREST with the gateway: a key passes; one without credits gets 429 with its refill, read from its shard as the owner');
$gw->disconnect;

my $root = q1($coordinator, "SELECT key FROM unkey.unkey_create_root_key('citus', ARRAY['api.*.verify_key', 'api.*.read_analytics'])");
my $v2 = sub {
	my ($node, $endpoint, $body) = @_;
	return decode_json(q1($node, qq{SELECT set_config('request.headers', '{"x-unkey-root-key": "Bearer $root"}', false);
SELECT unkey_v2."$endpoint"('$body')}) =~ s/^[^\n]*\n//r);
};
for my $node (@nodes)
{
	is($v2->($node, 'keys.verifyKey', qq{{"key": "$keys[2]"}})->{data}{code}, 'VALID',
		'v2 keys.verifyKey answers VALID on ' . $node->name . ', wherever the root key and the key are');
}
like($v2->($coordinator, 'analytics.getVerifications', '{"query": "SELECT count(*) FROM key_verifications_v1"}')->{error}{detail},
	qr/not available on Citus/, 'v2 analytics queries are refused on Citus (501), not answered from some nodes');

# the other management functions, on the coordinator
my $listed = q1($coordinator, "SELECT cardinality((unkey.unkey_list_keys('$api', \"limit\" => 100)).keys)");
is($listed, 9, 'unkey_list_keys lists the API\'s 9 live keys across the shards');
is(q1($coordinator, "SELECT (unkey.unkey_update_credits('$changed_id', 'set', 7)).remaining"), '7', 'unkey_update_credits sets a key\'s credits');
my $rerolled = q1($coordinator, "SELECT key FROM unkey.unkey_reroll_key('$changed_id', '0 seconds')");
q1($coordinator, "SELECT unkey.unkey_update_key((SELECT key_id FROM unkey.unkey_whoami('$rerolled')), '{\"enabled\": true}')");
is(join(' ', map { q1($_, "SELECT code FROM unkey.unkey_verify_key('$rerolled', '$api')") } @nodes), 'VALID VALID VALID',
	'a rerolled key verifies from every node');

# a worker asks the coordinator for a partition with a literal that reads the
# same under any DateStyle and TimeZone
q1($workers[0], q{SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Pacific/Auckland';
	SELECT unkey._ensure_partitions('verification_events', ARRAY['2026-03-12 10:00:00+00'::timestamptz])});
is(q1($coordinator, q{SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class
	WHERE relname IN ('verification_events_p20260312', 'verification_events_p20261203')}), 'verification_events_p20260312',
	'a worker with DateStyle SQL, DMY gets the partition of 12 March from the coordinator, not of 3 December');

# nothing of unkey stays on a worker
q1($_, 'SELECT unkey.unkey_flush_events()') for @nodes;
my $history = q{SELECT (SELECT count(*) FROM unkey.verification_events) || ' ' || (SELECT sum(valid) FROM unkey.verification_rollups)
	|| ' ' || (SELECT count(*) FROM unkey.ratelimit_events)};
my $before = q1($coordinator, $history);
q1($coordinator, 'SELECT unkey.citus_undistribute()');
is(q1($coordinator, q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'unkey.%'}), '0',
	'unkey.citus_undistribute() brings every table back');
is(q1($coordinator, "SELECT count(*) FROM unkey.keys WHERE api_id = '$api'"), '11', 'with its rows, on the coordinator');
is(q1($coordinator, $history), $before, "and the events and rollups of every node ($before)");
q1($coordinator, 'DROP EXTENSION unkey');
# PostgreSQL creates the schema unkey.control names outside the extension: dropped on the coordinator, it goes everywhere
q1($coordinator, 'DROP SCHEMA unkey');
for my $w (@workers)
{
	is(q1($w, q{SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'unkey'})
		  . ' ' . q1($w, q{SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'unkey'})
		  . ' ' . q1($w, q{SELECT count(*) FROM pg_class WHERE relname ~ '^(keys|key_|verification_|encrypted_keys|root_keys)' AND relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)}),
		'0 0 0', 'DROP EXTENSION unkey leaves no table, shard or function of unkey on ' . $w->name);
	is(q1($w, q{SELECT count(*) FROM pg_namespace WHERE nspname = 'unkey'}), '0', '... and DROP SCHEMA unkey on the coordinator leaves no schema');
}

$_->stop for @nodes;
done_testing();
