#!/usr/bin/env bash
# Benchmark unkey_verify_key against two baselines on a throwaway cluster.
#
#   make && make install && bash test/bench/run.sh        (as root or postgres)
#
# Settings (environment): DURATION seconds per pgbench run (20), CLIENTS ("1 2 8"),
# KEYS (1000000), SYNC ("off on": the whole matrix per synchronous_commit).
# Progress goes to stderr; the markdown tables for the README go to stdout.
#
# Keys 1..KEYS/2 are unlimited, the rest have 10^15 credits; every run picks
# a uniformly random key of one set.  Workloads (pgbench -n -M prepared):
#   (a)  unkey.unkey_verify_key(key) on unlimited keys     verify.sql
#   (b)  the same on keys with credits (spends 1)          verify.sql
#   (c1) SELECT * FROM unkey.keys WHERE key_hash = sha256(key::bytea),
#        the hash computed inline with the built-in sha256  pk_select.sql
#   (c2) bench.plpgsql_verify(key) (setup.psql) on each set plpgsql_verify.sql
# Latencies are percentiles of pgbench's per-transaction log (-l).
set -euo pipefail

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-"1 2 8"}
KEYS=${KEYS:-1000000}
SYNC=${SYNC:-"off on"}
PG_CONFIG=${PG_CONFIG:-pg_config}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Stop with a message on stderr
die() { echo "run.sh: $*" >&2; exit 1; }

# Progress for the person waiting, kept out of the table on stdout
say() { echo "== $*" >&2; }

BINDIR=$("$PG_CONFIG" --bindir) || die "pg_config not found (set PG_CONFIG)"
[[ -f $("$PG_CONFIG" --sharedir)/extension/unkey.control &&
   -f $("$PG_CONFIG" --pkglibdir)/unkey.so ]] ||
	die "unkey is not installed for $("$PG_CONFIG" --version): run 'make && make install' first"
[[ -f $("$PG_CONFIG" --sharedir)/extension/pgcrypto.control ]] ||
	die "pgcrypto (PostgreSQL contrib) is not installed"

# initdb and postgres refuse to run as root: use the postgres account then
AS_PG=()
[[ $EUID -eq 0 ]] && AS_PG=(runuser -u postgres --)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/unkey-bench.XXXXXX")
[[ $EUID -eq 0 ]] && chown postgres: "$WORK"
# Stop the server and remove everything, however the script ends
cleanup() {
	"${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

say "initdb in $WORK"
"${AS_PG[@]}" "$BINDIR/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync >/dev/null
# no TCP; few, long checkpoints so that none lands inside a timed run
cat >>"$WORK/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = 5432
shared_preload_libraries = 'unkey'
shared_buffers = 1GB
max_connections = 30
max_wal_size = 8GB
checkpoint_timeout = 1h
EOF
"${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null ||
	{ tail -20 "$WORK/server.log" >&2; die "the server did not start"; }

export PGHOST=$WORK PGPORT=5432 PGUSER=postgres PGDATABASE=bench
PSQL=("$BINDIR/psql" -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"

HALF=$((KEYS / 2))
say "loading $KEYS keys"
"${PSQL[@]}" -o /dev/null -v keys="$KEYS" -v half="$HALF" -f "$HERE/setup.psql"
"${PSQL[@]}" -o /dev/null -c "SELECT pg_prewarm(oid) FROM pg_class
	WHERE relnamespace = 'unkey'::regnamespace AND relkind IN ('r', 'i')"

RESULTS=$WORK/results.tsv
mkdir "$WORK/log"

# Time one workload; append sync, workload, clients, tps, p50 and p99 (ms) to RESULTS
bench() {
	local sync=$1 workload=$2 clients=$3 script=$4 lo=$5 hi=$6 out tps
	say "synchronous_commit=$sync $workload clients=$clients"
	"${PSQL[@]}" -c CHECKPOINT		# every run starts with the same WAL state
	rm -f "$WORK"/log/*
	out=$(PGOPTIONS="-c synchronous_commit=$sync" "$BINDIR/pgbench" -n -M prepared \
			-T "$DURATION" -c "$clients" -j $((clients < 2 ? clients : 2)) \
			-D lo="$lo" -D hi="$hi" -f "$HERE/$script" -l --log-prefix="$WORK/log/tx" 2>&1) ||
		{ echo "$out" >&2; die "pgbench failed"; }
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
	[[ -n $tps ]] || { echo "$out" >&2; die "no tps in pgbench's output"; }
	# column 3 of the log is the latency in µs; nearest-rank percentiles
	cat "$WORK"/log/tx.* | awk '{ print $3 }' | sort -n | awk -v s="$sync" -v w="$workload" \
		-v c="$clients" -v t="$tps" '
		function pct(q,  r) { r = int(q * NR); if (r < q * NR) r++; return v[r] / 1000 }
		{ v[NR] = $1 }
		END { printf "%s\t%s\t%s\t%s\t%.3f\t%.3f\n", s, w, c, t, pct(0.5), pct(0.99) }' >>"$RESULTS"
}

for sync in $SYNC; do
	for c in $CLIENTS; do
		bench "$sync" a   "$c" verify.sql         1 "$HALF"
		bench "$sync" c2u "$c" plpgsql_verify.sql 1 "$HALF"
		bench "$sync" c1  "$c" pk_select.sql      1 "$HALF"
		bench "$sync" b   "$c" verify.sql         $((HALF + 1)) "$KEYS"
		bench "$sync" c2c "$c" plpgsql_verify.sql $((HALF + 1)) "$KEYS"
	done
done

# every timed verification must have been VALID, or the numbers mean nothing
bad=$("${PSQL[@]}" -At -c "SELECT count(*) FROM unkey.verification_events WHERE outcome <> 'VALID'")
[[ $bad -eq 0 ]] || die "$bad verifications were not VALID"

echo "$KEYS keys, $DURATION s per run, $(nproc) CPUs, PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}')"
python3 "$HERE/report.py" "$RESULTS"
