# Copyright (c) unkey contributors
#
# Soak (issue 17): 8 pgbench clients for UNKEY_SOAK_SECONDS (60 in the test
# command; 600 for the long variant) mixing verification with and without
# credits, rate limits, key and identity management and analytics reads.
#
# - No error: every transaction of every client commits.
# - The private memory (RssAnon in /proc) of each backend stays flat after
#   warm-up (the first half), sampled every 5 s: per backend, the median
#   growth between two samples (a one-time step moves a least-squares
#   slope, reported beside it, but not the median); the typical backend
#   (the median of the eight) must stay under 32 kB/s in a short run and
#   8 kB/s in a run of 5 minutes or more.  Every backend runs the same mix,
#   so a leak grows them all; one backend alone can grow for a while (60 s
#   runs saw one of eight at 68 to 152 kB/s, the other seven at 0.00: an
#   analytics call holds up to about 8 MB while it runs, which glibc keeps).
# - Shared-memory tables stay within their size: the rate limiter's entries
#   never exceed unkey.ratelimit_max_entries.
# - The event ring loses nothing silently: every verification made is an
#   event once flushed, and nothing was discarded.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seconds = $ENV{UNKEY_SOAK_SECONDS} // 60;
my $node = PostgreSQL::Test::Cluster->new('soak');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'unkey'
max_connections = 30
log_statement = none
unkey.ratelimit_max_entries = 20000
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION unkey;
CREATE TABLE soak_keys (n integer PRIMARY KEY, key_id text, key text);
SELECT unkey.unkey_create_role('soak reader', NULL, ARRAY['soak.read']);
SELECT unkey.unkey_create_api('soak ' || a) FROM generate_series(0, 3) a;
INSERT INTO soak_keys
SELECT n, k.key_id, k.key
  FROM generate_series(1, 200) n,
	   LATERAL unkey.unkey_create_key((SELECT id FROM unkey.apis WHERE name = 'soak ' || (n % 4)),
			external_id => 'customer-' || (n % 50),
			credits => CASE WHEN n % 2 = 0 THEN 1000000000 END, roles => ARRAY['soak reader'],
			ratelimits => '[{"name": "requests", "limit": 1000000000, "duration": 60000, "autoApply": true}]') k;
});

my $dir = PostgreSQL::Test::Utils::tempdir();
my %scripts = (
	verify => q{\set n random(1, 200)
SELECT code FROM unkey.unkey_verify_key((SELECT key FROM soak_keys WHERE n = :n), permissions => 'soak.read');
},
	ratelimit => q{\set id random(1, 5000)
SELECT success FROM unkey.unkey_ratelimit('soak', 'user-' || :id, 1000000000, '1 minute');
},
	manage => q{\set n random(1, 200)
SELECT unkey.unkey_update_key((SELECT key_id FROM soak_keys WHERE n = :n), jsonb_build_object('meta', jsonb_build_object('t', :n::integer)));
SELECT unkey.unkey_update_identity('customer-' || (:n::integer % 50), jsonb_build_object('seen', :n::integer), NULL);
SELECT unkey.unkey_delete_key((unkey.unkey_create_key((SELECT id FROM unkey.apis WHERE name = 'soak 0'))).key_id, true);
},
	analytics => q{SELECT count(*) FROM unkey.unkey_get_verifications((SELECT id FROM unkey.apis WHERE name = 'soak 1'), now() - interval '1 day', group_by => ARRAY['hour', 'key']);
SELECT count(*) FROM unkey.key_usage;
});
my @files;
for my $name (sort keys %scripts)
{
	open my $fh, '>', "$dir/$name.sql" or die;
	print $fh $scripts{$name};
	close $fh;
	my $weight = { verify => 12, ratelimit => 6, manage => 1, analytics => 1 }->{$name};
	push @files, '-f', "$dir/$name.sql\@$weight";
}

my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-M', 'prepared', '-c', 8, '-j', 2, '-T', $seconds, @files, '-l', "--log-prefix=$dir/log",
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

# sample each client backend's private memory every 5 s, and the limiter's size
my (%samples, $max_entries_seen);
my $start = time;
while ($pgbench->pumpable && time - $start < $seconds)
{
	sleep 5;
	my $t = time - $start;
	for my $pid (split /\n/, $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()}))
	{
		open my $st, '<', "/proc/$pid/status" or next;
		while (<$st>) { push @{ $samples{$pid} }, [ $t, $1 ] if /^RssAnon:\s+(\d+) kB/; }
		close $st;
	}
	my $entries = $node->safe_psql('postgres', 'SELECT entries FROM unkey.unkey_ratelimit_info()');
	$max_entries_seen = $entries if !defined $max_entries_seen || $entries > $max_entries_seen;
}
my $clean = $pgbench->finish;
ok($clean && $err !~ /aborted|ERROR/, 'pgbench ran every client to the end') or diag $err;
like($out, qr/number of failed transactions: 0 \(0\.000%\)/, "$seconds s of mixed load: no transaction failed")
  or diag "$out\n$err";
my ($tx) = $out =~ /number of transactions actually processed: (\d+)/;
note "soak: $tx transactions in $seconds s";

# RssAnon after warm-up (the first half), per backend: the least-squares
# slope, reported, and the median of the growth between two samples, which
# decides: a leak grows between most samples, while a one-time step (a sort
# that needs a bigger block once, malloc keeping what it freed) does not
my (@slopes, @medians);
for my $pid (keys %samples)
{
	my @s = grep { $_->[0] > $seconds / 2 } @{ $samples{$pid} };
	next if @s < 3;
	my ($n, $sx, $sy, $sxx, $sxy) = (scalar @s, 0, 0, 0, 0);
	for (@s) { $sx += $_->[0]; $sy += $_->[1]; $sxx += $_->[0]**2; $sxy += $_->[0] * $_->[1]; }
	my $den = $n * $sxx - $sx**2;
	push @slopes, $den ? ($n * $sxy - $sx * $sy) / $den : 0;
	my @growth = sort { $a <=> $b } map { ($s[$_][1] - $s[ $_ - 1 ][1]) / ($s[$_][0] - $s[ $_ - 1 ][0]) } 1 .. $#s;
	push @medians, $growth[ $#growth / 2 ];
}
my ($worst) = sort { $b <=> $a } @medians;
note sprintf('RssAnon after warm-up: slope %s kB/s, median growth %s kB/s',
	join(', ', map { sprintf '%.2f', $_ } sort { $a <=> $b } @slopes),
	join(', ', map { sprintf '%.2f', $_ } sort { $a <=> $b } @medians));
SKIP:
{
	# AddressSanitizer's allocator holds freed memory in quarantine (up to
	# 256 MB) instead of reusing it: memory grows by design under it (and
	# test/check.sh soaks for 15 s there, too short to sample)
	skip 'memory is not measured under AddressSanitizer (test/check.sh, sanitize)', 2
	  if ($ENV{LD_PRELOAD} // '') =~ /libasan/;
	cmp_ok(scalar @slopes, '>=', 4, 'private memory sampled in the backends');
	# every backend runs the same mix, so a leak on any path grows every
	# backend: the typical backend decides.  One backend alone can grow for
	# a while: an unkey_get_verifications call holds up to about 8 MB while
	# it runs (seen with pg_log_backend_memory_contexts), which glibc keeps
	my ($typical) = (sort { $a <=> $b } @medians)[ $#medians / 2 ];
	cmp_ok($typical, '<', $seconds >= 300 ? 8 : 32,
		sprintf('the backends\' private memory stays flat (median growth of the typical backend %.2f kB/s, worst %.2f)',
			$typical, $worst));
}

cmp_ok($max_entries_seen, '<=', 20000, "the rate limiter stayed within its 20,000 entries ($max_entries_seen)");

# every verification made is an event once flushed; nothing discarded
my %by_script;
for my $file (glob("$dir/log.*"))
{
	open my $lf, '<', $file or die;
	while (<$lf>) { my @f = split / /; $by_script{ $f[3] }++; }
	close $lf;
}
my @order = sort keys %scripts;    # pgbench numbers the scripts in the order given
my ($verify_no) = grep { $order[$_] eq 'verify' } 0 .. $#order;
$node->safe_psql('postgres', 'SELECT unkey.unkey_flush_events()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM unkey.verification_events'), $by_script{$verify_no},
	"every one of the $by_script{$verify_no} verifications is an event");
is($node->safe_psql('postgres', q{SELECT coalesce(sum(discarded), 0) FROM unkey.unkey_events_info()}), '0', 'and none was discarded');

$node->stop;
done_testing();
