#!/usr/bin/env python3
"""Benchmark of reconciliation at scale, driven by load/recon_bench.sh (docs/RECONCILIATION.md).

Posts TRANSFERS transfers on a debit-normal EUR bank account, writes a CSV statement of LINES
lines with planted differences, uploads it, runs a reconciliation, downloads its items as CSV and
as ndjson, and samples the service's resident memory (/proc/PID/status) during upload and run.

Usage: recon_bench.py [--base-url URL] [--admin-key KEY] [--pid PID] [--work DIR]
  (defaults from env BASE_URL, ADMIN_KEY, SERVER_PID, WORK; sizes from env TRANSFERS, LINES)

Planted statement (booking date: today, UTC), for line i < TRANSFERS, in this order of precedence:
  i % 1000 == 0  a line absent from the ledger (reference NEW-i): missing_in_ledger, and
                 transfer i has no line: missing_in_statement
  i % 97 == 0    transfer i's amount without reference: amount_date (ambiguous where other
                 unmatched transfers have the same amount)
  i % 50 == 0    transfer i's reference, amount + 0.01: mismatched
  otherwise      transfer i's reference and amount: reference_amount
Lines i >= TRANSFERS are absent from the ledger; transfers i >= LINES have no line.
Exit status 1 if a request or a check fails; targets missed are reported, not failures.
"""
import argparse
import collections
import concurrent.futures
import datetime
import hashlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

BATCH = 1000
TIMEOUT = 300  # seconds, every request (socket timeout)
TARGET_UPLOAD_LINES_PER_S = 50_000
TARGET_RUN_SECONDS = 10.0
TARGET_RSS_GROWTH_MB = 50.0
LEDGER = "recon"

parser = argparse.ArgumentParser()
parser.add_argument("--base-url", default=os.environ.get("BASE_URL", "http://127.0.0.1:18482"))
parser.add_argument("--admin-key", default=os.environ.get("ADMIN_KEY"))
parser.add_argument("--pid", type=int, default=int(os.environ.get("SERVER_PID", "0")))
parser.add_argument("--work", default=os.environ.get("WORK", "."))
args = parser.parse_args()
TRANSFERS = int(os.environ.get("TRANSFERS", "100000"))
LINES = int(os.environ.get("LINES", "100000"))
base = args.base_url.rstrip("/")
host = urllib.parse.urlsplit(base).hostname
if host != "127.0.0.1":
    sys.exit(f"refusing to talk to {host}: only 127.0.0.1")
if not args.admin_key or args.pid <= 0:
    sys.exit("need --admin-key (ADMIN_KEY) and --pid (SERVER_PID)")


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def request(method, path, key, body=None, headers=None, expect=(200, 201), stream=None):
    """One request; returns (status, headers, parsed JSON body). `stream` is a file to send."""
    headers = dict(headers or {})
    headers["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if stream is not None:
        data = stream
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as response:
            status, raw, response_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, response_headers = error.code, error.read(), error.headers
    if status not in expect:
        fail(f"{method} {path}: {status} {raw[:2000].decode(errors='replace')}")
    return status, response_headers, json.loads(raw) if raw else None


def post(path, key, body, expect=(201,)):
    return request("POST", path, key, body, {"Idempotency-Key": str(uuid.uuid4())}, expect)[2]


def cents(i):
    """Transfer i's amount in cents: 1.00 .. 5000.99, varied and deterministic."""
    return (1 + i % 5000) * 100 + i % 100


def money_in(i):
    return i % 10 != 9  # ~90% debit the bank (money in), ~10% credit it (money out)


def text(amount_cents):
    sign = "-" if amount_cents < 0 else ""
    return f"{sign}{abs(amount_cents) // 100}.{abs(amount_cents) % 100:02d}"


def kind(i):
    if i >= TRANSFERS or i % 1000 == 0:
        return "new"
    if i % 97 == 0:
        return "no_reference"
    if i % 50 == 0:
        return "changed"
    return "mirror"


def signed(i):
    return cents(i) if money_in(i) else -cents(i)


def expected_totals():
    """The counts the plan above leads to under the rules of docs/RECONCILIATION.md: a line
    without reference is matched by amount_date when transfer i is its only unmatched transfer
    of that signed amount after rule 1, else ambiguous (transfer i stays its candidate)."""
    unmatched_by_amount = collections.Counter(
        signed(i) for i in range(TRANSFERS) if i >= LINES or kind(i) != "mirror")
    counts = collections.Counter()
    for i in range(LINES):
        k = kind(i)
        if k == "new":
            counts["missing_in_ledger"] += 1
        elif k == "changed":
            counts["mismatched"] += 1
        elif k == "mirror":
            counts["matched"] += 1
        else:
            counts["matched" if unmatched_by_amount[signed(i)] == 1 else "ambiguous"] += 1
    counts["missing_in_statement"] = sum(
        1 for i in range(TRANSFERS) if i >= LINES or i % 1000 == 0)
    return counts


class RssSampler(threading.Thread):
    """VmRSS of the service every 0.2 s, bounded by `stop` and a 1-hour cap."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.max_kib, self.stop = pid, 0, threading.Event()

    def run(self):
        deadline = time.monotonic() + 3600
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.max_kib = max(self.max_kib, status_kib(self.pid, "VmRSS"))
            self.stop.wait(0.2)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    fail(f"no {field} in /proc/{pid}/status")


def download(path, key, accept):
    """Streams a response; returns (bytes, seconds, sha256 hex)."""
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {key}", "Accept": accept})
    digest, size, started = hashlib.sha256(), 0, time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as response:
            if response.status != 200:
                fail(f"GET {path} ({accept}): {response.status}")
            while chunk := response.read(1 << 16):
                digest.update(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as error:
        fail(f"GET {path} ({accept}): {error.code} {error.read()[:2000].decode(errors='replace')}")
    return size, time.monotonic() - started, digest.hexdigest()


timings = {}  # step -> seconds


def timed(step):
    class Timer:
        def __enter__(self):
            self.started = time.monotonic()

        def __exit__(self, *exc):
            timings[step] = time.monotonic() - self.started
            print(f"  {step}: {timings[step]:.2f} s", flush=True)
    return Timer()


# 1. ledger, accounts, writer key
print(f"== 1. ledger {LEDGER}, bank and counter accounts, writer key", flush=True)
with timed("1_setup"):
    post("/v1/ledgers", args.admin_key, {"name": LEDGER}, expect=(201, 409))
    writer = post("/v1/api-keys", args.admin_key, {"name": "recon bench writer", "role": "writer"})["token"]
    bank = post(f"/v1/ledgers/{LEDGER}/accounts", args.admin_key,
                {"code": "bank", "currency": "EUR", "normal_side": "debit"})["id"]
    counter = post(f"/v1/ledgers/{LEDGER}/accounts", args.admin_key,
                   {"code": "counter", "currency": "EUR", "normal_side": "credit"})["id"]

# 2. transfers
print(f"== 2. posting {TRANSFERS} transfers in atomic batches of {BATCH} (4 concurrent requests)", flush=True)


def post_batch(start):
    items = []
    for i in range(start, min(start + BATCH, TRANSFERS)):
        debit, credit = (bank, counter) if money_in(i) else (counter, bank)
        items.append({"debit_account_id": debit, "credit_account_id": credit, "amount": text(cents(i)),
                      "currency": "EUR", "reference": f"REF-{i}"})
    post(f"/v1/ledgers/{LEDGER}/transfers/batch", writer, {"atomic": True, "transfers": items})


with timed("2_post_transfers"):
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(post_batch, range(0, TRANSFERS, BATCH)))

# 3. statement file
statement_path = os.path.join(args.work, "statement.csv")
print(f"== 3. writing a CSV statement of {LINES} lines to {statement_path}", flush=True)
with timed("3_generate_csv"):
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    with open(statement_path, "w", newline="") as out:
        out.write("external_id,booking_date,value_date,amount,currency,reference,description\n")
        for i in range(LINES):
            k = kind(i)
            if k == "new":
                amount, reference = 700 + (i * 7919) % 100000, f"NEW-{i}"
            else:
                amount = signed(i) + (1 if k == "changed" else 0)
                reference = "" if k == "no_reference" else f"REF-{i}"
            out.write(f"STMT-{i},{today},{today},{text(amount)},EUR,{reference},statement line {i}\n")
statement_bytes = os.path.getsize(statement_path)

# 4.-5. upload and run, with the service's memory sampled
baseline_kib = status_kib(args.pid, "VmRSS")
hwm_before_kib = status_kib(args.pid, "VmHWM")
sampler = RssSampler(args.pid)
sampler.start()

print(f"== 4. uploading the statement ({statement_bytes} bytes)", flush=True)
with timed("4_upload"):
    with open(statement_path, "rb") as body:
        status, _, statement = request(
            "POST", f"/v1/ledgers/{LEDGER}/statements?account_id={bank}", writer,
            headers={"Content-Type": "text/csv", "Content-Length": str(statement_bytes)},
            expect=(201,), stream=body)
if statement["line_count"] != LINES:
    fail(f"statement line_count {statement['line_count']}, expected {LINES}")
print(f"  statement {statement['id']}: {statement['line_count']} lines, "
      f"{statement['duplicate_line_count']} duplicates, period {statement['period_start']}..{statement['period_end']}")

print("== 5. running the reconciliation (date_window_days 3)", flush=True)
with timed("5_run"):
    run = post(f"/v1/ledgers/{LEDGER}/reconciliations", writer,
               {"statement_id": statement["id"], "date_window_days": 3})
sampler.stop.set()
sampler.join(timeout=5)
after_kib = status_kib(args.pid, "VmRSS")
hwm_after_kib = status_kib(args.pid, "VmHWM")
if run.get("state") != "completed":
    fail(f"run state {run.get('state')}: {run.get('failure')}")
totals = {status: value.get("count") if isinstance(value, dict) else value
          for status, value in (run.get("totals") or {}).items()}
print(f"  run {run['id']}: {run['item_count']} items, cut-off seq {run['cutoff_seq']}")
print(f"  totals (count per status): {json.dumps(totals, sort_keys=True)}")
expected = expected_totals()
mismatches = {s: (totals.get(s, 0), n) for s, n in expected.items() if totals.get(s, 0) != n}
mismatches.update({s: (n, 0) for s, n in totals.items() if s not in expected and n})
print(f"  planted   (count per status): {json.dumps(dict(sorted(expected.items())))}")

# 7. downloads
print("== 7. downloading the items as CSV and as ndjson", flush=True)
items_path = f"/v1/ledgers/{LEDGER}/reconciliations/{run['id']}/items"
csv_bytes, csv_seconds, _ = download(items_path, writer, "text/csv")
ndjson_bytes, ndjson_seconds, ndjson_sha = download(items_path, writer, "application/x-ndjson")
timings["7_download_csv"], timings["7_download_ndjson"] = csv_seconds, ndjson_seconds
digest = (run.get("items_digest") or "").lower().removeprefix("sha256:")
digest_ok = digest == ndjson_sha
print(f"  csv {csv_bytes} bytes in {csv_seconds:.2f} s; ndjson {ndjson_bytes} bytes in {ndjson_seconds:.2f} s")
print(f"  ndjson sha256 {ndjson_sha} {'==' if digest_ok else '!='} items_digest {digest}")

# figures
mb = 1 / 1024
upload_lines_per_s = LINES / timings["4_upload"]
run_seconds = timings["5_run"]
rss_growth_mb_max = (sampler.max_kib - baseline_kib) * mb
peak_rss_mb = hwm_after_kib * mb
print("== figures")
rows = [
    ("transfers", f"{TRANSFERS}", ""),
    ("statement_lines", f"{LINES}", f"{statement_bytes} bytes"),
] + [(f"t_{step}_s", f"{seconds:.2f}", "") for step, seconds in timings.items()] + [
    ("transfers_per_s", f"{TRANSFERS / timings['2_post_transfers']:.0f}", ""),
    ("upload_lines_per_s", f"{upload_lines_per_s:.0f}",
     f"target >= {TARGET_UPLOAD_LINES_PER_S}  {'PASS' if upload_lines_per_s >= TARGET_UPLOAD_LINES_PER_S else 'MISS'}"),
    ("run_seconds", f"{run_seconds:.2f}",
     f"target <= {TARGET_RUN_SECONDS:.0f}  {'PASS' if run_seconds <= TARGET_RUN_SECONDS else 'MISS'}"),
    ("run_items_per_s", f"{run['item_count'] / run_seconds:.0f}", ""),
    ("rss_before_upload_mb", f"{baseline_kib * mb:.1f}", ""),
    ("rss_after_run_mb", f"{after_kib * mb:.1f}", f"growth {(after_kib - baseline_kib) * mb:.1f} MB"),
    ("rss_growth_mb_max", f"{rss_growth_mb_max:.1f}",
     f"target <= {TARGET_RSS_GROWTH_MB:.0f}  {'PASS' if rss_growth_mb_max <= TARGET_RSS_GROWTH_MB else 'MISS'}"
     "  (VmRSS every 0.2 s during upload and run)"),
    ("peak_rss_mb", f"{peak_rss_mb:.1f}", f"VmHWM since start; {hwm_before_kib * mb:.1f} before upload"),
    ("items_csv_bytes", f"{csv_bytes}", f"{csv_bytes / csv_seconds / 1e6:.1f} MB/s"),
    ("items_ndjson_bytes", f"{ndjson_bytes}", f"{ndjson_bytes / ndjson_seconds / 1e6:.1f} MB/s"),
    ("items_digest_ok", "yes" if digest_ok else "NO", ""),
    ("totals_as_planted", "yes" if not mismatches else "NO",
     "" if not mismatches else "got/planted " + json.dumps(mismatches, sort_keys=True)),
]
width = max(len(name) for name, _, _ in rows)
for name, value, note in rows:
    print(f"{name:<{width}}  {value:>12}  {note}".rstrip())
if not digest_ok:
    fail("the ndjson items file's SHA-256 is not the run's items_digest")
if mismatches:
    fail("the run's totals differ from the planted differences")
