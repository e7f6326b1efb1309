--[[
  Places an order under its Idempotency-Key in one atomic step: recognise the key, then
  reserve every item or none. The key's record is created together with the reservation, so
  "key claimed" and "units reserved" can never disagree. One round trip on the hot path.

  Key checks: same key with another request → -10; same key still in flight → -11; answered
  before → 10 (replay). A record in flight for longer than staleAfterMs belongs to a process
  that died mid-request, and one whose attempt ended with an unknown publish outcome has
  startedAt 0 (end_attempt.lua): the retry takes it over with the SAME orderId (code 2 if its
  reservation is still there, 12 if it is gone, i.e. already persisted or released). Each
  attempt on a record gets the next attempt number; an attempt's later steps (storing the
  answer, ending it, withdrawing it) act only while the record still carries its number, so a
  stale attempt can never undo a newer one.
  Then: sale known, gate open, sale window (Redis server clock, the same for every API
  instance), per-user limit, each SKU known and in stock. A rejection stores nothing.

  KEYS[1]  sale meta hash         (startsAt, endsAt, perUserLimit, paymentWindowMs, gate)
  KEYS[2]  sale stock hash        (sku -> available)
  KEYS[3]  sale user-units hash   (userId -> units held)
  KEYS[4]  sale reservations hash (orderId -> reservation JSON)
  KEYS[5]  sale expiries zset     (orderId scored by expiresAt)
  KEYS[6]  idempotency record     (hash: fp, state, orderId, startedAt, placedAt, expiresAt,
                                   attempt, status, body)
  ARGV[1]  orderId to use if the key is new
  ARGV[2]  userId
  ARGV[3]  request fingerprint
  ARGV[4]  staleAfterMs
  ARGV[5]  idempotency record TTL (ms)
  ARGV[6]  n, the number of items; then ARGV[5+2i] = sku_i, ARGV[6+2i] = quantity_i

  Returns { code, ... }:
     1, orderId, expiresAt, placedAt, attempt   reserved now (attempt 1)
     2, orderId, expiresAt, placedAt, attempt   taken over; its reservation stands (publish
                                                 it again)
    12, orderId, expiresAt, placedAt, attempt   taken over; reservation already settled or
                                                 released
    10, orderId, status, body           answered before: replay
   -10                                  same key, different request
   -11                                  same key, still in flight
    -1                                  unknown sale (not armed)
    -2, startsAt, endsAt                sale not active now
    -3, gate                            gate not open: "paused" by an operator, or closed
                                        for a rebuild
    -4, held, limit                     per-user limit would be exceeded
    -5, i                               item i names an unknown SKU
    -6, i, available                    item i wants more than is available
]]
local userId, fingerprint = ARGV[2], ARGV[3]
local n = tonumber(ARGV[6])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local rec = redis.call("HMGET", KEYS[6], "fp", "state", "orderId", "startedAt", "placedAt", "expiresAt", "status", "body")
if rec[1] then
  if rec[1] ~= fingerprint then return { -10 } end
  if rec[2] == "done" then return { 10, rec[3], rec[7], rec[8] } end
  if now - tonumber(rec[4]) < tonumber(ARGV[4]) then return { -11 } end
  redis.call("HSET", KEYS[6], "startedAt", now)
  local attempt = redis.call("HINCRBY", KEYS[6], "attempt", 1)
  local code = redis.call("HEXISTS", KEYS[4], rec[3]) == 1 and 2 or 12
  return { code, rec[3], tonumber(rec[6]), tonumber(rec[5]), attempt }
end
local orderId = ARGV[1]

local meta = redis.call("HMGET", KEYS[1], "startsAt", "endsAt", "perUserLimit", "paymentWindowMs", "gate")
if not meta[1] then return { -1 } end
if meta[5] ~= "open" then return { -3, meta[5] or "closed" } end
local startsAt, endsAt = tonumber(meta[1]), tonumber(meta[2])
if now < startsAt or now >= endsAt then return { -2, startsAt, endsAt } end

local total = 0
for i = 1, n do total = total + tonumber(ARGV[6 + 2 * i]) end
local held = tonumber(redis.call("HGET", KEYS[3], userId) or "0")
local limit = tonumber(meta[3])
if held + total > limit then return { -4, held, limit } end

for i = 1, n do
  local available = redis.call("HGET", KEYS[2], ARGV[5 + 2 * i])
  if not available then return { -5, i } end
  if tonumber(available) < tonumber(ARGV[6 + 2 * i]) then return { -6, i, tonumber(available) } end
end

-- Counted before anything is written: keys that already exist carry the sale's expiry (every
-- script that creates one copies the meta's, and the retention job keeps them aligned when a
-- sale's end moves), so only a call that creates one of them needs to set it. On the hot path
-- they almost always exist: one EXISTS instead of a PTTL and three PEXPIREs (replicated writes)
-- per order.
local existing = redis.call("EXISTS", KEYS[3], KEYS[4], KEYS[5])

local items = {}
for i = 1, n do
  local sku, quantity = ARGV[5 + 2 * i], tonumber(ARGV[6 + 2 * i])
  redis.call("HINCRBY", KEYS[2], sku, -quantity)
  items[i] = { sku = sku, quantity = quantity }
end
redis.call("HINCRBY", KEYS[3], userId, total)
local expiresAt = now + tonumber(meta[4])
redis.call("HSET", KEYS[4], orderId, cjson.encode({
  orderId = orderId, userId = userId, items = items, placedAt = now, expiresAt = expiresAt,
}))
redis.call("ZADD", KEYS[5], expiresAt, orderId)
-- The sale's keys live as long as its meta (sale end + payment window + SALE_KEY_RETENTION_HOURS,
-- set when the sale is armed): the keys this script created get the same expiry.
if existing < 3 then
  local keep = redis.call("PTTL", KEYS[1])
  if keep > 0 then
    for i = 3, 5 do redis.call("PEXPIRE", KEYS[i], keep) end
  end
end
redis.call("HSET", KEYS[6], "fp", fingerprint, "state", "in_flight", "orderId", orderId,
  "startedAt", now, "placedAt", now, "expiresAt", expiresAt, "attempt", 1)
redis.call("PEXPIRE", KEYS[6], ARGV[5])
return { 1, orderId, expiresAt, now, 1 }
