# Copyright (c) unkey contributors
#
# HttpFront: a real HTTP server on 127.0.0.1 that does what the README's
# reverse proxy (nginx) and PostgREST do for Unkey's v2 API, so that an
# unmodified HTTP client (Unkey's SDK) can talk to the database:
#
#   POST /v2/<group>.<op>  ->  POST /rpc/<group>.<op>, Content-Profile: unkey_v2
#   GET  /v2/liveness      ->  GET  /rpc/liveness,     Accept-Profile: unkey_v2
#   Authorization: Bearer <root key>  ->  X-Unkey-Root-Key (Authorization dropped)
#   X-Request-Id: a new id per request (nginx's $request_id)
#
# and then replays the request statement for statement (PostgrestReplay) and
# writes PostgREST's answer back.  One request per connection.

package HttpFront;

use strict;
use warnings;

use IO::Socket::INET;
use PostgrestReplay;

# start(%replay_options) -> (pid, port): serves in a child process until killed
sub start
{
	my (%o) = @_;
	my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1)
	  or die "cannot listen: $!";
	my $port = $listen->sockport;
	my $pid = fork // die "fork: $!";
	return ($pid, $port) if $pid;

	my $replay = PostgrestReplay->new(%o);
	my $n = 0;
	while (my $c = $listen->accept)
	{
		my $line = <$c> // next;
		my ($method, $target) = $line =~ m{^(\S+) (\S+) HTTP/1\.[01]\r?\n$} or next;
		my %h;
		while (my $l = <$c>)
		{
			last if $l =~ /^\r?\n$/;
			$h{ lc $1 } = $2 if $l =~ /^([^:]+):\s*(.*?)\r?\n$/;
		}
		my $body = '';
		read($c, $body, $h{'content-length'}) if $h{'content-length'};
		my $res;
		my ($path) = $target =~ m{^([^?]*)};
		if ($path =~ m{^/v2/([A-Za-z.]+)$})
		{
			my %headers = %h;
			my $auth = delete $headers{authorization};
			$headers{'x-unkey-root-key'} = $auth if defined $auth;
			$headers{ $method eq 'GET' ? 'accept-profile' : 'content-profile' } = 'unkey_v2';
			$headers{'x-request-id'} = sprintf 'front-%d-%d', $$, ++$n;
			$res = $replay->request(method => $method, path => "/rpc/$1", headers => \%headers,
				body => $method eq 'POST' ? $body : undef);
		}
		else
		{
			$res = { status => 404, headers => { 'Content-Type' => 'text/plain' }, body => 'not found' };
		}
		my $out = $res->{body} // '';
		utf8::encode($out) if utf8::is_utf8($out);
		print $c "HTTP/1.1 $res->{status} X\r\n";
		print $c "$_: $res->{headers}{$_}\r\n" for sort keys %{ $res->{headers} };
		print $c 'Content-Length: ' . length($out) . "\r\nConnection: close\r\n\r\n$out";
		close $c;
	}
	exit 0;
}

1;
