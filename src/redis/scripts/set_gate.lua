--[[
  Writes a sale's rules and opens or closes its gate. A closed gate turns every new order
  away with a retryable SALE_PAUSED (reserve_order.lua, code -3) while stock, reservations
  and markers stay as they are. The stock reconciler closes a gate it has to rebuild (Redis
  lost it) and opens it again when the rebuild is done. Fenced: only the stock run that took
  the sale last (sale_snapshot.lua) may change its gate.

  KEYS[1]  sale meta hash
  KEYS[2]  sale stock-fence key
  ARGV[1]  the run's job-lock fencing token
  ARGV[2]  startsAt (epoch ms)    ARGV[3]  endsAt (epoch ms)
  ARGV[4]  perUserLimit           ARGV[5]  paymentWindowMs
  ARGV[6]  "open" or "closed"

  Returns the gate's previous state (false when the sale had no meta); -1 (nothing changed)
  when the stock-fence key no longer holds this run's token: the run lost its lock.
]]
if redis.call("GET", KEYS[2]) ~= ARGV[1] then return -1 end
local previous = redis.call("HGET", KEYS[1], "gate")
redis.call("HSET", KEYS[1], "startsAt", ARGV[2], "endsAt", ARGV[3],
  "perUserLimit", ARGV[4], "paymentWindowMs", ARGV[5], "gate", ARGV[6])
return previous
