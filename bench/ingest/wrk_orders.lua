-- wrk script of bench/ingest: POST /v1/orders with a fresh Idempotency-Key per request (run id,
-- thread, counter) and buyers spread over 100,000 userIds, as the Bun generator sends them.
-- The sale comes from the SALE environment variable, the key prefix from TAG; done() prints
-- one JSON line the bench reads (latencies in microseconds).
local tag = os.getenv("TAG") or "wrk"
local sale = os.getenv("SALE") or "bench-big"
local threads = {}
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  local user = (thread_id * 1000003 + counter) % 100000
  local body = '{"userId":"u' .. user .. '","saleId":"' .. sale ..
    '","items":[{"sku":"HOT","quantity":1}]}'
  return wrk.format("POST", "/v1/orders", {
    ["content-type"] = "application/json",
    ["idempotency-key"] = tag .. "-" .. thread_id .. "-" .. counter,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"non2xx":%d,"connectErrors":%d,"readErrors":%d,"timeouts":%d,"p50Us":%d,"p99Us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
