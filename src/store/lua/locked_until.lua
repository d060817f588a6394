-- KEYS: lock hash. ARGV: now ('' = TIME). A read: {locked until (0 = none), now}.
local now = store_now(ARGV[1])
local u = tonumber(redis.call('HGET', KEYS[1], 'u')) or 0
if u <= now then u = 0 end
return { u, now }
