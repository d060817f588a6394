#!/usr/bin/env python3
"""Judge one capacity.sh run against the targets of the load issue, as ratios to the
baselines measured in the same run.

  capacity_report.py OUT_DIR SAT_DURATION RATE_DURATION OFFERED_RATE

Reads OUT_DIR/capacity-*.json (k6 --summary-export files, bench-hash --json, the
service footprint), prints a table, writes capacity-report.{txt,json} and exits 1 when a
target is missed (or a measurement is missing).
"""

import json
import os
import re
import sys

out, sat_duration, rate_duration, offered = sys.argv[1:5]
offered = float(offered)


def seconds(d: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", d)
    if not m:
        sys.exit(f"capacity_report: bad duration {d!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def load(name: str) -> dict:
    path = os.path.join(out, f"capacity-{name}.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"capacity_report: {path}: {e}")


def metric(summary: dict, name: str) -> dict:
    return summary.get("metrics", {}).get(name, {})


def exit_code(name: str) -> int:
    return load(f"{name}.exit")["exitCode"]


rows, results = [], []


def target(what: str, value: str, goal: str, ok: bool) -> None:
    rows.append((what, value, goal, "ok" if ok else "MISSED"))
    results.append({"target": what, "value": value, "goal": goal, "ok": ok})


def probe(name: str, duration_s: float) -> tuple[float, float, int]:
    """requests/s, p99 ms and unexpected statuses of a capacity.js run."""
    s = load(name)
    trend = metric(s, "http_req_duration{probe:yes}")
    count = trend.get("count", 0)
    unexpected = int(metric(s, "unexpected_status").get("count", 0))
    return count / duration_s, trend.get("p(99)", float("inf")), unexpected


# 1. hashing ceiling vs login throughput at saturation
bench = load("bench-hash-1")
ceilings = [bench["hashesPerSecond"], load("bench-hash-2")["hashesPerSecond"]]
ceiling = sum(ceilings) / 2
sat = load("saturate")
sat_s = seconds(sat_duration)
logins = metric(sat, "logins_ok").get("count", 0) / sat_s
_, sat_p99, sat_unexpected = probe("saturate", sat_s)
sat_unexpected += int(metric(sat, "logins_shed").get("count", 0))
target(
    "login throughput at saturation / bench-hash ceiling",
    f"{logins:.1f} / {ceiling:.1f} = {logins / ceiling:.2f} (ceiling {ceilings[0]:.1f} before, {ceilings[1]:.1f} after;"
    f" {sat_unexpected} unexpected, p99 {sat_p99:.0f} ms)",
    ">= 0.90, no unexpected status",
    logins / ceiling >= 0.9 and sat_unexpected == 0 and exit_code("saturate") == 0,
)

# 2. latency at 80 % of that throughput
rate_rps, rate_p99, rate_unexpected = probe("rate", seconds(rate_duration))
rate_shed = metric(load("rate"), "logins_shed").get("count", 0)
rate_share = rate_shed / max(1.0, rate_rps * seconds(rate_duration))
target(
    "login p99 at 80 % of saturation throughput",
    f"{rate_p99:.0f} ms at {offered:.0f}/s offered ({rate_rps:.1f}/s answered, {rate_shed:.0f} shed = {rate_share:.1%}, {rate_unexpected} unexpected)",
    "< 300 ms, shed < 1 %",
    rate_p99 < 300 and rate_share < 0.01 and rate_unexpected == 0 and exit_code("rate") == 0,
)

# 3. cheap paths vs the bare handler doing one Redis GET (mean of the runs before and after)
cheap_s = seconds(os.environ.get("CHEAP_DURATION", "15s"))
b1, b1_p99, _ = probe("cheap-baseline-1", cheap_s)
b2, b2_p99, _ = probe("cheap-baseline-2", cheap_s)
base = (b1 + b2) / 2
rows.append(("baseline: bare actix-web + 1 Redis GET", f"{b1:.0f} and {b2:.0f} req/s (p99 {b1_p99:.1f} / {b2_p99:.1f} ms)", "", ""))
for ep, label in (("locked", "locked-account 423"), ("session", "session check"), ("pesel", "PESEL check")):
    rps, p99, unexpected = probe(f"cheap-{ep}", cheap_s)
    target(
        f"{label}: req/s vs baseline, p99",
        f"{rps:.0f} req/s = {rps / base:.2f}, p99 {p99:.1f} ms ({unexpected} unexpected)",
        ">= 0.50, < 20 ms",
        rps / base >= 0.5 and p99 < 20 and unexpected == 0 and exit_code(f"cheap-{ep}") == 0,
    )

# 4. flood: shedding, timeouts, cheap paths under saturation, memory
flood = load("flood")
shed = metric(flood, "flood_overloaded_duration")
timeouts = metric(flood, "flood_timeouts").get("count", 0)
conn_errors = metric(flood, "flood_connection_errors").get("count", 0)
shed_n = metric(flood, "flood_overloaded").get("count", 0)
ok_n = metric(flood, "flood_logins_ok").get("count", 0)

# Inside the service: the access log's latency of every 503 on /api/v1/login.
served = []
with open(os.path.join(out, "capacity-flood-service.log"), encoding="utf-8") as f:
    for line in f:
        if '"route":"/api/v1/login"' not in line or '"status":503' not in line:
            continue
        try:
            served.append(json.loads(line)["latency_ms"])
        except (ValueError, KeyError):
            continue
served.sort()
if served:
    srv_p99, srv_max = served[min(len(served) - 1, int(len(served) * 0.99))], served[-1]
else:
    srv_p99 = srv_max = float("inf")
target(
    "flood: shed 503s, time inside the service (access log)",
    f"max {srv_max:.1f} ms, p99 {srv_p99:.1f} ms over {len(served)} x 503 ({ok_n:.0f} logins ok)",
    "< 100 ms",
    srv_max < 100 and len(served) > 0,
)
# As k6 sees them, against the same VU shape on the bare baseline server.
fb = metric(load("flood-baseline"), "http_req_duration{probe:yes}")
shed_p99, fb_p99 = shed.get("p(99)", float("inf")), fb.get("p(99)", float("inf"))
rows.append((
    "flood: k6's own stalls (same VUs on the baseline)",
    f"p99 {fb_p99:.0f} ms, max {fb.get('max', float('nan')):.0f} ms, med {fb.get('med', float('nan')):.1f} ms",
    "", "",
))
# Reported, not judged: across runs this difference ranged from 34 to 517 ms while the
# service-side figure stayed under 60 ms, so on a 2-core box shared with k6 it measures
# the generator as much as the service (tests/load/NOTES.md).
rows.append((
    "flood: shed 503s as k6 sees them (not judged)",
    f"p99 {shed_p99:.0f} ms (baseline's {fb_p99:.0f} ms), max {shed.get('max', float('nan')):.0f} ms, {shed_n:.0f} x 503",
    "", "",
))
target(
    "flood: requests without an answer",
    f"{timeouts:.0f} timeouts, {conn_errors:.0f} connection errors",
    "0",
    timeouts == 0 and conn_errors == 0,
)
for ep, label in (("locked", "locked 423"), ("session", "session check"), ("pesel_check", "PESEL check")):
    t = metric(flood, f"http_req_duration{{scenario:cheap,endpoint:{ep}}}")
    p99 = t.get("p(99)", float("inf"))
    target(f"flood: {label} p99 while hashing is saturated", f"{p99:.1f} ms", "< 20 ms", p99 < 20)
target("flood: flood.js's other thresholds", f"k6 exit {exit_code('flood')}", "0", exit_code("flood") == 0)
svc = load("service")
fsvc = load("flood-service")
peak = (fsvc.get("peakResidentKiB") or 1e12) / 1024
target("flood: peak resident memory of the service", f"{peak:.0f} MiB", "< 400 MiB", peak < 400)

width = [max(len(r[i]) for r in rows) for i in range(4)]
lines = [
    f"capacity of census-login, {bench.get('threads')} hashing threads, Argon2id "
    f"m={bench.get('memoryKib')} KiB t={bench.get('iterations')} p={bench.get('parallelism')}, "
    f"avx2={bench.get('avx2')}, load average {svc.get('loadAvg1mBefore')} -> {svc.get('loadAvg1mAfter')}",
    "",
]
lines += ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in rows]
missed = [r for r in results if not r["ok"]]
lines += ["", f"{len(results) - len(missed)} of {len(results)} targets met"]
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "capacity-report.txt"), "w", encoding="utf-8") as f:
    f.write(text + "\n")
with open(os.path.join(out, "capacity-report.json"), "w", encoding="utf-8") as f:
    json.dump({"ceilingHashesPerSecond": ceiling, "loginsPerSecond": logins,
               "baselineRps": base, "targets": results}, f, indent=2)
sys.exit(1 if missed else 0)
