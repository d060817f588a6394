-- The impolite flood (tests/load/capacity.sh): every connection logs in back to back
-- with the right password of one of PEOPLE_FILE's people (lines "pesel password"),
-- ignoring Retry-After and retrying at once after a 503. Goodput (logins that
-- succeeded) is read from the service's /metrics, not from here.
local people = {}
for line in io.lines(os.getenv("PEOPLE_FILE")) do
  local pesel, password = line:match("^(%d+) (%S+)$")
  if pesel then people[#people + 1] = string.format('{"pesel":"%s","password":"%s"}', pesel, password) end
end
assert(#people > 0, "PEOPLE_FILE has no 'pesel password' lines")

local threads = {}
function setup(thread)
  thread:set("n", #threads * 7919)
  thread:set("ok", 0)
  threads[#threads + 1] = thread
end

function response(status)
  if status == 200 then ok = ok + 1 end
end

local headers = { ["Content-Type"] = "application/json" }
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/login", headers, people[(n % #people) + 1])
end

local summarize = dofile(os.getenv("WRK_LUA_DIR") .. "/summary.lua")
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("ok") end
  summarize(summary, latency, requests, { ok = total })
end
