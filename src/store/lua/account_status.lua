-- KEYS: account hash, lock hash, pending zset, registry bucket 0 of the tag.
-- ARGV: now ('' = TIME), registry field. A read:
-- {registry value, password, first login, generation, f, l, u, lf, now, pending…}
-- where pending is ticket, expiry pairs.
local now = store_now(ARGV[1])
local r = registry_get(string.sub(KEYS[4], 1, -2), ARGV[2])
local a = redis.call('HMGET', KEYS[1], 'pw', 'fl', 'gen')
local l = redis.call('HMGET', KEYS[2], 'f', 'l', 'u', 'lf')
local out = { r or '', a[1] or '', a[2] or '', a[3] or '',
  l[1] or '0', l[2] or '0', l[3] or '0', l[4] or '0', tostring(now) }
for _, v in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')) do out[#out + 1] = v end
return out
