-- Shared prelude: the store's clock. Every lockout, session and rate-limit time
-- is Redis's own (TIME), so replicas with skewed clocks agree. A number in the
-- argument is used instead: only tests that replay a model with chosen times
-- pass one (RedisOptions::clock).
local function store_now(arg)
  local n = tonumber(arg)
  if n then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
