# test/bench/lib.sh: what run.sh and ratelimit.sh share.
#
# Sourcing it checks that unkey is installed, starts a throwaway cluster in a
# temporary directory (no TCP, unkey preloaded, long checkpoints so that none
# lands inside a timed run), and removes it when the script ends.  The caller
# sets DURATION, may set BENCH_CONF (more postgresql.conf lines) and may
# define bench_cleanup for servers of its own.

set -euo pipefail

PG_CONFIG=${PG_CONFIG:-pg_config}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ME=$(basename "$0")

# Stop with a message on stderr
die() { echo "$ME: $*" >&2; exit 1; }

# Progress for the person waiting, kept out of the tables on stdout
say() { echo "== $*" >&2; }

BINDIR=$("$PG_CONFIG" --bindir) || die "pg_config not found (set PG_CONFIG)"
[[ -f $("$PG_CONFIG" --sharedir)/extension/unkey.control &&
   -f $("$PG_CONFIG" --pkglibdir)/unkey.so ]] ||
	die "unkey is not installed for $("$PG_CONFIG" --version): run 'make && make install' first"

# initdb and postgres refuse to run as root: use the postgres account then
AS_PG=()
[[ $EUID -eq 0 ]] && AS_PG=(runuser -u postgres --)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/unkey-${ME%.sh}.XXXXXX")
[[ $EUID -eq 0 ]] && chown postgres: "$WORK"

# Stop the servers and remove everything, however the script ends
cleanup() {
	if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
	"${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)		# others' work on the machine is noise here
say "initdb in $WORK"
"${AS_PG[@]}" "$BINDIR/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync >/dev/null
cat >>"$WORK/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = 5432
shared_preload_libraries = 'unkey'
shared_buffers = 1GB
max_connections = 30
max_wal_size = 8GB
checkpoint_timeout = 1h
${BENCH_CONF:-}
CONF
"${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null ||
	{ tail -20 "$WORK/server.log" >&2; die "the server did not start"; }

export PGHOST=$WORK PGPORT=5432 PGUSER=postgres PGDATABASE=bench
PSQL=("$BINDIR/psql" -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"

RESULTS=$WORK/results.tsv
mkdir "$WORK/log"

# Time one pgbench workload (a script in test/bench/ or an absolute path;
# extra pgbench options after it);
# append sync, workload, clients, tps, p50 and p99 (ms) to RESULTS
bench() {
	local sync=$1 workload=$2 clients=$3 script=$4 out tps
	shift 4
	say "pgbench $workload clients=$clients synchronous_commit=$sync"
	"${PSQL[@]}" -c CHECKPOINT		# every run starts with the same WAL state
	rm -f "$WORK"/log/*
	out=$(PGOPTIONS="-c synchronous_commit=$sync" "$BINDIR/pgbench" -n -M prepared \
			-T "$DURATION" -c "$clients" -j $((clients < 2 ? clients : 2)) "$@" \
			-f "$([[ $script == /* ]] && echo "$script" || echo "$HERE/$script")" \
			-l --log-prefix="$WORK/log/tx" 2>&1) ||
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

# Fail unless every timed verification was VALID, or the numbers mean nothing
check_all_valid() {
	local bad
	bad=$("${PSQL[@]}" -At -c "SELECT count(*) FROM unkey.verification_events WHERE outcome <> 'VALID'")
	[[ $bad -eq 0 ]] || die "$bad verifications were not VALID"
}
