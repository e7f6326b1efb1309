--[[
  Writes a sale's rules and opens or closes its gate. A closed gate turns every new order
  away with a retryable SALE_PAUSED (reserve_order.lua, code -3) while stock, reservations
  and markers stay as they are. The stock reconciler closes a gate it has to rebuild (Redis
  lost it) and opens it again when the rebuild is done.

  KEYS[1]  sale meta hash
  ARGV[1]  startsAt (epoch ms)    ARGV[2]  endsAt (epoch ms)
  ARGV[3]  perUserLimit           ARGV[4]  paymentWindowMs
  ARGV[5]  "open" or "closed"

  Returns the gate's previous state (false when the sale had no meta).
]]
local previous = redis.call("HGET", KEYS[1], "gate")
redis.call("HSET", KEYS[1], "startsAt", ARGV[1], "endsAt", ARGV[2],
  "perUserLimit", ARGV[3], "paymentWindowMs", ARGV[4], "gate", ARGV[5])
return previous
