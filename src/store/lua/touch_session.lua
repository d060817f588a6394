-- KEYS: session hash, its facts. ARGV: now ('' = TIME), idle.
-- Returns nil or {first login, window end, expiry}. The expiry is kept in the
-- hash too, so the decision is the script's (by the store's clock), not only
-- the key's TTL.
local v = redis.call('HMGET', KEYS[1], 'fl', 'we', 'exp')
if not v[1] then return false end
local now = store_now(ARGV[1])
local fl, we = tonumber(v[1]), tonumber(v[2])
local exp = math.min(now + tonumber(ARGV[2]), we)
if exp <= now or (v[3] and tonumber(v[3]) <= now) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return false
end
-- The sliding expiry moves in steps of a second (the API shows seconds; a
-- 64th of a shorter idle timeout): checks within one step read only (no write,
-- no replication, no AOF). src/store/mod.rs: session_step.
local old = tonumber(v[3]) or 0
if exp - old >= math.min(1000, math.floor(tonumber(ARGV[2]) / 64)) or exp < old then
  redis.call('HSET', KEYS[1], 'exp', exp)
  redis.call('PEXPIREAT', KEYS[1], exp)
  -- The facts live exactly as long as their session.
  redis.call('PEXPIREAT', KEYS[2], exp)
else
  exp = old
end
return { fl, we, exp }
