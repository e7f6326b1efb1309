--[[
  Compare-and-renew: extends the lock's TTL only if the caller still owns it. A holder whose
  lock expired (and may now belong to another) learns so instead of stealing it back.

  KEYS[1]  the lock key
  ARGV[1]  the caller's owner token
  ARGV[2]  new TTL in ms

  Returns 1 when renewed, 0 when the caller no longer owns the lock.
]]
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
