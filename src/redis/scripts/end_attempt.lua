--[[
  Ends one attempt of an Idempotency-Key (reserve_order.lua numbers the attempts).

  acked:   the order's message is on the topic. The answer to replay is stored, whichever
           attempt wrote the message (every attempt publishes the same orderId and event).
  unknown: this attempt's publish ended without an acknowledgement, so its message may or may
           not be on the topic. startedAt becomes 0, so the next retry with the key takes the
           record over at once (same orderId, publishes again) instead of waiting out
           STALE_AFTER_MS. Only while the record still carries this attempt: a stale attempt
           cannot disturb a newer one.
  A record that is gone (its window ended) is never written again.

  KEYS[1]  idempotency record
  ARGV[1]  attempt number
  ARGV[2]  "acked" | "unknown"
  ARGV[3]  status to replay (acked)
  ARGV[4]  body to replay (acked)

  Returns 1 when the record was changed, 0 when it was not (gone, answered, or a newer attempt).
]]
local rec = redis.call("HMGET", KEYS[1], "state", "attempt")
if not rec[1] then return 0 end
if ARGV[2] == "acked" then
  redis.call("HSET", KEYS[1], "state", "done", "status", ARGV[3], "body", ARGV[4])
  return 1
end
if rec[1] ~= "in_flight" or tonumber(rec[2] or "1") ~= tonumber(ARGV[1]) then return 0 end
redis.call("HSET", KEYS[1], "startedAt", 0)
return 1
