-- wrk's done() for every script here: the run's summary as one JSON line on stdout
-- (capacity_report.py reads it). Latencies in ms.
-- extra: more integer fields for the line (login.lua's count of 200s).
return function(summary, latency, requests, extra)
  local secs = summary.duration / 1e6
  local more = ""
  for k, v in pairs(extra or {}) do more = more .. string.format(',"%s":%d', k, v) end
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d%s}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, more))
end
