#!/usr/bin/env bash
# Generates a client from the committed OpenAPI document and drives the README's scenario
# through it against the live service (a throwaway embedded cluster; see
# tests/schemathesis/live_service.sh). Everything generated goes to a temporary folder.
#
#   tests/clients/run.sh python|typescript [LEDGER_BINARY]
#
# python:     openapi-python-client (PyPI) generates the package `ledger_client`; scenario.py.
# typescript: openapi-typescript generates the types, openapi-fetch sends the requests,
#             `tsc --strict` compiles scenario.ts, node runs it. The npm packages (pinned by
#             package-lock.json here) are installed once into LEDGER_CLIENTS_CACHE
#             (default ~/.cache/ledger-clients), never into the repository.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
language=${1:?python or typescript}
binary=${2:-$root/target/debug/ledger}
document="$root/openapi/openapi.json"

missing() { echo "$1 is not installed: $2 (.ci/run installs it)" >&2; exit 2; }
case $language in
  python)
    command -v openapi-python-client >/dev/null 2>&1 \
      || missing openapi-python-client "python3 -m pip install openapi-python-client"
    # What the generated package imports besides the standard library (Python 3.11 or newer:
    # `enum.StrEnum`, `datetime.fromisoformat` of RFC 3339).
    python3 -c 'import attrs, httpx, enum; enum.StrEnum' 2>/dev/null \
      || missing "Python 3.11 with attrs and httpx" "python3 -m pip install openapi-python-client"
    ;;
  typescript)
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
      || missing "node and npm" "apt-get install nodejs npm"
    cache=${LEDGER_CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ledger-clients}/ts
    mkdir -p "$cache"
    # (Re)install when the lock file changed: `npm ci` installs exactly what it pins.
    if ! cmp -s "$here/package-lock.json" "$cache/package-lock.json" || [ ! -x "$cache/node_modules/.bin/tsc" ]; then
      cp "$here/package.json" "$here/package-lock.json" "$cache/"
      (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error) \
        || missing "openapi-typescript, openapi-fetch and typescript" "npm ci in $cache (needs the npm registry)"
    fi
    ;;
  *) echo "unknown client language: $language" >&2; exit 2 ;;
esac

source "$root/tests/schemathesis/live_service.sh"
start_live_service "$binary" "client-$language"
generated="$work/client"
mkdir -p "$generated"

case $language in
  python)
    openapi-python-client generate --path "$document" --meta none \
      --config "$here/openapi-python-client.yaml" --output-path "$generated/ledger_client" \
      > "$work/generate.log" 2>&1 || { cat "$work/generate.log"; exit 1; }
    # A warning means part of the document was not understood: the client would be incomplete.
    if grep -q "Warning" "$work/generate.log"; then cat "$work/generate.log"; exit 1; fi
    PYTHONPATH="$generated" BASE="$base" ADMIN="$admin" python3 "$here/scenario.py"
    ;;
  typescript)
    "$cache/node_modules/.bin/openapi-typescript" "$document" -o "$generated/schema.d.ts" \
      > "$work/generate.log" 2>&1 || { cat "$work/generate.log"; exit 1; }
    cp "$here/scenario.ts" "$here/tsconfig.json" "$generated/"
    echo '{"type": "module"}' > "$generated/package.json"
    ln -s "$cache/node_modules" "$generated/node_modules"
    (cd "$generated" && "$cache/node_modules/.bin/tsc" -p tsconfig.json)
    (cd "$generated" && BASE="$base" ADMIN="$admin" node scenario.js)
    ;;
esac
if service_logged_errors; then exit 1; fi
