-- wrk script: POST single transfers between random accounts of a ledger.
-- Environment: ACCOUNTS_FILE (one account id per line), LEDGER (name), HOT (1: every transfer
-- credits the first account), API_KEY (optional bearer token).
local ledger = os.getenv("LEDGER") or "bench"
local hot = os.getenv("HOT") == "1"
local api_key = os.getenv("API_KEY")
local accounts = {}
local threads = {}
local counter = 0

for line in io.lines(os.getenv("ACCOUNTS_FILE")) do
  accounts[#accounts + 1] = line
end

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

function init(args)
  created = 0
  refused = 0
  failed = 0
  sequence = 0
  math.randomseed(os.time() * 1000 + thread_id)
end

local path = "/v1/ledgers/" .. ledger .. "/transfers"

request = function()
  sequence = sequence + 1
  local credit = hot and 1 or math.random(#accounts)
  local debit = math.random(#accounts)
  while debit == credit do debit = math.random(#accounts) end
  local body = string.format(
    '{"debit_account_id":"%s","credit_account_id":"%s","amount":"%d.%02d","currency":"EUR"}',
    accounts[debit], accounts[credit], math.random(0, 99), math.random(1, 99))
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("wrk-%d-%d-%d-%d", os.time(), thread_id, sequence, math.random(1e9)),
  }
  if api_key then headers["Authorization"] = "Bearer " .. api_key end
  return wrk.format("POST", path, headers, body)
end

response = function(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 422 or status == 409 then refused = refused + 1
  else failed = failed + 1 end
end

done = function(summary, latency, requests)
  local total_created, total_refused, total_failed = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_created = total_created + thread:get("created")
    total_refused = total_refused + thread:get("refused")
    total_failed = total_failed + thread:get("failed")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT created=%d refused=%d failed=%d errors=%d seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    total_created, total_refused, total_failed,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    seconds, total_created / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
