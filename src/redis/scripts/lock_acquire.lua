--[[
  Takes a lock if it is free and hands out the next fencing token of the resource.

  KEYS[1]  the lock key (value = owner token)
  KEYS[2]  the resource's fencing counter (same hash tag: same slot)
  ARGV[1]  owner token (random, unique per acquisition)
  ARGV[2]  TTL in ms

  Tokens only ever grow, also across a Redis that lost everything: a missing counter starts
  from the Redis server's clock in microseconds, past every token handed out before (those
  grew by one per acquisition from an earlier clock reading, far slower than a microsecond
  clock). So a holder after a wipe is never refused as "stale" by rows fenced before it.
  Tokens stay below 2^53 (safe JavaScript integers) until the year 2255.

  Returns the fencing token, or -1 when the lock is held by someone else.
]]
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  if redis.call("EXISTS", KEYS[2]) == 0 then
    local t = redis.call("TIME") -- seconds, microseconds; joined as digits (no float on the way)
    redis.call("SET", KEYS[2], t[1] .. string.format("%06d", tonumber(t[2])))
  end
  return redis.call("INCR", KEYS[2])
end
return -1
