--[[
  Gives every fixed key of a sale the sale's expiry (its end + payment window + retention,
  computed from MySQL's definition by the retention job), so they all go at the same instant.
  Some are created without one: reserve_order.lua creates the user-units hash, the
  reservations hash and the expiries zset on the hot path, and a gate Redis lost is written
  again from scratch by the stock job. An instant already past deletes the keys (a sale whose
  retention ended and whose gate came back). Idempotency records are not here: each carries
  its own TTL (IDEMPOTENCY_TTL_SECONDS) from the script that writes it.

  KEYS[1]  sale meta hash          KEYS[2]  sale stock hash
  KEYS[3]  sale user-units hash    KEYS[4]  sale reservations hash
  KEYS[5]  sale expiries zset      KEYS[6]  sale released-orders set
  ARGV[1]  the sale's expiry (epoch ms)
  ARGV[2]  "apply", or "check" to count without changing anything

  Returns the number of existing keys whose expiry was missing or another instant (with
  "apply", it is ARGV[1] now).
]]
local at = tonumber(ARGV[1])
local differing = 0
for i = 1, #KEYS do
  local current = redis.call("PEXPIRETIME", KEYS[i])
  if current ~= -2 and current ~= at then
    differing = differing + 1
    if ARGV[2] == "apply" then redis.call("PEXPIREAT", KEYS[i], ARGV[1]) end
  end
end
return differing
