# Sourced (bash): starts `ledger serve` on a throwaway embedded PostgreSQL cluster and a free
# loopback port, waits until it is ready, and removes everything on exit. Used by
# tests/schemathesis/run.sh and tests/clients/run.sh.
#
#   source tests/schemathesis/live_service.sh
#   start_live_service LEDGER_BINARY NAME    # sets: work, base, admin (a bootstrap admin key)
#   post PATH JSON TOKEN                      # a POST with a fresh Idempotency-Key; prints the body
#   api_key ROLE                              # creates a key of ROLE (admin); prints its token
#
# Rate limits are lifted (the tests send bursts from one key). The service's log is
# "$work/serve.log"; `service_logged_errors` says whether it logged an error or a panic.

live_service_cleanup() {
  if [ -n "${live_service_pid:-}" ]; then
    kill -TERM "$live_service_pid" 2>/dev/null && wait "$live_service_pid" 2>/dev/null || true
  fi
  [ -n "${work:-}" ] && rm -rf "$work"
}

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# A loopback port nothing listens on now (the kernel's choice).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_live_service() {
  local binary=$1 name=$2 port
  port=${PORT:-$(free_port)}
  base="http://127.0.0.1:$port"
  admin="$name-admin-$(random_hex 16)"
  work=$(mktemp -d "/tmp/ledger-$name-XXXXXX")
  chmod 755 "$work"   # the embedded cluster runs as the postgres user when we are root
  trap live_service_cleanup EXIT
  LEDGER_DATA_DIR="$work/data" LEDGER_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
    LEDGER_BOOTSTRAP_ADMIN_KEY="$admin" LEDGER_RATE_LIMIT_PER_SECOND=1000000 LEDGER_RATE_LIMIT_BURST=1000000 \
    "$binary" serve > "$work/serve.log" 2>&1 &
  live_service_pid=$!
  # Poll readiness (the cluster's initdb takes a few seconds); give up if the process exits.
  local _
  for _ in $(seq 1 240); do
    curl -sf "$base/health/ready" >/dev/null && return 0
    kill -0 "$live_service_pid" 2>/dev/null || { cat "$work/serve.log"; return 1; }
    sleep 0.25
  done
  echo "the service did not become ready:"; cat "$work/serve.log"
  return 1
}

post() { # path, body, token
  curl -sf -X POST "$base$1" -H "Authorization: Bearer $3" -H "Idempotency-Key: $(random_hex 8)" \
    -H 'Content-Type: application/json' -d "$2"
}

api_key() { # role
  post /v1/api-keys "{\"name\": \"$1\", \"role\": \"$1\"}" "$admin" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

service_logged_errors() {
  if grep -qiE "panicked|\"level\":\"ERROR\"" "$work/serve.log"; then
    echo "the service logged errors:"
    grep -iE "panicked|\"level\":\"ERROR\"" "$work/serve.log" | head -20
    return 0
  fi
  return 1
}
