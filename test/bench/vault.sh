#!/usr/bin/env bash
# Benchmark recoverable keys against their plain twins, on a throwaway
# cluster set up like run.sh's, with a vault root key:
#
#   make && make install && bash test/bench/vault.sh      (as root or postgres)
#
# Settings (environment): DURATION seconds per run (10), CLIENTS ("1 2"),
# SYNC (synchronous_commit, "off": with on, every write waits for its WAL
# flush and the flush hides the cost of the cryptography).
# Progress goes to stderr; the markdown table goes to stdout.
#
# Workloads (pgbench -n -M prepared -T DURATION -c C -j min(C,2)), each next
# to its baseline measured in the same run:
#   unkey_create_key(api)                       create_plain   (baseline)
#   unkey_create_key(api, recoverable => true)  create_rec     seal under the API's data key, one more row
#   unkey_get_key(key_id)                       get            (baseline)
#   unkey_get_key(key_id, decrypt => true)      get_decrypt    open, audit row, log line
#   unkey_list_keys(api) of 100 keys            list           (baseline)
#   unkey_list_keys(api, decrypt => true)       list_decrypt   100 opened, one audit row
set -euo pipefail

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-"1 2"}
SYNC=${SYNC:-off}
KEYDIR=$(mktemp -d "${TMPDIR:-/tmp}/unkey-vault-key.XXXXXX")
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$KEYDIR/root.key")
[[ $EUID -eq 0 ]] && chown -R postgres: "$KEYDIR"
BENCH_CONF="unkey.vault_key_file = '$KEYDIR/root.key'"
bench_cleanup() { rm -rf "$KEYDIR"; }
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"${PSQL[@]}" -c 'CREATE EXTENSION unkey'
API=$("${PSQL[@]}" -At -c "SELECT unkey.unkey_create_api('bench vault')")
LIST_API=$("${PSQL[@]}" -At -c "SELECT unkey.unkey_create_api('bench list')")
"${PSQL[@]}" -o /dev/null -c "SELECT unkey.unkey_set_api_recoverable('$API', true), unkey.unkey_set_api_recoverable('$LIST_API', true)"
"${PSQL[@]}" -o /dev/null -c "SELECT count(*) FROM generate_series(1, 100), unkey.unkey_create_key('$LIST_API', recoverable => true)"
KEY_ID=$("${PSQL[@]}" -At -c "SELECT key_id FROM unkey.unkey_create_key('$API', recoverable => true)")

# one statement per script, its arguments as pgbench variables
script() { echo "$2" >"$WORK/$1.sql"; echo "$WORK/$1.sql"; }
s_cp=$(script create_plain 'SELECT unkey.unkey_create_key(:api);')
s_cr=$(script create_rec 'SELECT unkey.unkey_create_key(:api, recoverable => true);')
s_g=$(script get 'SELECT unkey.unkey_get_key(:key_id);')
s_gd=$(script get_decrypt 'SELECT unkey.unkey_get_key(:key_id, decrypt => true);')
s_l=$(script list 'SELECT unkey.unkey_list_keys(:api);')
s_ld=$(script list_decrypt 'SELECT unkey.unkey_list_keys(:api, decrypt => true);')

for c in $CLIENTS; do
	bench "$SYNC" create_plain "$c" "$s_cp" -D api="$API"
	bench "$SYNC" create_rec   "$c" "$s_cr" -D api="$API"
	bench "$SYNC" get          "$c" "$s_g"  -D key_id="$KEY_ID"
	bench "$SYNC" get_decrypt  "$c" "$s_gd" -D key_id="$KEY_ID"
	bench "$SYNC" list         "$c" "$s_l"  -D api="$LIST_API"
	bench "$SYNC" list_decrypt "$c" "$s_ld" -D api="$LIST_API"
done

echo "$DURATION s per run, $(nproc) CPUs, PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}')," \
	"synchronous_commit=$SYNC, load average before: $LOAD0"
echo
echo "| workload | clients | TPS | p50 ms | p99 ms | TPS / baseline |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '
	BEGIN { base["create_rec"] = "create_plain"; base["get_decrypt"] = "get"; base["list_decrypt"] = "list" }
	{ tps[$2, $3] = $4; row[NR] = $0 }
	END {
		for (i = 1; i <= NR; i++) {
			split(row[i], f, "\t")
			r = (f[2] in base) ? sprintf("%.2f× %s", f[4] / tps[base[f[2]], f[3]], base[f[2]]) : "baseline"
			printf "| %s | %s | %.0f | %.3f | %.3f | %s |\n", f[2], f[3], f[4], f[5], f[6], r
		}
	}' "$RESULTS"
