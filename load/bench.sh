#!/usr/bin/env bash
# Benchmark: the service over HTTP against pgbench TPC-B, on one fresh PostgreSQL cluster with
# default durability, in one run (this machine is shared and noisy: compare within a run).
#
#   load/bench.sh            # defaults below; override with env, e.g. ROUNDS=5 CONNECTIONS=128
#
# Prints committed transfers/s and p50/p99 latency for single transfers on uniform random
# accounts, with one hot credited account, and in atomic batches of 1,000 transfers per request;
# pgbench TPC-B tps at 16 clients; and the ratios.
# The host's load drifts from minute to minute, so the scenarios run back to back in several
# rounds; each round yields its own ratios, and the summary reports their medians.
set -euo pipefail

DURATION=${DURATION:-10}          # seconds per scenario and round
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}    # concurrent HTTP connections
THREADS=${THREADS:-2}             # wrk threads
ACCOUNTS=${ACCOUNTS:-1000}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-16}
PGBENCH_SCALE=${PGBENCH_SCALE:-16}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-8}  # concurrent 1,000-transfer batch requests
PORT=${PORT:-18480}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

echo "== building the release binary"
(cd "$root" && cargo build --release --quiet)

work=$(mktemp -d /tmp/ledger-bench-XXXXXX)
chmod 755 "$work"
cleanup() {
  [ -n "${server_pid:-}" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting the service on a fresh embedded cluster in $work"
admin_key="bench-admin-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
LEDGER_DATA_DIR="$work/data" LEDGER_LISTEN="127.0.0.1:$PORT" RUST_LOG=warn \
  LEDGER_BOOTSTRAP_ADMIN_KEY="$admin_key" LEDGER_RATE_LIMIT_PER_SECOND=1000000 LEDGER_RATE_LIMIT_BURST=1000000 \
  "$root/target/release/ledger" serve > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null || { cat "$work/serve.log"; exit 1; }

psql_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
socket="$work/data"

API_KEY="$admin_key" python3 "$here/bench_setup.py" "http://127.0.0.1:$PORT" bench "$ACCOUNTS" "$work/accounts.txt"
writer_key=$(cat "$work/accounts.txt.writer-key")

scenario() { # name, script, connections, extra env...
  local name=$1 script=$2 connections=$3; shift 3
  env "$@" ACCOUNTS_FILE="$work/accounts.txt" LEDGER=bench API_KEY="$writer_key" \
    wrk -t"$THREADS" -c"$connections" -d"${DURATION}s" --latency -s "$here/wrk/$script" \
    "http://127.0.0.1:$PORT" > "$work/$name.out"
  local line; line=$(grep '^RESULT' "$work/$name.out")
  echo "  $name: $line"
  echo "$line" | sed -E 's/.* rate=([0-9]+).*/\1/'  > "$work/$name.rate"
}

echo "== pgbench TPC-B database (scale $PGBENCH_SCALE) on the same cluster"
psql_as "$pg_bin/psql" -h "$socket" -U postgres -d postgres -qc "CREATE DATABASE pgbench" >/dev/null
psql_as "$pg_bin/pgbench" -h "$socket" -U postgres -i -q -s "$PGBENCH_SCALE" pgbench > "$work/pgbench-init.log" 2>&1

pgbench_round() {
  psql_as "$pg_bin/pgbench" -h "$socket" -U postgres -c "$PGBENCH_CLIENTS" -j 2 -T "$DURATION" -M prepared pgbench \
    > "$work/pgbench.out" 2>&1
  sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$work/pgbench.out" | head -n 1 > "$work/pgbench.rate"
  echo "  pgbench: tps=$(cat "$work/pgbench.rate") ($PGBENCH_CLIENTS clients)"
}

: > "$work/rounds.txt"
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS: $CONNECTIONS HTTP connections, ${DURATION}s per scenario"
  scenario uniform transfers.lua "$CONNECTIONS" HOT=0
  scenario hot transfers.lua "$CONNECTIONS" HOT=1
  scenario batch batches.lua "$BATCH_CONNECTIONS" BATCH_SIZE=1000
  pgbench_round
  echo "$(cat "$work/uniform.rate") $(cat "$work/hot.rate") $(cat "$work/pgbench.rate") $(cat "$work/batch.rate")" >> "$work/rounds.txt"
done

committed=$(psql_as "$pg_bin/psql" -h "$socket" -U postgres -d ledger -Atc "SELECT count(*) FROM transfers")
echo "committed transfers in the database: $committed"

python3 - "$work/rounds.txt" <<'PY'
import statistics, sys
rounds = [tuple(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
uniform_ratio = [u / p for u, h, p, b in rounds]
hot_ratio = [h / u for u, h, p, b in rounds]
median = statistics.median
print("== summary (medians over %d rounds)" % len(rounds))
print("uniform %.0f/s, hot %.0f/s, pgbench %.0f tps" % (median(r[0] for r in rounds), median(r[1] for r in rounds), median(r[2] for r in rounds)))
print("uniform / pgbench = %.2f  per round: %s  (target >= 1.0)" % (median(uniform_ratio), " ".join("%.2f" % r for r in uniform_ratio)))
print("hot / uniform     = %.2f  per round: %s  (target >= 0.8)" % (median(hot_ratio), " ".join("%.2f" % r for r in hot_ratio)))
print("1,000-transfer batches: %.0f transfers/s (%.1f x pgbench)" % (median(r[3] for r in rounds), median(r[3] / r[2] for r in rounds)))
PY
