-- Shared prelude of the lockout scripts: the transitions of
-- src/domain/lockout.rs, line for line. Times are milliseconds since the epoch.
-- Lock hash fields: f = failures, l = level, u = locked until, lf = last failure.

local function policy(argv, i)
  return {
    maxf = tonumber(argv[i]), base = tonumber(argv[i + 1]), mult = tonumber(argv[i + 2]),
    max = tonumber(argv[i + 3]), forget = tonumber(argv[i + 4]), ttl = tonumber(argv[i + 5]),
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

-- Expired reservations count as failures; then an old streak is forgotten.
local function advance(s, p, pend, now)
  local expired = redis.call('ZRANGEBYSCORE', pend, '-inf', now)
  if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', pend, '-inf', now)
    for _ = 1, #expired do fail(s, p, now) end
  end
  local from = s.lf
  if s.l > 0 then from = s.u end
  if (s.f > 0 or s.l > 0) and from + p.forget <= now then clear(s) end
end

-- Writes the state back; keys expire once nothing about them matters any more.
local function save_lock(key, pend, s, p)
  if s.f == 0 and s.l == 0 and s.u == 0 then
    redis.call('DEL', key)
  else
    redis.call('HSET', key, 'f', s.f, 'l', s.l, 'u', s.u, 'lf', s.lf)
    redis.call('PEXPIREAT', key, math.max(s.u, s.lf) + p.forget + 1000)
  end
  local last = redis.call('ZRANGE', pend, -1, -1, 'WITHSCORES')
  if #last > 0 then redis.call('PEXPIREAT', pend, tonumber(last[2]) + 1000) end
end
