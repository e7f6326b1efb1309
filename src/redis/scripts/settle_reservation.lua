--[[
  Settles a reservation whose order is now in MySQL: the units stay taken (MySQL holds them
  now) and the user keeps them against the limit; only the reservation and its expiry entry
  go, so the expiry sweeper never releases units of a persisted order. Idempotent.

  KEYS[1]  sale reservations hash
  KEYS[2]  sale expiries zset
  ARGV[1]  orderId

  Returns 1 when a reservation was settled, 0 when there was none.
]]
redis.call("ZREM", KEYS[2], ARGV[1])
return redis.call("HDEL", KEYS[1], ARGV[1])
