-- One request, repeated by every wrk connection (tests/load/capacity.sh).
-- Env: WRK_METHOD (GET), WRK_BODY (JSON, sent with Content-Type: application/json),
-- WRK_COOKIE (a Cookie header), WRK_LUA_DIR (this folder). The statuses are checked by
-- the caller from the service's /metrics.
wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local cookie = os.getenv("WRK_COOKIE")
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
done = dofile(os.getenv("WRK_LUA_DIR") .. "/summary.lua")
