--[[
  Gives a sale's meta hash back its own per-user request rate when the hash lacks it: a gate
  the stock job rebuilt after Redis lost it (set_gate.lua writes the sale's other rules only),
  or one armed before sales had the field. Only into a meta hash that exists: a hash created
  here would have no expiry and no gate. The value comes from MySQL, like arming's, and sales
  are immutable, so writing over a value arming wrote meanwhile changes nothing.

  KEYS[1]  sale meta hash
  ARGV[1]  the rate as MySQL has it: "N/Ws" or "off"

  Returns 1 when written, -1 when the sale has no meta hash.
]]
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
redis.call("HSET", KEYS[1], "userRequestRate", ARGV[1])
return 1
