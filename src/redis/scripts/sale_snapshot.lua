--[[
  One consistent reading of a sale's gate for the stock reconciler: the rules, the units
  available, the reservations not yet settled and the orders whose units were given back, all
  at the same instant (a script runs atomically), so no reservation or release can fall
  between two of them.

  A run of the stock job also takes the sale here, in the same instant: it writes its job-lock
  fencing token to the sale's stock-fence key, unless a run with a larger token (a later
  holder of the job lock) took the sale already. The job's repairs (adjust_stock, set_gate,
  rebuild_gate) go through only while the key still holds their run's token, so once a newer
  run has looked at a sale, an older run that lost the lock can no longer change it. The key
  sits in the sale's slot: the job lock's own key is in another one (CROSSSLOT on a cluster).

  KEYS[1]  sale meta hash
  KEYS[2]  sale stock hash
  KEYS[3]  sale reservations hash
  KEYS[4]  sale released-orders set
  KEYS[5]  sale stock-fence key (string: the token of the run that took the sale last)
  ARGV[1]  "count": only how many markers there are; "members": the markers themselves
  ARGV[2]  the run's job-lock fencing token; 0 reads without taking the sale
  ARGV[3]  how long the stock-fence key is kept after this reading (ms)

  Returns { meta (flat HGETALL), stock (flat HGETALL), reservations (flat HGETALL),
            released (SCARD or SMEMBERS) }, or -1 (nothing written) when a run with a larger
  token took the sale: this run lost its lock.
]]
local fence = tonumber(ARGV[2])
if fence > 0 then
  if tonumber(redis.call("GET", KEYS[5]) or "0") > fence then return -1 end
  redis.call("SET", KEYS[5], ARGV[2], "PX", ARGV[3])
end
local released
if ARGV[1] == "members" then
  released = redis.call("SMEMBERS", KEYS[4])
else
  released = redis.call("SCARD", KEYS[4])
end
return {
  redis.call("HGETALL", KEYS[1]),
  redis.call("HGETALL", KEYS[2]),
  redis.call("HGETALL", KEYS[3]),
  released,
}
