--[[
  Compare-and-renew of several locks of one holder (lock_renew.lua for many keys in one call).
  Keys of different resources lie in different hash slots: on a Redis Cluster the caller passes
  one lock per call.

  KEYS[i]  the i-th lock key
  ARGV[1]  the holder's owner token
  ARGV[2]  new TTL in ms

  Returns, in KEYS order, 1 for a lock renewed and 0 for one the holder no longer owns.
]]
local renewed = {}
for i, lock in ipairs(KEYS) do
  if redis.call("GET", lock) == ARGV[1] then
    renewed[i] = redis.call("PEXPIRE", lock, ARGV[2])
  else
    renewed[i] = 0
  end
end
return renewed
