--[[
  Corrects a sale's available units by a delta per SKU, all SKUs in one atomic step. A delta
  (not an absolute value) keeps every reservation or release that happened since the drift was
  measured: they changed the count by their own amounts, and the correction adds to them.
  Fenced: only the stock run that took the sale last (sale_snapshot.lua) may correct it.

  KEYS[1]  sale stock hash
  KEYS[2]  sale stock-fence key
  ARGV[1]  the run's job-lock fencing token
  ARGV[2]  n, the number of SKUs; then ARGV[1+2i] = sku_i, ARGV[2+2i] = delta_i

  Returns the SKUs' new counts, in order; -1 (nothing changed) when the stock-fence key no
  longer holds this run's token: the run lost its lock.
]]
if redis.call("GET", KEYS[2]) ~= ARGV[1] then return -1 end
local after = {}
for i = 1, tonumber(ARGV[2]) do
  after[i] = redis.call("HINCRBY", KEYS[1], ARGV[1 + 2 * i], tonumber(ARGV[2 + 2 * i]))
end
return after
