#!/usr/bin/env python3
"""Judge one capacity.sh run against issue #11's targets, as ratios to the baselines
measured in the same run.

  capacity_report.py OUT_DIR SAT_DURATION RATE_DURATION OFFERED_RATE

Reads OUT_DIR/capacity-*.json (wrk summaries with CPU seconds, k6 --summary-export
files, argon2_ceiling --ceiling-only lines, the service footprints), prints a table,
writes capacity-report.{txt,json} and exits 1 when a target is missed (or a measurement
is missing).
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


def k6_metric(summary: dict, name: str) -> dict:
    return summary.get("metrics", {}).get(name, {})


rows, failed = [], []


def row(name: str, value: str, goal: str, ok: bool | None) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    rows.append((name, value, goal, verdict))
    if ok is False:
        failed.append(name)


def per_req(w: dict, key: str) -> float:
    return 1e6 * w[key] / max(w["requests"], 1)


# --- cheap paths (wrk) ---------------------------------------------------------------------
b1, b2 = load("cheap-baseline-1"), load("cheap-baseline-2")
base_rps = (b1["rps"] + b2["rps"]) / 2
row("baseline: bare actix-web + 1 Redis GET (wrk, before / after)",
    f"{b1['rps']:.0f} / {b2['rps']:.0f} req/s, p99 {b1['p99_ms']:.1f} / {b2['p99_ms']:.1f} ms; "
    f"CPU/req {per_req(b1, 'target_cpu_s'):.1f} us + Redis {per_req(b1, 'redis_cpu_s'):.1f} us", "", None)
for name, code, judged in (("locked", "423", True), ("session", "200", True), ("pesel", "200", False)):
    w = load(f"cheap-{name}")
    ratio = w["rps"] / base_rps
    bad = w["errors_status"] if code == "200" else w["requests"] - w["errors_status"]
    ok = ratio >= 0.5 and w["p99_ms"] < 20 and bad == 0 and w["errors_timeout"] == 0
    row(f"{name} ({code}): req/s / baseline, p99",
        f"{w['rps']:.0f} req/s = {ratio:.2f}, p99 {w['p99_ms']:.1f} ms; CPU/req service "
        f"{per_req(w, 'target_cpu_s'):.1f} us, Redis {per_req(w, 'redis_cpu_s'):.1f} us"
        + (f"; {bad} unexpected statuses" if bad else ""),
        ">= 0.50, < 20 ms" if judged else "(not a target)", ok if judged else None)
gen = [load(n) for n in ("cheap-baseline-1", "cheap-locked", "cheap-session", "cheap-pesel", "cheap-baseline-2")]
row("the generator itself (wrk, 1 thread): CPU per request",
    ", ".join(f"{per_req(w, 'wrk_cpu_s'):.1f}" for w in gen) + " us (baseline, locked, session, PESEL, baseline)",
    "", None)

# --- hashing: ceiling, saturation, 80 % ----------------------------------------------------
c1, c2 = load("ceiling-1"), load("ceiling-2")
ceiling = (c1["ceiling_hashes_per_s"] + c2["ceiling_hashes_per_s"]) / 2
sat = load("saturate")
sat_ok = k6_metric(sat, "logins_ok").get("count", 0)
sat_rate = sat_ok / seconds(sat_duration)
sat_unexpected = k6_metric(sat, "unexpected_status").get("count", 0)
sat_p99 = k6_metric(sat, "http_req_duration{probe:yes}").get("p(99)", float("nan"))
row("ceiling: stock argon2 crate, plain loop, all cores (before / after)",
    f"{c1['ceiling_hashes_per_s']:.1f} / {c2['ceiling_hashes_per_s']:.1f} hashes/s", "", None)
row("logins/s at saturation (polite, closed loop) / ceiling",
    f"{sat_rate:.1f} / {ceiling:.1f} = {sat_rate / ceiling:.2f}, p99 {sat_p99:.0f} ms"
    + (f", {sat_unexpected:.0f} unexpected" if sat_unexpected else ""),
    ">= 0.90", sat_rate / ceiling >= 0.90 and sat_unexpected == 0)
rate = load("rate")
rate_p99 = k6_metric(rate, "http_req_duration{probe:yes}").get("p(99)", float("inf"))
rate_shed = k6_metric(rate, "logins_shed").get("count", 0)
row(f"login p99 at {offered:.0f} logins/s (80 % of saturation, constant arrival)",
    f"{rate_p99:.0f} ms, {rate_shed:.0f} shed", "< 300 ms", rate_p99 < 300)

# --- the impolite flood --------------------------------------------------------------------
flood = load("flood")
goodput = flood["ok"] / flood["seconds"]
row("impolite flood: goodput / polite saturation",
    f"{goodput:.1f} / {sat_rate:.1f} logins/s = {goodput / sat_rate:.2f} "
    f"({flood['rps']:.0f} answers/s to {flood.get('connections', 64)} connections retrying at once)",
    ">= 0.70", goodput / sat_rate >= 0.70)
probe = load("probe")
p99s = {n: k6_metric(probe, f"http_req_duration{{probe:{n}}}").get("p(99)") for n in ("locked", "session", "pesel")}
probe_unexpected = k6_metric(probe, "unexpected_status").get("count", 0)
probe_ok = all(v is not None and v < 20 for v in p99s.values()) and probe_unexpected == 0
row("impolite flood: cheap-path p99 (k6 probe alongside)",
    ", ".join(f"{n} {v:.1f} ms" if v is not None else f"{n} missing" for n, v in p99s.items())
    + (f"; {probe_unexpected:.0f} unexpected statuses" if probe_unexpected else ""),
    "< 20 ms", probe_ok)
fp = load("flood-service")
hwm = fp.get("peakResidentKiB")
row("impolite flood: peak resident memory of the service",
    f"{hwm / 1024:.0f} MiB" if hwm else "missing", "< 200 MiB", bool(hwm) and hwm / 1024 < 200)
svc = load("service")
row("load average before / after the hashing runs", f"{svc.get('loadAvg1mBefore')} / {svc.get('loadAvg1mAfter')}",
    "", None)

width = max(len(r[0]) for r in rows)
lines = [f"{'figure'.ljust(width)} | measured | goal | verdict"]
lines += [f"{n.ljust(width)} | {v} | {g} | {o}" for n, v, g, o in rows]
lines.append("all targets met" if not failed else "MISSED: " + "; ".join(failed))
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "capacity-report.txt"), "w", encoding="utf-8") as f:
    f.write(text + "\n")
with open(os.path.join(out, "capacity-report.json"), "w", encoding="utf-8") as f:
    json.dump({"rows": [dict(zip(("figure", "measured", "goal", "verdict"), r)) for r in rows],
               "missed": failed}, f, indent=2)
sys.exit(1 if failed else 0)
