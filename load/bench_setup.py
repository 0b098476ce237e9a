#!/usr/bin/env python3
"""Creates a ledger and N unconstrained EUR accounts over HTTP; writes their ids, one per line,
and creates a writer API key for the load, written to OUT_FILE.writer-key.

Usage: bench_setup.py BASE_URL LEDGER ACCOUNTS OUT_FILE  (env API_KEY: an admin token)
"""
import concurrent.futures
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

base, ledger, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
api_key = os.environ.get("API_KEY")


def post(path, body):
    headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


status, body = post("/v1/ledgers", {"name": ledger})
assert status in (201, 409), body


def open_account(index):
    status, body = post(f"/v1/ledgers/{ledger}/accounts",
                        {"id": str(uuid.uuid4()), "code": f"bench-{index}", "currency": "EUR", "normal_side": "credit"})
    assert status == 201, body
    return body["id"]


with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
    ids = list(pool.map(open_account, range(count)))
with open(out, "w") as file:
    file.write("\n".join(ids) + "\n")
status, body = post("/v1/api-keys", {"name": "bench writer", "role": "writer", "ledgers": [ledger]})
assert status == 201, body
with open(out + ".writer-key", "w") as file:
    file.write(body["token"])
print(f"opened {len(ids)} accounts in ledger {ledger}; created a writer key")
