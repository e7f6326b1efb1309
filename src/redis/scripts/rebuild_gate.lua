--[[
  Rebuilds a sale's gate from the MySQL ledger after Redis lost it, while the gate is closed
  (no reservation can happen meanwhile), and opens it again, in one atomic step:
  - available units per SKU, set absolutely: total - held - units still reserved;
  - units each user holds (their per-user limit);
  - the release markers of every order whose units MySQL already gave back, so a release
    event still on its way cannot give them back a second time.
  Reservations that survived are left as they are (they were counted by the caller).

  KEYS[1]  sale meta hash    KEYS[2]  sale stock hash
  KEYS[3]  sale user-units hash    KEYS[4]  sale released-orders set
  ARGV[1]  s, the number of SKUs; then s pairs (sku, available)
  then     u, the number of users; then u pairs (userId, units)
  then     r, the number of released orders; then r order ids

  Returns the number of SKUs written.
]]
local i = 1
local s = tonumber(ARGV[i]); i = i + 1
redis.call("DEL", KEYS[2])
for _ = 1, s do
  redis.call("HSET", KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2
end
local u = tonumber(ARGV[i]); i = i + 1
redis.call("DEL", KEYS[3])
for _ = 1, u do
  redis.call("HSET", KEYS[3], ARGV[i], ARGV[i + 1]); i = i + 2
end
local r = tonumber(ARGV[i]); i = i + 1
for _ = 1, r do
  redis.call("SADD", KEYS[4], ARGV[i]); i = i + 1
end
redis.call("HSET", KEYS[1], "gate", "open")
return s
