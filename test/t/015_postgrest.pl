# Copyright (c) unkey contributors
#
# The PostgREST gateway (issue 15), replayed statement for statement as
# PostgREST sends it (PostgrestReplay.pm, DBD::Pg with bound parameters,
# logged in as the authenticator):
#
# 1. The README's PostgREST section, followed literally: its SQL runs, and
#    every curl example is replayed and its documented answer checked
#    (status, the headers it lists, the JSON body).
# 2. GET of a spending route is 405 and spends nothing; POST spends exactly
#    its cost.
# 3. The anonymous role is refused every management function (401).
# 4. A key revoked in one transaction is refused by the next request.
# 5. Under load, 8 concurrent clients: 800 requests against 500 credits give
#    exactly 500 successes and 300 429s; a rate limit of 100 per hour gives
#    exactly 100 successes out of 800 in one window (a sliding window lets a
#    later window through less, by the share of the one before).  The
#    clients are DBD::Pg processes, which bind parameters as PostgREST does:
#    pgbench -M prepared would do the same, but it stops a client at its
#    first error, and every refusal here is one.
# 6. With log_min_error_statement = error and failing requests, no key is in
#    the server log.
# 7. Routability: no function of schema unkey is overloaded, and every one
#    has a comment (PostgREST's OpenAPI descriptions).

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

BEGIN
{
	eval { require DBD::Pg; 1 } or plan skip_all => 'DBD::Pg is not installed (apt-get install libdbd-pg-perl)';
}
use PostgrestReplay;

my $json = JSON::PP->new->canonical;

my $node = PostgreSQL::Test::Cluster->new('postgrest');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
log_statement = none
log_min_error_statement = error
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');

############################################################################
# 1. the README, followed literally
############################################################################
my $readme = slurp_file("$FindBin::RealBin/../../README.md");
my ($section) = $readme =~ /^## PostgREST\n(.*?)^## /ms or die 'no PostgREST section in the README';
my @blocks;
while ($section =~ /^```(\w+)\n(.*?)^```/msg) { push @blocks, [ $1, $2 ]; }

my ($ini) = map { $_->[1] } grep { $_->[0] eq 'ini' } @blocks;
my %conf = $ini =~ /^([\w-]+)\s*=\s*"([^"]*)"/mg;
is($conf{'db-pre-request'}, 'unkey.pre_request', 'the README configures the pre-request');
my ($setup) = map { $_->[1] } grep { $_->[0] eq 'sql' && $_->[1] =~ /^-- PostgREST walkthrough/ } @blocks;
ok($setup, 'the README has the walkthrough SQL');
my $setup_file = PostgreSQL::Test::Utils::tempdir() . '/walkthrough.sql';
open my $fh, '>', $setup_file or die;
print $fh $setup;
close $fh;
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('app'), '-f', $setup_file ],
	'the README\'s SQL runs');

my %replay_opts = (
	host => $node->host, port => $node->port, dbname => 'app', user => 'authenticator',
	schemas => [ split /\s*,\s*/, $conf{'db-schemas'} ],
	extra_search_path => [ split /\s*,\s*/, $conf{'db-extra-search-path'} ],
	anon_role => $conf{'db-anon-role'}, pre_request => $conf{'db-pre-request'});
my $pgrst = PostgrestReplay->new(%replay_opts);

# A curl command line -> request arguments
sub parse_curl
{
	my ($cmd) = @_;
	$cmd =~ s/\\\n\s*/ /g;
	my @words;
	push @words, defined $1 ? $1 : $2 while $cmd =~ /'([^']*)'|(\S+)/g;
	shift @words;    # curl
	my %r = (method => undef, headers => {});
	while (@words)
	{
		my $w = shift @words;
		if ($w eq '-X') { $r{method} = shift @words; }
		elsif ($w eq '-H') { my ($n, $v) = split /:\s*/, shift(@words), 2; $r{headers}{$n} = $v; }
		elsif ($w eq '-d') { $r{body} = shift @words; }
		elsif ($w eq '-i') { }
		elsif ($w =~ m{^https?://[^/]+(/[^?]*)(?:\?(.*))?$})
		{
			$r{path} = $1;
			$r{query} = { map { split /=/, $_, 2 } split /&/, ($2 // '') };
		}
		else { die "unexpected curl argument: $w"; }
	}
	$r{method} //= defined $r{body} ? 'POST' : 'GET';
	# what curl sends besides, and PostgREST passes on in request.headers
	$r{headers}{Host} = 'localhost:3000';
	$r{headers}{'User-Agent'} = 'curl/7.88.1';
	$r{headers}{Accept} = '*/*';
	$r{headers}{'Content-Length'} = length $r{body} if defined $r{body};
	return %r;
}

# Wait until the current minute has at least 10 s left: the examples' rate limit counts per minute
sub clear_of_minute_end { my $left = 60 - (time % 60); sleep($left + 1) if $left < 10; }

my @examples;
for my $i (0 .. $#blocks - 1)
{
	push @examples, [ $blocks[$i][1], $blocks[ $i + 1 ][1] ]
	  if $blocks[$i][0] eq 'sh' && $blocks[$i][1] =~ /^curl / && $blocks[ $i + 1 ][0] eq 'http';
}
cmp_ok(scalar @examples, '>=', 8, 'the README shows curl examples with their answers');
clear_of_minute_end();
for my $ex (@examples)
{
	my ($commands, $expected) = @$ex;
	my @cmds = split /\n(?=curl )/, $commands;
	my $res;
	$res = $pgrst->request(parse_curl($_)) for @cmds;
	my ($head, $body) = split /\n\n/, $expected, 2;
	my ($status_line, @header_lines) = split /\n/, $head;
	my ($status) = $status_line =~ m{^HTTP/1\.1 (\d{3}) };
	my $label = (split /\n/, $cmds[-1])[0];
	is($res->{status}, $status, "$label: status $status");
	for (@header_lines)
	{
		my ($n, $v) = split /:\s*/, $_, 2;
		my $got = $res->{headers}{$n};
		if ($v eq '<seconds>') { like($got // '', qr/^\d+$/, "$label: $n is a number of seconds"); }
		elsif ($v eq '<unix time>') { like($got // '', qr/^\d{10}$/, "$label: $n is a Unix time"); }
		else { is($got, $v, "$label: $n: $v"); }
	}
	is( $json->encode($json->decode($res->{body})), $json->encode($json->decode($body)),
		"$label: the body") or diag $res->{body};
}

############################################################################
# 2. spending by GET and by POST
############################################################################
sub credits_of
{
	my ($key) = @_;
	return $node->safe_psql('app', "SELECT credits FROM unkey.unkey_whoami('$key')");
}
my $acme = 'sk_live_acme_0123456789abcdef';
is(credits_of($acme), '5', 'after the README: the export by POST spent exactly 10 of 15, the refused GET nothing');
$node->safe_psql('app', "SELECT unkey.unkey_update_credits((SELECT key_id FROM unkey.unkey_whoami('$acme')), 'set', 30)");
my $get = $pgrst->request(method => 'GET', path => '/rpc/export', query => { month => '2026-12' },
	headers => { 'x-api-key' => $acme });
is($get->{status}, 405, 'GET of a route that spends: 405');
is(credits_of($acme), '30', 'and nothing is spent');
my $post = $pgrst->request(method => 'POST', path => '/rpc/export', body => '{"month": "2026-12"}',
	headers => { 'x-api-key' => $acme });
is($post->{status}, 200, 'POST of the same route: 200');
is(credits_of($acme), '20', 'and exactly its cost (10) is spent');

############################################################################
# 3. the anonymous role and unkey's functions (no pre-request: the role alone)
############################################################################
my $bare = PostgrestReplay->new(%replay_opts, pre_request => undef);
my @management = split /\n/, $node->safe_psql('app', q{
SELECT p.proname || '|' || coalesce(array_to_string(p.proargnames[1:p.pronargs - p.pronargdefaults], ','), '')
  FROM pg_proc p WHERE p.pronamespace = 'unkey'::regnamespace AND p.proname LIKE 'unkey\_%' ORDER BY 1});
cmp_ok(scalar @management, '>', 60, 'every unkey_ function is tried');
my @let_through;
for (@management)
{
	my ($name, $args) = split /\|/, $_, -1;
	my $body = $json->encode({ map { $_ => undef } grep { $_ ne '' } split /,/, $args });
	my $res = $bare->request(method => 'POST', path => "/rpc/$name", body => $body,
		headers => { 'Content-Profile' => 'unkey', 'x-api-key' => $acme });
	push @let_through, "$name: $res->{status}" unless $res->{status} == 401 && $res->{body} =~ /"42501"/;
}
is(join(', ', @let_through), '', 'the anonymous role is refused every management function with 401');
my $res = $bare->request(method => 'POST', path => '/rpc/unkey_create_api', body => '{"name": "mine"}',
	headers => { 'Content-Profile' => 'unkey' });
is($res->{headers}{'WWW-Authenticate'}, 'Bearer', 'with PostgREST\'s WWW-Authenticate for the anonymous role');

############################################################################
# 4. revocation takes effect at the next request
############################################################################
my ($rev_id, $rev) = split /\|/, $node->safe_psql('app', q{
SELECT key_id, key FROM unkey.unkey_create_key((SELECT api_id FROM unkey.gateway), permissions => '{rpc.report.read}')});
is($pgrst->request(method => 'GET', path => '/rpc/report', query => { month => 'x' }, headers => { 'x-api-key' => $rev })
	  ->{status}, 200, 'a new key passes');
$node->safe_psql('app', "BEGIN; SELECT unkey.unkey_delete_key('$rev_id'); COMMIT;");
is($pgrst->request(method => 'GET', path => '/rpc/report', query => { month => 'x' }, headers => { 'x-api-key' => $rev })
	  ->{status}, 401, 'revoked in one transaction, refused by the next request');

############################################################################
# 5. under load: 8 clients, 100 requests each
############################################################################
$node->safe_psql('app', q{
CREATE FUNCTION api.ping() RETURNS jsonb LANGUAGE sql VOLATILE AS $$ SELECT '{"pong": true}'::jsonb $$;
GRANT EXECUTE ON FUNCTION api.ping() TO unkey_anon;
SELECT unkey.unkey_gateway_set_route('POST', '/rpc/ping', cost => 1);});
my $credits_key = $node->safe_psql('app', q{
SELECT key FROM unkey.unkey_create_key((SELECT api_id FROM unkey.gateway), credits => 500)});
my $limited_key = $node->safe_psql('app', q{
SELECT key FROM unkey.unkey_create_key((SELECT api_id FROM unkey.gateway), permissions => '{rpc.report.read}',
	ratelimits => '[{"name": "hourly", "limit": 100, "duration": 3600000, "autoApply": true}]')});

# 8 processes, each with its own connection; the statuses they got
sub load
{
	my (%req) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my @pids;
	for my $c (1 .. 8)
	{
		my $pid = fork // die "fork: $!";
		if ($pid == 0)
		{
			# the parent's connections are its own: do not close them from here
			$_->{dbh}{InactiveDestroy} = 1 for $pgrst, $bare;
			my $client = PostgrestReplay->new(%replay_opts);
			open my $out, '>', "$dir/$c" or die;
			for (1 .. 100)
			{
				my $res = $client->request(%req);
				print $out $res->{status}, "\n";
				print STDERR "unexpected answer: $res->{status} $res->{body}\n" if $res->{status} !~ /^(200|429)$/;
			}
			close $out;
			$client->disconnect;
			POSIX::_exit(0);    # no END block (it would stop the server) and no destructor of the parent's

		}
		push @pids, $pid;
	}
	waitpid($_, 0) for @pids;
	my %count;
	for my $c (1 .. 8) { $count{$_}++ for split /\n/, slurp_file("$dir/$c"); }
	return join ' ', map { "$_:$count{$_}" } sort keys %count;
}
is( load(method => 'POST', path => '/rpc/ping', body => '{}', headers => { 'x-api-key' => $credits_key }),
	'200:500 429:300', '800 requests against 500 credits: exactly 500 pass and 300 get 429');
is(credits_of($credits_key), '0', 'and the key has 0 credits left');
# a rate limit of 100 per hour: the windows are hours since the epoch
{
	my $left = 3600 - (time % 3600);
	sleep($left + 1) if $left < 120;
}
is( load(method => 'GET', path => '/rpc/report', query => { month => 'x' }, headers => { 'x-api-key' => $limited_key }),
	'200:100 429:700', 'a rate limit of 100 per hour: exactly 100 of 800 requests pass');

############################################################################
# 6. no key in the server log
############################################################################
my $log = slurp_file($node->logfile);
like($log, qr/ERROR:  \{"code": "NOT_FOUND"/, 'refused requests were logged as errors');
my @keys = ($acme, 'sk_live_busy_0123456789abcdef', 'sk_live_wrong', $rev, $credits_key, $limited_key);
is((grep { index($log, $_) >= 0 } @keys), 0, 'no key appears in the server log (PostgREST binds headers and bodies)');

############################################################################
# 7. routability
############################################################################
is($node->safe_psql('app', q{SELECT string_agg(proname, ', ') FROM (SELECT proname FROM pg_proc
  WHERE pronamespace = 'unkey'::regnamespace GROUP BY proname HAVING count(*) > 1) o}),
	'', 'no function of schema unkey is overloaded (PostgREST would answer 300)');
is($node->safe_psql('app', q{SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
  WHERE p.pronamespace = 'unkey'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL}),
	'', 'every function of schema unkey has a comment (its OpenAPI description)');

$pgrst->disconnect;
$bare->disconnect;
$node->stop;
done_testing();
