# Copyright (c) unkey contributors
#
# The vault's root key file (issue 14): unkey.vault_key_file is read once
# at server start.
#
# - Without it the server runs, everything but the vault works, and
#   unkey_vault_info() says so.
# - A file of 32 bytes as 64 hex digits, or the same bytes in base64 (with
#   a trailing newline), is accepted: the same key id either way, and the
#   key itself is never in what SQL returns.
# - Every bad file stops the server from starting, with a log line that
#   names the file and the problem: a wrong size, not hex or base64, inside
#   the data directory (also through a symbolic link), readable by others,
#   a relative path, missing.
# - Without the setting, a recoverable key made before still verifies, and
#   every vault call (decrypt, create or reroll recoverable, opt in, rotate)
#   fails closed with 55000 and a hint; nothing is written.
# - unkey.vault_previous_key_file (rotation) needs a current key, a
#   different one, and a good file, or the server does not start.

use strict;
use warnings;

use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('vault_key');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'unkey'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION unkey');

is($node->safe_psql('postgres', 'SELECT configured, key_id IS NULL FROM unkey.unkey_vault_info()'),
	'f|t', 'without unkey.vault_key_file the server runs without a vault key');
my $key = $node->safe_psql('postgres', q{SELECT key FROM unkey.unkey_create_key(unkey.unkey_create_api('vault'))});
is($node->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$key')"), 'VALID',
	'and keys work');

my $dir = tempdir(CLEANUP => 1);
my $hex = '00112233445566778899aabbccddeeff' . 'fedcba98765432100123456789abcdef';
my $bytes = pack('H*', $hex);

# Write a key file (mode 0600 unless said) and point the setting at it
sub key_file
{
	my ($name, $content, $mode) = @_;
	my $path = "$dir/$name";
	open my $fh, '>', $path or die "$path: $!";
	print $fh $content;
	close $fh;
	chmod($mode // 0600, $path);
	return $path;
}

sub use_key_file
{
	my ($path) = @_;
	$node->append_conf('postgresql.conf', "unkey.vault_key_file = '$path'\n");
}

# a good file: the server starts, and the key id is the same for hex and base64
use_key_file(key_file('hex.key', "$hex\n"));
$node->restart;
my ($configured, $id) = split /\|/, $node->safe_psql('postgres', 'SELECT configured, key_id FROM unkey.unkey_vault_info()');
is($configured, 't', 'a file of 64 hex digits is accepted');
like($id, qr/^[0-9a-f]{16}$/, 'unkey_vault_info() gives a key id of 8 bytes');
unlike($id . $node->safe_psql('postgres', 'SELECT unkey.unkey_vault_info()::text'), qr/$hex|0011223344/,
	'and nothing of the key');
use_key_file(key_file('b64.key', encode_base64($bytes)));
$node->restart;
is($node->safe_psql('postgres', 'SELECT key_id FROM unkey.unkey_vault_info()'), $id,
	'the same key in base64 has the same id');
is($node->safe_psql('postgres', "SELECT code FROM unkey.unkey_verify_key('$key')"), 'VALID',
	'and keys still work');

# every bad file stops the server, and says why
my $pgdata = $node->data_dir;
my @bad = (
	[ 'a key of 31 bytes', key_file('short.key', substr($hex, 2) . "\n"), qr/does not hold a key of 32 bytes/ ],
	[ 'neither hex nor base64', key_file('junk.key', "not a key at all\n"), qr/does not hold a key of 32 bytes/ ],
	[ 'an empty file', key_file('empty.key', ''), qr/does not hold a key of 32 bytes/ ],
	[ 'a file readable by others', key_file('open.key', "$hex\n", 0644), qr/can be read by other users than its owner/ ],
	[ 'a file in the data directory', "$pgdata/vault.key", qr/is inside the data directory/ ],
	[ 'a link from outside into the data directory', "$dir/link.key", qr/is inside the data directory/ ],
	[ 'a relative path', 'vault.key', qr/is not an absolute path/ ],
	[ 'a missing file', "$dir/missing.key", qr/cannot be read/ ]);
{
	open my $fh, '>', "$pgdata/vault.key" or die;
	print $fh "$hex\n";
	close $fh;
	chmod 0600, "$pgdata/vault.key";
	symlink("$pgdata/vault.key", "$dir/link.key") or die "symlink: $!";
}
for my $case (@bad)
{
	my ($what, $path, $message) = @$case;
	$node->stop;
	use_key_file($path);
	my $log_offset = -s $node->logfile;
	ok(!$node->start(fail_ok => 1), "$what: the server does not start");
	like(slurp_file($node->logfile, $log_offset), qr/FATAL:  unkey\.vault_key_file "\Q$path\E" $message/,
		"$what: the log says why");
	$node->_update_pid(0);
}

# and a good file again: it starts
use_key_file("$dir/hex.key");
$node->start;
is($node->safe_psql('postgres', 'SELECT key_id FROM unkey.unkey_vault_info()'), $id, 'a good file again: it starts');

# The SQLSTATE and message of a statement that must fail
sub fails_with
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return $ret == 0 ? 'ok' : ($err =~ /ERROR:  (\w{5}: [^\n]*)/ ? $1 : $err);
}

# a recoverable key, made while the server has its key
my $api = $node->safe_psql('postgres', q{SELECT unkey.unkey_create_api('recoverable')});
$node->safe_psql('postgres', "SELECT unkey.unkey_set_api_recoverable('$api', true)");
my ($rk, $rk_key) = split /\|/,
  $node->safe_psql('postgres', "SELECT key_id, key FROM unkey.unkey_create_key('$api', recoverable => true)");
is($node->safe_psql('postgres', "SELECT plaintext FROM unkey.unkey_get_key('$rk', decrypt => true)"), $rk_key,
	'with its key the server shows a recoverable key again');

# without the setting, everything but the vault works, and the vault fails closed
$node->stop;
use_key_file('');
$node->start;
is($node->safe_psql('postgres', 'SELECT configured FROM unkey.unkey_vault_info()'), 'f', 'a server without the setting');
my $closed = qr/^55000: the vault is not configured$/;
like(fails_with("SELECT unkey.unkey_get_key('$rk', decrypt => true)"), qr/^55000: /,
	'without the key: decrypting fails closed (55000)');
like(fails_with("SELECT unkey.unkey_create_key('$api', recoverable => true)"), $closed,
	'without the key: creating a recoverable key fails closed (55000)');
like(fails_with("SELECT unkey.unkey_reroll_key('$rk', '0')"), $closed,
	'without the key: rerolling a recoverable key fails closed (55000), and the old key stays');
like(fails_with("SELECT unkey.unkey_set_api_recoverable(unkey.unkey_create_api('new'), true)"), $closed,
	'without the key: no API can be made recoverable (55000)');
like(fails_with('SELECT unkey.unkey_vault_rotate()'), $closed, 'without the key: nothing to rotate with (55000)');
my ($ret, $out, $err) = $node->psql('postgres', "SELECT unkey.unkey_create_key('$api', recoverable => true)");
like($err, qr/HINT:  Set unkey.vault_key_file to a file outside the data directory/, 'and the hint names the setting');
is( $node->safe_psql('postgres', "SELECT v.code, g.plaintext IS NULL FROM unkey.unkey_verify_key('$rk_key') v,
                                   unkey.unkey_get_key('$rk') g"),
	'VALID|t', 'the recoverable key itself verifies, and reads without decrypt');
is($node->safe_psql('postgres', "SELECT count(*) FROM unkey.keys WHERE api_id = '$api'"), '1',
	'nothing was written by the refused calls');

# a previous key file (rotation) needs a current one, and another key
$node->stop;
$node->append_conf('postgresql.conf', "unkey.vault_previous_key_file = '$dir/b64.key'\n");
my $log_offset = -s $node->logfile;
ok(!$node->start(fail_ok => 1), 'a previous key without a current one: the server does not start');
like(slurp_file($node->logfile, $log_offset),
	qr/FATAL:  unkey\.vault_previous_key_file "\Q$dir\E\/b64\.key" is set but unkey\.vault_key_file is not/, 'the log says why');
$node->_update_pid(0);
use_key_file("$dir/hex.key");
$log_offset = -s $node->logfile;
ok(!$node->start(fail_ok => 1), 'the same key as current and previous: the server does not start');
like(slurp_file($node->logfile, $log_offset),
	qr/FATAL:  unkey\.vault_previous_key_file "\Q$dir\E\/b64\.key" holds the same key as unkey\.vault_key_file/,
	'the log says why');
$node->_update_pid(0);
$node->append_conf('postgresql.conf', "unkey.vault_previous_key_file = '$dir/short.key'\n");
$log_offset = -s $node->logfile;
ok(!$node->start(fail_ok => 1), 'a bad previous key file: the server does not start');
like(slurp_file($node->logfile, $log_offset),
	qr/FATAL:  unkey\.vault_previous_key_file "\Q$dir\E\/short\.key" does not hold a key of 32 bytes/, 'the log says why');
$node->_update_pid(0);
done_testing();
