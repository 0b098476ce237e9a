#!/usr/bin/env python3
"""Draws load/bench.sh results as SVG, with no plotting library (none is installed here).

Usage: plot.py RESULTS.jsonl [RESULTS.jsonl ...] OUT_DIR

Writes OUT_DIR/throughput.svg (median transfers/s per scenario of a standard run),
OUT_DIR/cost_curve.svg (transfers/s by ledger size of a curve run) and OUT_DIR/ledgers.svg
(transfers/s by number of ledgers written at once), for whichever runs are given.
"""
import json
import math
import os
import statistics
import sys

WIDTH, HEIGHT, MARGIN = 640, 360, 60


def svg(title, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
            f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15">{title}</text>\n{body}</svg>\n')


def axis(max_value, label):
    parts = [f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - 20}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
             f'<line x1="{MARGIN}" y1="40" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
             f'<text x="14" y="{HEIGHT / 2}" transform="rotate(-90 14 {HEIGHT / 2})" text-anchor="middle">{label}</text>']
    for step in range(5):
        value = max_value * step / 4
        y = y_of(value, max_value)
        parts.append(f'<text x="{MARGIN - 6}" y="{y + 4}" text-anchor="end">{value:,.0f}</text>')
        parts.append(f'<line x1="{MARGIN}" y1="{y}" x2="{WIDTH - 20}" y2="{y}" stroke="#ddd"/>')
    return "\n".join(parts)


def y_of(value, max_value):
    return HEIGHT - MARGIN - (HEIGHT - MARGIN - 40) * value / max_value


def bars(title, labelled_values, label):
    max_value = max(value for _, value in labelled_values) * 1.15
    slot = (WIDTH - MARGIN - 20) / len(labelled_values)
    parts = [axis(max_value, label)]
    for index, (name, value) in enumerate(labelled_values):
        x, y = MARGIN + index * slot + slot * 0.15, y_of(value, max_value)
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{HEIGHT - MARGIN - y:.1f}" fill="#4a7ab5"/>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle">{value:,.0f}</text>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">{name}</text>')
    return svg(title, "\n".join(parts))


def lines(title, series, x_label, label, log_x):
    xs = [x for points in series.values() for x, _ in points]
    max_value = max(y for points in series.values() for _, y in points) * 1.15
    scale = (lambda x: math.log10(x)) if log_x else (lambda x: x)
    low, high = scale(min(xs)), scale(max(xs))
    span = (high - low) or 1
    x_of = lambda x: MARGIN + (WIDTH - MARGIN - 40) * (scale(x) - low) / span
    colours = ["#4a7ab5", "#c0504d", "#9bbb59"]
    parts = [axis(max_value, label),
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 14}" text-anchor="middle">{x_label}</text>']
    for x in sorted(set(xs)):
        parts.append(f'<text x="{x_of(x):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">{x:,}</text>')
    for index, (name, points) in enumerate(sorted(series.items())):
        colour = colours[index % len(colours)]
        path = " ".join(f"{x_of(x):.1f},{y_of(y, max_value):.1f}" for x, y in sorted(points))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            parts.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y, max_value):.1f}" r="3" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - 150}" y="{50 + 16 * index}" fill="{colour}">{name}</text>')
    return svg(title, "\n".join(parts))


def main():
    *inputs, out_dir = sys.argv[1:]
    rows = [json.loads(line) for path in inputs for line in open(path) if line.strip()]
    os.makedirs(out_dir, exist_ok=True)
    standard = [row for row in rows if "size" not in row and "ledgers" not in row]
    if standard:
        order = ["uniform", "hot", "arrival", "pgbench", "batch", "ceiling"]
        names = [name for name in order if any(row["scenario"] == name for row in standard)]
        values = [(name, statistics.median(row["rate"] for row in standard if row["scenario"] == name)) for name in names]
        open(os.path.join(out_dir, "throughput.svg"), "w").write(
            bars("Median throughput per scenario (pgbench: tps; others: transfers/s)", values, "per second"))
    curve = {}
    for row in rows:
        if "size" in row:
            curve.setdefault(row["scenario"], []).append((row["size"], row["rate"]))
    if curve:
        open(os.path.join(out_dir, "cost_curve.svg"), "w").write(
            lines("Throughput by ledger size", curve, "transfers in the ledger (log scale)", "transfers/s", True))
    ledgers = [(row["ledgers"], row["rate"]) for row in rows if "ledgers" in row]
    if ledgers:
        open(os.path.join(out_dir, "ledgers.svg"), "w").write(
            lines("Single transfers, several ledgers at once", {"all ledgers together": ledgers},
                  "ledgers written at once", "transfers/s", False))


if __name__ == "__main__":
    main()
