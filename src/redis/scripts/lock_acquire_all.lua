--[[
  Takes several locks for one holder, all or none, and hands out each resource's next fencing
  token (lock_acquire.lua, for many resources in one call). Keys of different resources lie in
  different hash slots: on a Redis Cluster the caller passes one resource per call.

  KEYS[2i-1]  the i-th lock key (value = owner token)
  KEYS[2i]    the i-th resource's fencing counter
  ARGV[1]     owner token (unique per holder; one for all these locks)
  ARGV[2]     TTL in ms
  ARGV[3]     the counters' TTL in ms (the lock's TTL plus a retention), from now

  Returns the fencing tokens in KEYS order, or {-1, i} when the i-th lock is held by someone
  else (nothing taken). A store error on a counter (e.g. WRONGTYPE) gives back the locks this
  call took before it fails, so none is left behind for its TTL.
]]
local n = #KEYS / 2
for i = 1, n do
  if redis.call("EXISTS", KEYS[2 * i - 1]) == 1 then return {-1, i} end
end
local tokens = {}
for i = 1, n do
  local lock, fence = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call("SET", lock, ARGV[1], "PX", ARGV[2])
  local ok, err = pcall(function()
    if redis.call("EXISTS", fence) == 0 then
      local t = redis.call("TIME") -- as lock_acquire.lua: the clock in µs, joined as digits
      redis.call("SET", fence, t[1] .. string.format("%06d", tonumber(t[2])))
    end
    tokens[i] = redis.call("INCR", fence)
    redis.call("PEXPIRE", fence, ARGV[3])
  end)
  if not ok then
    for j = 1, i do redis.call("DEL", KEYS[2 * j - 1]) end
    return redis.error_reply(type(err) == "table" and err.err or tostring(err))
  end
end
return tokens
