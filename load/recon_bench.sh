#!/usr/bin/env bash
# Benchmark: reconciliation at scale (docs/RECONCILIATION.md), on one fresh embedded PostgreSQL
# cluster with default durability.
#
#   load/recon_bench.sh            # defaults below; override with env, e.g. TRANSFERS=200000 LINES=200000
#
# Posts TRANSFERS transfers on one bank account, uploads a CSV statement of LINES lines with
# planted differences, runs a reconciliation, downloads its items as CSV and ndjson; prints each
# step's time, upload lines/s, run seconds, the service's resident memory growth during upload and
# run (VmRSS every 0.2 s) and its peak (VmHWM), against targets. The steps are in recon_bench.py.
set -euo pipefail

export TRANSFERS=${TRANSFERS:-100000}
export LINES=${LINES:-100000}
PORT=${PORT:-18482}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

echo "== building the release binary"
(cd "$root" && cargo build --release --quiet)

work=$(mktemp -d /tmp/ledger-recon-bench-XXXXXX)
chmod 755 "$work"
cleanup() {
  [ -n "${server_pid:-}" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting the service on a fresh embedded cluster in $work"
base="http://127.0.0.1:$PORT"
admin_key="bench-admin-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
LEDGER_DATA_DIR="$work/data" LEDGER_LISTEN="127.0.0.1:$PORT" RUST_LOG=warn \
  LEDGER_BOOTSTRAP_ADMIN_KEY="$admin_key" LEDGER_RATE_LIMIT_PER_SECOND=1000000 LEDGER_RATE_LIMIT_BURST=1000000 \
  "$root/target/release/ledger" serve > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  curl -sf --max-time 2 "$base/health/ready" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.5
done
curl -sf --max-time 2 "$base/health/ready" >/dev/null || { echo "the service is not ready:" >&2; cat "$work/serve.log" >&2; exit 1; }

status=0
BASE_URL="$base" ADMIN_KEY="$admin_key" SERVER_PID="$server_pid" WORK="$work" \
  python3 "$here/recon_bench.py" || status=$?

errors=$(grep -ciE 'error|panic' "$work/serve.log" || true)
echo "== serve log: $(wc -l < "$work/serve.log") lines, $errors with error/panic"
if [ "$errors" != 0 ] || [ "$status" != 0 ]; then
  grep -iE 'error|panic|warn' "$work/serve.log" | head -n 40 || true
fi
exit "$status"
