--[[
  Arms a sale's gate: writes its rules and, for each SKU not yet in the stock hash, its
  available units. A SKU already present keeps its count, so arming again (or after a
  restart) never resets units already reserved or sold. A gate that was closed stays closed.

  KEYS[1]  sale meta hash
  KEYS[2]  sale stock hash
  ARGV[1]  startsAt (epoch ms)    ARGV[2]  endsAt (epoch ms)
  ARGV[3]  perUserLimit           ARGV[4]  paymentWindowMs
  ARGV[5]  n, the number of SKUs; then ARGV[4+2i] = sku_i, ARGV[5+2i] = units to start from

  Returns the number of SKUs armed now (0 when every SKU was already armed).
]]
redis.call("HSET", KEYS[1], "startsAt", ARGV[1], "endsAt", ARGV[2],
  "perUserLimit", ARGV[3], "paymentWindowMs", ARGV[4])
redis.call("HSETNX", KEYS[1], "gate", "open")
local armed = 0
for i = 1, tonumber(ARGV[5]) do
  armed = armed + redis.call("HSETNX", KEYS[2], ARGV[4 + 2 * i], ARGV[5 + 2 * i])
end
return armed
