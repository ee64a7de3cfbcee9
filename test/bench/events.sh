#!/usr/bin/env bash
# Benchmark the event pipeline on a throwaway cluster (lib.sh), every figure
# and its baseline measured in the same run:
#
#   make && make install && bash test/bench/events.sh       (as root or postgres)
#
# 1. unkey_verify_key on unlimited keys, events on (buffered, written by the
#    event writer), against a primary-key SELECT of the key row; and on keys
#    with credits (one UPDATE of remaining) against a single-row UPDATE of the
#    same table on the same key set; at each client count, with
#    synchronous_commit off and on.  Before each run the event buffer is
#    flushed, the writer left to exit (so its counters are the run's), the
#    events checked (all VALID) and both event tables truncated (the writer's
#    cost grows with the rollups, and every run should find the same state);
#    after it, what is still buffered is flushed and timed.  Per run: transactions,
#    xids consumed and WAL fsyncs (pg_stat_wal, cluster-wide: the writer's
#    included), events appended and written during the run, inline writes and
#    full-buffer waits.
#       (a) verify.sql, unlimited keys     (c1) pk_select.sql, same keys
#       (b) verify.sql, keys with credits  (u)  update_one.sql, same keys
# 2. The writer deferred: the server restarts with one database slot, a
#    DEFER_BUFFER_KB event ring and a 60 s flush interval, so the writer only
#    wakes when asked; (a0) is (a) with the events only appended to the ring,
#    the cost of the verification itself.  After each run its events are
#    flushed and timed: the writer's throughput (unkey.events_batch_size
#    10000, the default).  Then FLUSH_EVENTS verifications are buffered
#    (pgbench -t, 2 clients) and flushed once per batch size in FLUSH_BATCHES,
#    and once more with the verifications on only FLUSH_FEW_KEYS keys (the
#    rollups then grow by far fewer rows per event).
# 3. Analytics: EVENTS events over the DAYS days before today (UTC), on
#    EVENT_KEYS keys of a separate API, written by unkey._store_verifications
#    (the writer's SQL) in batches of EVENT_BATCH, each batch timed; then
#    unkey_get_verifications(api, start, end, group_by => '{day,key}') over
#    those days, warm, QUERY_RUNS times (analytics.sql), also with jit off,
#    and with jit off and work_mem 64MB; and, to show where the time goes:
#    one plain GROUP BY of the rollup rows it reads (analytics_floor.sql),
#    the same on a compact copy of those rows (analytics_compact.sql), and
#    the answer pre-aggregated to one row per day and key
#    (analytics_daykey.sql).
#
# Settings (environment, defaults in brackets): DURATION seconds per pgbench
# run [15], CLIENTS ["2 8", about 13 min in all; "1 2 8" took 16 min],
# SYNC ["off on"],
# KEYS [1000000: half unlimited, half with credits], FLUSH_EVENTS [200000],
# FLUSH_BATCHES ["1000 10000 100000"], FLUSH_FEW_KEYS [1000],
# DEFER_BUFFER_KB [1048576, the largest allowed], EVENTS
# [10000000], EVENT_BATCH [100000], EVENT_KEYS [1000], DAYS [30],
# QUERY_RUNS [20], WARMUP [6].
# Progress goes to stderr; the markdown tables go to stdout.
set -euo pipefail

DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-"2 8"}
SYNC=${SYNC:-"off on"}
KEYS=${KEYS:-1000000}
FLUSH_EVENTS=${FLUSH_EVENTS:-500000}
FLUSH_BATCHES=${FLUSH_BATCHES:-"1000 10000 100000"}
FLUSH_FEW_KEYS=${FLUSH_FEW_KEYS:-1000}
DEFER_BUFFER_KB=${DEFER_BUFFER_KB:-1048576}
EVENTS=${EVENTS:-10000000}
EVENT_BATCH=${EVENT_BATCH:-100000}
EVENT_KEYS=${EVENT_KEYS:-1000}
DAYS=${DAYS:-30}
QUERY_RUNS=${QUERY_RUNS:-20}
T_START=$(date +%s)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -f $("$PG_CONFIG" --sharedir)/extension/pgcrypto.control ]] ||
	die "pgcrypto (PostgreSQL contrib) is not installed"

FACTS=$WORK/facts.tsv			# name, value
PIPE=$WORK/pipeline.tsv			# per pgbench run: see run_one
FLUSH=$WORK/flush.tsv			# source, batch size, events, ms, WAL bytes, ring bytes/event
QUERY=$WORK/query.tsv			# workload, runs, p50, p95, mean, max (ms)
fact() { printf '%s\t%s\n' "$1" "$2" >>"$FACTS"; }
q() { "${PSQL[@]}" -At -F $'\t' -c "$1"; }

fact load_before "$LOAD0"
load() { fact "load_$1" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
fact cpus "$(nproc)"
fact pg "$("$BINDIR/postgres" -V | awk '{print $3}')"
fact keys "$KEYS"
fact duration "$DURATION"
fact head "$(git -C "$HERE/../.." describe --always --dirty 2>/dev/null || echo unknown)"

HALF=$((KEYS / 2))
say "loading $KEYS keys"
"${PSQL[@]}" -o /dev/null -v keys="$KEYS" -v half="$HALF" -f "$HERE/setup.psql"
"${PSQL[@]}" -o /dev/null -f "$HERE/events_setup.psql"
"${PSQL[@]}" -o /dev/null -c "SELECT pg_prewarm(oid) FROM pg_class
	WHERE relnamespace = 'unkey'::regnamespace AND relkind IN ('r', 'i')"

# Write what is buffered, then wait for the writer to give its slot back, so
# that the next run starts with a fresh slot and counters of its own.  The
# writer leaves after 2 s without work, checked when it wakes: every flush
# interval, or when asked (a configuration reload wakes it, which matters
# with the 60 s interval of part 2).  unkey_flush_events() is only called
# while this database holds a slot: in a database without one it claims a
# slot that no writer then gives back.  Such a slot (no writer, nothing
# buffered) is given back by starting a writer with one verification.
quiesce() {
	local state
	for i in $(seq 200); do
		state=$(q "SELECT coalesce(writer_pid::text, '-') || ' ' || buffered FROM unkey.unkey_events_info()
					WHERE database = current_database()")
		[[ -z $state ]] && return
		if [[ $state == "- 0" ]]; then
			q "SELECT unkey.unkey_verify_key('bench_1')" >/dev/null
		elif [[ ${state#* } != 0 ]]; then
			q "SELECT unkey.unkey_flush_events()" >/dev/null
		elif ((i % 5 == 0)); then
			q "SELECT pg_reload_conf()" >/dev/null
		fi
		sleep 0.1
	done
	die "the event writer did not give its slot back"
}

# Flush, if this database holds a slot
flush_held() {
	q "SELECT unkey.unkey_flush_events() FROM unkey.unkey_events_info() WHERE database = current_database()" >/dev/null
}

# Start from empty event tables, so that every run's writer finds the same
# state (its cost grows with the rollups: see the notes in the report).  The
# events written so far are checked (all VALID) and counted first.
VERIFIED=0 ROLLED=0
reset_events() {
	quiesce
	check_all_valid
	# (the PL/pgSQL baseline inserts its own events, without a latency, and no rollups)
	VERIFIED=$((VERIFIED + $(q "SELECT count(*) FROM unkey.verification_events WHERE latency IS NOT NULL")))
	ROLLED=$((ROLLED + $(q "SELECT coalesce(sum(valid + not_found + forbidden + usage_exceeded + rate_limited + disabled
									   + insufficient_permissions + expired), 0)
							  FROM unkey.verification_rollups WHERE granularity = 'hour'")))
	q "TRUNCATE unkey.verification_events, unkey.verification_rollups" >/dev/null
}

# xids handed out so far (none consumed by asking) and WAL fsyncs
counters() { q "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, wal_sync FROM pg_stat_wal"; }

# The slot's counters: appended, written, inline writes, full waits (zeros
# when this database holds no slot)
slot_info() {
	local info
	info=$(q "SELECT appended, written, inline_writes, full_waits FROM unkey.unkey_events_info()
			   WHERE database = current_database()")
	echo "${info:-0	0	0	0}"
}

# One timed pgbench run (lib.sh's bench) with the pipeline's view of it;
# appends to PIPE: sync, workload, clients, transactions, xids, WAL fsyncs,
# appended, written during the run, inline writes, full waits, the flush of
# the rest (ms).  With DEFERRED=1 (part 2) the flush of the run's events
# goes to FLUSH as well.
run_one() {
	local sync=$1 workload=$2 clients=$3 before after info0 info tx flush=-
	reset_events
	info0=$(slot_info)
	before=$(counters)
	bench "$@"
	tx=$(cat "$WORK"/log/tx.* | wc -l)
	info=$(slot_info)
	if [[ $(q "SELECT count(*) FROM unkey.unkey_events_info() WHERE database = current_database()") == 1 ]]; then
		bytes=$(q "SELECT buffered_bytes / nullif(buffered, 0) FROM unkey.unkey_events_info()
					WHERE database = current_database()")
		flush=$(q "SELECT events, round(ms::numeric, 1), wal_bytes FROM bench.timed_flush()")
		[[ ${DEFERRED:-0} == 1 ]] &&
			printf '%s\t%s\t%s\t%s\n' "$workload run, $clients cl., $((HALF)) keys" "$(q "SHOW unkey.events_batch_size")" \
				"$flush" "$bytes" >>"$FLUSH"
		flush=$(cut -f2 <<<"$flush")
	fi
	sleep 1.1							# let the writer's WAL statistics arrive
	after=$(counters)
	paste <(printf '%s\t%s\t%s\t%s\n' "$sync" "$workload" "$clients" "$tx") <(echo "$before") <(echo "$after") \
		<(echo "$info0") <(echo "$info") <(echo "$flush") |
		awk -F'\t' -v OFS='\t' '{ print $1, $2, $3, $4, $7 - $5, $8 - $6,
									 $13 - $9, $14 - $10, $15 - $11, $16 - $12, $17 }' >>"$PIPE"
}

# Restart the server with these extra options (-o), and prewarm the keys
restart() {
	say "restart with $1"
	"${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w restart -o "$1" >/dev/null ||
		{ tail -20 "$WORK/server.log" >&2; die "the server did not restart"; }
	"${PSQL[@]}" -o /dev/null -c "SELECT pg_prewarm(oid) FROM pg_class
		WHERE relnamespace = 'unkey'::regnamespace AND relkind IN ('r', 'i') AND relname LIKE 'keys%'"
}

# ---- 1. verification vs baselines ----------------------------------------
for sync in $SYNC; do
	for c in $CLIENTS; do
		run_one "$sync" a  "$c" verify.sql     -D lo=1 -D hi="$HALF"
		run_one "$sync" c1 "$c" pk_select.sql  -D lo=1 -D hi="$HALF"
		run_one "$sync" p  "$c" plpgsql_verify.sql -D lo=1 -D hi="$HALF"
		run_one "$sync" b  "$c" verify.sql     -D lo=$((HALF + 1)) -D hi="$KEYS"
		run_one "$sync" u  "$c" update_one.sql -D lo=$((HALF + 1)) -D hi="$KEYS"
		run_one "$sync" pc "$c" plpgsql_verify.sql -D lo=$((HALF + 1)) -D hi="$KEYS"
	done
done
fact t_part1 $(($(date +%s) - T_START))
load part1

# ---- 2. the writer deferred; flush throughput ----------------------------
# One database slot with a DEFER_BUFFER_KB ring and a 60 s flush interval:
# the writer wakes when asked (or the ring is half full), so verifications
# only append to the ring -- what the verification itself costs -- and the
# flush after each run writes a whole run's events at once.
restart "-c unkey.events_databases=1 -c unkey.events_buffer_size=$DEFER_BUFFER_KB -c unkey.events_flush_interval=60000"
DEFERRED=1
for c in $CLIENTS; do
	run_one off a0 "$c" verify.sql -D lo=1 -D hi="$HALF"
done
# Buffer $1 verifications of keys 1..$2 (pgbench -t, 2 clients), flush them
# with unkey.events_batch_size = $3 and time it; append to FLUSH
flush_bench() {
	local n=$1 keys=$2 bs=$3 bytes
	q "ALTER SYSTEM SET unkey.events_batch_size = $bs" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	reset_events
	say "buffering $n verifications of $keys keys, then flushing them with unkey.events_batch_size = $bs"
	"$BINDIR/pgbench" -n -M prepared -c 2 -j 2 -t $((n / 2)) -f "$HERE/verify.sql" \
		-D lo=1 -D hi="$keys" >/dev/null 2>&1 || die "pgbench failed"
	bytes=$(q "SELECT buffered_bytes / nullif(buffered, 0) FROM unkey.unkey_events_info()
				WHERE database = current_database()")
	printf '%s\t%s\t%s\t%s\n' "pgbench -t, $keys keys" "$bs" \
		"$(q "SELECT events, round(ms::numeric, 1), wal_bytes FROM bench.timed_flush()")" "$bytes" >>"$FLUSH"
}
for bs in $FLUSH_BATCHES; do
	flush_bench "$FLUSH_EVENTS" "$HALF" "$bs"
done
flush_bench "$FLUSH_EVENTS" "$FLUSH_FEW_KEYS" 10000
q "ALTER SYSTEM RESET unkey.events_batch_size" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
reset_events
fact verified "$VERIFIED"
fact rollup_month "$ROLLED"
fact t_part2 $(($(date +%s) - T_START))
load part2

# ---- 3. analytics over EVENTS events -------------------------------------
# The events cover the DAYS days up to now; the days before today are
# materialised once (as the writer does a minute after each midnight, timed
# here for all of them at once), today stays open: the query adds its hours.
API=$(q "SELECT unkey.unkey_create_api('analytics')")
TNOW=$(q "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
T0=$(q "SELECT to_char((date_trunc('day', now(), 'UTC') - interval '$((DAYS - 1)) days') AT TIME ZONE 'UTC',
				'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
T1=$(q "SELECT to_char((date_trunc('day', now(), 'UTC') + interval '1 day') AT TIME ZONE 'UTC',
				'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
q "TRUNCATE unkey.verification_rollups, unkey.rollup_state" >/dev/null
say "writing $EVENTS events on $EVENT_KEYS keys over the $DAYS days before $TNOW with unkey._store_verifications, $EVENT_BATCH per call"
t=$(date +%s.%N)
q "CALL bench.gen_events($EVENTS, $EVENT_BATCH, $EVENT_KEYS, $DAYS, '$TNOW', '$API')" >/dev/null
fact gen_wall "$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
fact gen_timing "$(q "SELECT count(*), sum(events), round(sum(build_ms)::numeric), round(sum(store_ms)::numeric),
						round(percentile_cont(0.5) WITHIN GROUP (ORDER BY store_ms)::numeric),
						round(max(store_ms)::numeric) FROM bench.gen_timing")"
fact gen_first_last "$(q "SELECT round(sum(events) FILTER (WHERE batch < 10) * 1000 / sum(store_ms) FILTER (WHERE batch < 10)),
							   round(sum(events) FILTER (WHERE batch >= max_b - 9) * 1000
									 / sum(store_ms) FILTER (WHERE batch >= max_b - 9))
						  FROM bench.gen_timing, (SELECT max(batch) AS max_b FROM bench.gen_timing) m")"
say "materialising the closed days and months"
fact materialize "$(q "SELECT round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000)
						 FROM (SELECT clock_timestamp() AS t0, unkey._materialize_rollups(now())) m")"
say "VACUUM ANALYZE of the rollups"
q "VACUUM ANALYZE unkey.verification_rollups" >/dev/null
fact rollups "$(q "SELECT count(*) FILTER (WHERE granularity = 'hour'), count(*) FILTER (WHERE granularity = 'day'),
					count(*) FILTER (WHERE granularity = 'month'),
					pg_size_pretty(pg_total_relation_size('unkey.verification_rollups'))
				   FROM unkey.verification_rollups WHERE api_id = '$API'")"
fact events_stored "$(q "SELECT count(*) FROM unkey.verification_events WHERE api_id = '$API'")"
# bytes on disk per event: the raw partitions, and the rollups (all grains, indexes included)
fact disk_per_event "$(q "SELECT round(sum(pg_total_relation_size(i.inhrelid)) / $EVENTS::numeric),
							   round(pg_total_relation_size('unkey.verification_rollups') / $EVENTS::numeric, 1)
						  FROM pg_inherits i WHERE i.inhparent = 'unkey.verification_events'::regclass")"
fact query_check "$(q "SELECT count(*), sum(total), count(DISTINCT time), count(DISTINCT key_id)
						 FROM unkey.unkey_get_verifications('$API', '$T0', '$T1', group_by => '{day,key}')")"

# Time one query script QUERY_RUNS times on one connection, after WARMUP
# runs on the same connection; append workload, runs, p50, p95, mean, max (ms) to QUERY
query_bench() {
	local workload=$1 script=$2 warm=${WARMUP:-6}
	say "pgbench $workload, $warm + $QUERY_RUNS runs"
	rm -f "$WORK"/log/*
	"$BINDIR/pgbench" -n -M prepared -c 1 -D api="$API" -D t0="$T0" -D t1="$T1" -f "$HERE/$script" \
		-t $((warm + QUERY_RUNS)) -l --log-prefix="$WORK/log/q" >/dev/null 2>&1 || die "pgbench failed"
	cat "$WORK"/log/q.* | tail -n +$((warm + 1)) | awk '{ print $3 }' | sort -n | awk -v w="$workload" '
		function pct(q,  r) { r = int(q * NR); if (r < q * NR) r++; return v[r] / 1000 }
		{ v[NR] = $1; s += $1 }
		END { printf "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\n", w, NR, pct(0.5), pct(0.95), s / NR / 1000, v[NR] / 1000 }' >>"$QUERY"
}
query_bench q  analytics.sql
query_bench qc analytics_count.sql
query_bench q0 analytics_floor.sql
say "the answer as a table of its own, for (q2)"
q "CREATE TABLE bench.day_key AS
	SELECT * FROM unkey.unkey_get_verifications('$API', '$T0', '$T1', group_by => '{day,key}')" >/dev/null
q "CREATE INDEX ON bench.day_key (time)" >/dev/null
q "VACUUM ANALYZE bench.day_key" >/dev/null
query_bench q2 analytics_daykey.sql
# The plans of the function's statements in the 7th call of a session (the
# plan the timed runs use), with times and buffers, as auto_explain logs them
# (to the client here); the report shows the slowest
"${PSQL[@]}" -o /dev/null 2>"$WORK/explain.txt" <<SQL
LOAD 'auto_explain';
$(for _ in 1 2 3 4 5 6; do
	echo "SELECT * FROM unkey.unkey_get_verifications('$API', '$T0', '$T1', group_by => '{day,key}');"
done)
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
SELECT * FROM unkey.unkey_get_verifications('$API', '$T0', '$T1', group_by => '{day,key}');
SQL
fact t_total $(($(date +%s) - T_START))
load end

say "done in $(($(date +%s) - T_START)) s"
python3 "$HERE/events_report.py" "$WORK"
