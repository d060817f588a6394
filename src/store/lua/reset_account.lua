-- KEYS: account hash, session set. ARGV: session key prefix (same hash slot).
-- Removes the password and every session; first login stays.
local had = redis.call('HDEL', KEYS[1], 'pw')
for _, token in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('DEL', ARGV[1] .. token)
end
redis.call('DEL', KEYS[2])
return had
