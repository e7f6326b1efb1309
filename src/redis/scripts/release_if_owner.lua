--[[
  Compare-and-delete: releases a lock only if the caller still owns it. An unconditional DEL
  could remove a lock that expired and now belongs to another holder.

  KEYS[1]  the lock key
  ARGV[1]  the caller's owner token

  Returns 1 when the lock was released, 0 when it was absent or held by someone else.
]]
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
