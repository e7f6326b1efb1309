--[[
  Gives an order's units back to the sale's gate after MySQL moved it to a state that releases
  stock (CANCELLED, EXPIRED, refunded before shipping), exactly once per order: the order's
  id in the released set is the marker, so a redelivered event changes nothing.

  KEYS[1]  sale stock hash
  KEYS[2]  sale user-units hash
  KEYS[3]  sale released-orders set (the markers)
  ARGV[1]  orderId
  ARGV[2]  userId
  ARGV[3]  n, the number of items; then ARGV[2+2i] = sku_i, ARGV[3+2i] = quantity_i

  Returns 1 when units were given back, 0 when this order's were already.
]]
if redis.call("SADD", KEYS[3], ARGV[1]) == 0 then return 0 end
local total = 0
for i = 1, tonumber(ARGV[3]) do
  local quantity = tonumber(ARGV[3 + 2 * i])
  redis.call("HINCRBY", KEYS[1], ARGV[2 + 2 * i], quantity)
  total = total + quantity
end
if redis.call("HINCRBY", KEYS[2], ARGV[2], -total) <= 0 then
  redis.call("HDEL", KEYS[2], ARGV[2])
end
return 1
