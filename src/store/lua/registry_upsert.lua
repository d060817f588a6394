-- KEYS: bucket 0 of the first row's tag (routing only: every row of one call
-- is in the same slot on Redis Cluster, as the caller groups them).
-- ARGV: prefix, field, value triples (see registry.lua).
-- Upserts the rows and returns {imported, updated, unchanged}. A tag's first
-- row writes the bucket count '#' = 1 first, so that every later read of it
-- finds it at the head of bucket 0 instead of scanning the bucket. A bucket grown
-- past REGISTRY_GROW_AT doubles its tag's bucket count: bucket j splits into j
-- and j + S, so no bucket leaves the listpack encoding.
local function double(prefix, s)
  for j = 0, s - 1 do
    local from = prefix .. j
    local all = redis.call('HGETALL', from)
    for k = 1, #all, 2 do
      local f = all[k]
      if #f > 1 and registry_index(f, 2 * s) ~= j then
        redis.call('HSET', prefix .. (j + s), f, all[k + 1])
        redis.call('HDEL', from, f)
      end
    end
  end
  redis.call('HSET', prefix .. '0', '#', 2 * s)
  return 2 * s
end

local imported, updated, unchanged = 0, 0, 0
for i = 1, #ARGV, 3 do
  local prefix, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local first = prefix .. '0'
  local s = tonumber(redis.call('HGET', first, '#'))
  if not s then
    s = 1
    redis.call('HSET', first, '#', 1)
  end
  -- One bucket (every tag below ~120 people): no index to compute.
  local bucket = first
  if s > 1 then bucket = prefix .. registry_index(field, s) end
  -- New rows (most of a first import) cost one write; others a read as well.
  if redis.call('HSETNX', bucket, field, value) == 1 then
    imported = imported + 1
    while s < REGISTRY_MAX_BUCKETS and redis.call('HLEN', bucket) > REGISTRY_GROW_AT do
      s = double(prefix, s)
      bucket = prefix .. registry_index(field, s)
    end
  elseif redis.call('HGET', bucket, field) == value then
    unchanged = unchanged + 1
  else
    redis.call('HSET', bucket, field, value)
    updated = updated + 1
  end
end
return { imported, updated, unchanged }
