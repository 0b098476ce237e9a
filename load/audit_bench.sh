#!/usr/bin/env bash
# Benchmark: the signed export and `ledger-verify` on a large journal, on one fresh PostgreSQL
# cluster with default durability.
#
#   load/audit_bench.sh            # defaults below; override with env, e.g. TRANSFERS=1000000
#
# Fills a ledger with TRANSFERS transfers between ACCOUNTS random accounts (atomic batches of
# 1,000 over HTTP), then prints: the export's size, time and rate (cold and again), and the
# service's resident memory before and during the exports (sampled every 50 ms); `ledger-verify`'s
# time, rate and peak resident memory (from /usr/bin/time).
set -euo pipefail

TRANSFERS=${TRANSFERS:-100000}
ACCOUNTS=${ACCOUNTS:-1000}
PORT=${PORT:-18481}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing: apt-get install -y time" >&2; exit 1; }

echo "== building the release binaries"
(cd "$root" && cargo build --release --quiet --bins)

work=$(mktemp -d /tmp/ledger-audit-bench-XXXXXX)
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
  curl -sf "$base/health/ready" >/dev/null && break
  sleep 0.5
done
curl -sf "$base/health/ready" >/dev/null || { cat "$work/serve.log"; exit 1; }

API_KEY="$admin_key" python3 "$here/bench_setup.py" "$base" audit "$ACCOUNTS" "$work/accounts.txt"

echo "== posting $TRANSFERS transfers in atomic batches of 1,000"
API_KEY=$(cat "$work/accounts.txt.writer-key") python3 - "$base" "$work/accounts.txt" "$TRANSFERS" <<'PY'
import concurrent.futures, json, os, random, sys, time, urllib.request, uuid
base, accounts_file, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
accounts = open(accounts_file).read().split()
def batch(size):
    items = []
    for _ in range(size):
        debit, credit = random.sample(accounts, 2)
        items.append({"debit_account_id": debit, "credit_account_id": credit,
                      "amount": "%d.%02d" % (random.randint(0, 99), random.randint(1, 99)), "currency": "EUR"})
    request = urllib.request.Request(base + "/v1/ledgers/audit/transfers/batch",
        data=json.dumps({"atomic": True, "transfers": items}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4()),
                 "Authorization": "Bearer " + os.environ["API_KEY"]})
    with urllib.request.urlopen(request) as response:
        assert response.status == 201, response.read()
sizes = [1000] * (total // 1000) + ([total % 1000] if total % 1000 else [])
started = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    list(pool.map(batch, sizes))
print("posted %d transfers in %.1f s" % (total, time.monotonic() - started))
PY

auditor_key=$(curl -sf -X POST "$base/v1/api-keys" -H "Authorization: Bearer $admin_key" \
  -H "Content-Type: application/json" -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \
  -d '{"name": "bench auditor", "role": "auditor", "ledgers": ["audit"]}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
curl -sf -H "Authorization: Bearer $auditor_key" "$base/v1/keys" | python3 -c \
  'import json, sys; print(next(k for k in json.load(sys.stdin) if k["current"])["public_key_pem"], end="")' \
  > "$work/public-key.pem"

rss_kib() { sed -nE 's/^VmRSS:\s+([0-9]+) kB/\1/p' "/proc/$server_pid/status"; }
# Autovacuum would otherwise work through the bulk load during the exports, on the same two cores:
# settle it first, as it would be on a ledger in service. The export runs twice (the
# spread between two runs of the same export is the noise of this shared machine).
echo "== VACUUM ANALYZE, then exporting (twice)"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_as "$pg_bin/psql" -h "$work/data" -U postgres -d ledger -qc "VACUUM ANALYZE"
rss_before=$(rss_kib)
( peak=0; while [ ! -e "$work/export.done" ]; do
    now=$(rss_kib); [ "$now" -gt "$peak" ] && peak=$now; sleep 0.05
  done; echo "$peak" > "$work/export.peak" ) &
sampler_pid=$!
for run in first again; do
  curl -sf -o "$work/export.ndjson" -w '%{time_total}\n' -H "Authorization: Bearer $auditor_key" \
    "$base/v1/ledgers/audit/export" > "$work/export-$run.time"
done
touch "$work/export.done"
wait "$sampler_pid"
export_bytes=$(stat -c %s "$work/export.ndjson")

echo "== verifying"
/usr/bin/time -f '%e %M' -o "$work/verify.time" "$root/target/release/ledger-verify" export \
  "$work/export.ndjson" --public-key "$work/public-key.pem" --json > "$work/verify.out" 2>"$work/verify.err" \
  || { cat "$work/verify.out" "$work/verify.err"; exit 1; }
read -r verify_seconds verify_peak_kib < "$work/verify.time"
cat "$work/verify.out"
events=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["events"])' "$work/verify.out")

python3 - <<PY
events, size = $events, $export_bytes
first_s, again_s, verify_s = $(cat "$work/export-first.time"), $(cat "$work/export-again.time"), $verify_seconds
print("== summary: %d events (%d transfers, %d accounts), export %.1f MB" % (events, $TRANSFERS, $ACCOUNTS, size / 1e6))
for name, seconds in (("first", first_s), ("again", again_s)):
    print("export (%s): %.2f s = %.0f events/s, %.1f MB/s" % (name, seconds, events / seconds, size / 1e6 / seconds))
print("service RSS: %.0f MB before the exports, %.0f MB peak during" % ($rss_before / 1024, $(cat "$work/export.peak") / 1024))
print("verify: %.2f s = %.0f events/s; peak RSS %.0f MB" % (verify_s, events / verify_s, $verify_peak_kib / 1024))
PY
