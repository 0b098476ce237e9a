-- wrk script: POST atomic batches of BATCH_SIZE transfers between random accounts.
-- Environment: ACCOUNTS_FILE, LEDGER, API_KEY (optional), BATCH_SIZE (default 1000).
-- A few bodies are built per thread at start and reused (each request with its own key), so
-- the figure measures the service, not Lua building 150 KB of JSON per request.
local ledger = os.getenv("LEDGER") or "bench"
local api_key = os.getenv("API_KEY")
local batch_size = tonumber(os.getenv("BATCH_SIZE") or "1000")
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

local bodies = {}

function init(args)
  applied = 0
  failed = 0
  sequence = 0
  math.randomseed(os.time() * 1000 + thread_id)
  for b = 1, 4 do
    local items = {}
    for i = 1, batch_size do
      local credit = math.random(#accounts)
      local debit = math.random(#accounts)
      while debit == credit do debit = math.random(#accounts) end
      items[i] = string.format(
        '{"debit_account_id":"%s","credit_account_id":"%s","amount":"%d.%02d","currency":"EUR"}',
        accounts[debit], accounts[credit], math.random(0, 99), math.random(1, 99))
    end
    bodies[b] = '{"atomic":true,"transfers":[' .. table.concat(items, ",") .. ']}'
  end
end

local path = "/v1/ledgers/" .. ledger .. "/transfers/batch"

request = function()
  sequence = sequence + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("wrk-batch-%d-%d-%d-%d", os.time(), thread_id, sequence, math.random(1e9)),
  }
  if api_key then headers["Authorization"] = "Bearer " .. api_key end
  return wrk.format("POST", path, headers, bodies[(sequence % #bodies) + 1])
end

response = function(status, headers, body)
  if status == 201 then applied = applied + 1 else failed = failed + 1 end
end

done = function(summary, latency, requests)
  local total_applied, total_failed = 0, 0
  for _, thread in ipairs(threads) do
    total_applied = total_applied + thread:get("applied")
    total_failed = total_failed + thread:get("failed")
  end
  local seconds = summary.duration / 1e6
  local transfers = total_applied * batch_size
  io.write(string.format("RESULT batches=%d failed=%d created=%d seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    total_applied, total_failed, transfers, seconds, transfers / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
