-- KEYS: grant hash (census:{k}:code:<h> or census:{k}:at:<h>), account hash.
-- ARGV: sealed grant, session token hash (hex), ttl (ms).
-- Files an OIDC grant with the account's generation as of now (absent = 0),
-- so that a reset after this moment voids it.
local gen = redis.call('HGET', KEYS[2], 'gen') or '0'
redis.call('HSET', KEYS[1], 'p', ARGV[1], 's', ARGV[2], 'g', gen)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
