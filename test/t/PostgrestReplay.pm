# Copyright (c) unkey contributors
#
# PostgrestReplay: send PostgreSQL exactly what PostgREST (12 to 16) sends
# for an HTTP request, and turn the outcome into the status, headers and
# body PostgREST would answer with.  PostgREST cannot be installed here (no
# Debian package), so this is how we prove its behaviour; the statement
# sequence, argument binding and error mapping follow
# ../shared/reference/postgrest-security.md, sections 1.2 to 1.9:
#
#   BEGIN ISOLATION LEVEL READ COMMITTED {READ WRITE | READ ONLY}
#   select set_config('search_path', $1, true), set_config('role', $2, true),
#          set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true),
#          set_config('request.path', $5, true), set_config('request.headers', $6, true),
#          set_config('request.cookies', $7, true)
#   select "schema"."pre_request"()                 (db-pre-request)
#   WITH pgrst_source AS (...) SELECT ..., response_headers, response_status ...
#   COMMIT  (ABORT on any error)
#
# over DBD::Pg, which prepares each statement on the server and binds its
# parameters (the extended protocol, as PostgREST's hasql does), logged in
# as the authenticator role.

package PostgrestReplay;

use strict;
use warnings;

use DBI;
use JSON::PP;

my $json = JSON::PP->new->canonical;

# new(host => , port => , dbname => , user => 'authenticator', schemas => [..],
#     extra_search_path => [..], anon_role => , pre_request => 'unkey.pre_request')
sub new
{
	my ($class, %o) = @_;
	my $self = bless {%o}, $class;
	$self->{dbh} = DBI->connect("dbi:Pg:dbname=$o{dbname};host=$o{host};port=$o{port}", $o{user}, $o{password} // '',
		{ AutoCommit => 1, RaiseError => 0, PrintError => 0, pg_server_prepare => 1 })
	  or die "cannot connect: $DBI::errstr";
	return $self;
}

sub disconnect { $_[0]{dbh}->disconnect; }

sub _q { my $s = shift; $s =~ s/"/""/g; return qq{"$s"}; }

# The function an RPC path names, in the schema the request selects
sub _function
{
	my ($self, $schema, $name) = @_;
	my $sth = $self->{dbh}->prepare(q{
SELECT p.provolatile, p.proretset, t.typtype, t.typname, coalesce(p.proargnames, '{}'),
       array_to_string(ARRAY(SELECT format_type(x, NULL) FROM unnest(p.proargtypes) x), ','), p.pronargs, p.pronargdefaults
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_type t ON t.oid = p.prorettype
 WHERE n.nspname = $1 AND p.proname = $2});
	$sth->execute($schema, $name);
	my @rows = @{ $sth->fetchall_arrayref };
	return undef unless @rows == 1;
	my ($vol, $setof, $typtype, $typname, $names, $types, $nargs, $ndefaults) = @{ $rows[0] };
	my @types = split /,/, $types;
	my @names = @{$names}[ 0 .. $nargs - 1 ];
	return {
		volatile => $vol eq 'v', setof => $setof, composite => $typtype eq 'c', void => $typname eq 'void',
		args => [ map { { name => $names[$_], type => $types[$_], required => $_ < $nargs - $ndefaults } } 0 .. $nargs - 1 ]
	};
}

# request(method => 'GET', path => '/rpc/report', query => {month => '2026-12'},
#         headers => {'x-api-key' => ...}, body => '{"a":1}', role => undef (anon))
# -> { status => 200, headers => {name => value}, body => '...' }
sub request
{
	my ($self, %r) = @_;
	my $dbh = $self->{dbh};
	my $method = uc $r{method};
	my %headers = map { lc($_) => $r{headers}{$_} } keys %{ $r{headers} // {} };
	my %cookies;
	if (my $c = delete $headers{cookie})
	{
		for (split /;\s*/, $c) { my ($k, $v) = split /=/, $_, 2; $cookies{$k} = $v; }
	}
	# the schema: Accept-Profile (GET) or Content-Profile (POST), else the first of db-schemas
	my $profile = $method =~ /^(GET|HEAD)$/ ? $headers{'accept-profile'} : $headers{'content-profile'};
	my $schema = $profile // $self->{schemas}[0];
	return _pgrst_error(406, 'PGRST106', 'Invalid schema: ' . $schema)
	  unless grep { $_ eq $schema } @{ $self->{schemas} };

	my ($name) = $r{path} =~ m{^/rpc/([^/]+)$} or die "only /rpc/ paths are replayed: $r{path}";
	my $f = $self->_function($schema, $name)
	  or return _pgrst_error(404, 'PGRST202', "Could not find the function $schema.$name");
	my $read_only = $method =~ /^(GET|HEAD)$/ || !$f->{volatile};
	my $role = $r{role} // $self->{anon_role};

	# the arguments: query-string values, or the top-level keys of a JSON object body;
	# a function whose one parameter is an unnamed json or jsonb gets the body whole
	# (OnePosParam: no named candidate matches, since its parameter has no name)
	my (@keys, $call, @bind);
	my $body = $r{body} // '{}';
	my $one_pos = @{ $f->{args} } == 1 && !$f->{args}[0]{name} && $f->{args}[0]{type} =~ /^jsonb?$/;
	if ($one_pos && $method eq 'POST')
	{
		@keys = ();
	}
	elsif ($method eq 'POST')
	{
		my $obj = $json->decode($body);
		@keys = sort keys %$obj;
	}
	else
	{
		@keys = sort keys %{ $r{query} // {} };
	}
	my %args = map { $_->{name} => $_ } @{ $f->{args} };
	for my $k (@keys)
	{
		return _pgrst_error(404, 'PGRST202', "Could not find the function $schema.$name with those arguments")
		  unless $args{$k};
	}
	for my $a ($one_pos ? () : @{ $f->{args} })
	{
		return _pgrst_error(404, 'PGRST202', "Could not find the function $schema.$name with those arguments")
		  if $a->{required} && !grep { $_ eq $a->{name} } @keys;
	}
	my $fn = _q($schema) . '.' . _q($name);
	my $alias = _q($name);
	my $source;
	if ($one_pos && $method eq 'POST')
	{
		$source = "SELECT pgrst_call.pgrst_scalar FROM (SELECT $fn(\$1::$f->{args}[0]{type}) pgrst_scalar) pgrst_call";
		@bind = ($body);
	}
	elsif ($method eq 'POST')
	{
		my $named = join ', ', map { _q($_) . ' := pgrst_body.' . _q($_) } @keys;
		my $cols = join ', ', map { _q($_) } @keys;
		my $defs = join ', ', map { _q($_) . ' ' . $args{$_}{type} } @keys;
		my $payload = @keys
		  ? "(SELECT \$1::json AS json_data) pgrst_payload, LATERAL (SELECT $cols FROM json_to_record(pgrst_payload.json_data) AS _($defs) LIMIT 1) pgrst_body ,"
		  : "(SELECT \$1::json AS json_data) pgrst_payload, LATERAL (SELECT 1) pgrst_body ,";
		$source = $f->{composite}
		  ? "SELECT pgrst_call.* FROM $payload LATERAL $fn($named) pgrst_call"
		  : "SELECT pgrst_call.pgrst_scalar FROM $payload LATERAL (SELECT $fn($named) pgrst_scalar) pgrst_call";
		@bind = ($body);
	}
	else
	{
		my $i = 0;
		my $named = join ', ', map { $i++; _q($_) . " := \$${i}::" . $args{$_}{type} } @keys;
		@bind = map { $r{query}{$_} } @keys;
		$source = $f->{composite}
		  ? "SELECT pgrst_call.* FROM $fn($named) pgrst_call"
		  : "SELECT pgrst_call.pgrst_scalar FROM (SELECT $fn($named) pgrst_scalar) pgrst_call";
	}
	my $agg = $f->{composite}
	  ? ($f->{setof} ? "coalesce(json_agg(_postgrest_t), '[]')" : "coalesce(json_agg(_postgrest_t)->0, 'null')")
	  : ($f->{setof} ? "coalesce(json_agg(_postgrest_t.pgrst_scalar), '[]')" : "coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null')");
	my $main = "WITH pgrst_source AS ($source) SELECT null::bigint AS total_result_set, 1 AS page_total, $agg AS body, "
	  . "nullif(current_setting('response.headers', true), '') AS response_headers, "
	  . "nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted "
	  . "FROM (SELECT $alias.* FROM \"pgrst_source\" AS $alias) _postgrest_t";

	my $search_path = join ', ', map { _q($_) } $schema, @{ $self->{extra_search_path} // [] };
	my @steps = (
		[ 'BEGIN ISOLATION LEVEL READ COMMITTED ' . ($read_only ? 'READ ONLY' : 'READ WRITE') ],
		[   q{select set_config('search_path', $1, true), set_config('role', $2, true), set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), set_config('request.path', $5, true), set_config('request.headers', $6, true), set_config('request.cookies', $7, true)},
			$search_path, $role, $json->encode({ role => $role }), $method, $r{path},
			$json->encode(\%headers), $json->encode(\%cookies) ]);
	push @steps, [ 'select ' . join('.', map { _q($_) } split /\./, $self->{pre_request}) . '()' ] if $self->{pre_request};
	push @steps, [ $main, @bind ];

	my $row;
	for my $step (@steps)
	{
		my ($sql, @params) = @$step;
		my $sth = $dbh->prepare($sql);
		if (!$sth->execute(@params))
		{
			my ($state, $err) = ($dbh->state, $dbh->errstr);
			$dbh->do('ABORT');
			return $self->_error($state, $err, $role);
		}
		$row = $sth->fetchrow_arrayref if $sth->{NUM_OF_FIELDS};
		$row = [@$row] if $row;
	}
	$dbh->do('COMMIT');
	my ($total, $page, $out, $rh, $rs) = @$row;
	my %h = ('Content-Type' => 'application/json; charset=utf-8');
	if (defined $rh)
	{
		for my $pair (@{ $json->decode($rh) }) { %h = (%h, %$pair); }
	}
	my $status = $rs // 200;
	if ($f->{void})
	{
		return { status => $rs // 204, headers => { map { $_ eq 'Content-Type' ? () : ($_ => $h{$_}) } keys %h }, body => '' };
	}
	return { status => $status, headers => \%h, body => $out };
}

sub _pgrst_error
{
	my ($status, $code, $message) = @_;
	return { status => $status, headers => { 'Content-Type' => 'application/json; charset=utf-8' },
		body => $json->encode({ code => $code, message => $message, details => undef, hint => undef }) };
}

# PostgREST's mapping of an error to a response (Error.hs mapSQLtoHTTP)
sub _error
{
	my ($self, $state, $err, $role) = @_;
	my ($message) = $err =~ /^ERROR:\s+(.*?)$/m;
	$message //= $err;
	my ($detail) = $err =~ /^DETAIL:\s+(.*?)$/m;
	my ($hint) = $err =~ /^HINT:\s+(.*?)$/m;
	my %h = ('Content-Type' => 'application/json; charset=utf-8');
	if ($state eq 'PGRST')
	{
		my $m = eval { $json->decode($message) };
		my $d = eval { $json->decode($detail // '') };
		return _pgrst_error(500, 'PGRST121', 'could not parse RAISE SQLSTATE PGRST') unless $m && $d;
		%h = (%h, %{ $d->{headers} // {} });
		return { status => $d->{status}, headers => \%h,
			body => $json->encode({ map { $_ => $m->{$_} } qw(code message details hint) }) };
	}
	my $status =
		$state =~ /^PT(\d{3})$/ ? $1
	  : $state eq '25006' ? 405
	  : $state eq '42501' ? ($role eq $self->{anon_role} ? 401 : 403)
	  : $state =~ /^(23503|23505)$/ ? 409
	  : $state =~ /^(42883|42P01)$/ ? 404
	  : $state =~ /^(08|53|57P01)/ ? 503
	  : $state =~ /^(0L|0P|28)/ ? 403
	  : $state eq 'P0001' ? 400
	  : $state =~ /^(09|25|2D|38|39|3B|40|54|55|57|58|F0|HV|XX|P0|42P17)/ ? 500
	  : 400;
	$h{'WWW-Authenticate'} = 'Bearer' if $status == 401;
	return { status => $status, headers => \%h,
		body => $json->encode({ code => $state, message => $message, details => $detail, hint => $hint }) };
}

1;
