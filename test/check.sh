#!/usr/bin/env bash
# test/check.sh: build, install and run every test suite.
#
# make installcheck runs pg_regress, the isolation specs and the TAP tests;
# each suite starts its own temporary instance with unkey preloaded.  Then
# the demo runs (test/demo.sh) and its output is compared with test/demo.out,
# and the fuzzer runs.  The steps run one by one so that a failure in one
# still lets the others run, and the last line is a summary CI can read.
. "$(dirname "$0")/lib.sh"

ensure_packages clang libclang-rt-14-dev libdbd-pg-perl   # the fuzzer; the PostgREST replay (DBD::Pg binds parameters as PostgREST does)
work=$(mktemp -d /tmp/unkey-check.XXXXXX)
# The install scripts of released versions are test fixtures, not installed
# by make install (0.1.0's adopted a schema unkey that another role had
# created; an upgrade needs only the upgrade scripts): the upgrade tests need
# them, so they are in the extension directory only while they run
extdir="$("$PGBIN/pg_config" --sharedir)/extension"
fixtures=()
trap 'rm -rf "$work"; rm -f "${fixtures[@]}"' EXIT

echo "== building and installing unkey"
stage_and_install "$work"
# Unkey's SDK, the client of the v2 tests (pinned in test/sdk/package-lock.json)
command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
(cd "$work/unkey/test/sdk" && npm ci --silent --no-audit --no-fund) && chown -R postgres: "$work/unkey/test/sdk"
for f in "$work"/unkey/test/upgrade/unkey--*.sql; do
    fixtures+=("$extdir/$(basename "$f")")
    install -m 644 "$f" "$extdir/"
done
tree="$work/unkey"
passed=0
failed=0

# Run one suite; count its tests from the runner's own summary
suite() {
    local name="$1" log="$work/$1.log" ok=0 bad=0; shift
    echo "== $name"
    if as_postgres "$tree" "$@" 2>&1 | tee "$log"; then :; fi
    case "$name" in
        *prove)
            ok=$(grep -cE '^ok [0-9]+' "$log" || true)
            bad=$(grep -cE '^not ok [0-9]+' "$log" || true)
            grep -q '^Result: PASS' "$log" || [ "$bad" -gt 0 ] || bad=1 ;;
        *)
            ok=$(grep -cE '^(test| )?.* \.\.\. ok|^ok [0-9]+ ' "$log" || true)
            bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$log" || true)
            grep -qE 'All [0-9]+ tests passed|tests passed' "$log" || [ "$bad" -gt 0 ] || bad=1 ;;
    esac
    passed=$((passed + ok))
    failed=$((failed + bad))
    for d in "$tree/regression.diffs" "$tree/output_iso/regression.diffs"; do
        if [ -s "$d" ]; then echo "---- $d"; cat "$d"; rm -f "$d"; fi
    done
}

# A fuzzer: libFuzzer with ASan and UBSan, built from one harness and one
# source of src/ (free of PostgreSQL headers), for a bounded time
fuzz_one() {
    local name="$1" what="$2" seconds="$3" max_len="$4" log="$work/fuzz-$1.log"
    echo "== fuzz ($what, $seconds s)"
    mkdir -p "$work/corpus-$name"
    cp "$tree"/test/fuzz/"$5"/* "$work/corpus-$name/"
    if clang -g -O1 -fsanitize=fuzzer,address,undefined -I"$tree/src" \
            "$tree/test/fuzz/${name}_fuzz.c" "$tree/src/$name.c" -o "$work/${name}_fuzz" &&
        (cd "$work" && "./${name}_fuzz" -max_total_time="$seconds" -max_len="$max_len" \
            -print_final_stats=1 "corpus-$name") >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units)' "$log" || true
        echo "ok - the $what fuzzer found no crash"
        passed=$((passed + 1))
    else
        tail -40 "$log"
        echo "not ok - the $what fuzzer failed (see above)"
        failed=$((failed + 1))
    fi
}

# The permission queries (FUZZ_SECONDS, 60), and the override matcher against a reference (half that)
fuzz() {
    fuzz_one permquery "permission queries" "${FUZZ_SECONDS:-60}" 1200 corpus
    fuzz_one wildcard "rate-limit override wildcards" "$(( (${FUZZ_SECONDS:-60} + 1) / 2 ))" 600 wildcard_corpus
}

# What varies from run to run in the demo's output, masked: ids, keys and the
# stored start of a key (base58), the key's hash and dates.  Nothing else is,
# so that a changed number, code or message still shows.  The masks of values
# that have a fixed width keep it, to keep test/demo.out's tables aligned.
mask_demo() {
    sed -E -e 's/\b(api|key|id)_[1-9A-HJ-NP-Za-km-z]{16,24}\b/\1_<id>/g' \
        -e 's/\bsk_live_[1-9A-HJ-NP-Za-km-z]{16,}\b/sk_live_<key>/g' \
        -e 's/\bsk_live_[1-9A-HJ-NP-Za-km-z]{4}\b/sk_live_xxxx/g' \
        -e 's#([ |])[A-Za-z0-9+/]{43}=#\1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=#g' \
        -e 's/\b[0-9]{4}-[0-9]{2}-[0-9]{2}\b/YYYY-MM-DD/g'
}

# The demo (test/demo.sh, in its own cluster) must print what test/demo.out
# says, once masked.  On a difference, the unified diff shows what it printed
# instead; after reading it, `patch test/demo.out <the diff` accepts it.
demo() {
    local out="$work/demo.txt" rc=0 same=0
    echo "== demo (test/demo.sh compared with test/demo.out)"
    bash "$tree/test/demo.sh" -o "$out" >"$work/demo.log" 2>&1 || rc=$?
    touch "$out"
    mask_demo <"$out" | diff -u --label test/demo.out --label "the demo's output" \
        "$tree/test/demo.out" - >"$work/demo.diff" || same=$?
    if [ "$rc" -eq 0 ] && [ "$same" -eq 0 ]; then
        echo "ok - the demo prints what test/demo.out says"
        passed=$((passed + 1))
    else
        [ "$rc" -eq 0 ] || { cat "$work/demo.log"; echo "---- test/demo.sh failed (exit status $rc)"; }
        cat "$work/demo.diff"
        echo "not ok - the demo does not print what test/demo.out says (see above)"
        failed=$((failed + 1))
    fi
}

# No two files of src/ call each other in a loop, read from the built objects
layout() {
    echo "== layout"
    if bash "$tree/test/layout.sh" "$tree"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
}

# The three suites again, against a server whose unkey is built with
# AddressSanitizer and UndefinedBehaviorSanitizer (test/sanitize/README).  A
# report aborts the process that made it, so the test that caused it fails;
# the server logs the TAP tests keep are scanned as well, for a report in a
# process whose death a test expected.  The plain build is installed again
# afterwards.  UNKEY_SANITIZE=0 skips this.
sanitize() {
    local plain="$tree" asan="$work/asan/unkey" runtime logs
    [ "${UNKEY_SANITIZE:-1}" = 1 ] || return 0
    echo "== building unkey with AddressSanitizer and UndefinedBehaviorSanitizer"
    mkdir -p "$asan"
    tar -C "$plain" --exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude='tmp_check*' \
        --exclude=results --exclude=output_iso -cf - . | tar -C "$asan" -xf -
    make -C "$asan" -s clean >/dev/null
    make -C "$asan" -s COPT="$SANITIZE_CFLAGS" >/dev/null
    make -C "$asan" -s install >/dev/null
    gcc -O1 -Wall -shared -fPIC -o "$asan/unkey_preload.so" "$asan/test/sanitize/preload.c" -ldl
    chown -R postgres: "$work/asan"
    runtime="$(gcc -print-file-name=libasan.so.8):$asan/unkey_preload.so:$(gcc -print-file-name=libubsan.so.1)"
    tree="$asan"
    suite "asan regress" env LD_PRELOAD="$runtime" ASAN_OPTIONS="$ASAN_OPTS" UBSAN_OPTIONS="$UBSAN_OPTS" \
        make -s installcheck ISOLATION= TAP_TESTS=
    suite "asan isolation" env LD_PRELOAD="$runtime" ASAN_OPTIONS="$ASAN_OPTS" UBSAN_OPTIONS="$UBSAN_OPTS" \
        make -s installcheck REGRESS= TAP_TESTS=
    # the soak looks for memory growth in the plain run; here it only needs to run
    suite "asan prove" env LD_PRELOAD="$runtime" ASAN_OPTIONS="$ASAN_OPTS" UBSAN_OPTIONS="$UBSAN_OPTS" \
        UNKEY_SOAK_SECONDS="${UNKEY_SOAK_SECONDS:-15}" make -s installcheck REGRESS= ISOLATION= "PROVE_FLAGS=-v --timer"
    tree="$plain"
    echo "== sanitizer reports in the servers' logs"
    # (pg_regress keeps its instance's log only when a test failed)
    logs=$(ls "$asan"/tmp_check/log/*.log "$asan"/log/*.log "$asan"/output_iso/log/*.log 2>/dev/null || true)
    if grep -lE 'ERROR: AddressSanitizer|runtime error:' $logs; then
        grep -hE -A30 'ERROR: AddressSanitizer|runtime error:' $logs | head -200
        echo "not ok - the sanitizers reported an error (see above)"
        failed=$((failed + 1))
    else
        echo "ok - no sanitizer report in $(echo "$logs" | wc -l) server logs"
        passed=$((passed + 1))
    fi
    make -C "$plain" -s install >/dev/null
}
# The regression suite against a server run under Valgrind memcheck, which
# sees what ASan cannot: uninitialised bytes, wherever they go (a tuple, WAL,
# a reply).  PostgreSQL is not built for Valgrind here, so its own reports
# (padding bytes it writes, its memory contexts) are not ours: a report counts
# when a frame of its stack, or of the origin of the value, is in unkey.so.
# pg_regress starts the server from a bin directory where `postgres` runs it
# under Valgrind.  About 5 minutes; UNKEY_VALGRIND=0 skips it.
valgrind_run() {
    local vg="$work/valgrind" n ours
    [ "${UNKEY_VALGRIND:-1}" = 1 ] || return 0
    ensure_packages valgrind
    mkdir -p "$vg/bin" "$vg/log"
    for f in "$PGBIN"/*; do ln -s "$f" "$vg/bin/"; done
    rm "$vg/bin/postgres"
    printf '#!/bin/sh\nexec valgrind --quiet --suppressions=%s --track-origins=yes --num-callers=40 --error-limit=no --log-file=%s/vg.%%p.log %s/postgres "$@"\n' \
        "$tree/test/sanitize/valgrind.supp" "$vg/log" "$PGBIN" >"$vg/bin/postgres"
    chmod 755 "$vg/bin/postgres"
    chown -R postgres: "$vg"
    suite "valgrind regress" env PGCTLTIMEOUT=900 \
        make -s installcheck ISOLATION= TAP_TESTS= EXTRA_REGRESS_OPTS="--bindir=$vg/bin"
    echo "== Valgrind reports that involve unkey.so"
    # a record ends at a line that is only "==pid=="; ours names a file of src/ or unkey.so
    ours="unkey\\.so|[( ]($(cd "$tree/src" && ls *.c | sed 's/\.c$//' | paste -sd'|'))\\.c:[0-9]+"
    read -r n total < <(cat "$vg"/log/vg.*.log /dev/null | ours="$ours" awk '
        function flush() { if (rec ~ /[A-Za-z]/) { t++; if (rec ~ ENVIRON["ours"]) { print rec > "/dev/stderr"; c++ } } rec = "" }
        /^==[0-9]+== *$/ { flush(); next }
        { rec = rec $0 "\n" }
        END { flush(); print c + 0, t + 0 }' 2>"$vg/ours.txt")
    if [ "$n" -eq 0 ]; then
        echo "ok - no Valgrind report involves unkey ($total from PostgreSQL itself, $(ls "$vg"/log | wc -l) processes)"
        passed=$((passed + 1))
    else
        head -300 "$vg/ours.txt"
        echo "not ok - $n Valgrind reports involve unkey (see above)"
        failed=$((failed + 1))
    fi
}

SANITIZE_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
ASAN_OPTS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0"
UBSAN_OPTS="print_stacktrace=1:abort_on_error=1"

suite regress make -s installcheck ISOLATION= TAP_TESTS=
suite isolation make -s installcheck REGRESS= TAP_TESTS=
suite prove make -s installcheck REGRESS= ISOLATION= "PROVE_FLAGS=-v --timer"
demo
fuzz
layout
sanitize
valgrind_run

echo "unkey: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
