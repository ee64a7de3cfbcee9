# Copyright (c) unkey contributors
#
# The permission query language under random input, through SQL:
# 1. a property check: random query trees over a small alphabet are rendered
#    as text (random case, spacing and redundant parentheses) and evaluated
#    here in Perl; the C evaluator must agree for random granted sets;
# 2. random mutations of valid queries (pgvector's 037_inputs.pl idea): the
#    server never crashes, and every failure is a 42601 whose message is one
#    of the designed ones, with a position inside the query.

use strict;
use warnings;
use utf8;							# mutations work on characters, é included
use Encode qw(encode_utf8);

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

srand(20261123);

my $node = PostgreSQL::Test::Cluster->new('permquery');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION unkey;
CREATE FUNCTION try_match(q text, p text[]) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN unkey.unkey_permissions_match(q, p)::text;
EXCEPTION WHEN OTHERS THEN
	RETURN 'ERR ' || SQLSTATE || ' ' || SQLERRM;
END
$$;
CREATE TABLE cases (n int PRIMARY KEY, q text, p text[], expect text);
});

my @perms = ('a', 'b', 'c', 'd.read', 'api.*');

# A random query tree: [leaf, name] or [op, left, right]
sub tree
{
	my ($depth) = @_;
	return [ 'leaf', $perms[ int(rand(@perms)) ] ] if $depth == 0 || rand() < 0.3;
	return [ rand() < 0.5 ? 'AND' : 'OR', tree($depth - 1), tree($depth - 1) ];
}

# Evaluate a tree against a set of granted permissions
sub evaluate
{
	my ($t, $granted) = @_;
	return $granted->{ $t->[1] } ? 1 : 0 if $t->[0] eq 'leaf';
	return evaluate($t->[1], $granted) && evaluate($t->[2], $granted) if $t->[0] eq 'AND';
	return evaluate($t->[1], $granted) || evaluate($t->[2], $granted);
}

# Render a tree as text: parentheses wherever precedence needs them, and sometimes more
sub render
{
	my ($t, $parent) = @_;
	return $t->[1] if $t->[0] eq 'leaf';
	my @ws = (' ', '  ', "\t", "\n", "\r\n");
	my $kw = $t->[0];
	$kw = lc $kw if rand() < 0.3;
	my $s = render($t->[1], $t->[0]) . $ws[ int(rand(@ws)) ] . $kw . $ws[ int(rand(@ws)) ]
	  . render($t->[2], $t->[0]);
	# the right operand of a left-associative chain needs parentheses when it is the same op
	$s = "($s)" if ($parent && ($parent eq 'AND' && $t->[0] eq 'OR')) || rand() < 0.2;
	return $s;
}

# The right child of an operator must be parenthesised when it has the same or lower precedence
sub render_top
{
	my ($t) = @_;
	return render(fix($t), undef);
}

# Wrap right-hand children that would otherwise re-associate, by making them leaves of a paren group
sub fix
{
	my ($t) = @_;
	return $t if $t->[0] eq 'leaf';
	my ($l, $r) = (fix($t->[1]), fix($t->[2]));
	$r = [ 'group', $r ] if $r->[0] ne 'leaf' && ($r->[0] eq $t->[0] || $r->[0] eq 'OR');
	return [ $t->[0], $l, $r ];
}

# 'group' renders its child in parentheses
{
	no warnings 'redefine';
	my $orig = \&render;
	*render = sub {
		my ($t, $parent) = @_;
		return '(' . $orig->($t->[1], undef) . ')' if $t->[0] eq 'group';
		return $orig->($t, $parent);
	};
}

# Evaluate with groups too
sub evaluate_fixed
{
	my ($t, $g) = @_;
	return evaluate_fixed($t->[1], $g) if $t->[0] eq 'group';
	return $g->{ $t->[1] } ? 1 : 0 if $t->[0] eq 'leaf';
	return evaluate_fixed($t->[1], $g) && evaluate_fixed($t->[2], $g) if $t->[0] eq 'AND';
	return evaluate_fixed($t->[1], $g) || evaluate_fixed($t->[2], $g);
}

# 1. property check
my @rows;
for my $n (1 .. 2000)
{
	my $t = tree(1 + int(rand(5)));
	my $q = render_top($t);
	my %g = map { $_ => 1 } grep { rand() < 0.5 } @perms;
	my $expect = evaluate($t, \%g) ? 'true' : 'false';
	(my $lit = $q) =~ s/'/''/g;
	my $arr = join(',', map { qq{"$_"} } sort keys %g);
	push @rows, "($n, '$lit', '{$arr}', '$expect')";
}
$node->safe_psql('postgres', 'INSERT INTO cases VALUES ' . join(",\n", @rows));
my $disagree = $node->safe_psql('postgres',
	q{SELECT count(*) FILTER (WHERE try_match(q, p) <> expect), count(*),
	         count(*) FILTER (WHERE expect = 'true') FROM cases});
my ($bad, $total, $trues) = split /\|/, $disagree;
is($bad, 0, "the C evaluator agrees with the Perl reference on $total random queries");
cmp_ok($trues, '>', 300, 'the property check exercises both answers');
cmp_ok($total - $trues, '>', 300, 'and not only one');
is( $node->safe_psql('postgres',
		q{SELECT q FROM cases WHERE try_match(q, p) <> expect ORDER BY n LIMIT 3}),
	'', 'no disagreeing query');

# 2. random mutations: insert, replace or delete characters of valid queries
my @alphabet = ('(', ')', ' ', 'a', 'AND', 'OR', '*', '.', '$', ',', "\t", 'é', '"', "'", '\\');
my @mutated;
for my $n (1 .. 3000)
{
	my $q = render_top(tree(1 + int(rand(4))));
	for (1 .. 1 + int(rand(3)))
	{
		my $pos = int(rand(length($q) + 1));
		my $r = rand();
		if ($r < 0.4) { substr($q, $pos, 0) = $alphabet[ int(rand(@alphabet)) ]; }
		elsif ($r < 0.7 && $pos < length $q) { substr($q, $pos, 1) = $alphabet[ int(rand(@alphabet)) ]; }
		elsif ($pos < length $q) { substr($q, $pos, 1 + int(rand(3))) = ''; }
	}
	(my $lit = $q) =~ s/'/''/g;
	push @mutated, "($n, E'" . ($lit =~ s/\\/\\\\/gr) . "', '{a}', NULL)";
}
$node->safe_psql('postgres', encode_utf8('TRUNCATE cases; INSERT INTO cases VALUES ' . join(",\n", @mutated)));
my $summary = $node->safe_psql('postgres', q{
WITH r AS (SELECT q, try_match(q, p) AS res FROM cases)
SELECT count(*) FILTER (WHERE res IN ('true', 'false')),
       count(*) FILTER (WHERE res LIKE 'ERR 42601 invalid permission query: %'),
       count(*) FILTER (WHERE res NOT IN ('true', 'false') AND res NOT LIKE 'ERR 42601 invalid permission query: %'),
       count(*) FILTER (WHERE res LIKE 'ERR %position %'
                         AND substring(res FROM 'position (\d+)')::int > octet_length(q))
  FROM r});
my ($ok, $syntax, $other, $badpos) = split /\|/, $summary;
note "mutations: $ok parsed, $syntax syntax errors";
cmp_ok($ok, '>', 100, 'some mutations still parse');
cmp_ok($syntax, '>', 100, 'many are syntax errors');
is($other, 0, 'every failure is a 42601 with the designed message');
is($badpos, 0, 'every position lies within the query (the end of input is its length)');
is( $node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT try_match(q, p) AS res FROM cases) r
 WHERE res LIKE 'ERR%' AND res !~ '(at position \d+\.|^ERR 42601 invalid permission query: Unexpected end of (input|query)\.)'}),
	0, 'errors name a position, except the two end-of-input messages');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is alive');

$node->stop;
done_testing();
