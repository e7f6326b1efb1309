--[[
  One consistent reading of a sale's gate for the stock reconciler: the rules, the units
  available, the reservations not yet settled and the orders whose units were given back, all
  at the same instant (a script runs atomically), so no reservation or release can fall
  between two of them.

  KEYS[1]  sale meta hash
  KEYS[2]  sale stock hash
  KEYS[3]  sale reservations hash
  KEYS[4]  sale released-orders set
  ARGV[1]  "count": only how many markers there are; "members": the markers themselves

  Returns { meta (flat HGETALL), stock (flat HGETALL), reservations (flat HGETALL),
            released (SCARD or SMEMBERS) }.
]]
local released
if ARGV[1] == "members" then
  released = redis.call("SMEMBERS", KEYS[4])
else
  released = redis.call("SCARD", KEYS[4])
end
return {
  redis.call("HGETALL", KEYS[1]),
  redis.call("HGETALL", KEYS[2]),
  redis.call("HGETALL", KEYS[3]),
  released,
}
