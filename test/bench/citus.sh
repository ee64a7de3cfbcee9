#!/usr/bin/env bash
# Benchmark unkey on Citus (README: Running on Citus): verification through
# unkey_verify_key_by_hash on a coordinator and two workers, and through
# unkey_verify_key (which sends the key to its node itself), against the
# same verification on a single server (unkey_verify_key), and against a
# primary-key SELECT of the key's row through Citus, in one run.  pgbench
# connects to the coordinator, which delegates each call to the node of the
# key's shard: the difference to the single server is the hop inside the
# cluster.  All four servers share this machine's CPUs.
#
#   make && make install && bash test/bench/citus.sh      (as root or postgres)
#
# Needs Citus built and installed into this PostgreSQL (not a Debian
# package; README).  Settings (environment): DURATION seconds per run (15),
# CLIENTS ("2 8").
set -euo pipefail

DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-"2 8"}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -f $("$PG_CONFIG" --pkglibdir)/citus.so ]] || die "Citus is not installed into this PostgreSQL (README: Running on Citus)"

PORTS=(5441 5442 5443)
bench_cleanup() {
	for p in "${PORTS[@]}"; do "${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$WORK/citus$p" -m immediate stop >/dev/null 2>&1 || true; done
}
for p in "${PORTS[@]}"; do
	"${AS_PG[@]}" "$BINDIR/initdb" -D "$WORK/citus$p" -U postgres --auth=trust --no-sync >/dev/null
	cat >>"$WORK/citus$p/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $p
shared_preload_libraries = 'citus,unkey'
shared_buffers = 256MB
max_connections = 60
checkpoint_timeout = 1h
CONF
	"${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$WORK/citus$p" -l "$WORK/citus$p.log" -w start >/dev/null ||
		{ tail -20 "$WORK/citus$p.log" >&2; die "Citus node $p did not start"; }
	"${PSQL[@]}" -p "$p" -d postgres -c "CREATE DATABASE bench" -c "\\c bench" -c "CREATE EXTENSION citus"
done
say "a coordinator on ${PORTS[0]}, workers on ${PORTS[1]} and ${PORTS[2]}"
"${PSQL[@]}" -p "${PORTS[0]}" -o /dev/null <<SQL
SELECT citus_set_coordinator_host('$WORK', ${PORTS[0]});
SELECT citus_add_node('$WORK', ${PORTS[1]});
SELECT citus_add_node('$WORK', ${PORTS[2]});
CREATE EXTENSION unkey;
SELECT unkey.citus_distribute();
SQL
"${PSQL[@]}" -o /dev/null -c "CREATE EXTENSION unkey"
API=$("${PSQL[@]}" -At -c "SELECT unkey.unkey_create_api('bench')")
KEY=$("${PSQL[@]}" -At -c "SELECT key FROM unkey.unkey_create_key('$API')")
CAPI=$("${PSQL[@]}" -p "${PORTS[0]}" -At -c "SELECT unkey.unkey_create_api('bench')")
CKEY=$("${PSQL[@]}" -p "${PORTS[0]}" -At -c "SELECT key FROM unkey.unkey_create_key('$CAPI')")

for c in $CLIENTS; do
	bench on single "$c" verify_one.sql -D key="$KEY"
	bench on citus "$c" citus_verify.sql -p "${PORTS[0]}" -D key="$CKEY" -D api="$CAPI"
	bench on citus_plain "$c" citus_verify_plain.sql -p "${PORTS[0]}" -D key="$CKEY" -D api="$CAPI"
	bench on citus_pk "$c" citus_pk.sql -p "${PORTS[0]}" -D key="$CKEY"
done

echo "$DURATION s per run, $(nproc) CPUs, PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}'), Citus $("${PSQL[@]}" -p "${PORTS[0]}" -At -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'"), load average before: $LOAD0"
echo
echo "| clients | single server verify TPS | Citus verify by hash TPS | Citus unkey_verify_key TPS | Citus PK SELECT TPS | Citus by hash / single | by hash / PK SELECT | unkey_verify_key / by hash | p50 ms single / by hash / unkey_verify_key / PK |"
echo "|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '
	{ tps[$2, $3] = $4; p50[$2, $3] = $5; cl[$3] = 1 }
	END {
		for (c in cl)
			printf "| %s | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.3f / %.3f / %.3f / %.3f |\n", c, tps["single", c],
				tps["citus", c], tps["citus_plain", c], tps["citus_pk", c], tps["citus", c] / tps["single", c],
				tps["citus", c] / tps["citus_pk", c], tps["citus_plain", c] / tps["citus", c],
				p50["single", c], p50["citus", c], p50["citus_plain", c], p50["citus_pk", c]
	}' "$RESULTS" | sort -t'|' -k2 -n
