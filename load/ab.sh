#!/usr/bin/env bash
# Compares two builds of the service back to back (issue 12: every lever measured before and
# after in one run): for ROUNDS rounds, a fresh cluster and the scenarios for build A, then the
# same for build B, alternating so that the machine's drift hits both alike.
#
#   load/ab.sh BINARY_A BINARY_B     # e.g. two release builds from two worktrees
#   SCENARIOS="uniform batch arrival" ROUNDS=3 DURATION=10 load/ab.sh …
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
a=$1 b=$2
ROUNDS=${ROUNDS:-3}
export SCENARIOS=${SCENARIOS:-"uniform batch"} DURATION=${DURATION:-10}
out=$(mktemp -d /tmp/ledger-ab-XXXXXX)
for round in $(seq 1 "$ROUNDS"); do
  for side in a b; do
    binary=$a; [ "$side" = b ] && binary=$b
    echo "== round $round, build $side ($binary)"
    ROUNDS=1 LEDGER_BINARY="$binary" RESULTS="$out/$side-$round.jsonl" bash "$here/bench.sh" \
      > "$out/$side-$round.log" 2>&1 || { cat "$out/$side-$round.log"; exit 1; }
    grep -E '^  (uniform|hot|batch|arrival|pgbench|SQL)' "$out/$side-$round.log" || true
  done
done
python3 - "$out" "$ROUNDS" <<'PY'
import glob, json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {side: [json.loads(line) for path in sorted(glob.glob(f"{out}/{side}-*.jsonl")) for line in open(path)]
        for side in "ab"}
print("| scenario | A transfers/s | B transfers/s | B / A per round | A p99 ms | B p99 ms |")
print("|---|---|---|---|---|---|")
for scenario in sorted({row["scenario"] for side in rows.values() for row in side}):
    a = [row for row in rows["a"] if row["scenario"] == scenario]
    b = [row for row in rows["b"] if row["scenario"] == scenario]
    ratios = " ".join(f"{y['rate'] / x['rate']:.2f}" for x, y in zip(a, b) if x["rate"])
    med = lambda items, key: statistics.median(r[key] for r in items if r.get(key) is not None) if items else float("nan")
    print(f"| {scenario} | {med(a, 'rate'):,.0f} | {med(b, 'rate'):,.0f} | {ratios} | {med(a, 'p99_ms'):.1f} | {med(b, 'p99_ms'):.1f} |")
PY
rm -rf "$out"
