#!/usr/bin/env python3
"""Turn ratelimit.sh's results into markdown tables.

Usage: ratelimit_report.py RESULTS.tsv
RESULTS.tsv rows: sync, workload, clients, tps, p50_ms, p99_ms (tab separated),
the format of run.sh's results; sync is "-" for Redis.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from report import ratios  # noqa: E402  (TPS / p50 / p99 of a row over a baseline)

# workload key -> (label, SELECT 1 baseline, SQL limiter, Redis, random twin for hot/random)
WORKLOADS = {
    "u_rand":     ("unkey_ratelimit, random", "sel1", "sql_rand", "redis_rand", None),
    "u_hot":      ("unkey_ratelimit, hot", "sel1", "sql_hot", "redis_hot", "u_rand"),
    "sel1":       ("SELECT 1", None, None, None, None),
    "noop_pl":    ("C no-op, plain", "sel1", None, None, None),
    "noop":       ("C no-op, SECURITY DEFINER + SET", "sel1", None, None, None),
    "sql_rand":   ("PL/pgSQL limiter, random", "sel1", None, None, None),
    "sql_hot":    ("PL/pgSQL limiter, hot", "sel1", None, None, "sql_rand"),
    "redis_rand": ("Redis EVALSHA, random", None, None, None, None),
    "redis_hot":  ("Redis EVALSHA, hot", None, None, None, "redis_rand"),
}


def load(path):
    """(workload, clients) -> (tps, p50, p99), and the sorted client counts"""
    res = {}
    for line in open(path):
        _, workload, clients, *figures = line.rstrip("\n").split("\t")
        res[workload, int(clients)] = tuple(map(float, figures))
    return res, sorted({c for _, c in res})


def tps_ratio(res, mine, base, c):
    """TPS of mine over base at c clients, or None when either is missing"""
    if (mine, c) not in res or (base, c) not in res or not res[base, c][0]:
        return None
    return res[mine, c][0] / res[base, c][0]


def main(path):
    res, clients = load(path)

    print("\n#### Rate limiting (synchronous_commit = on)\n")
    print("| workload | clients | TPS | p50 ms | p99 ms | vs SELECT 1 | vs PL/pgSQL limiter "
          "| vs Redis | hot vs random |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for key, (label, *bases) in WORKLOADS.items():
        for c in clients:
            if (key, c) not in res:
                continue
            tps, p50, p99 = mine = res[key, c]
            cells = [ratios(mine, res.get((b, c))) if b else "—" for b in bases]
            print(f"| {label} | {c} | {tps:.0f} | {p50:.3f} | {p99:.3f} | " + " | ".join(cells) + " |")
    print("\nRatio cells are TPS / p50 / p99 of the row divided by the baseline's: "
          "TPS above 1 and latencies below 1 favour the row.")

    syncs = [s for s in ("on", "off") if any(w == f"ver_plain_{s}" for w, _ in res)]
    if syncs:
        print("\n#### unkey_verify_key with one autoApply rate limit vs none (one key each)\n")
        print("| synchronous_commit | clients | TPS without | TPS with | TPS cost "
              "| p50 ms without → with | p99 ms without → with |")
        print("|---|--:|--:|--:|--:|--:|--:|")
        for s in syncs:
            for c in clients:
                plain, lim = res.get((f"ver_plain_{s}", c)), res.get((f"ver_lim_{s}", c))
                if plain and lim:
                    print(f"| {s} | {c} | {plain[0]:.0f} | {lim[0]:.0f} | {1 - lim[0] / plain[0]:+.1%} "
                          f"| {plain[1]:.3f} → {lim[1]:.3f} | {plain[2]:.3f} → {lim[2]:.3f} |")
        print("\nTPS cost = 1 − TPS with / TPS without: the share of throughput the limit takes.")

    # target label, row, baseline, minimum TPS ratio (or maximum cost), clients it applies to
    targets = [
        ("unkey_ratelimit random ≥ 0.8× SELECT 1", "u_rand", "sel1", 0.8, clients),
        ("unkey_ratelimit random ≥ 5× PL/pgSQL limiter", "u_rand", "sql_rand", 5, clients),
        ("unkey_ratelimit hot ≥ 5× PL/pgSQL limiter hot", "u_hot", "sql_hot", 5, clients),
        ("unkey_ratelimit random ≥ Redis at 8 clients", "u_rand", "redis_rand", 1, [8]),
        ("unkey_ratelimit hot ≥ Redis hot at 8 clients", "u_hot", "redis_hot", 1, [8]),
        ("unkey_ratelimit hot ≥ 0.7× random", "u_hot", "u_rand", 0.7, clients),
        ("autoApply limit costs < 10% of verify (sync on)", "ver_lim_on", "ver_plain_on", 0.9, clients),
    ]
    print("\n#### Targets (TPS ratio per client count)\n")
    print("| target | " + " | ".join(f"{c} cl." for c in clients) + " | met |")
    print("|---|" + "--:|" * len(clients) + ":-:|")
    for label, mine, base, minimum, where in targets:
        r = {c: tps_ratio(res, mine, base, c) for c in clients}
        shown = [r[c] for c in where if r.get(c) is not None]
        met = "—" if not shown else "yes" if all(x >= minimum for x in shown) else "**no**"
        print(f"| {label} | " + " | ".join("—" if r[c] is None else f"{r[c]:.2f}" for c in clients)
              + f" | {met} |")
    print("\nThe autoApply row shows TPS with / TPS without (≥ 0.90 means < 10% cost).")


if __name__ == "__main__":
    main(sys.argv[1])
