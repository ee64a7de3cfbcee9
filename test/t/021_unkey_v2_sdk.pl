# Copyright (c) unkey contributors
#
# Unkey's v2 API with Unkey's official SDK as the client (issue 16): the
# SDK (test/sdk/, @unkey/api pinned in package-lock.json, installed by
# test/check.sh with npm ci) talks HTTP to HttpFront, which maps paths and
# the root key as the README's nginx does and replays PostgREST's statements
# (PostgrestReplay) as the authenticator role switching to the anonymous
# role, which has only USAGE on unkey_v2 and EXECUTE on its functions.  Every
# check the SDK script makes is one test here.  Skipped when Node.js or the
# SDK is not installed.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use HttpFront;

my $sdk = "$FindBin::RealBin/../sdk";
plan skip_all => 'Node.js or the SDK (npm ci in test/sdk) is not installed'
  unless -d "$sdk/node_modules/\@unkey/api" && system('node --version >/dev/null 2>&1') == 0;

my $node = PostgreSQL::Test::Cluster->new('v2_sdk');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'unkey'\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION unkey;
CREATE ROLE web_anon NOLOGIN;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT web_anon TO authenticator;
GRANT USAGE ON SCHEMA unkey_v2 TO web_anon;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA unkey_v2 TO web_anon;
});
sub q1 { return $node->safe_psql('postgres', $_[0]); }
my $app = q1(q{SELECT unkey.unkey_create_api('app')});
my $other = q1(q{SELECT unkey.unkey_create_api('other')});
my $protected = q1(q{SELECT unkey.unkey_create_api('protected', delete_protection => true)});
my %env = (
	APP_API => $app,
	OTHER_API => $other,
	PROTECTED_API => $protected,
	ROOT_ALL => q1(q{SELECT key FROM unkey.unkey_create_root_key('all',
		ARRAY['api.*.create_api', 'api.*.read_api', 'api.*.delete_api', 'api.*.verify_key', 'api.*.create_key',
			  'api.*.read_key', 'api.*.delete_key', 'api.*.update_key', 'rbac.*.add_permission_to_key',
			  'rbac.*.remove_permission_from_key', 'rbac.*.add_role_to_key', 'identity.*.create_identity', 'identity.*.read_identity',
			  'identity.*.update_identity', 'identity.*.delete_identity', 'ratelimit.*.limit', 'ratelimit.*.create_namespace',
			  'ratelimit.*.set_override', 'ratelimit.*.read_override', 'ratelimit.*.delete_override',
			  'rbac.*.create_permission', 'rbac.*.read_permission', 'rbac.*.delete_permission', 'rbac.*.create_role',
			  'rbac.*.read_role', 'rbac.*.delete_role', 'rbac.*.add_permission_to_role', 'rbac.*.remove_permission_from_role',
			  'api.*.read_analytics', 'ratelimit.*.read_analytics'])}),
	ROOT_SCOPED => q1(qq{SELECT key FROM unkey.unkey_create_root_key('scoped',
		ARRAY['api.$app.read_api', 'api.$app.verify_key'])}),
	APP_KEY => q1(qq{SELECT key FROM unkey.unkey_create_key('$app', credits => 2, external_id => 'acme',
		meta => '{"plan": null}', ratelimits => '[{"name": "requests", "limit": 100, "duration": 60000, "autoApply": true}]')}),
	OTHER_KEY => q1(qq{SELECT key FROM unkey.unkey_create_key('$other')}));
$env{OTHER_KEY_ID} = q1(qq{SELECT key_id FROM unkey.unkey_whoami('$env{OTHER_KEY}')});
$env{LEGACY_KEY} = 'legacy_' . join('', map { ('a' .. 'z')[ int rand 26 ] } 1 .. 24);
$env{LEGACY_HASH} = q1(qq{SELECT unkey.unkey_hash_key('$env{LEGACY_KEY}')});
$env{APP_KEYS_BEFORE} = q1(qq{SELECT count(*) FROM unkey.keys WHERE api_id = '$app'});

my ($front, $port) = HttpFront::start(host => $node->host, port => $node->port, dbname => 'postgres',
	user => 'authenticator', schemas => [ 'unkey_v2' ], anon_role => 'web_anon');
$env{UNKEY_BASE_URL} = "http://127.0.0.1:$port";
my ($out, $err) = ('', '');
{
	local @ENV{ keys %env } = values %env;
	IPC::Run::run([ 'node', "$sdk/v2.mjs" ], '>', \$out, '2>', \$err, IPC::Run::timeout(120));
}
kill 'TERM', $front;
waitpid $front, 0;

my $checks = 0;
for (split /\n/, $out)
{
	if (/^(not ok|ok) - (.*)$/)
	{
		$checks++;
		ok($1 eq 'ok', $2);
	}
}
cmp_ok($checks, '>=', 110, "the SDK script ran its checks ($checks)") or diag "$out\n$err";
is($err, '', 'the SDK script wrote nothing to stderr');

# what the SDK was told is what the table holds
is(q1(qq{SELECT remaining FROM unkey.keys WHERE key_hash = decode(unkey.unkey_hash_key('$env{APP_KEY}'), 'base64')}),
	'0', 'the key spent over HTTP has 0 credits left in its row');

# the flow's analytics as the SQL API reads them too: its verifications
# over HTTP, by outcome
my ($flow_key) = $out =~ /^# flow key (key_\w+)$/m;
ok($flow_key, 'the SDK script named its flow key');
q1('SELECT unkey.unkey_flush_events()');
is(q1(qq{SELECT concat_ws(' ', sum(valid), sum(usage_exceeded), sum(expired), sum(total))
		   FROM unkey.unkey_get_verifications('$app', now() - interval '1 hour', key_id => '$flow_key')}),
	'2 1 1 4', "the flow key's verifications over HTTP are in its analytics (the last one after its reroll)");
$node->stop;
done_testing();
