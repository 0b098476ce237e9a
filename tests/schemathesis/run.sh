#!/usr/bin/env bash
# Schemathesis, every check, against the live service on a throwaway embedded cluster, once per
# role (admin, writer, auditor): exits non-zero on any failure.
#
#   tests/schemathesis/run.sh [LEDGER_BINARY]     # EXAMPLES=10 by default; EXAMPLES=200 for a long run
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=${1:-$root/target/debug/ledger}
examples=${EXAMPLES:-10}
port=${PORT:-$((20000 + RANDOM % 20000))}
base="http://127.0.0.1:$port"
admin="schemathesis-admin-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"

work=$(mktemp -d /tmp/ledger-schemathesis-XXXXXX)
chmod 755 "$work"   # the embedded cluster runs as the postgres user when we are root
cleanup() {
  [ -n "${server:-}" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

LEDGER_DATA_DIR="$work/data" LEDGER_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
  LEDGER_BOOTSTRAP_ADMIN_KEY="$admin" LEDGER_RATE_LIMIT_PER_SECOND=1000000 LEDGER_RATE_LIMIT_BURST=1000000 \
  "$binary" serve > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -sf "$base/health/ready" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.5
done
curl -sf "$base/health/ready" >/dev/null || { cat "$work/serve.log"; exit 1; }

post() { # path, body, token
  curl -sf -X POST "$base$1" -H "Authorization: Bearer $3" -H "Idempotency-Key: $(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')" \
    -H 'Content-Type: application/json' -d "$2"
}
post /v1/ledgers '{"name": "main"}' "$admin" >/dev/null
token() { post /v1/api-keys "{\"name\": \"$1\", \"role\": \"$1\"}" "$admin" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'; }
writer=$(token writer)
auditor=$(token auditor)

failed=0
for role in admin writer auditor; do
  case $role in admin) key=$admin ;; writer) key=$writer ;; auditor) key=$auditor ;; esac
  echo "== schemathesis as $role ($examples examples per operation)"
  if ! schemathesis --config-file "$here/schemathesis.toml" run "$base/openapi.json" --checks all \
      -H "Authorization: Bearer $key" --max-examples "$examples" --workers 2 --seed 1 --no-color \
      > "$work/$role.log" 2>&1; then
    failed=1
    cat "$work/$role.log"
  else
    grep -E "generated|passed|failures" "$work/$role.log" | tail -2
  fi
done
# Nothing a client sends may make the service log an error (malformed requests included).
if grep -qiE "panicked|\"level\":\"ERROR\"" "$work/serve.log"; then
  echo "the service logged errors:"
  grep -iE "panicked|\"level\":\"ERROR\"" "$work/serve.log" | head -20
  failed=1
fi
exit $failed
