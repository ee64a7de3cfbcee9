#!/usr/bin/env bash
# test/check.sh: build, install and run every test suite.
#
# make installcheck runs pg_regress, the isolation specs and the TAP tests;
# each suite starts its own temporary instance with unkey preloaded.  The
# suites run one by one so that a failure in one still lets the others run,
# and the last line is a summary CI can read.
. "$(dirname "$0")/lib.sh"

ensure_packages
work=$(mktemp -d /tmp/unkey-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== building and installing unkey"
stage_and_install "$work"
tree="$work/unkey"
passed=0
failed=0

# Run one suite; count its tests from the runner's own summary
suite() {
    local name="$1" log="$work/$1.log" ok=0 bad=0; shift
    echo "== $name"
    if as_postgres "$tree" "$@" 2>&1 | tee "$log"; then :; fi
    case "$name" in
        prove)
            ok=$(grep -cE '^ok ' "$log" || true)
            bad=$(grep -cE '^not ok ' "$log" || true)
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

suite regress make -s installcheck ISOLATION= TAP_TESTS=
suite isolation make -s installcheck REGRESS= TAP_TESTS=
suite prove make -s installcheck REGRESS= ISOLATION= PROVE_FLAGS=-v

echo "unkey: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
