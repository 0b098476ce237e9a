#!/usr/bin/env bash
# Benchmark: the service over HTTP against pgbench TPC-B, on one fresh PostgreSQL cluster with
# default durability, in one run (this machine is shared and noisy: compare within a run).
#
#   load/bench.sh            # defaults below; override with env, e.g. DURATION=60 CONNECTIONS=128
#
# Prints committed transfers/s and p50/p99 latency for single transfers on uniform random
# accounts and with one hot credited account, pgbench TPC-B tps at 16 clients, and the ratios.
set -euo pipefail

DURATION=${DURATION:-20}          # seconds per scenario
CONNECTIONS=${CONNECTIONS:-64}    # concurrent HTTP connections
THREADS=${THREADS:-2}             # wrk threads
ACCOUNTS=${ACCOUNTS:-1000}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-16}
PGBENCH_SCALE=${PGBENCH_SCALE:-16}
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
LEDGER_DATA_DIR="$work/data" LEDGER_LISTEN="127.0.0.1:$PORT" RUST_LOG=warn \
  "$root/target/release/ledger" serve > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null || { cat "$work/serve.log"; exit 1; }

psql_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
socket="$work/data"

python3 "$here/bench_setup.py" "http://127.0.0.1:$PORT" bench "$ACCOUNTS" "$work/accounts.txt"

scenario() { # name, extra env
  local name=$1; shift
  env "$@" ACCOUNTS_FILE="$work/accounts.txt" LEDGER=bench \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$here/wrk/transfers.lua" \
    "http://127.0.0.1:$PORT" > "$work/$name.out"
  local line; line=$(grep '^RESULT' "$work/$name.out")
  echo "$name: $line"
  echo "$line" | sed -E 's/.* rate=([0-9]+).*/\1/' > "$work/$name.rate"
}

echo "== HTTP: single transfers, uniform random accounts ($CONNECTIONS connections, ${DURATION}s)"
scenario uniform HOT=0
echo "== HTTP: single transfers, every transfer credits one hot account"
scenario hot HOT=1

committed=$(psql_as "$pg_bin/psql" -h "$socket" -U postgres -d ledger -Atc "SELECT count(*) FROM transfers")
echo "committed transfers in the database: $committed"

echo "== pgbench TPC-B, $PGBENCH_CLIENTS clients, scale $PGBENCH_SCALE, same cluster"
psql_as "$pg_bin/psql" -h "$socket" -U postgres -d postgres -qc "CREATE DATABASE pgbench" >/dev/null
psql_as "$pg_bin/pgbench" -h "$socket" -U postgres -i -q -s "$PGBENCH_SCALE" pgbench > "$work/pgbench-init.log" 2>&1
psql_as "$pg_bin/pgbench" -h "$socket" -U postgres -c "$PGBENCH_CLIENTS" -j 2 -T "$DURATION" -M prepared pgbench > "$work/pgbench.out" 2>&1
pgbench_tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$work/pgbench.out" | head -n 1)
echo "pgbench: tps=$pgbench_tps"

uniform=$(cat "$work/uniform.rate"); hot=$(cat "$work/hot.rate")
python3 - "$uniform" "$hot" "$pgbench_tps" <<'PY'
import sys
uniform, hot, pgbench = map(float, sys.argv[1:])
print(f"== summary: uniform {uniform:.0f}/s, hot {hot:.0f}/s, pgbench {pgbench:.0f} tps")
print(f"uniform / pgbench = {uniform / pgbench:.2f}   (target >= 1.0)")
print(f"hot / uniform     = {hot / uniform:.2f}   (target >= 0.8)")
PY
