# Copyright (c) unkey contributors
#
# A schema unkey prepared by someone else (issue 12, part 1).
#
# The attack on 0.1.0: a role that is not superuser but owns a database
# (CREATEDB, or a database handed to a tenant) runs CREATE SCHEMA unkey in it.
# A superuser then runs CREATE EXTENSION unkey there, and the extension
# adopts the existing schema, which stays the attacker's.  The attacker then
# creates unkey._audit(text, text, text, text): our SECURITY DEFINER
# functions call unkey._audit('api.create', description, 'api', id) meaning
# the VARIADIC _audit(text, text, text[]), but an exact match wins, so the
# attacker's function runs with the rights of the extension owner, a
# superuser, and can ALTER ROLE itself SUPERUSER.
#
# Since 0.2.0, unkey._check_schema() runs first in the install script and in
# every upgrade script, and refuses a schema unkey that another role owns,
# that another role may create in, or that holds an object another role owns.
#
# 1. A schema owned by the attacker: CREATE EXTENSION fails (42501, naming
#    the schema and its owner, with a HINT), nothing is installed, and the
#    rest of the attack has nothing to capture.
# 2. A superuser's schema the attacker may create in: fails, naming the role
#    (and PUBLIC, when CREATE is granted to PUBLIC).
# 3. A superuser's schema holding an object the attacker planted while it
#    could create there: fails, naming the object and its owner.
# 4. An empty schema of the installing superuser without grants (as a
#    pg_dump restore creates it): CREATE EXTENSION succeeds.
# 5. A normal install in a database the attacker owns: the schema and every
#    function, relation and type in it belong to the extension owner, and
#    the database owner cannot create in the schema.
# 6. 0.1.0 installed into the attacker's schema (it had no check: the
#    attack works, shown by a plant that records whose rights it runs
#    with), then ALTER EXTENSION unkey UPDATE fails (42501, naming the
#    owner), so an adopted schema is never carried into 0.2.0 silently.
#
# Each case gets its own database, owned by the attacker.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('schema_hijack');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'unkey'\n");
$node->start;

my $su = $node->safe_psql('postgres', 'SELECT current_user');
$node->safe_psql('postgres', 'CREATE ROLE dbowner LOGIN CREATEDB');

# run SQL as the superuser or as dbowner, errors in full (SQLSTATE, HINT);
# returns psql's exit code, stdout and stderr
sub as_super
{
	my ($db, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out, $err);
}

sub as_owner
{
	my ($db, $sql) = @_;
	my ($ret, $out, $err) =
	  $node->psql($db, $sql, extra_params => [ '-U', 'dbowner', '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out, $err);
}

# a statement that must succeed
sub ok_as
{
	my ($who, $db, $sql, $name) = @_;
	my ($ret, $out, $err) = $who eq 'owner' ? as_owner($db, $sql) : as_super($db, $sql);
	is($ret, 0, $name) or diag $err;
	return $out;
}

# a statement that must fail with this SQLSTATE, and a message that names
# each of @$names (the names, not the wording, so that messages may change)
sub fails_as
{
	my ($who, $db, $sql, $sqlstate, $names, $name) = @_;
	my ($ret, $out, $err) = $who eq 'owner' ? as_owner($db, $sql) : as_super($db, $sql);
	isnt($ret, 0, "$name: fails");
	my ($code, $message) = $err =~ /ERROR:  ([0-9A-Z]{5}): ([^\n]*)/;
	is($code, $sqlstate, "$name: SQLSTATE $sqlstate") or diag $err;
	for my $n (@$names)
	{
		like($message // '', qr/\Q$n\E/, "$name: the message names $n");
	}
	return $err;
}

sub installed
{
	my ($db) = @_;
	return $node->safe_psql($db, q{SELECT coalesce(max(extversion), 'none') FROM pg_extension WHERE extname = 'unkey'});
}

sub dbowner_is_superuser
{
	return $node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner'});
}

# the plant: an exact match for our calls of unkey._audit(text, text, VARIADIC text[])
my $plant = q{
CREATE FUNCTION unkey._audit(text, text, text, text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'ALTER ROLE dbowner SUPERUSER';
END
$$};

is(dbowner_is_superuser(), 'f', 'dbowner is not superuser');

############################################################################
# 1. the attacker's schema
############################################################################

ok_as('owner', 'postgres', 'CREATE DATABASE victim1', 'dbowner creates a database');
ok_as('owner', 'victim1', 'CREATE SCHEMA unkey', 'dbowner creates schema unkey in it');
my $err = fails_as('super', 'victim1', 'CREATE EXTENSION unkey', '42501',
	[ 'schema "unkey"', '"dbowner"' ],
	'1. CREATE EXTENSION into a schema dbowner owns');
like($err, qr/^HINT:  \S/m, '1. the error has a hint');
is(installed('victim1'), 'none', '1. no extension is installed');
is( $node->safe_psql('victim1', q{
SELECT count(*) FROM pg_proc WHERE pronamespace = 'unkey'::regnamespace}),
	'0', '1. nothing of ours is left in the schema');
# the attack goes on as far as it can: the plant goes in, but nothing calls it
ok_as('owner', 'victim1', $plant, '1. dbowner can still plant unkey._audit in its own schema');
fails_as('super', 'victim1', q{SELECT unkey.unkey_create_api('bait')}, '42883',
	[ 'unkey.unkey_create_api' ],
	'1. there is no unkey_create_api to call the plant');
fails_as('super', 'victim1', 'CREATE EXTENSION unkey', '42501', [ '"dbowner"' ],
	'1. CREATE EXTENSION again, with the plant in place');
is(installed('victim1'), 'none', '1. still no extension');
is(dbowner_is_superuser(), 'f', '1. dbowner is still not superuser');

############################################################################
# 2. a superuser's schema that dbowner may create in
############################################################################

ok_as('owner', 'postgres', 'CREATE DATABASE victim2', 'dbowner creates another database');
ok_as('super', 'victim2', 'CREATE SCHEMA unkey', 'the superuser creates schema unkey');
# the role, or everyone
for my $grantee ('dbowner', 'PUBLIC')
{
	ok_as('super', 'victim2', "GRANT CREATE ON SCHEMA unkey TO $grantee",
		"the superuser lets $grantee create in it");
	fails_as('super', 'victim2', 'CREATE EXTENSION unkey', '42501',
		[ $grantee eq 'PUBLIC' ? 'PUBLIC' : qq{"$grantee"}, '"unkey"' ],
		"2. CREATE EXTENSION into a schema $grantee may create in");
	is(installed('victim2'), 'none', "2. no extension is installed ($grantee)");
	ok_as('super', 'victim2', "REVOKE CREATE ON SCHEMA unkey FROM $grantee", "the superuser revokes it again");
}

############################################################################
# 3. a superuser's schema holding dbowner's object
############################################################################

ok_as('owner', 'postgres', 'CREATE DATABASE victim3', 'dbowner creates a third database');
ok_as('super', 'victim3', 'CREATE SCHEMA unkey; GRANT CREATE ON SCHEMA unkey TO dbowner',
	'the superuser creates schema unkey and lets dbowner create in it');
ok_as('owner', 'victim3', $plant, 'dbowner plants unkey._audit');
ok_as('super', 'victim3', 'REVOKE CREATE ON SCHEMA unkey FROM dbowner', 'the superuser revokes CREATE');
fails_as('super', 'victim3', 'CREATE EXTENSION unkey', '42501',
	[ 'unkey._audit(text,text,text,text)', '"dbowner"' ],
	'3. CREATE EXTENSION into a schema holding a planted function');
is(installed('victim3'), 'none', '3. no extension is installed');
is(dbowner_is_superuser(), 'f', '3. dbowner is still not superuser');

############################################################################
# 4. an empty schema of the superuser, as a pg_dump restore makes it
############################################################################

ok_as('owner', 'postgres', 'CREATE DATABASE victim4', 'dbowner creates a fourth database');
ok_as('super', 'victim4', 'CREATE SCHEMA unkey', 'the superuser creates an empty schema unkey');
ok_as('super', 'victim4', 'CREATE EXTENSION unkey', '4. CREATE EXTENSION accepts it');
isnt(installed('victim4'), 'none', '4. the extension is installed');
like(ok_as('super', 'victim4', q{SELECT unkey.unkey_create_api('restored')}, '4. and works'),
	qr/^api_/, '4. it creates an API');

############################################################################
# 5. a normal install in dbowner's database
############################################################################

ok_as('owner', 'postgres', 'CREATE DATABASE victim5', 'dbowner creates a fifth database');
ok_as('super', 'victim5', 'CREATE EXTENSION unkey', '5. the superuser installs the extension');
is( $node->safe_psql('victim5', q{
SELECT pg_get_userbyid(e.extowner), count(*) FILTER (WHERE o.owner <> e.extowner), count(*) > 100
  FROM pg_extension e,
       (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'unkey'
        UNION ALL SELECT p.proowner FROM pg_proc p WHERE p.pronamespace = 'unkey'::regnamespace
        UNION ALL SELECT c.relowner FROM pg_class c WHERE c.relnamespace = 'unkey'::regnamespace
        UNION ALL SELECT t.typowner FROM pg_type t WHERE t.typnamespace = 'unkey'::regnamespace) o(owner)
 WHERE e.extname = 'unkey'
 GROUP BY e.extowner}),
	"$su|0|t",
	'5. the schema and every function, relation and type in it belong to the extension owner');
fails_as('owner', 'victim5', q{CREATE FUNCTION unkey.x() RETURNS integer LANGUAGE sql AS 'SELECT 1'},
	'42501', [ 'permission denied for schema unkey' ], '5. dbowner creates a function in schema unkey');
fails_as('owner', 'victim5', $plant, '42501', [ 'permission denied for schema unkey' ],
	'5. dbowner plants unkey._audit');

############################################################################
# 6. 0.1.0 adopted dbowner's schema; the update refuses it
############################################################################

SKIP: {
skip 'the 0.1.0 install script (test/upgrade/) is not installed', 9
  unless $node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_available_extension_versions WHERE name = 'unkey' AND version = '0.1.0'});
ok_as('owner', 'postgres', 'CREATE DATABASE victim6', 'dbowner creates a sixth database');
ok_as('owner', 'victim6', 'CREATE SCHEMA unkey', 'dbowner creates schema unkey in it');
ok_as('super', 'victim6', q{CREATE EXTENSION unkey VERSION '0.1.0'},
	'6. 0.1.0 installs into it (the bug)');
is(installed('victim6'), '0.1.0', '6. 0.1.0 is installed');
# the attack works on 0.1.0: a plant that only records whose rights it has
ok_as('owner', 'victim6', q{
CREATE TABLE public.captured (who text, superuser boolean);
GRANT INSERT ON public.captured TO PUBLIC;
CREATE FUNCTION unkey._audit(text, text, text, text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.captured SELECT r.rolname, r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
END
$$}, '6. dbowner plants unkey._audit in the adopted schema');
ok_as('super', 'victim6', q{SELECT unkey.unkey_create_api('bait')}, '6. the superuser creates an API');
is($node->safe_psql('victim6', 'SELECT who, superuser FROM public.captured'),
	"$su|t", "6. on 0.1.0 the plant ran with the rights of the superuser $su");
fails_as('super', 'victim6', 'ALTER EXTENSION unkey UPDATE', '42501',
	[ 'schema "unkey"', '"dbowner"' ],
	'6. ALTER EXTENSION unkey UPDATE of the adopted schema');
is(installed('victim6'), '0.1.0', '6. the extension stays at 0.1.0');
}

############################################################################
# 7. other superusers are trusted: a schema another superuser created (a
#    restore run by that superuser), and objects the event writer created as
#    the bootstrap superuser, pass the check
############################################################################

$node->safe_psql('postgres', 'CREATE ROLE admin2 LOGIN SUPERUSER');
$node->safe_psql('postgres', 'CREATE DATABASE victim7');
$node->safe_psql('victim7', 'CREATE SCHEMA unkey AUTHORIZATION admin2');
$node->safe_psql('victim7', 'CREATE EXTENSION unkey');
is($node->safe_psql('victim7', q{SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'unkey'}),
	$su, '7. the extension installs into a schema another superuser owns');
$node->safe_psql('postgres', 'CREATE DATABASE victim7b');
$node->safe_psql('victim7b', 'SET ROLE admin2; CREATE EXTENSION unkey');
$node->safe_psql('victim7b', q{SET ROLE admin2;
	SELECT unkey.unkey_create_api('seven');
	SELECT unkey.unkey_verify_key('nope');
	SELECT unkey.unkey_flush_events();});
is($node->safe_psql('victim7b', q{SELECT count(*) > 0 FROM pg_class c
	WHERE c.relnamespace = 'unkey'::regnamespace AND c.relowner <> 'admin2'::regrole}),
	't', '7. the event writer created partitions owned by another superuser');
is($node->safe_psql('victim7b', 'SET ROLE admin2; SELECT unkey._check_schema()'), '',
	'7. the check passes for admin2, whose extension holds them');

############################################################################
# 8. the installer's default privileges grant nothing of ours to anyone
############################################################################

$node->safe_psql('postgres', 'CREATE ROLE reporting');
$node->safe_psql('postgres', 'CREATE DATABASE victim8');
$node->safe_psql('victim8', q{
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO reporting;
ALTER DEFAULT PRIVILEGES GRANT SELECT, UPDATE ON TABLES TO reporting;
ALTER DEFAULT PRIVILEGES GRANT USAGE ON TYPES TO reporting;
CREATE EXTENSION unkey});
is($node->safe_psql('victim8', q{
SELECT count(*) FROM (
	SELECT p.proacl AS acl FROM pg_proc p WHERE p.pronamespace = 'unkey'::regnamespace
	UNION ALL SELECT c.relacl FROM pg_class c WHERE c.relnamespace = 'unkey'::regnamespace
	UNION ALL SELECT t.typacl FROM pg_type t WHERE t.typnamespace = 'unkey'::regnamespace
	UNION ALL SELECT n.nspacl FROM pg_namespace n WHERE n.nspname = 'unkey') o, aclexplode(o.acl) a
 WHERE a.grantee = 'reporting'::regrole}), '0',
	'8. default privileges of the installer grant nothing in schema unkey');
$node->safe_psql('postgres', 'CREATE DATABASE victim8b');
my ($rc8, $out8, $err8) = $node->psql('victim8b', q{
ALTER DEFAULT PRIVILEGES GRANT USAGE, CREATE ON SCHEMAS TO reporting;
CREATE EXTENSION unkey}, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err8, qr/42501: schema "unkey" grants CREATE to role "reporting"/,
	'8. default privileges that let another role create in the new schema make CREATE EXTENSION fail');

is(dbowner_is_superuser(), 'f', 'dbowner never became superuser');

$node->stop;

done_testing();
