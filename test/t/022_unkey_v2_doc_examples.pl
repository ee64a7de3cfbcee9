# Copyright (c) unkey contributors
#
# Unkey's documented v2 examples through our v2 layer (issue 16): the 143
# request and response examples of Unkey's documentation (extracted with the
# page each comes from into test/sdk/doc_examples.json) are sent, one by
# one, to unkey_v2."<endpoint>" as PostgREST would call it, with a root key
# that holds every permission, and the answer is compared field by field
# with the documented one:
#
# - the HTTP status must be the documented one;
# - every field the example shows must be in our answer with the same value,
#   except values that depend on time, randomness or wording (ids, keys,
#   starts, times, cursors, requestId, error details and messages: only
#   their JSON type is compared) and empty or null optional fields, which
#   Unkey's server leaves out as we do (Go's omitempty);
# - an error's type is compared by its code (the documentation links
#   /docs/api-reference/errors-v2/<code>, the server /docs/errors/<code>).
#
# The documentation's placeholders name a fixture that is built first (APIs,
# keys, identities, permissions, roles, namespaces and overrides with the
# documented ids and names); each example runs in its own transaction,
# rolled back, after its own setup when it needs one.  Where an example
# contradicts Unkey's spec and server, the difference is listed below with
# the reason, and the test asserts that it is still there, so the list
# cannot go stale.

use strict;
use warnings;

use B;
use DBI;
use FindBin;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $examples = decode_json(slurp_file("$FindBin::RealBin/../sdk/doc_examples.json"));

my $node = PostgreSQL::Test::Cluster->new('v2_docs');
$node->init;
my $vault_key = $node->basedir . '/vault.key';
open my $fh, '>', $vault_key or die;
print $fh join('', map { sprintf '%02x', int rand 256 } 1 .. 32);
close $fh;
chmod 0600, $vault_key;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'unkey'\nunkey.vault_key_file = '$vault_key'\nunkey.test_now = '2026-06-01 00:00:00+00'\n");
$node->start;

# The fixture: what the examples' placeholders name
$node->safe_psql('postgres', q{
CREATE EXTENSION unkey;
INSERT INTO unkey.apis (id, name, created_at, delete_protection)
SELECT id, name, unkey.now(), id = 'api_default_protected'
  FROM (VALUES ('api_123_docs', 'Production API'), ('api_1234567890abcdef', 'Production API'), ('api_1234', 'Production API'),
			   ('api_123abc', 'Production API'), ('api_your_api_id', 'Production API'),
			   ('api_default_protected', 'Protected API'), ('api_recoverable', 'Recoverable API')) v (id, name);
SELECT unkey.unkey_set_api_recoverable('api_recoverable', true);
SELECT unkey.unkey_create_permission(name, slug, description)
  FROM (VALUES ('documents.read', 'documents.read', 'Read access to documents'),
			   ('documents.write', 'documents.write', 'Write access to documents'),
			   ('comments.moderate', 'comments.moderate', 'Moderate comments'),
			   ('admin', 'admin', NULL), ('permission_1', 'permission_1', NULL), ('permission_3', 'permission_3', NULL)) v (name, slug, description);
SELECT unkey.unkey_create_role('editor', 'Content editor role', ARRAY['documents.read']);
SELECT unkey.unkey_create_role('moderator', NULL, NULL);
SELECT unkey.unkey_create_identity('customer_789', '{}');
SELECT unkey.unkey_create_identity('user_123', '{"email": "user@example.com", "plan": "pro"}',
	'[{"name": "requests", "limit": 1000, "duration": 3600000}]');
-- keys by their documented plaintexts, then given their documented ids
SELECT unkey.unkey_migrate_keys('api_123_docs', jsonb_build_array(
	jsonb_build_object('plaintext', 'sk_1234abcdef', 'name', 'Production API Key', 'meta', '{"plan": "enterprise"}'::jsonb,
		'external_id', 'customer_789', 'expires', '2027-01-01 00:00:00+00', 'credits', 995, 'refill_interval', 'monthly',
		'refill_amount', 1000, 'refill_day', 1,
		'ratelimits', '[{"name": "api_requests", "limit": 100, "duration": 60000, "autoApply": true}]'::jsonb,
		'roles', '["editor"]'::jsonb, 'permissions', '["documents.read"]'::jsonb),
	jsonb_build_object('plaintext', 'sk_123', 'name', 'Limits',
		'ratelimits', '[{"name": "api_requests", "limit": 1000, "duration": 3600000, "autoApply": true},
						{"name": "heavy_operations", "limit": 10, "duration": 60000},
						{"name": "expensive_operations", "limit": 5, "duration": 60000}]'::jsonb,
		'permissions', '["permission_1", "permission_3"]'::jsonb),
	jsonb_build_object('plaintext', 'sk_1234', 'name', 'Admin', 'permissions', '["admin"]'::jsonb),
	jsonb_build_object('plaintext', 'sk_live_1234', 'meta', '{"environment": "production"}'::jsonb),
	jsonb_build_object('plaintext', 'sk_disabled', 'enabled', false),
	jsonb_build_object('plaintext', 'sk_refill', 'credits', 100, 'refill_interval', 'daily', 'refill_amount', 100),
	jsonb_build_object('plaintext', 'sk_remaining', 'credits', 100),
	jsonb_build_object('plaintext', 'your_api_key_here', 'name', 'Production API Key', 'external_id', 'customer_789',
		'roles', '["editor"]'::jsonb,
		'ratelimits', '[{"name": "expensive-operations", "limit": 5, "duration": 60000}]'::jsonb)));
UPDATE unkey.keys SET id = v.id
  FROM (VALUES ('sk_1234abcdef', 'key_123')) v (plain, id)
 WHERE key_hash = unkey._key_hash(v.plain);
SELECT unkey.unkey_ratelimit(ns, 'fixture', 1000, '1 hour') FROM unnest(ARRAY['email_sending', 'api_requests']) ns;
SELECT unkey.unkey_set_override('email_sending', 'user_123', 100, '1 hour');
SELECT unkey.unkey_set_override('api_requests', 'premium_user_456', 10000, '1 hour');
});
# a recoverable key keeps its id: the id is sealed with its ciphertext
my $recoverable_id = $node->safe_psql('postgres',
	q{SELECT key_id FROM unkey.unkey_create_key('api_recoverable', recoverable => true)});
my %roots = map {
	my ($name, $grants) = @$_;
	($name => $node->safe_psql('postgres', "SELECT key FROM unkey.unkey_create_root_key('$name', ARRAY[$grants])"))
} ([ docs => q{'api.*.create_api', 'api.*.read_api', 'api.*.delete_api', 'api.*.update_api', 'api.*.create_key',
	'api.*.read_key', 'api.*.update_key', 'api.*.delete_key', 'api.*.verify_key', 'api.*.encrypt_key', 'api.*.decrypt_key',
	'identity.*.create_identity', 'identity.*.read_identity', 'identity.*.update_identity', 'identity.*.delete_identity',
	'ratelimit.*.limit', 'ratelimit.*.create_namespace', 'ratelimit.*.set_override', 'ratelimit.*.read_override',
	'ratelimit.*.delete_override', 'rbac.*.create_permission', 'rbac.*.read_permission', 'rbac.*.delete_permission',
	'rbac.*.create_role', 'rbac.*.read_role', 'rbac.*.delete_role', 'rbac.*.add_permission_to_key',
	'rbac.*.remove_permission_from_key', 'rbac.*.add_role_to_key', 'rbac.*.remove_role_from_key',
	'rbac.*.add_permission_to_role', 'rbac.*.remove_permission_from_role'} ],
   [ read_only => q{'api.*.read_api', 'api.*.read_key'} ]);

# Placeholders of the documentation, and the fixture values they stand for;
# an empty placeholder ("") by the field it fills
my %placeholder = (
	'api_123' => 'api_123_docs',	# shorter than the spec's minLength of 8
	'${API_ID}' => 'api_123_docs', '{API_ID}' => 'api_recoverable', 'api_XXX' => 'api_123_docs',
	'{KEY_ID}' => $recoverable_id, 'key_your_key_id' => 'key_123', 'some_api_key' => 'your_api_key_here',
	'optional_cursor_for_pagination' => undef, 'optional_cursor' => undef, 'cursor_from_previous_response' => undef,
	'optional_filter_by_external_id' => 'customer_789', 'optional_filter' => 'customer_789');
my %empty_as = (apiId => 'api_123_docs', keyId => 'key_123', key => 'sk_1234abcdef');

# What an example needs besides the fixture: setup SQL run in its
# transaction, a request for a response shown without one, the values of
# its empty placeholders, the root key
my $key_123 = q{(SELECT key_hash FROM unkey.keys WHERE id = 'key_123')};
my %needs = (
	# the identity, permission and role the fixture has, created again
	(map { $_ => { setup => q{SELECT unkey.unkey_delete_identity('user_123')} } } 10, 11, 87, 110),
	39 => { setup => q{SELECT unkey.unkey_delete_permission('documents.read')} },
	(map { $_ => { setup => q{SELECT unkey.unkey_delete_role('editor')} } } 43, 50),
	# the page's key: the only one of customer_789, named otherwise
	2 => { setup => q{UPDATE unkey.keys SET identity_id = NULL WHERE key_hash = unkey._key_hash('your_api_key_here');
		UPDATE unkey.keys SET name = 'Production Key' WHERE id = 'key_123'} },
	# the same key verified once more: 996 credits, then 995, no expiry, its limit as the page shows it
	18 => { setup => qq{UPDATE unkey.keys SET remaining = 996, expires = NULL WHERE id = 'key_123';
		UPDATE unkey.key_ratelimits SET "limit" = 1000, duration_ms = 3600000 WHERE key_hash = $key_123} },
	20 => { setup => q{SELECT unkey.unkey_update_key('key_123', '{"ratelimits": [
		{"name": "api_requests", "limit": 100, "duration": 60000, "autoApply": true},
		{"name": "heavy_operations", "limit": 10, "duration": 60000}]}')} },
	21 => { setup => q{UPDATE unkey.keys SET updated_at = unkey.now() WHERE id = 'key_123'} },
	# the page's key has documents.archive and documents.write
	31 => { setup => q{SELECT unkey.unkey_create_permission('Documents Archive', 'documents.archive', 'Allows archiving documents');
		SELECT unkey.unkey_update_key('key_123', '{"permissions": ["documents.archive", "documents.write"]}')} },
	# the page's editor role grants "document.read"
	(map { $_ => { setup => q{SELECT unkey.unkey_create_permission('document reader', 'document.read', 'Read documents but don''t edit them');
		SELECT unkey.unkey_set_role_permissions('editor', ARRAY['document.read'])} } } 34, 37),
	38 => { setup => q{SELECT unkey.unkey_create_role('admin')} },
	# the permissions page's editor role
	(map { $_ => { setup => q{SELECT unkey.unkey_set_role_permissions('editor', ARRAY['documents.read', 'documents.write', 'comments.moderate'])} } } 45, 46),
	63 => { setup => q{SELECT unkey.unkey_set_override('api_requests', 'premium_user', 10000, '1 hour')} },
	71 => { setup => q{SELECT unkey.unkey_create_role(r) FROM unnest(ARRAY['role1', 'role2', 'role3']) r} },
	74 => { request => { key => 'sk_1234', permissions => 'admin' } },
	76 => { empty => { key => 'sk_disabled' } },
	89 => { empty => { key => 'sk_refill' } },
	(map { $_ => { empty => { key => 'sk_remaining' } } } 91, 92),
	103 => { root => 'read_only' },
	123 => { request => { key => 'sk_123', permissions => 'permission_1 AND AND permission_2' } },
);

# Where an example contradicts Unkey's spec or its server: the path that
# differs, and why (the test checks that it still differs)
my $later_page = 'the example shows a further page; the fixture fits on one';
my %differs = (
	2 => { '.pagination' => $later_page, '.data[0].externalId' => 'v1\'s field: the spec\'s KeyResponseData has identity.externalId' },
	13 => { '.data' => 'Unkey\'s cursor is its own opaque value (here base64 of key_1234); ours is the last id of the page',
		'.pagination.cursor' => $later_page },
	21 => { '.data.id' => 'the spec names it keyId (KeyResponseData)' },
	25 => { '.data.credits' => 'the spec answers KeyCreditsData itself as data: {remaining, refill}' },
	29 => { '.data' => 'the page shows one of the two permissions the key has afterwards' },
	32 => { '.data[' => 'the page names its permissions otherwise than the permissions page that creates them; we list by slug' },
	41 => { '.data' => 'permissionId is a pre-release name: the spec lists Permission objects with id', '.pagination' => $later_page },
	45 => { '.data.permissions[' => 'the spec answers a role\'s permissions as Permission objects, not slugs' },
	46 => { '.data' => 'roleId is a pre-release name, and the spec answers Permission objects, not slugs', '.pagination' => $later_page },
	39 => { '.data' => 'the spec answers {permissionId} alone (V2PermissionsCreatePermissionResponseData)' },
	(map { $_ => { status => 'slug is required by the spec (V2PermissionsCreatePermissionRequestBody)' } } 49, 51, 115),
	56 => { '.data' => 'the spec answers the overrides as data with pagination, not data.overrides' },
	85 => { status => 'ratelimit is v1\'s field: v2 takes ratelimits' },
	96 => { '.error.errors[0].fix' => 'Unkey\'s schema validator leaves fix out (pkg/zen/validation), as we do' },
	98 => { status => 'Unkey\'s server answers 412 protected_resource (its error middleware), as the spec says', '.error.status' => 'the same',
		'.error.title' => 'the same' },
	(map { $_ => { status => 'an outage of Unkey\'s service: the same request succeeds here', '.error' => 'the same' } } 100, 101),
	102 => { status => 'no API here is protected by the system; an unknown one is 404', '.error' => 'the same' },
	103 => { status => 'Unkey\'s server masks a missing create_key as 404 api_not_found (keys.createKey handler)', '.error' => 'the same' },
	107 => { '.error.title' => 'Unkey\'s server titles 409 "Conflicting Resource" (its error middleware)' },
	108 => { status => 'externalId is a pre-release name: the spec names the identity with identity' },
	109 => { status => 'identityId is a pre-release name: the spec names the identity with identity', '.error' => 'the same' },
	116 => { status => 'namespaceName is a pre-release name: the spec has namespace', '.error' => 'the same' },
	118 => { status => 'namespaceId is a pre-release name: the spec has namespace (a name or an id)', '.error' => 'the same' },
	(map { $_ => { status => 'namespaceId is a pre-release name: the spec has namespace (a name or an id)' } } 119, 120),
	136 => { status => 'the page\'s 100-byte limit is illustrative: neither PostgREST nor this layer limits the body', '.error' => 'the same' },
);

my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
	undef, undef, { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_enable_utf8 => 1 })
  or die "cannot connect: $DBI::errstr";
my $json = JSON::PP->new->canonical;

# Replace the documentation's placeholders in a request
sub fill
{
	my ($v, $empty) = @_;
	if (ref $v eq 'HASH')
	{
		my %out;
		for my $k (keys %$v)
		{
			my $f = !ref $v->{$k} && defined $v->{$k} && $v->{$k} eq '' ? $empty->{$k} : fill($v->{$k}, $empty);
			$out{$k} = $f if defined $f || !exists $placeholder{ $v->{$k} // '-' };
		}
		return \%out;
	}
	return [ map { fill($_, $empty) } @$v ] if ref $v eq 'ARRAY';
	return $v if ref $v || !defined $v || !exists $placeholder{$v};
	return $placeholder{$v};
}

sub is_number
{
	my $f = B::svref_2object(\$_[0])->FLAGS;
	return !ref $_[0] && ($f & (B::SVp_IOK | B::SVp_NOK)) && !($f & B::SVp_POK);
}

sub type_of
{
	my ($v) = @_;
	return 'null' unless defined $v;
	return 'object' if ref $v eq 'HASH';
	return 'array' if ref $v eq 'ARRAY';
	return 'boolean' if JSON::PP::is_bool($v);
	return is_number($v) ? 'number' : 'string';
}

# values that depend on time, randomness or wording (and every *Id): their type is compared
my %masked = map { $_ => 1 } qw(requestId id key start createdAt updatedAt lastUsedAt expires reset cursor detail message
  fix plaintext);

# Compare a documented value with ours; push "path: what" for each difference
sub compare
{
	my ($doc, $ours, $path, $diffs) = @_;
	my ($field) = $path =~ /(\w+)(?:\[\d+\])?$/;
	my ($dt, $ot) = (type_of($doc), type_of($ours));
	# left out when empty or null, as Unkey's server does (omitempty)
	return if !defined $ours && ($dt eq 'null' || ($dt eq 'object' && !%$doc) || ($dt eq 'array' && !@$doc));
	return push @$diffs, "$path: missing" unless defined $ours || $dt eq 'null';
	return push @$diffs, "$path: $ot, documented $dt" if $dt ne $ot;
	if ($dt eq 'object')
	{
		compare($doc->{$_}, $ours->{$_}, "$path.$_", $diffs) for sort keys %$doc;
	}
	elsif ($dt eq 'array')
	{
		return push @$diffs, "$path: " . scalar(@$ours) . ' items, documented ' . scalar(@$doc) if @$doc != @$ours;
		compare($doc->[$_], $ours->[$_], "$path\[$_\]", $diffs) for 0 .. $#$doc;
	}
	elsif ($field && ($masked{$field} || $field =~ /Id$/))
	{
		return;
	}
	elsif ($field && $field eq 'type')
	{
		my ($dc, $oc) = map { m{/errors(?:-v2)?/(.*)$} ? $1 : $_ } ($doc, $ours);
		push @$diffs, "$path: $oc, documented $dc" if $dc ne $oc;
	}
	elsif ($dt eq 'boolean' ? ($doc xor $ours) : "$doc" ne "$ours")
	{
		push @$diffs, "$path: " . $json->encode([$ours]) . ', documented ' . $json->encode([$doc]);
	}
}

for my $i (0 .. $#$examples)
{
	my $e = $examples->[$i];
	my $need = $needs{$i} // {};
	my $request = $need->{request} // fill($e->{request} // {}, { %empty_as, %{ $need->{empty} // {} } });
	$dbh->begin_work;
	$dbh->do($need->{setup}) if $need->{setup};
	$dbh->do(q{SELECT set_config('request.headers', $1, true), set_config('response.status', '', true)}, undef,
		$json->encode({ 'x-unkey-root-key' => 'Bearer ' . $roots{ $need->{root} // 'docs' } }));
	my ($answer, $status) = $dbh->selectrow_array(
		sprintf(q{SELECT unkey_v2.%s($1::jsonb), current_setting('response.status', true)},
			$dbh->quote_identifier($e->{endpoint})), undef, $json->encode($request));
	$dbh->rollback;
	$status = 200 if ($status // '') eq '';
	my $ours = decode_json($answer);
	my @diffs;
	push @diffs, "status: $status, documented $e->{status}" if $status != $e->{status};
	if (defined $e->{response})
	{
		# a fragment shown without the envelope is the data
		my $doc = exists $e->{response}{meta} || exists $e->{response}{data} || exists $e->{response}{error}
		  ? $e->{response} : { data => $e->{response} };
		compare($doc, $ours, '', \@diffs);
	}
	# the listed differences are expected, and must still be there
	my $known = $differs{$i} // {};
	my @unexplained = grep { my $d = $_; !grep { index($d, $_) == 0 } keys %$known } @diffs;
	for my $k (sort keys %$known)
	{
		ok((grep { index($_, $k) == 0 } @diffs), "example $i ($e->{endpoint}): still differs at $k ($known->{$k})");
	}
	is_deeply(\@unexplained, [], "example $i: $e->{endpoint} as documented ($e->{source})")
	  or diag join("\n", @unexplained) . "\nrequest " . $json->encode($request) . "\nanswer $status " . $answer;
}
$dbh->disconnect;
$node->stop;
done_testing();
