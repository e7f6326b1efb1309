--[[
  Gives an order's units back to the sale's gate after MySQL moved it to a state that releases
  stock (CANCELLED, EXPIRED, refunded before shipping), exactly once per order: the order's
  id in the released set is the marker, so a redelivered event changes nothing.

  A sale without a gate (Redis lost it, or its keys expired after the sale's retention) gets
  nothing: no keys are created, and no marker. A gate rebuilt later takes its units from
  MySQL, where this order's are already released, and writes the marker itself.
  The keys this script may create (the released set first of all) take the sale's expiry, the
  meta hash's own (arm_sale.lua), so they go with the rest of the sale.

  KEYS[1]  sale stock hash
  KEYS[2]  sale user-units hash
  KEYS[3]  sale released-orders set (the markers)
  KEYS[4]  sale meta hash
  ARGV[1]  orderId
  ARGV[2]  userId
  ARGV[3]  n, the number of items; then ARGV[2+2i] = sku_i, ARGV[3+2i] = quantity_i

  Returns 1 when units were given back, 0 when this order's were already, -1 when the sale has
  no gate.
]]
if redis.call("SISMEMBER", KEYS[3], ARGV[1]) == 1 then return 0 end
local expireAt = redis.call("PEXPIRETIME", KEYS[4])
if expireAt == -2 then return -1 end
redis.call("SADD", KEYS[3], ARGV[1])
local total = 0
for i = 1, tonumber(ARGV[3]) do
  local quantity = tonumber(ARGV[3 + 2 * i])
  redis.call("HINCRBY", KEYS[1], ARGV[2 + 2 * i], quantity)
  total = total + quantity
end
if redis.call("HINCRBY", KEYS[2], ARGV[2], -total) <= 0 then
  redis.call("HDEL", KEYS[2], ARGV[2])
end
if expireAt > 0 then
  for k = 1, 3 do redis.call("PEXPIREAT", KEYS[k], expireAt) end
end
return 1
