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
source "$here/live_service.sh"
start_live_service "$binary" schemathesis

post /v1/ledgers '{"name": "main"}' "$admin" >/dev/null
writer=$(api_key writer)
auditor=$(api_key auditor)

failed=0
for role in admin writer auditor; do
  case $role in admin) key=$admin ;; writer) key=$writer ;; auditor) key=$auditor ;; esac
  echo "== schemathesis as $role ($examples examples per operation)"
  # --url: the document's `servers` lists a relative URL and a default address; this run's
  # service is on its own port. One worker: with two, CPython 3.11's `ast` module (which
  # hypothesis calls to describe strategies) is not thread-safe and fails now and then with
  # "AST constructor recursion depth mismatch" (CPython gh-106905), an error of the tool.
  if ! schemathesis --config-file "$here/schemathesis.toml" run "$base/openapi.json" --url "$base" \
      --checks all -H "Authorization: Bearer $key" --max-examples "$examples" --workers 1 --seed 1 \
      --no-color > "$work/$role.log" 2>&1; then
    failed=1
    cat "$work/$role.log"
  else
    grep -E "generated|passed|failures" "$work/$role.log" | tail -2
  fi
done
# Nothing a client sends may make the service log an error (malformed requests included).
if service_logged_errors; then
  failed=1
fi
exit $failed
