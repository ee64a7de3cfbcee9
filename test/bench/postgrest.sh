#!/usr/bin/env bash
# Benchmark the PostgREST gateway: a PostgREST request (GET /rpc/report,
# statement for statement as PostgREST sends it, bound parameters, logged in
# as the authenticator) without the gateway, through it, and without it
# plus one bare unkey_verify_key of the same key, permission and cost, all
# in one run on a throwaway cluster set up like run.sh's:
#
#   make && make install && bash test/bench/postgrest.sh      (as root or postgres)
#
# Settings (environment): DURATION seconds per run (15), CLIENTS ("2 8").
# Target: the gateway costs less than the bare verification, i.e.
# t(gateway) - t(plain) < t(verify) - t(plain) per request.
set -euo pipefail

DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-"2 8"}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"${PSQL[@]}" -o /dev/null <<'SQL'
CREATE EXTENSION unkey;
SELECT unkey.unkey_create_postgrest_roles();
CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO unkey_anon;
CREATE FUNCTION api.report(month text) RETURNS jsonb LANGUAGE sql STABLE
	AS $$ SELECT jsonb_build_object('month', month, 'total', 42) $$;
GRANT EXECUTE ON FUNCTION api.report(text) TO unkey_anon;
GRANT EXECUTE ON FUNCTION unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet) TO unkey_anon;
SELECT unkey.unkey_gateway_configure(unkey.unkey_create_api('bench'));
SQL
API=$("${PSQL[@]}" -At -c "SELECT api_id FROM unkey.gateway")
KEY=$("${PSQL[@]}" -At -c "SELECT key FROM unkey.unkey_create_key('$API', permissions => '{rpc.report.read}')")
VARS=(-U authenticator -D sp='"api", "public"' -D role=unkey_anon -D claims='{"role":"unkey_anon"}' -D method=GET
	-D path=/rpc/report -D hdrs="{\"x-api-key\":\"$KEY\",\"accept\":\"application/json\"}" -D cookies='{}'
	-D month=2026-12 -D key="$KEY" -D api="$API")

for c in $CLIENTS; do
	bench on plain   "$c" pgrst_plain.sql   "${VARS[@]}"
	bench on gateway "$c" pgrst_gateway.sql "${VARS[@]}"
	bench on verify  "$c" pgrst_verify.sql  "${VARS[@]}"
done
check_all_valid

echo "$DURATION s per run, $(nproc) CPUs, PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}'), load average before: $LOAD0"
echo
echo "| clients | plain TPS | gateway TPS | plain + verify TPS | gateway µs/request | verify µs/request | gateway / verify |"
echo "|---|---|---|---|---|---|---|"
awk -F'\t' '
	{ tps[$2, $3] = $4; cl[$3] = 1 }
	END {
		for (c in cl) {
			g = 1e6 / tps["gateway", c] - 1e6 / tps["plain", c]
			v = 1e6 / tps["verify", c] - 1e6 / tps["plain", c]
			printf "| %s | %.0f | %.0f | %.0f | %.1f | %.1f | %.2f |\n", c, tps["plain", c], tps["gateway", c], tps["verify", c], g * c, v * c, g / v
		}
	}' "$RESULTS" | sort -t'|' -k2 -n
