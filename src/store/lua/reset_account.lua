-- KEYS: account hash, session set. ARGV: session key prefix, session facts key
-- prefix (same hash slot).
-- Removes the password and every session and moves the generation on, so an
-- attempt begun before the reset cannot settle after it; first login stays.
local had = redis.call('HDEL', KEYS[1], 'pw')
redis.call('HINCRBY', KEYS[1], 'gen', 1)
for _, token in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('DEL', ARGV[1] .. token, ARGV[2] .. token)
end
redis.call('DEL', KEYS[2])
return had
