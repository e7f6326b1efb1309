--[[
  Takes a lock if it is free and hands out the next fencing token of the resource.

  KEYS[1]  the lock key (value = owner token)
  KEYS[2]  the resource's fencing counter (same hash tag: same slot)
  ARGV[1]  owner token (random, unique per acquisition)
  ARGV[2]  TTL in ms
  ARGV[3]  the counter's TTL in ms (the lock's TTL plus a retention), from now

  Tokens only ever grow, also once the counter is gone (it expired, or Redis lost everything):
  a missing counter starts from the Redis server's clock in microseconds, past every token
  handed out before (those grew by one per acquisition from an earlier clock reading, and an
  acquisition takes far longer than a microsecond). So a holder after a restart is never
  refused as "stale" by rows fenced before it (orders.fence_token). That is what lets the
  counter expire: one key per order would otherwise stay forever. The retention past the lock's
  TTL only guards against the server clock stepping back; renewals need not extend it, since a
  counter that expires under a holder restarts above that holder's token too.
  Tokens stay below 2^53 (safe JavaScript integers) until the year 2255.

  Returns the fencing token, or -1 when the lock is held by someone else.
]]
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  if redis.call("EXISTS", KEYS[2]) == 0 then
    local t = redis.call("TIME") -- seconds, microseconds; joined as digits (no float on the way)
    redis.call("SET", KEYS[2], t[1] .. string.format("%06d", tonumber(t[2])))
  end
  local token = redis.call("INCR", KEYS[2])
  redis.call("PEXPIRE", KEYS[2], ARGV[3])
  return token
end
return -1
