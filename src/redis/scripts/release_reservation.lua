--[[
  Gives a reservation's units back to the sale and to the user's limit, exactly once: the
  reservation record is the marker, so a second call finds nothing and changes nothing.
  Without an idempotency record it takes one or more orders of the sale (a consumer's chunk).

  With an idempotency record and an attempt number (withdrawing an order whose message was
  certainly never sent), the release happens only while the record is still in flight under
  that attempt, and the record is deleted in the same step, so the client may retry with the
  same key as if nothing happened. A record taken over by a newer attempt is left alone and
  nothing is released (-1): the newer attempt owns the order now.

  KEYS[1]  sale stock hash
  KEYS[2]  sale user-units hash
  KEYS[3]  sale reservations hash
  KEYS[4]  sale expiries zset
  KEYS[5]  (optional) idempotency record of the request that made the reservation
  ARGV[1]  orderId
  ARGV[2]  (with KEYS[5]) the attempt number that withdraws it
  ARGV[i]  (without KEYS[5]) further orderIds

  Returns how many reservations gave their units back (1 or 0 for one order; 0 when there was
  no such reservation), or -1 when a newer attempt holds the record (nothing changed).
]]
if KEYS[5] then
  local rec = redis.call("HMGET", KEYS[5], "state", "attempt")
  if rec[1] and (rec[1] ~= "in_flight" or tonumber(rec[2] or "1") ~= tonumber(ARGV[2])) then
    return -1
  end
  redis.call("DEL", KEYS[5])
end
local function release(orderId)
  local raw = redis.call("HGET", KEYS[3], orderId)
  if not raw then return 0 end
  local r = cjson.decode(raw)
  local total = 0
  for _, item in ipairs(r.items) do
    redis.call("HINCRBY", KEYS[1], item.sku, item.quantity)
    total = total + item.quantity
  end
  if redis.call("HINCRBY", KEYS[2], r.userId, -total) <= 0 then
    redis.call("HDEL", KEYS[2], r.userId)
  end
  redis.call("HDEL", KEYS[3], orderId)
  redis.call("ZREM", KEYS[4], orderId)
  return 1
end
if KEYS[5] then return release(ARGV[1]) end
local released = 0
for _, orderId in ipairs(ARGV) do released = released + release(orderId) end
return released
