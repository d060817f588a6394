-- KEYS: bucket 0 of the first row's tag (routing only: every row of one call
-- is in the same slot on Redis Cluster, as the caller groups them).
-- ARGV: prefix, field, value triples, sorted by the caller so that the rows of
-- one bucket are adjacent whatever the tag's bucket count: by tag, then by the
-- bit-reversed second field byte (the bucket index is its low bits).
-- Upserts the rows and returns {imported, updated, unchanged}: per run of rows
-- of one bucket one HMGET, and for new or changed rows one HLEN and one HSET.
-- A tag's first row writes the bucket count '#' = 1 first, so every later read
-- of it finds it at the head of bucket 0. Before a bucket would hold more than
-- REGISTRY_GROW_AT entries its tag's bucket count doubles (bucket j splits into
-- j and j + S), so no bucket ever leaves the listpack encoding.
-- The entries that move go in one HSET and one HDEL per bucket (a bucket
-- holds at most REGISTRY_GROW_AT entries, far below Lua's unpack limit).
local function double(prefix, s)
  for j = 0, s - 1 do
    local from = prefix .. j
    local all = redis.call('HGETALL', from)
    local moved, gone = {}, {}
    for k = 1, #all, 2 do
      local f = all[k]
      if #f > 1 and registry_index(f, 2 * s) ~= j then
        moved[#moved + 1] = f
        moved[#moved + 1] = all[k + 1]
        gone[#gone + 1] = f
      end
    end
    if #gone > 0 then
      redis.call('HSET', prefix .. (j + s), unpack(moved))
      redis.call('HDEL', from, unpack(gone))
    end
  end
  redis.call('HSET', prefix .. '0', '#', 2 * s)
  return 2 * s
end

local imported, updated, unchanged = 0, 0, 0
local n = #ARGV
local i = 1
while i <= n do
  local prefix = ARGV[i]
  local first = prefix .. '0'
  local s = tonumber(redis.call('HGET', first, '#'))
  if not s then
    s = 1
    redis.call('HSET', first, '#', 1)
  end
  local tag_end = i
  while tag_end <= n and ARGV[tag_end] == prefix do tag_end = tag_end + 3 end
  local k = i
  while k < tag_end do
    local index = registry_index(ARGV[k + 1], s)
    local run_end = k
    local fields = {}
    while run_end < tag_end and (s == 1 or registry_index(ARGV[run_end + 1], s) == index) do
      fields[#fields + 1] = ARGV[run_end + 1]
      run_end = run_end + 3
    end
    local bucket = first
    if s > 1 then bucket = prefix .. index end
    local old = redis.call('HMGET', bucket, unpack(fields))
    local set, new = {}, 0
    for m = 1, #fields do
      local value = ARGV[k + 3 * m - 1]
      if old[m] ~= value then
        set[#set + 1] = fields[m]
        set[#set + 1] = value
        if not old[m] then new = new + 1 end
      end
    end
    if new > 0 and s < REGISTRY_MAX_BUCKETS
        and redis.call('HLEN', bucket) + new > REGISTRY_GROW_AT then
      -- Grow first and take the run again under the new count.
      s = double(prefix, s)
    else
      if #set > 0 then redis.call('HSET', bucket, unpack(set)) end
      imported = imported + new
      updated = updated + #set / 2 - new
      unchanged = unchanged + #fields - #set / 2
      k = run_end
    end
  end
  i = tag_end
end
return { imported, updated, unchanged }
