--[[
  Rebuilds a sale's gate from the MySQL ledger after Redis lost it, while the gate is closed
  (no reservation can happen meanwhile), and opens it again (or leaves it paused: see the
  last ARGV), in one atomic step:
  - available units per SKU, set absolutely: total - held - units still reserved;
  - units each user holds (their per-user limit);
  - the release markers of every order whose units MySQL already gave back, so a release
    event still on its way cannot give them back a second time.
  Reservations that survived are left as they are (they were counted by the caller).
  Fenced: absolute values computed by a run that lost its lock would overwrite a gate the next
  run already rebuilt and reopened, so only the stock run that took the sale last
  (sale_snapshot.lua) may write them.

  KEYS[1]  sale meta hash    KEYS[2]  sale stock hash
  KEYS[3]  sale user-units hash    KEYS[4]  sale released-orders set
  KEYS[5]  sale stock-fence key
  ARGV[1]  the run's job-lock fencing token
  ARGV[2]  s, the number of SKUs; then s pairs (sku, available)
  then     u, the number of users; then u pairs (userId, units)
  then     r, the number of released orders; then r order ids
  then     (optional) the gate's state once rebuilt: "open" (the default) or "paused" (an
           operator paused the sale: MySQL's repairs remember it, Redis lost it)

  Returns the number of SKUs written; -1 (nothing changed) when the stock-fence key no longer
  holds this run's token: the run lost its lock.
]]
if redis.call("GET", KEYS[5]) ~= ARGV[1] then return -1 end
local i = 2
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
-- The DELs above dropped the keys' expiry: they take the sale's again, the meta hash's own
-- (arm_sale.lua). A meta Redis lost has none; the retention job gives it back.
local expireAt = redis.call("PEXPIRETIME", KEYS[1])
if expireAt > 0 then
  for k = 2, 4 do redis.call("PEXPIREAT", KEYS[k], expireAt) end
end
redis.call("HSET", KEYS[1], "gate", ARGV[i] or "open")
return s
