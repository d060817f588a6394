-- KEYS: lock hash, pending zset, account hash, registry bucket 0 of the tag.
-- ARGV: now ('' = TIME), policy (7 values), ticket, registry field.
-- Returns {status, time, registry value, password, first login, generation, now}.
local now = store_now(ARGV[1])
-- Locked: refused at the cost of one read. Nothing else can change meanwhile:
-- failures during a lock do not count (fail() in lockout.lua), so reservations
-- expiring now change no state whenever they are processed later.
local u = tonumber(redis.call('HGET', KEYS[1], 'u')) or 0
if u > now then return { 'locked', u, '', '', '', '', now } end
local p = policy(ARGV, 2)
local s = load_lock(KEYS[1])
local before = copy(s)
advance(s, p, KEYS[2], now)
local status, t = 'allowed', 0
if s.u > now then
  status, t = 'locked', s.u
else
  -- After a lock has ended, the next failure locks again at once.
  local budget = 1
  if s.l == 0 then budget = math.max(p.maxf - s.f, 0) end
  if redis.call('ZCARD', KEYS[2]) >= budget then
    status, t = 'contended', now + p.retry
  else
    redis.call('ZADD', KEYS[2], now + p.ttl, ARGV[9])
    keep_pending(KEYS[2], p)
  end
end
save_lock(KEYS[1], KEYS[2], s, p, before)
if status ~= 'allowed' then return { status, t, '', '', '', '', now } end
local r = registry_get(string.sub(KEYS[4], 1, -2), ARGV[10])
local a = redis.call('HMGET', KEYS[3], 'pw', 'fl', 'gen')
return { status, 0, r or '', a[1] or '', a[2] or '', a[3] or '', now }
