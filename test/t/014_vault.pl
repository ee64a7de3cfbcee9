# Copyright (c) unkey contributors
#
# Recoverable keys end to end (issue 14), on a server with the vault key,
# statement logging, pg_stat_statements and a streaming standby:
#
# 1. Logs and statistics.  With log_statement = all and
#    log_min_error_statement = error, a succeeding and a failing create,
#    get (decrypt) and migrate (plaintext, as bind parameters) leave no
#    plaintext in the server log or in pg_stat_statements, for a role with
#    log_parameter_max_length = 0 as the README says.  Without that
#    setting, and with an inlined literal, PostgreSQL logs the key before
#    our function runs: the README's warning, checked.  So does the JSON
#    parser, quoting a malformed payload, without log_error_verbosity =
#    terse.  auto_explain of nested statements sees no plaintext.  Every
#    decryption leaves a server log line, which a rollback cannot undo.
# 2. At rest.  After a CHECKPOINT, no file of the data directory (heap,
#    indexes, pg_wal, statistics) and no pg_dump output holds the
#    plaintext of a recoverable key, created, rerolled or migrated, or its
#    random part; the dump restores into a server with the same key file
#    and the keys decrypt there.
# 3. A standby with the same key file decrypts (read-only; the audit goes
#    to its server log); one without fails closed.
# 4. Rotation: the new key in unkey.vault_key_file, the old one in
#    unkey.vault_previous_key_file, a restart, then unkey_vault_rotate() in
#    batches, across a crash and a rotation killed in flight; at the end
#    the old file is not needed, and a server with only the old one fails
#    closed.

use strict;
use warnings;

use Digest::SHA qw(sha256_base64);
use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dir = tempdir(CLEANUP => 1);

# A random root key in a file of mode 0600
sub key_file
{
	my ($name) = @_;
	my $path = "$dir/$name";
	open my $fh, '>', $path or die "$path: $!";
	print $fh join('', map { sprintf '%02x', int(rand(256)) } 1 .. 32), "\n";
	close $fh;
	chmod 0600, $path;
	return $path;
}
my $key_a = key_file('a.key');
my $key_b = key_file('b.key');

my $node = PostgreSQL::Test::Cluster->new('vault');
$node->init(allows_streaming => 1);
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'unkey, pg_stat_statements'
unkey.vault_key_file = '$key_a'
log_statement = all
log_min_error_statement = error
});
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION unkey;
CREATE EXTENSION pg_stat_statements;
CREATE ROLE app LOGIN;
GRANT unkey_decrypt TO app;
GRANT USAGE ON SCHEMA unkey TO app;
GRANT EXECUTE ON FUNCTION unkey.unkey_create_key(text, text, integer, text, text, jsonb, timestamptz, bigint, text,
	bigint, integer, jsonb, text[], text[], boolean, boolean), unkey.unkey_get_key(text, boolean),
	unkey.unkey_list_keys(text, integer, text, text, boolean), unkey.unkey_reroll_key(text, interval),
	unkey.unkey_migrate_keys(text, jsonb), unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet)
	TO app;
ALTER ROLE app SET log_parameter_max_length = 0;
ALTER ROLE app SET log_error_verbosity = terse;
CREATE ROLE careless LOGIN;
GRANT app TO careless;
});
my $api = $node->safe_psql('postgres', q{SELECT unkey.unkey_create_api('recoverable', default_prefix => 'rk')});
my $plain_api = $node->safe_psql('postgres', q{SELECT unkey.unkey_create_api('plain')});
$node->safe_psql('postgres', "SELECT unkey.unkey_set_api_recoverable('$api', true)");

# Run SQL as a role; (stdout, stderr)
sub as_role
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-U', $role ]);
	return wantarray ? ($out, $err) : $out;
}

# Run one statement with pgbench in extended protocol, its variables sent as bind parameters
sub bound
{
	my ($role, $sql, %vars) = @_;
	my $script = "$dir/bound.sql";
	open my $fh, '>', $script or die;
	print $fh "$sql\n";
	close $fh;
	my @vars = map { ('-D', "$_=$vars{$_}") } sort keys %vars;
	my ($stdout, $stderr) = run_command(
		[ 'pgbench', '-n', '-t', '1', '-M', 'extended', '-f', $script, @vars,
		  '-U', $role, '-h', $node->host, '-p', $node->port, 'postgres' ]);
	return $stderr =~ /ERROR/ ? 'failed' : 'ok';
}

############################################################################
# 1. logs and statistics
############################################################################
my $log_offset = -s $node->logfile;
my ($created) = as_role('app', "SELECT key_id || ' ' || key FROM unkey.unkey_create_key('$api', recoverable => true)");
my ($rk, $rk_key) = split / /, $created;
like($rk_key, qr/^rk_\w{16,}$/, 'a recoverable key is created');
my (undef, $err) = as_role('app', "SELECT unkey.unkey_create_key('$plain_api', recoverable => true)");
like($err, qr/This API does not support key encryption/, 'a failing create');
my ($shown) = as_role('app', "SELECT plaintext FROM unkey.unkey_get_key('$rk', decrypt => true)");
is($shown, $rk_key, 'a succeeding get with decrypt');
(undef, $err) = as_role('app', "SELECT plaintext FROM unkey.unkey_get_key('key_missing', decrypt => true)");
like($err, qr/key not found/, 'a failing get with decrypt');
my ($rerolled) = as_role('app', "SELECT key_id || ' ' || key FROM unkey.unkey_reroll_key('$rk', '1 hour')");
my ($rr, $rr_key) = split / /, $rerolled;
is(as_role('app', "SELECT plaintext FROM unkey.unkey_get_key('$rr', decrypt => true)"), $rr_key, 'a rerolled key');

my $migrated_key = 'rk_migrated_' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
my $failed_key = 'rk_failing_' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
is( bound('app', 'SELECT unkey.unkey_migrate_keys(:api, :keys)', api => $api,
		keys => qq{[{"plaintext": "$migrated_key", "name": "migrated"}]}),
	'ok', 'a succeeding migrate, the plaintext a bind parameter');
is( bound('app', 'SELECT unkey.unkey_migrate_keys(:api, :keys)', api => $api,
		keys => qq{[{"plaintext": "$failed_key", "credits": -1}]}),
	'failed', 'a failing migrate, the plaintext a bind parameter');
my $malformed_key = 'rk_malformed_' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
is( bound('app', 'SELECT unkey.unkey_migrate_keys(:api, :keys)', api => $api,
		keys => qq{[{"plaintext": "$malformed_key"},]}),
	'failed', 'a migrate whose JSON is malformed, refused by the JSON parser before the function runs');
# found by its hash, computed here: the key itself is never sent again
my $mk = $node->safe_psql('postgres',
	"SELECT key_id FROM unkey.unkey_get_key_by_hash('" . sha256_base64($migrated_key) . "=')");
is(as_role('app', "SELECT plaintext FROM unkey.unkey_get_key('$mk', decrypt => true)"), $migrated_key,
	'the migrated key decrypts');

my @secrets = ($rk_key, $rr_key, $migrated_key, $failed_key, $malformed_key);
# a key, or the random part after its prefix
my @needles = map { ($_, s/^rk_(?:migrated_|failing_)?//r) } @secrets;

my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/LOG:  statement: SELECT key_id \|\| ' ' \|\| key FROM unkey.unkey_create_key/, 'the statements were logged');
like($log, qr/STATEMENT:  SELECT unkey.unkey_migrate_keys\(\$1, \$2\)/, 'the failing migrate was logged, with placeholders');
like($log, qr/ERROR:  invalid input syntax for type json/, 'so was the malformed one (its CONTEXT, which quotes the JSON, is not: terse)');
like($log, qr/LOG:  unkey: key.decrypt by role app: $rk\n/, 'each decryption leaves a line in the server log');
is((grep { index($log, $_) >= 0 } @needles), 0, 'no plaintext in the server log');
my $pgss = $node->safe_psql('postgres', q{SELECT string_agg(query, E'\n') FROM pg_stat_statements});
like($pgss, qr/unkey_migrate_keys/, 'pg_stat_statements saw the calls');
is((grep { index($pgss, $_) >= 0 } @needles), 0, 'no plaintext in pg_stat_statements');

# the README's warning: without log_parameter_max_length = 0, or inlined,
# PostgreSQL logs the key before any function runs
my $careless_key = 'rk_careless_' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
my $careless_json = 'rk_carelessjson_' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
my $inlined_key = 'rk_inlined_' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
$node->safe_psql('postgres',
	'ALTER ROLE careless SET log_parameter_max_length = -1; ALTER ROLE careless SET log_error_verbosity = default');
$log_offset = -s $node->logfile;
bound('careless', 'SELECT unkey.unkey_migrate_keys(:api, :keys)', api => $plain_api,
	keys => qq{[{"plaintext": "$careless_key"}]});
bound('careless', 'SELECT unkey.unkey_migrate_keys(:api, :keys)', api => $plain_api,
	keys => qq{[{"plaintext": "$careless_json"},]});
as_role('app', "SELECT unkey.unkey_migrate_keys('$plain_api', '[{\"plaintext\": \"$inlined_key\"}]')");
$log = slurp_file($node->logfile, $log_offset);
like($log, qr/DETAIL:  parameters: .*\Q$careless_key\E/, 'without log_parameter_max_length = 0 the bound key is logged');
like($log, qr/CONTEXT:  JSON data, line 1: .*\Q$careless_json\E/,
	'without log_error_verbosity = terse the JSON parser quotes a malformed payload');
like($log, qr/statement: .*\Q$inlined_key\E/, 'an inlined key is logged with its statement');
$pgss = $node->safe_psql('postgres', q{SELECT string_agg(query, E'\n') FROM pg_stat_statements});
is((grep { index($pgss, $_) >= 0 } $careless_key, $inlined_key), 0, 'pg_stat_statements keeps neither (it normalizes)');

# auto_explain with nested statements and their output columns: our functions
# pass a plaintext to no SQL statement, only to expressions
my $explained_key = 'rk_explained_' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
$log_offset = -s $node->logfile;
my ($explained) = split /\n/, $node->safe_psql(
	'postgres', qq{
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_verbose = on;
SET plan_cache_mode = force_custom_plan;
SELECT c.key_id || ' ' || c.key FROM unkey.unkey_create_key('$api', recoverable => true) c;
SELECT r.key FROM unkey.unkey_reroll_key('$rk', '2 hours') r;
SELECT unkey.unkey_migrate_keys('$api', '[{"plaintext": "$explained_key"}]') IS NOT NULL;
});
my @explained = (split(/ /, $explained), $explained_key);
$log = slurp_file($node->logfile, $log_offset);
like($log, qr/Query Text: .*INSERT INTO unkey.encrypted_keys/, 'auto_explain logged the nested statements');
# the migrated key is in the top-level statement's text and plan (inlined
# here); a nested statement's plan is the entry before its CONTEXT line
my @entries = split /(?=^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ UTC )/m, $log;
my @leaks;
for my $i (0 .. $#entries)
{
	my $nested = $entries[$i] =~ /CONTEXT:/
	  || ($i < $#entries && $entries[ $i + 1 ] =~ /^\S+ \S+ UTC \[\d+\] \S+ CONTEXT:/);
	push @leaks, $entries[$i] if index($entries[$i], $explained[1]) >= 0
	  || ($nested && index($entries[$i], $explained_key) >= 0);
}
is(scalar @leaks, 0, 'no plan of a nested statement holds a created or migrated plaintext') or diag join '', @leaks;

# a rolled-back decryption leaves no audit row, but its log line stays
$log_offset = -s $node->logfile;
my $audit_before = $node->safe_psql('postgres', q{SELECT count(*) FROM unkey.audit_log WHERE event = 'key.decrypt'});
$node->safe_psql('postgres', "BEGIN; SELECT unkey.unkey_get_key('$rk', decrypt => true); ROLLBACK;");
is($node->safe_psql('postgres', q{SELECT count(*) FROM unkey.audit_log WHERE event = 'key.decrypt'}), $audit_before,
	'a rolled-back decryption leaves no audit row');
ok($node->log_contains("LOG:  unkey: key.decrypt by role postgres: $rk", $log_offset), 'but its server log line stays');

############################################################################
# 2. at rest: the data directory and pg_dump
############################################################################
$node->safe_psql('postgres', 'CHECKPOINT');

# Files under a directory that hold one of the needles
sub files_holding
{
	my ($root, @needles) = @_;
	my @hits;
	my @dirs = ($root);
	while (my $d = shift @dirs)
	{
		opendir my $dh, $d or next;
		for my $f (grep { !/^\.\.?$/ } readdir $dh)
		{
			my $path = "$d/$f";
			if (-d $path) { push @dirs, $path; next }
			next unless -f $path;
			my $bytes = slurp_file($path);
			push @hits, $path if grep { index($bytes, $_) >= 0 } @needles;
		}
		closedir $dh;
	}
	return @hits;
}
my $pgdata = $node->data_dir;
my @wal_hits = files_holding("$pgdata/pg_wal", 'recoverable');
ok(@wal_hits > 0, 'the search works: the WAL holds the name of the API');
is(join(', ', files_holding($pgdata, @needles)), '',
	'no file of the data directory (heap, indexes, pg_wal, statistics) holds a plaintext or its random part');
my $dump = "$dir/dump.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');
my $dumped = slurp_file($dump);
like($dumped, qr/COPY unkey\.encrypted_keys/, 'the dump carries the ciphertexts');
is((grep { index($dumped, $_) >= 0 } @needles), 0, 'and no plaintext');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores');
is($node->safe_psql('restored', "SELECT plaintext FROM unkey.unkey_get_key('$rr', decrypt => true)"), $rr_key,
	'and a recoverable key decrypts there, with the same key file');

############################################################################
# 3. a standby
############################################################################
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('vault_standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
$log_offset = -s $standby->logfile;
is($standby->safe_psql('postgres', "SELECT plaintext FROM unkey.unkey_get_key('$rk', decrypt => true)", extra_params => [ '-U', 'app' ]),
	$rk_key, 'a standby with the same key file decrypts');
ok($standby->log_contains("LOG:  unkey: key.decrypt by role app: $rk", $log_offset),
	'and, unable to write the audit log, audits in its server log');
$standby->stop;
$standby->append_conf('postgresql.conf', "unkey.vault_key_file = ''\n");
$standby->start;
my ($ret, $out);
($ret, $out, $err) = $standby->psql('postgres', "\\set VERBOSITY verbose\nSELECT unkey.unkey_get_key('$rk', decrypt => true)");
like($err, qr/ERROR:  55000: the vault is not configured/, 'a standby without the key file fails closed (55000)');
is($standby->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$rk_key', cost => 0)"), 'VALID',
	'and verifies the key');
$standby->stop;

############################################################################
# 4. rotation
############################################################################
# forty more recoverable APIs, so that the rotation has batches
$node->safe_psql(
	'postgres', q{
SELECT unkey.unkey_set_api_recoverable(unkey.unkey_create_api('rotate ' || i), true) FROM generate_series(1, 40) i});
my $id_a = $node->safe_psql('postgres', 'SELECT key_id FROM unkey.unkey_vault_info()');
is($node->safe_psql('postgres', "SELECT count(*) FROM unkey.vault_data_keys WHERE root_key_id = '$id_a'"), '41',
	'41 data keys wrapped by key A');

# new key B current, A previous
$node->append_conf('postgresql.conf', "unkey.vault_key_file = '$key_b'\nunkey.vault_previous_key_file = '$key_a'\n");
$node->restart;
my $id_b = $node->safe_psql('postgres', 'SELECT key_id FROM unkey.unkey_vault_info()');
isnt($id_b, $id_a, 'key B is current');
is($node->safe_psql('postgres', "SELECT plaintext FROM unkey.unkey_get_key('$rk', decrypt => true)"), $rk_key,
	'before the rotation, keys decrypt through the previous key');
is($node->safe_psql('postgres', 'SELECT rewrapped, remaining FROM unkey.unkey_vault_rotate(10)'), '10|31',
	'a first batch of 10 is re-wrapped and committed');

# a crash between batches
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', "SELECT count(*) FROM unkey.vault_data_keys WHERE root_key_id = '$id_b'"), '10',
	'after a crash the committed batch stays re-wrapped');

# a rotation killed in flight: it waits for a lock on the last data key, and is terminated
my $holder = $node->background_psql('postgres');
$holder->query_safe("BEGIN; SELECT api_id FROM unkey.vault_data_keys WHERE root_key_id = '$id_a' FOR UPDATE");
my $rotator = $node->background_psql('postgres', on_error_stop => 0);
my $rotator_pid = $rotator->query_safe('SELECT pg_backend_pid()');
$rotator->query_until(qr/started/, "\\echo started\nSELECT * FROM unkey.unkey_vault_rotate();\n");
ok( $node->poll_query_until('postgres',
		"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $rotator_pid"),
	'the rotation waits for a locked data key');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($rotator_pid)");
eval { $rotator->quit };
$holder->query_safe('ROLLBACK');
$holder->quit;
is($node->safe_psql('postgres', "SELECT count(*) FROM unkey.vault_data_keys WHERE root_key_id = '$id_b'"), '10',
	'the rotation killed in flight changed nothing');
is($node->safe_psql('postgres', 'SELECT rewrapped, remaining FROM unkey.unkey_vault_rotate()'), '31|0',
	'run again, it re-wraps the rest');
is($node->safe_psql('postgres', 'SELECT rewrapped, remaining FROM unkey.unkey_vault_rotate()'), '0|0',
	'and a third run has nothing to do');
is($node->safe_psql('postgres', "SELECT count(*) FROM unkey.audit_log WHERE event = 'vault.rotate'"), '2',
	'each batch that re-wrapped something is audited');

# the old key is no longer needed
$node->append_conf('postgresql.conf', "unkey.vault_previous_key_file = ''\n");
unlink $key_a;
$node->restart;
is( $node->safe_psql('postgres', qq{
SELECT string_agg(g.plaintext, ' ' ORDER BY k.id) FROM unnest(ARRAY['$rk', '$rr', '$mk']) k(id),
	LATERAL unkey.unkey_get_key(k.id, decrypt => true) g}),
	join(' ', map { $_->[1] } sort { $a->[0] cmp $b->[0] } ([ $rk, $rk_key ], [ $rr, $rr_key ], [ $mk, $migrated_key ])),
	'with the old file gone, every recoverable key decrypts under key B');
is( $node->safe_psql('postgres', qq{
SELECT g.plaintext = c.key FROM unkey.unkey_create_key('$api', recoverable => true) c,
	LATERAL unkey.unkey_get_key(c.key_id, decrypt => true) g}),
	't', 'and new recoverable keys work');

# a server with a wrong key (not the one that wraps the data keys) fails closed
my $key_c = key_file('c.key');
$node->append_conf('postgresql.conf', "unkey.vault_key_file = '$key_c'\n");
$node->restart;
($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT unkey.unkey_get_key('$rk', decrypt => true)");
like($err, qr/ERROR:  55000: the data key of API \w+ is wrapped by root key $id_b, which this server does not have/,
	'a server with another root key refuses to decrypt (55000), naming the key it needs');
is($node->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$rk_key')"), 'VALID',
	'and the key still verifies');
$node->stop;
done_testing();
