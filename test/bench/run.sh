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
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -f $("$PG_CONFIG" --sharedir)/extension/pgcrypto.control ]] ||
	die "pgcrypto (PostgreSQL contrib) is not installed"

HALF=$((KEYS / 2))
say "loading $KEYS keys"
"${PSQL[@]}" -o /dev/null -v keys="$KEYS" -v half="$HALF" -f "$HERE/setup.psql"
"${PSQL[@]}" -o /dev/null -c "SELECT pg_prewarm(oid) FROM pg_class
	WHERE relnamespace = 'unkey'::regnamespace AND relkind IN ('r', 'i')"

for sync in $SYNC; do
	for c in $CLIENTS; do
		bench "$sync" a   "$c" verify.sql         -D lo=1 -D hi="$HALF"
		bench "$sync" c2u "$c" plpgsql_verify.sql -D lo=1 -D hi="$HALF"
		bench "$sync" c1  "$c" pk_select.sql      -D lo=1 -D hi="$HALF"
		bench "$sync" b   "$c" verify.sql         -D lo=$((HALF + 1)) -D hi="$KEYS"
		bench "$sync" c2c "$c" plpgsql_verify.sql -D lo=$((HALF + 1)) -D hi="$KEYS"
	done
done

check_all_valid

echo "$KEYS keys, $DURATION s per run, $(nproc) CPUs, PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}')"
python3 "$HERE/report.py" "$RESULTS"
