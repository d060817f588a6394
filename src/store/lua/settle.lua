-- KEYS: lock hash, pending zset, account hash, session set, session hash,
--       session facts.
-- ARGV: now ('' = TIME), policy (7 values), ticket, outcome (S/F/N), password
--       mode (''/D/R), password PHC, create session (1/0), token hash, idle,
--       window, closes (-1 = none), generation the attempt began with, sealed
--       session facts.
-- Returns {lock level started, lock until, already defined, first login,
--          window end, session expiry, superseded, now}.
local now = store_now(ARGV[1])
local p = policy(ARGV, 2)
local outcome, mode = ARGV[10], ARGV[11]
local was_pending = redis.call('ZREM', KEYS[2], ARGV[9])
-- A success settles only on the generation it began with (a reset since then
-- wins), and a conflicting definition is no verdict on the secret: both are
-- neutral, neither counting nor clearing a failure.
local superseded, already = 0, 0
if outcome == 'S' then
  local a = redis.call('HMGET', KEYS[3], 'gen', 'pw')
  if (tonumber(a[1]) or 0) ~= tonumber(ARGV[18]) then
    superseded, outcome = 1, 'N'
  elseif mode == 'D' and a[2] then
    already, outcome = 1, 'N'
  end
end
local s = load_lock(KEYS[1])
local before = copy(s)
advance(s, p, KEYS[2], now)
local lvl, till = 0, 0
if outcome == 'S' then
  clear(s)
elseif outcome == 'F' and was_pending == 1 then
  local started = fail(s, p, now)
  if started then lvl, till = started[1], started[2] end
end
save_lock(KEYS[1], KEYS[2], s, p, before)
if outcome ~= 'S' then return { lvl, till, already, 0, 0, 0, superseded, now } end

if mode ~= '' then redis.call('HSET', KEYS[3], 'pw', ARGV[12]) end
local fl = tonumber(redis.call('HGET', KEYS[3], 'fl'))
if not fl then
  fl = now
  redis.call('HSET', KEYS[3], 'fl', now)
end
local we, exp = 0, 0
if ARGV[13] == '1' then
  we = fl + tonumber(ARGV[16])
  local closes = tonumber(ARGV[17])
  if closes >= 0 and closes < we then we = closes end
  if we > now then
    exp = math.min(now + tonumber(ARGV[15]), we)
    redis.call('HSET', KEYS[5], 'fl', fl, 'we', we, 'exp', exp)
    redis.call('PEXPIREAT', KEYS[5], exp)
    redis.call('SADD', KEYS[4], ARGV[14])
    -- Sessions never outlive the window, so neither does their index.
    redis.call('PEXPIREAT', KEYS[4], we)
    -- In the same step as the session: none exists without its facts. They
    -- expire with it (touch_session.lua moves both), not with the window.
    redis.call('SET', KEYS[6], ARGV[19], 'PXAT', exp)
  end
end
return { lvl, till, 0, fl, we, exp, 0, now }
