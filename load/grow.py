#!/usr/bin/env python3
"""Grows a ledger by posting atomic 1,000-transfer batches until COUNT more transfers committed.

Usage: grow.py BASE_URL LEDGER WRITER_KEY ACCOUNTS_FILE COUNT [THREADS]

Used by `load/bench.sh` (MODE=curve) to reach each ledger size before measuring at it. Prints
the rate it grew at: growing is itself a batch load, but not a measured scenario.
"""
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
import uuid

BATCH = 1000
base, ledger, key, accounts_file, count = sys.argv[1:6]
threads = int(sys.argv[6]) if len(sys.argv) > 6 else 6
accounts = [line.strip() for line in open(accounts_file) if line.strip()]
batches = (int(count) + BATCH - 1) // BATCH
url = urllib.parse.urlparse(base)


def body(seed):
    rng = random.Random(seed)
    items = []
    for _ in range(BATCH):
        debit, credit = rng.sample(accounts, 2)
        items.append({"debit_account_id": debit, "credit_account_id": credit,
                      "amount": "%d.%02d" % (rng.randrange(100), rng.randrange(1, 100)), "currency": "EUR"})
    return json.dumps({"atomic": True, "transfers": items}).encode()


bodies = [body(seed) for seed in range(8)]
lock = threading.Lock()
state = {"next": 0, "created": 0, "failed": 0}


def worker():
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    while True:
        with lock:
            if state["next"] >= batches:
                return
            number = state["next"]
            state["next"] += 1
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}",
                   "Idempotency-Key": f"grow-{uuid.uuid4()}"}
        connection.request("POST", f"/v1/ledgers/{ledger}/transfers/batch", bodies[number % len(bodies)], headers)
        response = connection.getresponse()
        response.read()
        with lock:
            if response.status == 201:
                state["created"] += BATCH
            else:
                state["failed"] += 1


started = time.monotonic()
pool = [threading.Thread(target=worker) for _ in range(threads)]
for thread in pool:
    thread.start()
for thread in pool:
    thread.join()
elapsed = time.monotonic() - started
print(f"grew {ledger} by {state['created']} transfers in {elapsed:.1f} s "
      f"({state['created'] / elapsed:.0f}/s, {state['failed']} batches failed)")
sys.exit(1 if state["failed"] else 0)
