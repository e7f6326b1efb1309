--[[
  Compare-and-delete of several locks of one holder (release_if_owner.lua for many keys in one
  call). Keys of different resources lie in different hash slots: on a Redis Cluster the caller
  passes one lock per call.

  KEYS[i]  the i-th lock key
  ARGV[1]  the holder's owner token

  Returns how many locks were released (the others were absent or held by another token).
]]
local released = 0
for _, lock in ipairs(KEYS) do
  if redis.call("GET", lock) == ARGV[1] then
    released = released + redis.call("DEL", lock)
  end
end
return released
