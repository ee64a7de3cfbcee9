#!/usr/bin/env python3
"""Turn events.sh's results into markdown tables.

Usage: events_report.py WORKDIR
WORKDIR holds results.tsv (lib.sh's bench rows: sync, workload, clients, tps,
p50_ms, p99_ms), pipeline.tsv (sync, workload, clients, transactions, xids,
WAL fsyncs, appended, written, inline writes, full waits, flush ms),
flush.tsv (batch size, events, ms, WAL bytes, record bytes), query.tsv
(workload, runs, p50, p95, mean, max ms) and facts.tsv (name, value...).
"""
import os
import sys
from collections import defaultdict

WORKLOADS = {  # key -> (label, baseline key)
    "a": ("(a) unkey_verify_key, unlimited", "c1"),
    "a0": ("(a0) the same, writer deferred (events only buffered)", "c1"),
    "c1": ("(c1) PK SELECT", None),
    "p": ("(p) PL/pgSQL verify that INSERTs its event, unlimited", None),
    "b": ("(b) unkey_verify_key, credits", "u"),
    "u": ("(u) single-row UPDATE", None),
    "pc": ("(pc) PL/pgSQL verify that INSERTs its event, credits", None),
}
# (workload, baseline, goal, name): the targets of issue 13
TARGETS = [("a", "c1", 0.5, "(a) unlimited ≥ 0.5× PK SELECT"),
           ("a", "p", 1.5, "(a) unlimited ≥ 1.5× PL/pgSQL verify"),
           ("b", "u", 0.8, "(b) credits ≥ 0.8× single-row UPDATE"),
           ("b", "pc", 1.5, "(b) credits ≥ 1.5× PL/pgSQL verify with credits"),
           ("a0", "c1", None, "(a0) writer deferred vs PK SELECT (diagnostic)")]
QUERY_TARGET_MS = {"q": 100.0, "qc": 50.0}
FLUSH_TARGET = (100000, 500)   # events/s, WAL bytes per event


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def ratio3(mine, base):
    return " / ".join(f"{m / b:.2f}" if b else "—" for m, b in zip(mine, base))


def main(work):
    facts = {r[0]: r[1:] for r in rows(os.path.join(work, "facts.tsv"))}
    fact = lambda k, i=0: facts.get(k, ["?"] * (i + 1))[i]
    res = {}
    syncs, clients = [], set()
    for sync, w, c, *fig in rows(os.path.join(work, "results.tsv")):
        res[sync, w, int(c)] = tuple(map(float, fig))
        if sync not in syncs:
            syncs.append(sync)
        clients.add(int(c))
    clients = sorted(clients)

    print(f"{fact('keys')} keys (half unlimited, half with credits), {fact('duration')} s per run, "
          f"{fact('cpus')} CPUs, PostgreSQL {fact('pg')}, build {fact('head')}, "
          f"load average before: {fact('load_before')}")
    print(f"\nLoad average (1, 5, 15 min) after part 1: {fact('load_part1')}, after part 2: {fact('load_part2')}, "
          f"at the end: {fact('load_end')}; the run took {fact('t_total')} s.")

    print("\n#### Verification with events on, against its baselines\n")
    print("| workload | synchronous_commit | clients | TPS | p50 ms | p99 ms | vs baseline (TPS / p50 / p99) |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for w, (label, base) in WORKLOADS.items():
        for sync in syncs:
            for c in clients:
                if (sync, w, c) not in res:
                    continue
                mine = res[sync, w, c]
                b = res.get((sync, base, c)) if base else None
                print(f"| {label} | {sync} | {c} | {mine[0]:.0f} | {mine[1]:.3f} | {mine[2]:.3f} "
                      f"| {ratio3(mine, b) if b else '—'} |")
    print("\nBaselines: (a) against (c1) and (p), (b) against (u) and (pc), same synchronous_commit and clients. "
          "Ratios are unkey's figure divided by the baseline's: TPS above 1 and latencies below 1 favour unkey.")

    print("\n#### Targets (TPS ratio per client count)\n")
    print("| target | synchronous_commit | " + " | ".join(f"{c} cl." for c in clients) + " | met |")
    print("|---|---|" + "--:|" * len(clients) + ":-:|")
    for w, base, goal, name in TARGETS:
        for sync in syncs:
            rs = [res[sync, w, c][0] / res[sync, base, c][0]
                  if (sync, w, c) in res and (sync, base, c) in res else None for c in clients]
            if all(r is None for r in rs):
                continue
            met = goal is not None and all(r is not None and r >= goal for r in rs)
            print(f"| {name} | {sync} | " + " | ".join(f"{r:.2f}" if r is not None else "—" for r in rs)
                  + f" | {('yes' if met else '**no**') if goal is not None else '—'} |")
    if "on" in syncs and "off" in syncs:
        for w in ("a", "c1", "b", "u"):
            rs = [res["on", w, c][0] / res["off", w, c][0]
                  if ("on", w, c) in res and ("off", w, c) in res else None for c in clients]
            print(f"| {WORKLOADS[w][0]}: TPS on / off | — | "
                  + " | ".join(f"{r:.2f}" if r is not None else "—" for r in rs) + " | — |")

    print(f"\nSanity: the verifications of parts 1 and 2 wrote {fact('verified')} events, all VALID "
          f"(check_all_valid before each run), and the month rollups counted {fact('rollup_month')}"
          f"{' (the same)' if fact('verified') == fact('rollup_month') else ' (**not the same**)'}.")

    pipe = rows(os.path.join(work, "pipeline.tsv"))
    if pipe:
        print("\n#### What each run did (events counted by unkey_events_info)\n")
        print("| workload | synchronous_commit | clients | transactions | xids / 1k tx | WAL fsyncs / 1k tx "
              "| events appended | written during the run (events/s) | inline writes | full waits "
              "| flush of the rest ms |")
        print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        dur = float(fact("duration"))
        order = {w: i for i, w in enumerate(WORKLOADS)}
        for sync, w, c, tx, xids, fsyncs, app, written, inl, fw, drain in sorted(
                pipe, key=lambda r: (order.get(r[1], 9), syncs.index(r[0]) if r[0] in syncs else 9, int(r[2]))):
            tx = int(tx)
            ev = w in ("a", "a0", "b")
            print(f"| {WORKLOADS.get(w, (w,))[0]} | {sync} | {c} | {tx} | {1000 * int(xids) / tx:.1f} "
                  f"| {1000 * int(fsyncs) / tx:.1f} | {app if ev else '—'} "
                  f"| {f'{written} ({int(written) / dur:.0f})' if ev else '—'} | {inl if ev else '—'} "
                  f"| {fw if ev else '—'} | {drain if ev else '—'} |")
        print("\nEvery run starts with empty verification_events and verification_rollups (TRUNCATE) and "
              "no event writer. "
              "xids and WAL fsyncs are cluster-wide, from before the run to after the flush of its "
              "events: they include the event writer's transactions (one per batch) and the checkpoint "
              "before each run.")

    flush = rows(os.path.join(work, "flush.tsv"))
    if flush:
        print("\n#### Flush throughput of the event writer\n")
        print("| events from | unkey.events_batch_size | events | flush ms | events/s | WAL bytes / event "
              "| ring bytes / event | ≥ 100k/s and ≤ 500 B |")
        print("|---|--:|--:|--:|--:|--:|--:|:-:|")
        for src, bs, n, ms, wal, rec in flush:
            n, ms = int(n), float(ms)
            met = n / ms * 1000 >= FLUSH_TARGET[0] and float(wal) / n <= FLUSH_TARGET[1]
            print(f"| {src} | {bs} | {n} | {ms:.0f} | {n / ms * 1000:.0f} | {float(wal) / n:.0f} | {rec or '—'} "
                  f"| {'yes' if met else '**no**'} |")
        print("\nThe writer was deferred (60 s flush interval, a ring larger than the events) while the events "
              "were buffered; unkey_flush_events() then wakes it and waits until all are written, each batch in "
              "its own transaction (the raw rows by multi-insert, then the batch added up per hour and upserted). "
              "WAL bytes are everything written meanwhile, full-page images included.")

    query = rows(os.path.join(work, "query.tsv"))
    if query:
        nb, nev, build, store, store_p50, store_max = facts.get("gen_timing", ["?"] * 6)
        hour, day, month, size = facts.get("rollups", ["?"] * 4)
        nrows, total, ndays, nkeys = facts.get("query_check", ["?"] * 4)
        print("\n#### Analytics: unkey_get_verifications(group_by => '{day,key}')\n")
        raw_b, roll_b = facts.get("disk_per_event", ["?", "?"])
        print(f"Data: {nev} events in {nb} calls of unkey._store_verifications, "
              f"{int(nev) / (float(store) / 1000):.0f} events/s in the calls "
              f"({fact('gen_first_last')} in the first 10 calls, {fact('gen_first_last', 1)} in the last 10; "
              f"median call {store_p50} ms, max {store_max} ms; {float(build) / 1000:.0f} s more to build the "
              f"arrays; {fact('gen_wall')} s in all); {fact('events_stored')} rows in verification_events; "
              f"rollup rows: {hour} hour, {day} day, {month} month ({size} for the whole table); "
              f"on disk per event: {raw_b} bytes of raw rows, {roll_b} bytes of rollups; "
              f"the closed days and months materialised in {fact('materialize')} ms. "
              f"The call returns {nrows} rows ({ndays} days × {nkeys} keys, today's still open), total {total}.\n")
        print("| query | runs | p50 ms | p95 ms | mean ms | max ms | target met |")
        print("|---|--:|--:|--:|--:|--:|:-:|")
        labels = {"q": "(q) unkey_get_verifications, rows to the client (< 100 ms)",
                  "qc": "(qc) the same, count(*) on the server (< 50 ms)",
                  "q0": "(q0) floor: plain GROUP BY (day, key) of the rollup rows (q) reads, count(*)",
                  "q2": "(q2) the answer stored as a table, rows to the client"}
        for w, runs, p50, p95, mean, mx in query:
            goal = QUERY_TARGET_MS.get(w)
            print(f"| {labels.get(w, w)} | {runs} | {p50} | {p95} | {mean} | {mx} "
                  f"| {('yes' if float(p50) < goal else '**no**') if goal else '—'} |")
        print(f"\nWarm: {runs} runs timed on one connection after 6 untimed ones (pgbench -M prepared, "
              "latencies from its per-transaction log).")
        plan = slowest_plan(os.path.join(work, "explain.txt"))
        if plan:
            print("\n<details><summary>Plan of the function's main statement (auto_explain, analyze, buffers)"
                  "</summary>\n\n```")
            print(plan)
            print("```\n</details>")


def slowest_plan(path):
    """The plan of the slowest statement auto_explain reported, without its query text"""
    if not os.path.exists(path):
        return None
    blocks, cur = [], None
    for line in open(path):
        if line.startswith("NOTICE:  duration:"):
            cur = [float(line.split()[2]), line.strip(), []]
            blocks.append(cur)
        elif cur is not None:
            cur[2].append(line.rstrip("\n"))
    # not the outer call, whose plan is one Function Scan
    blocks = [b for b in blocks if not any("Function Scan on unkey_get_verifications" in l for l in b[2])]
    if not blocks:
        return None
    ms, head, lines = max(blocks, key=lambda b: b[0])
    start = next((i for i, l in enumerate(lines) if "(cost=" in l or "(actual" in l), 0)
    return "\n".join([head] + lines[start:])


if __name__ == "__main__":
    main(sys.argv[1])
