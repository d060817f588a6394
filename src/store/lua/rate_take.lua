-- KEYS: a client network's bucket. ARGV: now ('' = TIME), per minute, burst, taken.
-- The token bucket of src/domain/rate_limit.rs, in milli-tokens.
-- Returns {milli-tokens left, now}.
local now = store_now(ARGV[1])
local per, cap, taken = tonumber(ARGV[2]), tonumber(ARGV[3]) * 1000, tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 't', 'at')
local cur = cap
if v[1] then
  local elapsed = math.max(now - tonumber(v[2]), 0)
  cur = math.min(cap, tonumber(v[1]) + math.floor(elapsed * per / 60))
end
local t = math.max(cur - taken * 1000, -cap)
redis.call('HSET', KEYS[1], 't', t, 'at', now)
-- Once full again the bucket says nothing a missing key would not.
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - t) * 60 / math.max(per, 1)) + 1000)
return { t, now }
