--[[
  Settles reservations whose orders are now in MySQL: the units stay taken (MySQL holds them
  now) and the users keep them against the limit; only the reservations and their expiry
  entries go, so the expiry sweeper never releases units of a persisted order. Idempotent.
  One order, or a consumer's chunk of one sale in one call.

  KEYS[1]  sale reservations hash
  KEYS[2]  sale expiries zset
  ARGV[i]  orderId (one or more)

  Returns how many reservations were settled (1 or 0 for one order).
]]
local settled = 0
-- In slices: unpack of very many arguments would overflow the Lua stack.
for from = 1, #ARGV, 1000 do
  local to = math.min(from + 999, #ARGV)
  redis.call("ZREM", KEYS[2], unpack(ARGV, from, to))
  settled = settled + redis.call("HDEL", KEYS[1], unpack(ARGV, from, to))
end
return settled
