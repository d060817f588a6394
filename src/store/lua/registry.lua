-- Shared prelude: the registry buckets of one hash tag (see src/store/layout.rs
-- for the layout and its arithmetic). `prefix` is census:{t}:r: and bucket i is
-- prefix .. i; bucket 0's field '#' holds the tag's bucket count (absent = 1;
-- written as the tag's first field, so it is found at once).
local REGISTRY_GROW_AT = 120
local REGISTRY_MAX_BUCKETS = 256

local function registry_buckets(prefix)
  return tonumber(redis.call('HGET', prefix .. '0', '#')) or 1
end

local function registry_index(field, buckets)
  local a, b = string.byte(field, 1, 2)
  return (a * 256 + b) % buckets
end

-- The stored value of a person (their field), or false.
local function registry_get(prefix, field)
  return redis.call('HGET', prefix .. registry_index(field, registry_buckets(prefix)), field)
end
