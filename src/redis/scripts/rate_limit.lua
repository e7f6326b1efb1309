--[[
  One request against a rate of `limit` requests per `window` ms, shared by every API process:
  GCRA (the generic cell rate algorithm), which is a token bucket kept as one timestamp, the
  "theoretical arrival time" (TAT) of the next request. A request is allowed while TAT minus
  the window has not caught up with now; each allowed request moves TAT on by window/limit.
  The key expires when TAT passes, so an idle client leaves nothing behind.

  KEYS[1]  the client's TAT key
  ARGV[1]  limit (requests per window)
  ARGV[2]  window (ms)

  Returns { allowed (1/0), remaining, retryAfterMs, resetMs }: requests still allowed now,
  when a refused request may try again, and when the bucket is full again.
]]
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local interval = window / limit
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call("GET", KEYS[1]) or "0")
if tat < now then tat = now end
local nextTat = tat + interval
local allowAt = nextTat - window
if now < allowAt then
  return { 0, 0, math.ceil(allowAt - now), math.ceil(tat - now) }
end
redis.call("SET", KEYS[1], math.ceil(nextTat), "PX", math.max(1, math.ceil(nextTat - now)))
return { 1, math.floor((now - allowAt) / interval), 0, math.ceil(nextTat - now) }
