#!/usr/bin/env bash
# The long failover run (docs/RELIABILITY.md, "Failover"): the failover test's long profile on
# a release build: a pg_auto_failover monitor and two synchronous nodes on loopback ports, the
# service on the formation's multi-host URL, retrying clients, and the primary's machine
# SIGKILLed again and again, each time the old primary rejoining as a standby before the next
# failover, so that the primary moves back and forth. Every setting is optional:
#
#   FAILOVERS=6 LOAD_SECONDS=20 load/failover.sh
#
#   FAILOVERS     primaries killed, one after the other                        (default 6)
#   LOAD_SECONDS  load before the first failover and after each one          (default 20)
#   NODES         data nodes (3 or more: number_sync_standbys can be 1)      (default 2)
#   CLIENTS       concurrent clients                                         (default 8)
#   SEED          repeat a run's client choices (printed at the start)
#   BUILD=debug   use the debug build instead of --release
#
# Needs pg_auto_failover: apt-get install postgresql-15-auto-failover pg-auto-failover-cli.
# It prints the figures (failovers, writes acknowledged, lost, applied twice, seconds from each
# kill to the promotion and to the first successful write, …) and keeps the report and the
# logs of the service, the monitor and the nodes under target/tmp/failover-long-<seed>/.
# The exit status is the test's: 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

export FAILOVER_PROFILE=long
export FAILOVER_COUNT="${FAILOVERS:-6}"
export FAILOVER_LOAD_SECONDS="${LOAD_SECONDS:-20}"
export FAILOVER_NODES="${NODES:-2}"
export FAILOVER_CLIENTS="${CLIENTS:-8}"
if [ -n "${SEED:-}" ]; then
  export FAILOVER_SEED="$SEED"
fi

release=(--release)
if [ "${BUILD:-release}" = debug ]; then
  release=()
fi

mkdir -p target
log="target/failover-long-$(date -u +%Y%m%dT%H%M%SZ).log"
echo "failover: FAILOVERS=$FAILOVER_COUNT LOAD_SECONDS=$FAILOVER_LOAD_SECONDS NODES=$FAILOVER_NODES CLIENTS=$FAILOVER_CLIENTS; log in $log"
cargo test "${release[@]}" --test failover the_primary_s_machine_dies -- --nocapture --test-threads 1 2>&1 | tee "$log"
