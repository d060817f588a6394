-- KEYS: lock hash, pending zset, account hash, session set, session hash.
-- ARGV: now, policy (6 values), ticket, outcome (S/F/N), password mode (''/D/R),
--       password PHC, create session (1/0), token hash, idle, window, closes (-1 = none).
-- Returns {lock level started, lock until, already defined, first login, window end, session expiry}.
local now = tonumber(ARGV[1])
local p = policy(ARGV, 2)
local outcome = ARGV[9]
local was_pending = redis.call('ZREM', KEYS[2], ARGV[8])
local s = load_lock(KEYS[1])
advance(s, p, KEYS[2], now)
local lvl, till = 0, 0
if outcome == 'S' then
  clear(s)
elseif outcome == 'F' and was_pending == 1 then
  local started = fail(s, p, now)
  if started then lvl, till = started[1], started[2] end
end
save_lock(KEYS[1], KEYS[2], s, p)
if outcome ~= 'S' then return { lvl, till, 0, 0, 0, 0 } end

local mode = ARGV[10]
if mode == 'D' and redis.call('HEXISTS', KEYS[3], 'pw') == 1 then
  return { lvl, till, 1, 0, 0, 0 }
end
if mode ~= '' then redis.call('HSET', KEYS[3], 'pw', ARGV[11]) end
local fl = tonumber(redis.call('HGET', KEYS[3], 'fl'))
if not fl then
  fl = now
  redis.call('HSET', KEYS[3], 'fl', ARGV[1])
end
local we, exp = 0, 0
if ARGV[12] == '1' then
  we = fl + tonumber(ARGV[15])
  local closes = tonumber(ARGV[16])
  if closes >= 0 and closes < we then we = closes end
  if we > now then
    exp = math.min(now + tonumber(ARGV[14]), we)
    redis.call('HSET', KEYS[5], 'fl', fl, 'we', we)
    redis.call('PEXPIREAT', KEYS[5], exp)
    redis.call('SADD', KEYS[4], ARGV[13])
    -- Sessions never outlive the window, so neither does their index.
    redis.call('PEXPIREAT', KEYS[4], we)
  end
end
return { lvl, till, 0, fl, we, exp }
