#!/usr/bin/env bash
# The long crash and outage run (docs/RELIABILITY.md): the chaos test's long profile, on a
# release build. Every setting is optional:
#
#   KILLS=20 DB_CRASHES=5 POWER_CUTS=3 DURATION=480 load/chaos.sh
#
#   KILLS        SIGKILLs of the service                                     (default 20)
#   DB_CRASHES   PostgreSQL crashes, spread over immediate stop, SIGKILL of
#                the postmaster and SIGKILL of the writer's backend          (default 5)
#   POWER_CUTS   service and PostgreSQL SIGKILLed at once                    (default 3)
#   DURATION     seconds the faults are spread over                          (default 480)
#   CLIENTS      concurrent clients                                          (default 8)
#   THINK_MS     mean pause between one client's operations                  (default 20)
#   SEED         repeat a run's choices (printed at the start of every run)
#   BUILD=debug  use the debug build instead of --release
#
# It prints the figures (requests sent, acknowledged, lost, applied twice, phantom, invariant
# violations, faults, slowest 503, time from database return to first successful write, …) and
# keeps the report and logs under target/tmp/chaos-long-<seed>/ (the history and the export
# too when a check failed, or with CHAOS_KEEP=1).
# The exit status is the test's: 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

export CHAOS_PROFILE=long
export CHAOS_KILLS="${KILLS:-20}"
export CHAOS_DB_CRASHES="${DB_CRASHES:-5}"
export CHAOS_POWER_CUTS="${POWER_CUTS:-3}"
export CHAOS_DURATION_SECONDS="${DURATION:-480}"
export CHAOS_CLIENTS="${CLIENTS:-8}"
export CHAOS_THINK_MS="${THINK_MS:-20}"
if [ -n "${SEED:-}" ]; then
  export CHAOS_SEED="$SEED"
fi

release=(--release)
if [ "${BUILD:-release}" = debug ]; then
  release=()
fi

mkdir -p target
log="target/chaos-long-$(date -u +%Y%m%dT%H%M%SZ).log"
echo "chaos: KILLS=$CHAOS_KILLS DB_CRASHES=$CHAOS_DB_CRASHES POWER_CUTS=$CHAOS_POWER_CUTS DURATION=${CHAOS_DURATION_SECONDS}s CLIENTS=$CHAOS_CLIENTS; log in $log"
cargo test "${release[@]}" --test chaos under_crashes_and_outages -- --nocapture --test-threads 1 2>&1 | tee "$log"
