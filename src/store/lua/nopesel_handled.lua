-- KEYS: open (zset), requests (hash). ARGV: reference. Returns 0 when unknown.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
