#!/usr/bin/env python3
"""Turn run.sh's results into markdown tables, one per synchronous_commit.

Usage: report.py RESULTS.tsv
RESULTS.tsv rows: sync, workload, clients, tps, p50_ms, p99_ms (tab separated).
"""
import sys
from collections import defaultdict

# workload key -> (label, PL/pgSQL baseline, PK SELECT baseline)
WORKLOADS = {
    "a":   ("(a) unkey_verify_key, unlimited", "c2u", "c1"),
    "b":   ("(b) unkey_verify_key, credits", "c2c", None),
    "c1":  ("(c1) PK SELECT", None, None),
    "c2u": ("(c2) PL/pgSQL verify, unlimited", None, None),
    "c2c": ("(c2) PL/pgSQL verify, credits", None, None),
}


def ratios(mine, base):
    """unkey's TPS, p50 and p99 divided by the baseline's, or a dash"""
    if base is None:
        return "—"
    return " / ".join(f"{m / b:.2f}" if b else "—" for m, b in zip(mine, base))


def main(path):
    runs = defaultdict(dict)  # sync -> (workload, clients) -> (tps, p50, p99)
    order = []
    for line in open(path):
        sync, workload, clients, *figures = line.split("\t")
        if sync not in runs:
            order.append(sync)
        runs[sync][workload, int(clients)] = tuple(map(float, figures))

    for sync in order:
        res = runs[sync]
        clients = sorted({c for _, c in res})
        print(f"\n#### synchronous_commit = {sync}\n")
        print("| workload | clients | TPS | p50 ms | p99 ms "
              "| vs PL/pgSQL (TPS / p50 / p99) | vs PK SELECT (TPS / p50 / p99) |")
        print("|---|--:|--:|--:|--:|--:|--:|")
        for key, (label, plpgsql, pk) in WORKLOADS.items():
            for c in clients:
                if (key, c) not in res:
                    continue
                tps, p50, p99 = mine = res[key, c]
                print(f"| {label} | {c} | {tps:.0f} | {p50:.3f} | {p99:.3f} "
                      f"| {ratios(mine, res.get((plpgsql, c)) if plpgsql else None)} "
                      f"| {ratios(mine, res.get((pk, c)) if pk else None)} |")
    print("\nRatios are unkey's figure divided by the baseline's: "
          "TPS above 1 and latencies below 1 favour unkey.")


if __name__ == "__main__":
    main(sys.argv[1])
