#!/usr/bin/env python3
"""Prints the table of one load/bench.sh run from its JSON lines: per scenario (and ledger size
or ledger count), the median over rounds of transfers/s, latency and CPU in cores; then the
ratios against the references measured in the same run, with their targets (issue 12).

Usage: bench_table.py RESULTS.jsonl
"""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]


def key(row):
    if "size" in row:
        return (row["scenario"], f"size {row['size']:,}")
    if "ledgers" in row:
        return (row["scenario"], f"{row['ledgers']} ledgers")
    return (row["scenario"], "")


def median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


groups = {}
for row in rows:
    groups.setdefault(key(row), []).append(row)


def show(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


header = ("scenario", "at", "transfers/s", "p50 ms", "p99 ms", "cpu service", "cpu postgres", "cpu loadgen", "rss MB")
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
medians = {}
for (scenario, at), group in groups.items():
    m = {field: median(row.get(field) for row in group)
         for field in ("rate", "p50_ms", "p99_ms", "cpu_service", "cpu_postgres", "cpu_loadgen", "service_peak_rss_mb")}
    medians[(scenario, at)] = m
    print("| " + " | ".join([scenario, at, show(m["rate"], 0), show(m["p50_ms"], 2), show(m["p99_ms"], 2),
                              show(m["cpu_service"], 2), show(m["cpu_postgres"], 2), show(m["cpu_loadgen"], 2),
                              show(m["service_peak_rss_mb"], 0)]) + " |")


def per_round_ratio(numerator, denominator):
    by_round = {}
    for row in rows:
        by_round.setdefault(row["round"], {})[row["scenario"]] = row["rate"]
    ratios = [r[numerator] / r[denominator] for r in by_round.values() if numerator in r and denominator in r and r[denominator]]
    return median(ratios), ratios


def target(name, value, goal, ratios):
    verdict = "pass" if value is not None and value >= goal else "MISS"
    rounds = " ".join(f"{r:.2f}" for r in ratios)
    print(f"{name:<28} {show(value, 2):>6}  target >= {goal}  {verdict}  (per round: {rounds})")


scenarios = {row["scenario"] for row in rows}
print()
if {"uniform", "pgbench"} <= scenarios and "size" not in rows[0]:
    target("uniform / pgbench TPC-B", *per_round_ratio("uniform", "pgbench")[:1], 1.5, per_round_ratio("uniform", "pgbench")[1])
    target("hot / uniform", *per_round_ratio("hot", "uniform")[:1], 0.8, per_round_ratio("hot", "uniform")[1])
    target("batch / SQL-only ceiling", *per_round_ratio("batch", "ceiling")[:1], 0.9, per_round_ratio("batch", "ceiling")[1])
    target("batch / pgbench TPC-B", *per_round_ratio("batch", "pgbench")[:1], 4.0, per_round_ratio("batch", "pgbench")[1])
    arrival = [row for row in rows if row["scenario"] == "arrival"]
    if arrival:
        p99 = median(row["p99_ms"] for row in arrival)
        verdict = "pass" if p99 is not None and p99 <= 10 else "MISS"
        offered = median(row["offered"] for row in arrival)
        print(f"{'p99 at half load (k6)':<28} {show(p99, 2):>6}  target <= 10 ms  {verdict}  (offered {offered:.0f}/s, "
              f"dropped {sum(row['dropped'] for row in arrival)})")
if any("size" in row for row in rows):
    for scenario in ("batch", "uniform"):
        curve = sorted((row["size"], row["rate"]) for row in rows if row["scenario"] == scenario and "size" in row)
        if len(curve) >= 2:
            ratio = curve[-1][1] / curve[0][1]
            verdict = "pass" if ratio >= 0.85 else "MISS"
            print(f"{scenario} at {curve[-1][0]:,} / at {curve[0][0]:,} transfers = {ratio:.2f}  target >= 0.85  {verdict}")
