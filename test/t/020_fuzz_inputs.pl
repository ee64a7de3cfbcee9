# Copyright (c) unkey contributors
#
# Fuzzing of the input parsers that run inside the server (issue 17): the
# JSON arguments (a verification's ratelimits, unkey_update_key's changes,
# unkey_migrate_keys' keys, unkey_ratelimit_many's requests, the gateway's
# request.headers, the v2 API's keys.verifyKey body, read in C), keys
# (verification, unkey_hash_key) and the hashes that unkey_migrate_keys
# parses.  They use PostgreSQL's JSON and SPI, so they are
# fuzzed where they run: a seed corpus per parser (test/fuzz/json_corpus/)
# is mutated (values of other types, dropped, duplicated, renamed and unknown
# fields, huge numbers and strings, odd Unicode, deep nesting, and the text
# cut, spliced and garbled) and sent as a bind parameter, for a bounded time.
#
# - Only documented SQLSTATEs come back, and the server never crashes; the
#   v2 API raises nothing of its own (its errors are Unkey's error bodies).
# - A call that fails leaves nothing behind: not a row, a credit, an audit
#   row, a rate-limit counter or an event (a fingerprint of all of them is
#   the same before and after it).
#
# FUZZ_SECONDS (60) sets the run: half of it, shared among the parsers.

use strict;
use warnings;

use DBI;
use FindBin;
use Encode qw(encode_utf8);
use JSON::PP;
use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $budget = ($ENV{FUZZ_SECONDS} // 60) / 2;
my $corpus = "$FindBin::RealBin/../fuzz/json_corpus";
$corpus = 'test/fuzz/json_corpus' unless -d $corpus;

my $node = PostgreSQL::Test::Cluster->new('fuzz_inputs');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'unkey'\nlog_min_messages = fatal\nstatement_timeout = '20s'\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION unkey;
SELECT unkey.unkey_create_permission('Read', 'doc.read');
SELECT unkey.unkey_create_role('reader', NULL, ARRAY['doc.read']);
SELECT unkey.unkey_ratelimit('ns', 'id', 5, '1 minute');
});
my ($api, $key_id, $key) = split /\|/, $node->safe_psql('postgres', q{
WITH a AS (SELECT unkey.unkey_create_api('fuzz') AS id),
	 k AS (SELECT a.id, (unkey.unkey_create_key(a.id, external_id => 'acme', credits => 1000000,
			ratelimits => '[{"name": "requests", "limit": 1000000, "duration": 60000}]')).* FROM a)
SELECT id, key_id, key FROM k;
});
$node->safe_psql('postgres', "SELECT unkey.unkey_gateway_configure('$api', derive_permissions => false)");
my $root = $node->safe_psql('postgres', q{SELECT key FROM unkey.unkey_create_root_key('fuzz', ARRAY['api.*.verify_key'])});

my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
	undef, undef, { AutoCommit => 1, RaiseError => 0, PrintError => 0, pg_enable_utf8 => 0 })
  or die "cannot connect: $DBI::errstr";
$dbh->do(q{SELECT set_config('request.method', 'GET', false), set_config('request.path', '/things', false),
				  set_config('request.cookies', '{}', false)});

# Every parser: its seeds, whether they are JSON or plain strings, and the call
my %targets = (
	ratelimits => [ 'json', q{SELECT code FROM unkey.unkey_verify_key($2, ratelimits => $1::jsonb)} ],
	update_key => [ 'json', q{SELECT unkey.unkey_update_key($3, $1::jsonb)} ],
	migrate => [ 'json', q{SELECT * FROM unkey.unkey_migrate_keys($4, $1::jsonb)} ],
	ratelimit_many => [ 'json', q{SELECT * FROM unkey.unkey_ratelimit_many($1::jsonb)} ],
	gateway_headers => [ 'json', q{SELECT unkey.gateway_check() FROM (SELECT set_config('request.headers', $1, false)) s} ],
	keys => [ 'text', q{SELECT code, (SELECT unkey.unkey_hash_key($1)) FROM unkey.unkey_verify_key($1, cost => 0)} ],
	# a malformed hash is not an error: it is listed in failed, and refused here
	hashes => [ 'text', q{SELECT CASE WHEN jsonb_array_length(failed) > 0 THEN 'refused' END
						   FROM unkey.unkey_migrate_keys($4, jsonb_build_array(jsonb_build_object('hash', $1::text)))} ],
	# an error body is a refusal; only PostgreSQL's own reading of the text may raise
	v2_verify => [ 'json', q{SELECT CASE WHEN r -> 'error' IS NOT NULL THEN 'refused' END
			FROM (SELECT set_config('request.headers', $5, false)) s, unkey_v2."keys.verifyKey"($1::jsonb) r},
		[qw(22P02 22P05 22003 54001 54000)] ],
);

# the documented SQLSTATEs (README, Errors), those of PostgreSQL's own input
# checks that a bad argument meets (malformed JSON 22P02, \u0000 22P05,
# nesting beyond the stack 54001, a string past jsonb's limits 54000), and
# the gateway's refusal (PGRST)
my %allowed = map { $_ => 1 } qw(22023 42601 PT404 PT410 PT412 23505 42501 55000 25006 53200
  22P02 22P05 22003 22007 22008 22004 2202E 54001 54000 PGRST);

# A fingerprint of everything a call could leave behind.  A request the
# gateway refuses (401, 403, 429) was verified, and its verification counts
# as any other (an event, a rate-limit token): for it, only the rows count.
my $fingerprint_sql = q{
SELECT concat_ws(' ', (SELECT count(*) FROM unkey.keys), (SELECT sum(coalesce(remaining, 0)) FROM unkey.keys),
	(SELECT count(*) FROM unkey.identities), (SELECT count(*) FROM unkey.audit_log),
	(SELECT count(*) FROM unkey.key_ratelimits), (SELECT count(*) FROM unkey.key_roles),
	(SELECT count(*) FROM unkey.key_permissions), (SELECT count(*) FROM unkey.ratelimit_namespaces),
	(SELECT entries FROM unkey.unkey_ratelimit_info()), (SELECT coalesce(sum(appended), -1) FROM unkey.unkey_events_info()))};
# The same fingerprint: the events appended count only when the database's
# event buffer was there both times (-1: it was released, idle, and counts
# from zero when it comes back)
sub same
{
	my ($x, $y) = @_;
	my @x = split / /, $x;
	my @y = split / /, $y;
	($x[-1], $y[-1]) = (0, 0) if @x == 10 && ($x[-1] eq '-1' || $y[-1] eq '-1');
	return "@x" eq "@y";
}

sub fingerprint
{
	my $f = ($dbh->selectrow_array($fingerprint_sql))[0];
	$f =~ s/( \S+){2}$// if $_[0] eq 'gateway_headers';
	return $f;
}

srand($ENV{FUZZ_SEED} // 20261206);
my @odd = ("", "\x{202E}", "\x{FEFF}", "\x{0915}\x{094D}\x{0937}", "\x{1F511}", "\x{10FFFF}", "\\u0000",
	"\\ud800", "'; --", "%", "*", " ", "\t\n", "\"", "\\");
my @atoms = (undef, JSON::PP::true, JSON::PP::false, 0, -1, 1, 1.5, -0.0, 1e308, '1e309', 2**63, -2**63 - 1,
	9223372036854775807, '9223372036854775808', 1000000000000, '', 'x', 'requests', 'reader', 'doc.read',
	'monthly', 'daily', 'acme', 'infinity', '2999-01-01T00:00:00Z', 'sk_fuzz', 'null', '[]', '{}');
my @names = qw(name cost limit duration autoApply auto_apply namespace identifier hash plaintext credits
  refill_interval refill_amount refill_day external_id meta expires enabled roles permissions ratelimits
  x-api-key x-real-ip x-forwarded-for authorization Name LIMIT key tags migrationId);

sub rnd { return $_[ int(rand(@_)) ]; }

sub odd_string
{
	my $r = rand();
	return 'k' x (1 + int(rand(700))) if $r < 0.15;
	return 'z' x 1048576 if $r < 0.17;
	return join '', map { rnd(@odd, 'a'..'z', '0'..'9') } 1 .. int(rand(12));
}

sub atom
{
	my $r = rand();
	return odd_string() if $r < 0.3;
	return [ map { atom() } 1 .. int(rand(3)) ] if $r < 0.4;
	return { rnd(@names) => atom() } if $r < 0.5;
	return rnd(@atoms);
}

# Change one place of a JSON value (recursively, at a random depth)
sub mutate_value
{
	my ($v, $seeds) = @_;
	my $r = rand();
	if (ref $v eq 'HASH' && %$v && $r < 0.6)
	{
		my @k = keys %$v;
		my $k = rnd(@k);
		my $op = rand();
		if ($op < 0.15) { delete $v->{$k}; }
		elsif ($op < 0.3) { $v->{ rnd(@names, odd_string()) } = atom(); }
		elsif ($op < 0.4) { $v->{ ucfirst $k } = delete $v->{$k}; }
		elsif ($op < 0.6) { $v->{$k} = atom(); }
		else { $v->{$k} = mutate_value($v->{$k}, $seeds); }
		return $v;
	}
	if (ref $v eq 'ARRAY' && @$v && $r < 0.6)
	{
		my $i = int(rand(@$v));
		my $op = rand();
		if ($op < 0.15) { splice @$v, $i, 1; }
		elsif ($op < 0.3) { push @$v, ($v->[$i]) x (1 + int(rand(3))); }
		elsif ($op < 0.35) { push @$v, ($v->[$i]) x 1001; }
		elsif ($op < 0.5) { $v->[$i] = atom(); }
		else { $v->[$i] = mutate_value($v->[$i], $seeds); }
		return $v;
	}
	return decode_json(encode_json([ rnd(@$seeds) ]))->[0] if $r < 0.7;    # a splice from another seed
	return atom();
}

# Garble the text: cut, insert, delete, duplicate, nest deeply
sub mutate_text
{
	my $t = shift;
	my $op = rand();
	my $p = int(rand(length($t) + 1));
	if ($op < 0.2) { return substr($t, 0, $p); }
	if ($op < 0.45) { substr($t, $p, 0) = rnd('{', '}', '[', ']', ',', ':', '"', '\\', ' ', '-', 'e', '0', "\x{FEFF}", @odd); return $t; }
	if ($op < 0.65) { substr($t, $p, 1 + int(rand(3))) = '' if $p < length $t; return $t; }
	if ($op < 0.8) { my $q = int(rand(length($t) + 1)); substr($t, $p, 0) = substr($t, $q, int(rand(20))); return $t; }
	my $n = rnd(10, 100, 1000, 10000);
	return rand() < 0.5 ? ('[' x $n) . $t . (']' x $n) : ('{"a":' x $n) . $t . ('}' x $n);
}

my $json = JSON::PP->new->canonical->allow_nonref;
my (%calls, %states, @unexpected, @left_behind);
my $per_target = $budget / keys %targets;
for my $target (sort keys %targets)
{
	my ($kind, $sql, $only) = @{ $targets{$target} };
	my %ok_states = $only ? map { $_ => 1 } @$only : %allowed;
	# $2, $3, $4, $5: the key, its id, the API and the v2 request's headers, as literals
	my @lit = map { $dbh->quote($_) } ($key, $key_id, $api, encode_json({ 'x-unkey-root-key' => "Bearer $root" }));
	$sql =~ s/\$([2345])/$lit[$1 - 2]/g;
	my @seeds = @{ decode_json(slurp_file("$corpus/$target.json")) };
	s/^KEY$/$key/ for grep { !ref } @seeds;
	$_->{'x-api-key'} = $key for grep { ref eq 'HASH' && ($_->{'x-api-key'} // '') eq 'KEY' } @seeds;
	$_->{key} = $key for grep { ref eq 'HASH' && ($_->{key} // '') eq 'KEY' } @seeds;
	my $sth = $dbh->prepare($sql);
	my $before = fingerprint($target);
	my $stop = time() + $per_target;
	while (time() < $stop)
	{
		my $input;
		if ($kind eq 'json')
		{
			my $v = decode_json(encode_json([ rnd(@seeds) ]))->[0];
			$v = mutate_value($v, \@seeds) for 1 .. 1 + int(rand(3));
			$input = $json->encode($v);
			$input = mutate_text($input) if rand() < 0.3;
		}
		else
		{
			$input = rnd(@seeds);
			$input = rand() < 0.8 ? mutate_text($input) : odd_string() for 1 .. 1 + int(rand(3));
			$input =~ s/\0//g;
		}
		$input = encode_utf8($input);
		$sth->execute($input);
		my $state = $sth->err ? $dbh->state : (($sth->fetchrow_array)[0] // '') eq 'refused' ? 'refused' : 'ok';
		$sth->finish;
		$calls{$target}++;
		$states{$target}{$state}++;
		if ($state ne 'ok')
		{
			last unless $dbh->ping;
			push @unexpected, "$target: $state " . $dbh->errstr . ' for ' . substr($input, 0, 300)
			  unless $ok_states{$state} || $state eq 'refused';
			my $after = fingerprint($target);
			push @left_behind, "$target: $state left '$before' as '$after' for " . substr($input, 0, 300)
			  if !same($before, $after);
		}
		$before = fingerprint($target) if $state eq 'ok';
	}
}

ok($dbh->ping, 'the server survived every input');
is_deeply(\@unexpected, [], 'only documented SQLSTATEs came back') or diag join "\n", @unexpected[ 0 .. 9 ];
is_deeply(\@left_behind, [], 'a call that failed left nothing behind') or diag join "\n", @left_behind[ 0 .. 9 ];
for my $target (sort keys %targets)
{
	my $s = $states{$target};
	note sprintf '%-16s %6d calls: %s', $target, $calls{$target} // 0,
	  join ', ', map { "$_ $s->{$_}" } sort { $s->{$b} <=> $s->{$a} } keys %$s;
	# the mutations must reach past the parser: some inputs pass, some fail
	cmp_ok(scalar(grep { $_ ne 'ok' } keys %$s), '>=', 1, "$target: some inputs are refused");
	ok($s->{ok}, "$target: some inputs are accepted");
}
$dbh->disconnect;
$node->stop;
done_testing();
