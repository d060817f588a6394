-- KEYS: session hash, session set, the session's facts. ARGV: token hash.
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
