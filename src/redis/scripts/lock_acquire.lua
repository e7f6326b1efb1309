--[[
  Takes a lock if it is free and hands out the next fencing token of the resource.

  KEYS[1]  the lock key (value = owner token)
  KEYS[2]  the resource's fencing counter (same hash tag: same slot)
  ARGV[1]  owner token (random, unique per acquisition)
  ARGV[2]  TTL in ms

  Returns the fencing token (1, 2, 3, ... per resource, never reused) or -1 when the lock is
  held by someone else.
]]
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  return redis.call("INCR", KEYS[2])
end
return -1
