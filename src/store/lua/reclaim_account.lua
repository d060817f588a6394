-- KEYS: account hash, session set, lock hash.
-- ARGV: generation read before hashing, password PHC, session key prefix,
--       token hash of the session to keep, session facts key prefix.
-- Reclaim through login.gov.pl: like a helpline reset (the generation moves on,
-- so attempts and grants begun before it die) but the new password is written
-- in the same step, the reclaiming session stays and failures and locks go.
-- Refused (nothing written) when a reset or reclaim came first.
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if gen ~= tonumber(ARGV[1]) then return -1 end
local had = 0
if redis.call('HEXISTS', KEYS[1], 'pw') == 1 then had = 1 end
redis.call('HSET', KEYS[1], 'pw', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'gen', 1)
for _, token in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if token ~= ARGV[4] then
    redis.call('DEL', ARGV[3] .. token, ARGV[5] .. token)
    redis.call('SREM', KEYS[2], token)
  end
end
redis.call('DEL', KEYS[3])
return had
