#!/usr/bin/env bash
# Benchmark Unkey's v2 API: POST /v2/keys.verifyKey through the reverse
# proxy and PostgREST (statement for statement, bound parameters, as the
# authenticator switching to the anonymous role), against the same
# verification called directly through PostgREST (POST /rpc/unkey_verify_key
# with the key and the API), in one run on a throwaway cluster set up like
# run.sh's:
#
#   make && make install && bash test/bench/v2.sh      (as root or postgres)
#
# Settings (environment): DURATION seconds per run (15), CLIENTS ("2 8").
# Target: the v2 layer keeps at least 75% of the direct call's throughput.
# The v2 call also authenticates its root key (two index reads); the table
# shows the extra time per request beside one direct verification's.
set -euo pipefail

DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-"2 8"}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"${PSQL[@]}" -o /dev/null <<'SQL'
CREATE EXTENSION unkey;
SELECT unkey.unkey_create_postgrest_roles();
GRANT USAGE ON SCHEMA unkey_v2 TO unkey_anon;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA unkey_v2 TO unkey_anon;
GRANT EXECUTE ON FUNCTION unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet) TO unkey_anon;
SQL
API=$("${PSQL[@]}" -At -c "SELECT unkey.unkey_create_api('bench')")
KEY=$("${PSQL[@]}" -At -c "SELECT key FROM unkey.unkey_create_key('$API')")
ROOT=$("${PSQL[@]}" -At -c "SELECT key FROM unkey.unkey_create_root_key('bench', ARRAY['api.*.verify_key'])")
VARS=(-U authenticator -D sp='"unkey", "public"' -D role=unkey_anon -D claims='{"role":"unkey_anon"}'
	-D hdrs='{"accept":"application/json","content-type":"application/json"}'
	-D v2hdrs="{\"accept\":\"application/json\",\"content-type\":\"application/json\",\"x-unkey-root-key\":\"Bearer $ROOT\"}"
	-D direct="{\"key\":\"$KEY\",\"api_id\":\"$API\"}" -D v2body="{\"key\":\"$KEY\"}")

for c in $CLIENTS; do
	bench on direct "$c" v2_direct.sql "${VARS[@]}"
	bench on v2     "$c" v2_verify.sql "${VARS[@]}"
done
check_all_valid

echo "$DURATION s per run, $(nproc) CPUs, PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}'), load average before: $LOAD0"
echo
echo "| clients | direct TPS | v2 TPS | v2 / direct | p50 ms direct / v2 | v2 µs/request more | one verification µs/request |"
echo "|---|---|---|---|---|---|---|"
awk -F'\t' '
	{ tps[$2, $3] = $4; p50[$2, $3] = $5; cl[$3] = 1 }
	END {
		for (c in cl) {
			d = 1e6 / tps["direct", c]; v = 1e6 / tps["v2", c]
			printf "| %s | %.0f | %.0f | %.2f | %.3f / %.3f | %.1f | %.1f |\n", c, tps["direct", c], tps["v2", c],
				tps["v2", c] / tps["direct", c], p50["direct", c], p50["v2", c], (v - d) * c, d * c
		}
	}' "$RESULTS" | sort -t'|' -k2 -n
