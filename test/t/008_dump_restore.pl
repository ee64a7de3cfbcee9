# Copyright (c) unkey contributors
#
# pg_dump and restore: every table of the extension is registered with
# pg_extension_config_dump, so a dump of a database carries its APIs, keys,
# identities, roles, permissions, rate-limit configs and overrides,
# verification events and audit log, and the audit log's identity sequence.
# A database restored from a custom-format dump (pg_restore) and from a plain
# dump (psql) must hold the same rows in every table of schema unkey, verify
# the same plaintext keys with the same outcomes, continue the credits from
# where they were, and go on writing audit rows after the restored ones.

use strict;
use warnings;

use Digest::SHA qw(sha256_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
# a vault root key outside the data directory, for a recoverable key
my $key_dir = PostgreSQL::Test::Utils::tempdir;
open my $kf, '>', "$key_dir/vault.key" or die;
print $kf join('', map { sprintf '%02x', int rand 256 } 1 .. 32), "\n";
close $kf;
chmod 0600, "$key_dir/vault.key";
# the pinned clock keeps refills and rate-limit windows still for the whole run
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
unkey.test_now = '2026-01-15 10:00:00+00'
unkey.vault_key_file = '$key_dir/vault.key'
});
$node->start;

my $src = 'unkey_src';
$node->safe_psql('postgres', "CREATE DATABASE $src");
$node->safe_psql('postgres', 'CREATE ROLE app_verifier LOGIN');

sub q_src { return $node->safe_psql($src, $_[0]); }
sub q_db  { return $node->safe_psql($_[0], $_[1]); }

# one row of a set-returning call, split on |
sub row { return split /\|/, $_[0], -1; }

q_src(q{
CREATE EXTENSION unkey;
GRANT USAGE ON SCHEMA unkey TO app_verifier;
GRANT EXECUTE ON FUNCTION unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet) TO app_verifier;
});

############################################################################
# the source database: one of everything
############################################################################

my $api = q_src("SELECT unkey.unkey_create_api('main', default_prefix => 'sk')");
my $api_ip = q_src(q{
SELECT unkey.unkey_create_api('internal', ip_whitelist => '{10.0.0.0/8}', delete_protection => true)});
my $api_gone = q_src("SELECT unkey.unkey_create_api('gone')");
q_src("SELECT unkey.unkey_delete_api('$api_gone')");

q_src(q{SELECT unkey.unkey_create_permission('Read documents', 'documents.read', 'read them')});
q_src(q{
SELECT unkey.unkey_create_role('reader', 'reads', ARRAY['documents.read', 'documents.list'])});
q_src(q{SELECT unkey.unkey_create_role('admin', NULL, ARRAY['documents.*'])});

q_src(q{
SELECT unkey.unkey_create_identity('acme', '{"plan": "pro"}',
	'[{"name": "requests", "limit": 1000, "duration": 60000, "autoApply": true}]')});
q_src(q{SELECT unkey.unkey_set_identity_ratelimit('acme', 'tokens', 5000, '1 hour')});

# credits with a daily refill, spent below
my ($credits_id, $credits_key) = row(q_src(qq{
SELECT key_id, key FROM unkey.unkey_create_key('$api', name => 'credits', credits => 10,
	refill_interval => 'daily', refill_amount => 10)}));

# meta and an identity created by create_identity
my ($meta_id, $meta_key) = row(q_src(qq{
SELECT key_id, key FROM unkey.unkey_create_key('$api', name => 'meta',
	meta => '{"tier": "gold", "n": 1}', external_id => 'acme')}));

# roles, direct permissions, a key rate limit and an identity upserted by external_id
my ($perm_id, $perm_key) = row(q_src(qq{
SELECT key_id, key FROM unkey.unkey_create_key('$api', name => 'perm', external_id => 'globex',
	roles => '{reader}', permissions => '{billing.write}',
	ratelimits => '[{"name": "calls", "limit": 1000, "duration": 60000, "autoApply": true}]')}));

my ($deleted_id, $deleted_key) =
  row(q_src("SELECT key_id, key FROM unkey.unkey_create_key('$api', name => 'deleted')"));
q_src("SELECT unkey.unkey_delete_key('$deleted_id')");

my ($disabled_id, $disabled_key) = row(q_src(
		"SELECT key_id, key FROM unkey.unkey_create_key('$api', name => 'disabled', enabled => false)"));
my ($expired_id, $expired_key) = row(q_src(qq{
SELECT key_id, key FROM unkey.unkey_create_key('$api', name => 'expired', expires => '2026-01-01 00:00:00+00')}));
my ($ip_id, $ip_key) = row(q_src(
		"SELECT key_id, key FROM unkey.unkey_create_key('$api_ip', prefix => 'int')"));

# rerolled: the old key stays valid for a day, the new one copies its settings
my ($old_id, $old_key) = row(q_src(qq{
SELECT key_id, key FROM unkey.unkey_create_key('$api', name => 'rolled', roles => '{admin}')}));
my ($new_id, $new_key) =
  row(q_src("SELECT key_id, key FROM unkey.unkey_reroll_key('$old_id', '1 day')"));

# a key migrated by the hash of a plaintext that only we know
my $mig_key = 'mig_' . join('', map { ('A' .. 'Z', 'a' .. 'z', 0 .. 9)[ int rand 62 ] } 1 .. 24);
my $mig_hash = sha256_base64($mig_key) . '=';
is(q_src("SELECT unkey.unkey_hash_key('$mig_key')"), $mig_hash, 'Perl and the extension hash alike');
my $migrated = q_src(qq{
SELECT migrated || failed FROM unkey.unkey_migrate_keys('$api',
	'[{"hash": "$mig_hash", "name": "imported", "credits": 5, "external_id": "acme",
	   "permissions": ["documents.read"]}]')});
my ($mig_id) = $migrated =~ /"keyId": "(key_[^"]+)"/;
ok($mig_id, 'the key was migrated by its hash') or diag $migrated;

# a recoverable key: its ciphertext and its API's wrapped data key are table rows too
my $api_vault = q_src("SELECT unkey.unkey_create_api('vault')");
q_src("SELECT unkey.unkey_set_api_recoverable('$api_vault', true)");
my ($rec_id, $rec_key) =
  row(q_src("SELECT key_id, key FROM unkey.unkey_create_key('$api_vault', recoverable => true)"));

# a root key of the v2 API: its API is created with it, its grants are a table row
my ($root_id, $root_key) =
  row(q_src(q{SELECT key_id, key FROM unkey.unkey_create_root_key('ci', ARRAY['api.*.read_api'])}));

# the PostgREST gateway's settings and a route
q_src("SELECT unkey.unkey_gateway_configure('$api')");
q_src(q{SELECT unkey.unkey_gateway_set_route('GET', '/rpc/report', permissions => 'documents.read')});

# changes that write audit rows
q_src(qq{SELECT FROM unkey.unkey_update_key('$meta_id', '{"name": "meta2", "meta": {"tier": "platinum"}}')});
q_src(qq{SELECT FROM unkey.unkey_update_credits('$mig_id', 'increment', 3)});
q_src(qq{SELECT unkey.unkey_set_key_ratelimit('$meta_id', 'burst', 500, '10 seconds', true)});
q_src(qq{SELECT unkey.unkey_add_key_permissions('$perm_id', '{documents.write}')});
q_src(q{SELECT unkey.unkey_update_identity('acme', '{"plan": "enterprise"}')});

# standalone limits: the namespace is created on first use, then overridden
q_src(q{SELECT FROM unkey.unkey_ratelimit('api.requests', 'user_1', 10, '1 minute')});
# a limit used up in the source: a restored copy, with the same namespace id, must not share it
q_src(q{SELECT FROM unkey.unkey_ratelimit('db.scope', 'u1', 2, '1 minute')}) for 1 .. 2;
is( q_src(q{SELECT success FROM unkey.unkey_ratelimit('db.scope', 'u1', 2, '1 minute')}),
	'f', 'the source used up its limit');
my $override_vip = q_src(q{SELECT unkey.unkey_set_override('api.requests', 'vip', 0, '1 minute')});
q_src(q{SELECT unkey.unkey_set_override('api.requests', 'user_*', 100, '1 minute')});

# verifications: three credits of the credits key, one of the migrated key, and every outcome once
# one statement each: a function scan in FROM runs once however often it is rescanned
is( join(',', map { q_src("SELECT code, credits FROM unkey.unkey_verify_key('$credits_key')") } 1 .. 3),
	'VALID|9,VALID|8,VALID|7',
	'the credits key spends 3 credits before the dump');
is(q_src("SELECT code, credits FROM unkey.unkey_verify_key('$mig_key')"),
	'VALID|7', 'the migrated key verifies with its plaintext before the dump');
q_src(qq{
SELECT unkey.unkey_verify_key('$meta_key', tags => '{path=/a}');
SELECT unkey.unkey_verify_key('$perm_key', permissions => 'documents.read AND billing.write');
SELECT unkey.unkey_verify_key('$deleted_key');
SELECT unkey.unkey_verify_key('$disabled_key');
SELECT unkey.unkey_verify_key('$expired_key');
SELECT unkey.unkey_verify_key('${credits_key}x');
SELECT unkey.unkey_verify_key('$ip_key', ip => '10.1.2.3');
});

############################################################################
# what the source looks like, table by table
############################################################################

# every ordinary table and sequence of the schema, so a new one is covered without editing this test
my @tables = split /\n/, q_src(q{
SELECT relname FROM pg_class WHERE relnamespace = 'unkey'::regnamespace AND relkind = 'r' ORDER BY 1});
my @sequences = split /\n/, q_src(q{
SELECT relname FROM pg_class WHERE relnamespace = 'unkey'::regnamespace AND relkind = 'S' ORDER BY 1});
cmp_ok(scalar @tables, '>=', 14, 'schema unkey has its tables');
ok((grep { $_ eq 'audit_log_id_seq' } @sequences), 'the audit log has its identity sequence');

# count and md5 of the sorted text of all rows, per table
my $table_sql = join "\nUNION ALL ", map {
	qq{SELECT '$_', count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE "C"), ''))
	     FROM unkey."$_" t}
} @tables;
my $sequence_sql = join "\nUNION ALL ",
  map { qq{SELECT '$_', pg_sequence_last_value('unkey."$_"')} } @sequences;

sub table_state
{
	my ($db) = @_;
	my %state;
	for (split /\n/, $node->safe_psql($db, "$table_sql ORDER BY 1"))
	{
		my ($name, $count, $md5) = split /\|/;
		$state{$name} = { count => $count, md5 => $md5 };
	}
	return \%state;
}

sub sequence_state
{
	my ($db) = @_;
	my %state = map { (split /\|/, $_, -1) } split /\n/, $node->safe_psql($db, $sequence_sql);
	return \%state;
}

# readable digests of what matters most
my %digest_sql = (
	'keys' => q{
SELECT string_agg(concat_ws(':', id, api_id, name, identity_id, remaining, enabled, deleted_at IS NOT NULL),
				  E'\n' ORDER BY id) FROM unkey.keys},
	'identities' => q{
SELECT string_agg(concat_ws(':', id, external_id, meta, unkey.unkey_get_identity_ratelimits(id)),
				  E'\n' ORDER BY id) FROM unkey.identities},
	'roles' => q{
SELECT string_agg(concat_ws(':', role_id, name, description, permissions), E'\n' ORDER BY name)
  FROM unkey.unkey_list_roles()},
	'permissions' => q{
SELECT string_agg(concat_ws(':', permission_id, slug, name, description), E'\n' ORDER BY slug)
  FROM unkey.unkey_list_permissions()},
	'key grants' => q{
SELECT string_agg(concat_ws(':', k.id, g.roles, g.permissions, g.ratelimits), E'\n' ORDER BY k.id)
  FROM unkey.keys k CROSS JOIN LATERAL unkey.unkey_get_key(k.id) g
 WHERE k.deleted_at IS NULL AND k.api_id <> (SELECT id FROM unkey.apis WHERE name = 'gone')},
	'overrides' => q{
SELECT string_agg(concat_ws(':', override_id, namespace_id, identifier, "limit", duration), E'\n' ORDER BY identifier)
  FROM unkey.unkey_list_overrides('api.requests')},
	'verification events' => q{
SELECT string_agg(concat_ws(':', key_id, outcome, spent_credits, tags), E'\n' ORDER BY time, key_id, outcome)
  FROM unkey.verification_events},
	'audit log' => q{
SELECT string_agg(concat_ws(':', id, time, event, actor, correlation_id, targets, description), E'\n' ORDER BY id)
  FROM unkey.audit_log},);

sub digests
{
	my ($db) = @_;
	return { map { ($_ => $node->safe_psql($db, $digest_sql{$_})) } keys %digest_sql };
}

# unkey_get_key of every live key, before the restored databases verify anything
my $get_keys_sql = q{
SELECT string_agg(g::text, E'\n' ORDER BY k.id)
  FROM unkey.keys k CROSS JOIN LATERAL unkey.unkey_get_key(k.id) g
 WHERE k.deleted_at IS NULL AND k.api_id IN (SELECT id FROM unkey.apis WHERE deleted_at IS NULL)};

# a retention that drops nothing, so its table has a row; the buffered events written
q_src(q{SELECT unkey.unkey_set_retention('100 years')});
q_src(q{SELECT unkey.unkey_flush_events()});
# the event writer materialises the closed days and months once a minute: do
# it now, so that the rollups (and rollup_state) stay still while compared
q_src(q{SELECT unkey._materialize_rollups(now())});
my $src_tables    = table_state($src);
my $src_sequences = sequence_state($src);
my $src_digests   = digests($src);
my $src_get_keys  = q_src($get_keys_sql);
my $src_max_audit = q_src('SELECT max(id) FROM unkey.audit_log');

# an empty table would compare equal whether or not pg_dump carries it; the
# event writer also creates today's and tomorrow's partitions ahead of time,
# empty by design, so for the partitioned event tables the parent must have rows
for my $t (grep { !/_events_p\d{8}$/ } @tables)
{
	cmp_ok($src_tables->{$t}{count}, '>', 0,
		"source table $t has rows (extend the setup for a new table)");
}
for my $parent ('verification_events', 'ratelimit_events')
{
	cmp_ok(q_src(qq{SELECT count(*) FROM unkey.$parent}), '>', 0,
		"source table $parent has rows in its partitions");
}
like($src_digests->{'audit log'}, qr/key\.reroll.*\n.*key\.create.*Migrated 1 keys/s,
	'the audit log recorded the changes');

############################################################################
# dump once, restore twice
############################################################################

my $dir = PostgreSQL::Test::Utils::tempdir;
$node->command_ok(
	[ 'pg_dump', '--format=custom', "--file=$dir/unkey.dump", '--dbname=' . $node->connstr($src) ],
	'pg_dump in custom format');
$node->command_ok(
	[ 'pg_dump', '--format=plain', "--file=$dir/unkey.sql", '--dbname=' . $node->connstr($src) ],
	'pg_dump in plain format');

my %restore = (
	unkey_restored => [
		'pg_restore', '--exit-on-error', '--single-transaction',
		'--dbname=' . $node->connstr('unkey_restored'), "$dir/unkey.dump"
	],
	unkey_restored_plain => [
		'psql', '-X', '-q', '--set=ON_ERROR_STOP=1', '--single-transaction',
		"--file=$dir/unkey.sql", '--dbname=' . $node->connstr('unkey_restored_plain')
	]);

for my $db (sort keys %restore)
{
	$node->command_ok([ 'createdb', $db ], "createdb $db");
	$node->command_ok($restore{$db}, "restore into $db");

	# the same rows in every table, and the same sequence positions
	my $tables = table_state($db);
	is_deeply([ sort keys %$tables ], [ sort keys %$src_tables ], "$db: the same tables");
	for my $t (@tables)
	{
		is($tables->{$t}{count}, $src_tables->{$t}{count}, "$db: $t has the same row count");
		is($tables->{$t}{md5}, $src_tables->{$t}{md5}, "$db: $t has the same rows");
	}
	is_deeply(sequence_state($db), $src_sequences, "$db: the sequences continue where they were");

	my $digests = digests($db);
	for my $d (sort keys %digest_sql)
	{
		is($digests->{$d}, $src_digests->{$d}, "$db: $d match");
	}
	is(q_db($db, $get_keys_sql), $src_get_keys, "$db: unkey_get_key shows every live key as before");
	is( q_db($db, qq{SELECT name, meta, external_id, identity_meta, roles, permissions
	                   FROM unkey.unkey_get_key('$meta_id')}),
		'meta2|{"tier": "platinum"}|acme|{"plan": "enterprise"}|{}|{}',
		"$db: unkey_get_key works for a restored key");
	is(q_db($db, "SELECT plaintext FROM unkey.unkey_get_key('$rec_id', decrypt => true)"), $rec_key,
		"$db: a restored recoverable key decrypts (same server, same key file)");
	is( q_db($db, qq{SELECT unkey_v2."apis.getApi"('{"apiId": "$api"}') -> 'data' ->> 'id'
					   FROM (SELECT set_config('request.headers', '{"x-unkey-root-key": "Bearer $root_key"}', false)) s}),
		$api, "$db: a restored root key answers a v2 call");

	# the same plaintext keys, the same outcomes; credits go on from where they were
	my @cases = (
		[ "'$credits_key'", 'VALID|6|credits|', 'the credits key spends its 4th credit' ],
		[ "'$credits_key'", 'VALID|5|credits|', 'and its 5th' ],
		[ "'$mig_key'", 'VALID|6|imported|acme', 'the migrated key verifies with its original plaintext' ],
		[ "'$meta_key'", 'VALID||meta2|acme', 'the key with meta and an identity' ],
		[ "'$perm_key', permissions => 'documents.read AND billing.write AND documents.write'",
			'VALID||perm|globex', 'the key with roles and permissions' ],
		[ "'$perm_key', permissions => 'documents.*'",
			'INSUFFICIENT_PERMISSIONS||perm|globex', 'a permission it lacks' ],
		[ "'$deleted_key'", 'NOT_FOUND|||', 'the soft-deleted key' ],
		[ "'$disabled_key'", 'DISABLED||disabled|', 'the disabled key' ],
		[ "'$expired_key'", 'EXPIRED||expired|', 'the expired key' ],
		[ "'$old_key', permissions => 'documents.*'", 'VALID||rolled|', 'the rerolled key, until it expires' ],
		[ "'$new_key', permissions => 'documents.*'", 'VALID||rolled|', 'its replacement, with its role' ],
		[ "'$ip_key', ip => '10.9.9.9'", 'VALID|||', 'the whitelisted API, from inside' ],
		[ "'$ip_key', ip => '192.0.2.1'", 'FORBIDDEN|||', 'the whitelisted API, from outside' ],
		[ "'$credits_key', api_id => '$api_ip'", 'NOT_FOUND|||', 'a key of another API (D4)' ],
		[ "'${mig_key}x'", 'NOT_FOUND|||', 'an unknown key' ]);
	for my $c (@cases)
	{
		is( q_db($db, qq{SELECT code, credits, name, external_id FROM unkey.unkey_verify_key($c->[0])}),
			$c->[1], "$db: $c->[2]");
	}
	is( q_db($db, qq{SELECT ratelimits -> 0 ->> 'name', ratelimits -> 0 ->> 'limit'
	                   FROM unkey.unkey_verify_key('$perm_key')}),
		'calls|1000', "$db: the key rate limit applies");
	is( q_db($db, q{SELECT success, "limit", override_id FROM unkey.unkey_ratelimit('api.requests', 'vip', 10, '1 minute')}),
		"f|0|$override_vip", "$db: the restored override applies");

	is( q_db($db, q{SELECT success, remaining FROM unkey.unkey_ratelimit('db.scope', 'u1', 2, '1 minute')}),
		't|1', "$db: rate-limit counters belong to the database, not to the copied ids");

	# the grant to an application role came along
	is( q_db($db, "SET ROLE app_verifier; SELECT code FROM unkey.unkey_verify_key('$meta_key')"),
		'VALID', "$db: the application role can still verify");

	# new audit rows go after the restored ones
	my ($ret, $stdout, $stderr) =
	  $node->psql($db, "SELECT unkey.unkey_create_api('after restore')");
	is($ret, 0, "$db: a change after the restore succeeds") or diag $stderr;
	is( q_db($db, qq{SELECT count(*), bool_and(id > $src_max_audit)
	                   FROM unkey.audit_log WHERE event = 'api.create' AND description LIKE 'Created API %'
	                    AND id > $src_max_audit}),
		'1|t', "$db: its audit row gets an id after every restored one");
	is( q_db($db, qq{SELECT max(id) > $src_max_audit, count(*) = count(DISTINCT id) FROM unkey.audit_log}),
		't|t', "$db: audit ids stay unique");
	($ret, $stdout, $stderr) =
	  $node->psql($db, qq{SELECT FROM unkey.unkey_update_credits('$credits_id', 'decrement', 1)});
	is($ret, 0, "$db: credits can be changed after the restore") or diag $stderr;
	is(q_db($db, "SELECT code, credits FROM unkey.unkey_verify_key('$credits_key')"),
		'VALID|3', "$db: and verification sees the change");
}

# the restored databases spent their own credits, not the source's
is( q_src("SELECT credits FROM unkey.unkey_get_key('$credits_id')"),
	'7', 'the source keeps its balance');
is_deeply(table_state($src), $src_tables, 'the source is unchanged');

$node->stop;

done_testing();
