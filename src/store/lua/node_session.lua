-- KEYS: account hash, session set, session hash, registry bucket 0 of the tag,
--       session facts.
-- ARGV: now ('' = TIME), token hash, idle, window, closes (-1 = none), registry
--       field, sealed session facts.
-- Returns {status, password defined, first login, window end, expiry, now}.
-- A node login (login.gov.pl) is a first login like any other: the first login
-- is set if absent and the session created unless the window has ended. The
-- lockout is neither read nor written. Only for a PESEL in the registry.
local now = store_now(ARGV[1])
if not registry_get(string.sub(KEYS[4], 1, -2), ARGV[6]) then
  return { 'unregistered', 0, 0, 0, 0, now }
end
local a = redis.call('HMGET', KEYS[1], 'pw', 'fl')
local pw = 0
if a[1] then pw = 1 end
local fl = tonumber(a[2])
if not fl then
  fl = now
  redis.call('HSET', KEYS[1], 'fl', now)
end
local we = fl + tonumber(ARGV[4])
local closes = tonumber(ARGV[5])
if closes >= 0 and closes < we then we = closes end
local exp = 0
if we > now then
  exp = math.min(now + tonumber(ARGV[3]), we)
  redis.call('HSET', KEYS[3], 'fl', fl, 'we', we, 'exp', exp)
  redis.call('PEXPIREAT', KEYS[3], exp)
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('PEXPIREAT', KEYS[2], we)
  redis.call('SET', KEYS[5], ARGV[7], 'PXAT', exp)
end
return { 'opened', pw, fl, we, exp, now }
