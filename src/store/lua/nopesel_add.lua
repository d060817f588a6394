-- KEYS: sequence, all (zset), open (zset), requests (hash), all under {nopesel}.
-- ARGV: reference, JSON, expire at (ms, '' = never). Returns the position, or 0
-- when the reference is taken (the caller picks another).
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  for i = 1, 4 do redis.call('PEXPIREAT', KEYS[i], ARGV[3]) end
end
return seq
