-- KEYS: session hash, session set. ARGV: token hash.
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
