--[[
  Corrects a sale's available units by a delta per SKU, all SKUs in one atomic step. A delta
  (not an absolute value) keeps every reservation or release that happened since the drift was
  measured: they changed the count by their own amounts, and the correction adds to them.

  KEYS[1]  sale stock hash
  ARGV[1]  n, the number of SKUs; then ARGV[2i] = sku_i, ARGV[2i+1] = delta_i

  Returns the SKUs' new counts, in order.
]]
local after = {}
for i = 1, tonumber(ARGV[1]) do
  after[i] = redis.call("HINCRBY", KEYS[1], ARGV[2 * i], tonumber(ARGV[2 * i + 1]))
end
return after
