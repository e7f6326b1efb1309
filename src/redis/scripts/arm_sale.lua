--[[
  Arms a sale's gate: writes its rules and, for each SKU not yet in the stock hash, its
  available units. A SKU already present keeps its count, so arming again (or after a
  restart) never resets units already reserved or sold. A gate keeps its state.

  KEYS[1]  sale meta hash
  KEYS[2]  sale stock hash
  ARGV[1]  startsAt (epoch ms)    ARGV[2]  endsAt (epoch ms)
  ARGV[3]  perUserLimit           ARGV[4]  paymentWindowMs
  ARGV[5]  the gate's state if the sale has none yet: "open" for a new sale; "closed" when a
           sale MySQL already had is armed again and Redis has no gate for it (Redis lost
           it): the stock reconciler then rebuilds it after draining order_created, instead
           of opening on counts that miss the orders still in flight
  ARGV[6]  n, the number of SKUs; then ARGV[5+2i] = sku_i, ARGV[6+2i] = units to start from
  ARGV[7+2n]  (optional) the sale's expiry, epoch ms: its end + payment window + retention.
           Both keys expire then; the meta hash's expiry is the one the sale's other scripts
           copy to keys they create (release_order_units.lua, rebuild_gate.lua). An instant
           already past leaves no gate: the sale's retention is over. "" for none.
  ARGV[8+2n]  (optional) the sale's own per-user request rate, "N/Ws" or "off", written to
           the meta hash as userRequestRate. Absent leaves the field as it is; a meta without
           it is read from MySQL by the API (src/sales/request_rate.ts).

  Returns the number of SKUs armed now (0 when every SKU was already armed).
]]
redis.call("HSET", KEYS[1], "startsAt", ARGV[1], "endsAt", ARGV[2],
  "perUserLimit", ARGV[3], "paymentWindowMs", ARGV[4])
redis.call("HSETNX", KEYS[1], "gate", ARGV[5])
local n = tonumber(ARGV[6])
local armed = 0
for i = 1, n do
  armed = armed + redis.call("HSETNX", KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
local rate = ARGV[8 + 2 * n]
if rate and rate ~= "" then
  redis.call("HSET", KEYS[1], "userRequestRate", rate)
end
local expireAt = ARGV[7 + 2 * n]
if expireAt and expireAt ~= "" then
  redis.call("PEXPIREAT", KEYS[1], expireAt)
  redis.call("PEXPIREAT", KEYS[2], expireAt)
end
return armed
