-- KEYS: grant hash, account hash. ARGV: session key prefix census:{k}:s: (same
-- hash slot, as in reset_account.lua), '1' if the grant is single-use (a code).
-- One script, so a code found is a code deleted: of two redemptions racing on
-- two replicas at most one sees it. Reply: {status, sealed grant}.
local g = redis.call('HMGET', KEYS[1], 'p', 's', 'g')
if not g[1] then
  return {'unknown', ''}
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
end
local gen = redis.call('HGET', KEYS[2], 'gen') or '0'
if gen ~= g[3] then
  return {'generation', ''}
end
if redis.call('EXISTS', ARGV[1] .. g[2]) == 0 then
  return {'session', ''}
end
return {'found', g[1]}
