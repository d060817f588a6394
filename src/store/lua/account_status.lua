-- KEYS: account hash, lock hash, pending zset. ARGV: now ('' = TIME). A read:
-- {maiden hash, reserved, password, first login, generation, f, l, u, lf, now, pending…}
-- where pending is ticket, expiry pairs.
local now = store_now(ARGV[1])
local a = redis.call('HMGET', KEYS[1], 'mn', 'rsv', 'pw', 'fl', 'gen')
local l = redis.call('HMGET', KEYS[2], 'f', 'l', 'u', 'lf')
local out = { a[1] or '', a[2] or '', a[3] or '', a[4] or '', a[5] or '',
  l[1] or '0', l[2] or '0', l[3] or '0', l[4] or '0', tostring(now) }
for _, v in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')) do out[#out + 1] = v end
return out
