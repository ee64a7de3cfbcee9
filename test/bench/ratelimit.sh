#!/usr/bin/env bash
# Benchmark unkey_ratelimit against SELECT 1, a PL/pgSQL limiter and Redis,
# and the cost of an autoApply limit in unkey_verify_key, on a throwaway
# cluster (set up like run.sh's; synchronous_commit stays at its default, on).
#
#   make && make install && bash test/bench/ratelimit.sh      (as root or postgres)
#
# Settings (environment): DURATION seconds per run (20), CLIENTS ("1 2 8"),
# VERIFY_SYNC ("on off": synchronous_commit values for the verify pair; off
# shows the CPU cost of the limit, which WAL flushes hide under on).
# Progress goes to stderr; the markdown tables go to stdout.
#
# Workloads (pgbench -n -M prepared -T DURATION -c C -j min(C,2)):
#   unkey_ratelimit, random identifier of 100,000 / hot     rl_unkey_{random,hot}.sql
#   SELECT 1                                                select1.sql
#   C no-op with unkey_ratelimit's arguments, plain /        noop_plain.sql
#     SECURITY DEFINER with SET search_path like unkey's    noop.sql
#   PL/pgSQL limiter (rl_setup.psql), random / hot          rl_sql_{random,hot}.sql
#   unkey_verify_key, one key with / without an autoApply   verify_one.sql
#     limit (a single key each: measures the limit's cost, not key lookup spread)
# and Redis (redis-benchmark -c C, no pipelining, -n sized to last about
# DURATION s) running ratelimit.lua by EVALSHA, random (-r 100000) / hot.
# Every limit is 10^9 per 60 s, so nothing is ever denied.
set -euo pipefail

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-"1 2 8"}
VERIFY_SYNC=${VERIFY_SYNC:-"on off"}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Stop our Redis too
bench_cleanup() {
	if [[ -f $WORK/redis.pid ]]; then kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true; fi
}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
	[[ $EUID -eq 0 ]] || die "Redis is missing: apt-get install redis-server redis-tools"
	say "installing Redis (Debian packages)"
	apt-get install -y redis-server redis-tools >/dev/null 2>&1 ||
		die "could not install redis-server and redis-tools"
fi

"${PSQL[@]}" -o /dev/null -f "$HERE/rl_setup.psql"
KEY_LIMITED=$("${PSQL[@]}" -At -c "SELECT key FROM bench.keys WHERE kind = 'limited'")
KEY_PLAIN=$("${PSQL[@]}" -At -c "SELECT key FROM bench.keys WHERE kind = 'plain'")

# Redis on a free loopback port, in memory only
RPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
	--daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log" >/dev/null
REDIS=(redis-cli -h 127.0.0.1 -p "$RPORT")
for _ in $(seq 50); do "${REDIS[@]}" ping >/dev/null 2>&1 && break; sleep 0.1; done
SHA=$("${REDIS[@]}" SCRIPT LOAD "$(cat "$HERE/ratelimit.lua")")
[[ $("${REDIS[@]}" EVALSHA "$SHA" 1 check 1000000000 60000 1 | head -1) == 1 ]] ||
	die "the Redis limiter does not allow a request"

# Time the Redis limiter on key $3 for about DURATION s; append a RESULTS row
redis_bench() {
	local workload=$1 clients=$2 key=$3 rps out
	local opts=(-h 127.0.0.1 -p "$RPORT" -c "$clients" -r 100000 --csv)
	local evalsha=(EVALSHA "$SHA" 1 "$key" 1000000000 60000 1)
	((clients >= 2)) && opts+=(--threads 2)		# like pgbench -j min(C,2)
	say "redis-benchmark $workload clients=$clients"
	# CSV: "test","rps","avg","min","p50","p95","p99","max" (ms); a short run sizes -n
	rps=$(redis-benchmark "${opts[@]}" -n 20000 "${evalsha[@]}" | tail -1 | awk -F'","' '{ print $2 }')
	out=$(redis-benchmark "${opts[@]}" -n "$(awk -v r="$rps" -v d="$DURATION" 'BEGIN { printf "%d", r * d }')" \
			"${evalsha[@]}" | tail -1) || die "redis-benchmark failed"
	awk -F'","' -v w="$workload" -v c="$clients" '{
		printf "-\t%s\t%s\t%s\t%.3f\t%.3f\n", w, c, $2, $5, $7 }' <<<"$out" >>"$RESULTS"
}

for c in $CLIENTS; do
	bench on sel1      "$c" select1.sql
	bench on noop_pl   "$c" noop_plain.sql
	bench on noop      "$c" noop.sql
	bench on u_rand    "$c" rl_unkey_random.sql
	bench on u_hot     "$c" rl_unkey_hot.sql
	bench on sql_rand  "$c" rl_sql_random.sql
	bench on sql_hot   "$c" rl_sql_hot.sql
	redis_bench redis_rand "$c" user___rand_int__
	redis_bench redis_hot  "$c" hot
	for sync in $VERIFY_SYNC; do
		bench "$sync" "ver_plain_$sync" "$c" verify_one.sql -D key="$KEY_PLAIN"
		bench "$sync" "ver_lim_$sync"   "$c" verify_one.sql -D key="$KEY_LIMITED"
	done
done

# every timed verification must have been VALID and every EVALSHA a success
check_all_valid
bad=$("${REDIS[@]}" INFO stats | tr -d '\r' | sed -n 's/^total_error_replies://p')
[[ $bad -eq 0 ]] || die "Redis answered $bad requests with an error"

echo "$DURATION s per run, $(nproc) CPUs, PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}')," \
	"Redis $(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/'), load average before: $LOAD0"
echo
echo "unkey_ratelimit_info() after the runs:" \
	"$("${PSQL[@]}" -At -F ', ' -c "SELECT 'entries ' || entries, 'max_entries ' || max_entries,
		'evicted_expired ' || evicted_expired, 'evicted_live ' || evicted_live,
		'eviction_runs ' || eviction_runs FROM unkey.unkey_ratelimit_info()")"
python3 "$HERE/ratelimit_report.py" "$RESULTS"
