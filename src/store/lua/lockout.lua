-- Shared prelude of the lockout scripts: the transitions of
-- src/domain/lockout.rs, line for line. Times are milliseconds since the epoch.
-- Lock hash fields: f = failures, l = level, u = locked until, lf = last failure.

-- Seven values: LockoutPolicy's six, then the contended retry (CONTENDED_RETRY).
local function policy(argv, i)
  return {
    maxf = tonumber(argv[i]), base = tonumber(argv[i + 1]), mult = tonumber(argv[i + 2]),
    max = tonumber(argv[i + 3]), forget = tonumber(argv[i + 4]), ttl = tonumber(argv[i + 5]),
    retry = tonumber(argv[i + 6]),
  }
end

local function load_lock(key)
  local v = redis.call('HMGET', key, 'f', 'l', 'u', 'lf')
  return { f = tonumber(v[1]) or 0, l = tonumber(v[2]) or 0, u = tonumber(v[3]) or 0, lf = tonumber(v[4]) or 0 }
end

local function block_for_level(p, level)
  local block = p.base
  for _ = 2, level do
    if block >= p.max then break end
    block = block * p.mult
  end
  if block > p.max then block = p.max end
  return block
end

local function clear(s)
  s.f, s.l, s.u, s.lf = 0, 0, 0, 0
end

-- Returns {level, until} when this failure started a lock.
local function fail(s, p, now)
  if s.u > now then return nil end
  s.f = s.f + 1
  s.lf = now
  if s.l == 0 and s.f < p.maxf then return nil end
  s.l = s.l + 1
  s.u = now + block_for_level(p, s.l)
  return { s.l, s.u }
end

local function forget_if_quiet(s, p, now)
  local from = s.lf
  if s.l > 0 then from = s.u end
  if (s.f > 0 or s.l > 0) and from + p.forget <= now then clear(s) end
end

-- Each expired reservation is a failure at the time it expired (in score, then
-- member order); then an old streak is forgotten.
local function advance(s, p, pend, now)
  local expired = redis.call('ZRANGEBYSCORE', pend, '-inf', now, 'WITHSCORES')
  if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', pend, '-inf', now)
    for i = 2, #expired, 2 do
      local at = tonumber(expired[i])
      forget_if_quiet(s, p, at)
      fail(s, p, at)
    end
  end
  forget_if_quiet(s, p, now)
end

-- Writes the state back, only when it changed (a refused attempt during a lock
-- writes nothing: no replication, no AOF). Keys expire once nothing about them
-- matters any more; a reservation is kept until a failure at its expiry would
-- have been forgotten, so it counts whenever the next attempt comes.
local function save_lock(key, pend, s, p, before)
  local changed = s.f ~= before.f or s.l ~= before.l or s.u ~= before.u or s.lf ~= before.lf
  if changed then
    if s.f == 0 and s.l == 0 and s.u == 0 then
      redis.call('DEL', key)
    else
      redis.call('HSET', key, 'f', s.f, 'l', s.l, 'u', s.u, 'lf', s.lf)
      redis.call('PEXPIREAT', key, math.max(s.u, s.lf) + p.forget + 1000)
    end
  end
end

local function keep_pending(pend, p)
  local last = redis.call('ZRANGE', pend, -1, -1, 'WITHSCORES')
  if #last > 0 then redis.call('PEXPIREAT', pend, tonumber(last[2]) + p.forget + 1000) end
end

local function copy(s)
  return { f = s.f, l = s.l, u = s.u, lf = s.lf }
end
