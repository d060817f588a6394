#!/usr/bin/env python3
"""Checks for the census-login monitoring files (standard library only).

  monitoring.py validate --dashboard D --alerts A --readme R --rules-out OUT
      Structure of the Grafana dashboard (valid JSON, every panel has targets with a
      non-empty PromQL expr, the datasource is the ${datasource} variable, ...), README
      coverage, and writes every dashboard expression (variables substituted) as a
      recording rule into OUT so that `promtool check rules OUT` parses them offline.

  monitoring.py live --dashboard D --alerts A --prometheus URL --rate-interval 1m
                     [--allow-empty 'Panel title=reason' ...] [--allow-absent 'metric=reason' ...]
                     [--require-nonzero 'Panel title' ...]
      Queries a running Prometheus (scraping a live census-login) for every dashboard
      expression (must be valid and non-empty with a non-NaN value, except the listed
      panels; the --require-nonzero panels must show a value other than 0), every alert
      expression of the loaded rules (must be valid; may be empty), and the metric
      names / label values of the helper contract.

Every check prints one line starting with PASS or FAIL; the caller counts them.
Exit status: 0 when nothing failed, 1 otherwise.
"""
import argparse
import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

DS_VARIABLE_UIDS = ("${datasource}", "$datasource")
JOB = "census-login"
NAMESPACE = "census"  # the production namespace; live-check.sh labels its targets with it
REDIS_JOB = "redis"

# Metrics the dashboard must use (the operations brief) -------------------------------
REQUIRED_DASHBOARD_METRICS = [
    "census_auth_outcomes_total",
    "census_http_requests_total",
    "census_http_request_duration_seconds_bucket",
    "census_locks_started_total",
    "census_hash_slots",
    "census_hash_slots_in_use",
    "census_hash_queue_depth",
    "census_hash_queue_capacity",
    "census_hash_rejected_total",
    "census_hash_duration_seconds_bucket",
    "census_store_up",
    "census_store_errors_total",
    "census_store_operation_duration_seconds_bucket",
    "census_rate_limited_total",
    "process_resident_memory_bytes",
    "up",
    # Redis (redis_exporter beside every Redis server)
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_db_keys",
    "redis_instance_info",
    "redis_connected_slaves",
    "redis_connected_slave_lag_seconds",
    "redis_master_link_up",
    "redis_evicted_keys_total",
    "redis_errors_total",
    "redis_rejected_connections_total",
    "redis_connected_clients",
]

# The metrics contract (helper-contract.md, "Metrics"): name -> label names it must carry.
CONTRACT_METRICS = {
    "census_http_requests_total": ["route", "method", "status"],
    "census_http_request_duration_seconds_bucket": ["route", "method", "le"],
    "census_http_request_duration_seconds_sum": ["route", "method"],
    "census_http_request_duration_seconds_count": ["route", "method"],
    "census_auth_outcomes_total": ["flow", "result"],
    "census_locks_started_total": ["level"],
    "census_hash_slots": [],
    "census_hash_slots_in_use": [],
    "census_hash_queue_capacity": [],
    "census_hash_queue_depth": [],
    "census_hash_duration_seconds_bucket": ["le"],
    "census_hash_duration_seconds_count": [],
    "census_hash_rejected_total": [],
    "census_store_operation_duration_seconds_bucket": ["op", "le"],
    "census_store_errors_total": ["op"],
    "census_store_up": [],
    "census_rate_limited_total": ["route"],
    "census_oidc_codes_issued_total": [],
    "census_oidc_codes_redeemed_total": [],
    "census_oidc_refused_total": ["reason"],
    "census_build_info": ["version", "git_commit"],
    "process_resident_memory_bytes": [],
    "process_cpu_seconds_total": [],
}

# Outcomes the live traffic of live-check.sh produces: (flow, result).
EXPECTED_OUTCOMES = [
    ("define", "ok"),
    ("define", "validation_failed"),
    ("define", "identity_not_verified"),
    ("define", "password_already_defined"),
    ("define", "pesel_reserved"),
    ("login", "ok"),
    ("login", "invalid_credentials"),
    ("login", "locked"),
    ("login", "validation_failed"),
    ("login", "overloaded"),
    ("login", "rate_limited"),
]
ALL_RESULTS = {
    "ok", "invalid_credentials", "identity_not_verified", "locked", "window_closed",
    "census_not_open", "census_closed", "password_already_defined", "pesel_reserved",
    "validation_failed", "overloaded", "rate_limited", "store_unavailable",
}
ALL_FLOWS = {"define", "login"}
LOCK_LEVELS = {str(i) for i in range(1, 10)} | {"10+"}


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, msg):
        self.passed += 1
        print(f"PASS {msg}", flush=True)

    def fail(self, msg):
        self.failed += 1
        print(f"FAIL {msg}", flush=True)

    def check(self, cond, msg, why=""):
        if cond:
            self.ok(msg)
        else:
            self.fail(f"{msg}{': ' + why if why else ''}")
        return cond


def one_line(expr):
    return " ".join(expr.split())


def all_panels(dash):
    """Top-level panels plus panels nested in collapsed rows."""
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        for q in p.get("panels", []) or []:
            out.append(q)
    return out


def dashboard_targets(dash):
    """(panel, target) for every non-row panel target."""
    res = []
    for p in all_panels(dash):
        if p.get("type") == "row":
            continue
        for t in p.get("targets", []) or []:
            res.append((p, t))
    return res


def substitute(expr, rate_interval, job=JOB, instance=".*", namespace=NAMESPACE, redis_job=REDIS_JOB):
    """Grafana variables -> concrete values, as Grafana would send the query."""
    e = expr
    for name, value in (("__rate_interval", rate_interval), ("__interval", rate_interval),
                        ("__range", rate_interval), ("redis_job", redis_job), ("job", job),
                        ("instance", instance), ("namespace", namespace)):
        e = re.sub(r"\$\{" + name + r"(:[a-z]+)?\}", value, e)
        e = re.sub(r"\$" + name + r"\b", value, e)
    return e


def alert_names_in(alerts_path):
    names = []
    with open(alerts_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\s*-\s*alert:\s*(\S+)\s*$", line)
            if m:
                names.append(m.group(1))
    return names


# --------------------------------------------------------------------------- validate
def cmd_validate(a):
    r = Report()
    try:
        with open(a.dashboard, encoding="utf-8") as f:
            dash = json.load(f)
        r.ok(f"dashboard is valid JSON ({a.dashboard})")
    except (OSError, ValueError) as e:
        r.fail(f"dashboard is valid JSON: {e}")
        return finish(r)

    sv = dash.get("schemaVersion")
    r.check(isinstance(sv, int) and sv >= 38, "dashboard schemaVersion >= 38 (Grafana 10+)", f"got {sv!r}")
    r.check(bool(dash.get("title")) and bool(dash.get("uid")), "dashboard has a title and a uid")
    r.check(dash.get("id") is None, "dashboard id is null (importable as a new dashboard)", f"got {dash.get('id')!r}")

    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    dsv = variables.get("datasource", {})
    r.check(dsv.get("type") == "datasource" and dsv.get("query") == "prometheus",
            "template variable 'datasource' of type datasource / prometheus", f"got {dsv!r}")
    jv = variables.get("job", {})
    r.check(jv.get("type") in ("query", "custom", "constant", "textbox")
            and (jv.get("current") or {}).get("value") == JOB,
            f"template variable 'job' defaults to {JOB}", f"got {jv.get('current')!r}")
    nv = variables.get("namespace", {})
    r.check(nv.get("type") == "query" and not nv.get("multi") and not nv.get("includeAll")
            and (nv.get("current") or {}).get("value") == NAMESPACE,
            f"template variable 'namespace': one namespace at a time, default {NAMESPACE} (dev and prod never mix)",
            f"got {nv!r}")
    rv = variables.get("redis_job", {})
    r.check((rv.get("current") or {}).get("value") == REDIS_JOB,
            f"template variable 'redis_job' defaults to {REDIS_JOB}", f"got {rv.get('current')!r}")
    for name, v in variables.items():
        if v.get("type") == "query":
            ds = v.get("datasource") or {}
            r.check(ds.get("uid") in DS_VARIABLE_UIDS, f"variable '{name}' queries the ${{datasource}} variable",
                    f"got {ds!r}")
    for inp in dash.get("__inputs", []) or []:
        r.check(inp.get("type") != "datasource" or inp.get("pluginId") == "prometheus",
                f"__inputs entry {inp.get('name')} is a prometheus datasource")

    panels = all_panels(dash)
    ids = [p.get("id") for p in panels]
    r.check(len(ids) == len(set(ids)) and None not in ids, "panel ids are unique and set", f"ids {ids}")
    titles = [p.get("title") for p in panels if p.get("type") != "row"]
    dups = sorted({t for t in titles if titles.count(t) > 1})
    r.check(all(titles) and not dups, "panel titles are set and unique", f"duplicates {dups}")

    range_re = re.compile(r"\[([^\]]*)\]")
    metric_names_used = set()
    rules = []
    for p in panels:
        title = p.get("title") or f"panel id {p.get('id')}"
        gp = p.get("gridPos") or {}
        if not (isinstance(gp.get("x"), int) and isinstance(gp.get("w"), int) and gp["x"] + gp["w"] <= 24
                and isinstance(gp.get("y"), int) and isinstance(gp.get("h"), int)):
            r.fail(f"panel '{title}': gridPos inside the 24-column grid: got {gp!r}")
            continue
        if p.get("type") == "row":
            continue
        problems = []
        ds = p.get("datasource") or {}
        if ds.get("type") != "prometheus" or ds.get("uid") not in DS_VARIABLE_UIDS:
            problems.append(f"panel datasource is {ds!r}, not the ${{datasource}} variable")
        targets = p.get("targets") or []
        if not targets:
            problems.append("no targets")
        for t in targets:
            ref = t.get("refId", "?")
            expr = t.get("expr")
            tds = t.get("datasource")
            if tds is not None and (tds.get("uid") not in DS_VARIABLE_UIDS):
                problems.append(f"target {ref} datasource is {tds!r}")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"target {ref} has an empty expr")
                continue
            if 'job="$job"' not in expr and 'job="$redis_job"' not in expr:
                problems.append(f'target {ref} does not filter on job="$job" (or job="$redis_job")')
            if expr.count('job="$') != expr.count('namespace="$namespace"'):
                problems.append(f'target {ref}: not every selector filters on namespace="$namespace"')
            for rng in range_re.findall(expr):
                if rng != "$__rate_interval":
                    problems.append(f"target {ref} uses range [{rng}] instead of [$__rate_interval]")
            for m in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", expr):
                metric_names_used.add(m)
            concrete = substitute(expr, "1m")
            if "$" in concrete:
                problems.append(f"target {ref} has an unknown variable: {concrete}")
            rules.append({"record": f"dashboard:panel{p.get('id')}_{ref}", "expr": concrete})
        if problems:
            r.fail(f"panel '{title}' ({p.get('type')}): " + "; ".join(problems))
        else:
            r.ok(f"panel '{title}' ({p.get('type')}): {len(targets)} target(s), datasource ${{datasource}}")

    missing = [m for m in REQUIRED_DASHBOARD_METRICS if m not in metric_names_used]
    r.check(not missing, "dashboard uses every metric of the brief", f"missing {missing}")
    r.check(any(p.get("type") == "stat" and (p.get("gridPos") or {}).get("y") == 0 for p in panels)
            and all(p.get("type") == "stat" for p in panels if (p.get("gridPos") or {}).get("y") == 0),
            "top row (y=0) is made of stat panels")

    with open(a.rules_out, "w", encoding="utf-8") as f:
        json.dump({"groups": [{"name": "dashboard-expressions", "rules": rules}]}, f, indent=1)

    # docs/operations.md coverage: every alert and every panel title is explained for the on-call engineer.
    try:
        with open(a.readme, encoding="utf-8") as f:
            readme = f.read()
        names = alert_names_in(a.alerts)
        r.check(bool(names), f"alerts found in {a.alerts}", "no '- alert:' lines")
        miss = [n for n in names if n not in readme]
        r.check(not miss, f"the operations doc explains every alert ({len(names)})", f"missing {miss}")
        titles = [p.get("title") for p in panels if p.get("type") != "row"]
        miss = [t for t in titles if t not in readme]
        r.check(not miss, f"the operations doc lists every panel ({len(titles)})", f"missing {miss}")
        families = {re.sub(r"_(bucket|sum|count)$", "", m) for m in CONTRACT_METRICS}
        miss = sorted(m for m in families if m not in readme)
        r.check(not miss, "the operations doc metrics table covers the contract metrics", f"missing {miss}")
    except OSError as e:
        r.fail(f"operations doc readable: {e}")
    return finish(r)


# --------------------------------------------------------------------------- live
class Prom:
    def __init__(self, base, at):
        self.base = base.rstrip("/")
        self.at = at

    def get(self, path, params=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "error": f"HTTP {e.code}"}
        except (urllib.error.URLError, OSError, ValueError) as e:
            return {"status": "error", "error": str(e)}

    def query(self, expr):
        return self.get("/api/v1/query", {"query": expr, "time": f"{self.at:.3f}"})


def values_of(res):
    data = res.get("data") or {}
    rt = data.get("resultType")
    result = data.get("result")
    if rt == "vector":
        return [s["value"][1] for s in result]
    if rt == "scalar":
        return [result[1]]
    return []


def describe(vals):
    finite = []
    for v in vals:
        try:
            x = float(v)
        except ValueError:
            continue
        if not math.isnan(x):
            finite.append(x)
    return finite


def parse_pairs(items, what):
    out = {}
    for it in items or []:
        if "=" not in it:
            sys.exit(f"--{what} needs 'name=reason', got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def cmd_live(a):
    import time
    r = Report()
    prom = Prom(a.prometheus, time.time())
    allow_empty = parse_pairs(a.allow_empty, "allow-empty")
    allow_absent = parse_pairs(a.allow_absent, "allow-absent")
    require_nonzero = set(a.require_nonzero)

    with open(a.dashboard, encoding="utf-8") as f:
        dash = json.load(f)
    titles = {p.get("title") for p in all_panels(dash)}
    for t in list(allow_empty) + sorted(require_nonzero):
        if t not in titles:
            r.fail(f"panel '{t}' named in live-check.sh exists in the dashboard")

    # 1. the target is scraped
    res = prom.query(f'up{{job="{JOB}"}}')
    vals = describe(values_of(res))
    r.check(vals and all(v == 1 for v in vals), f'target up{{job="{JOB}"}} == 1', f"got {res}")

    # 2. every dashboard expression: valid and non-empty (finite values)
    for p, t in dashboard_targets(dash):
        title, ref = p.get("title"), t.get("refId")
        expr = substitute(t["expr"], a.rate_interval)
        res = prom.query(expr)
        label = f"dashboard '{title}' [{ref}]"
        if res.get("status") != "success":
            r.fail(f"{label}: invalid: {res.get('errorType')}: {res.get('error')} :: {one_line(expr)}")
            continue
        vals = values_of(res)
        finite = describe(vals)
        if finite and title in require_nonzero and not any(v != 0 for v in finite):
            r.fail(f"{label}: {len(vals)} series but all 0, although the traffic should show here :: {one_line(expr)}")
        elif finite:
            top = max(finite, key=abs)
            r.ok(f"{label}: {len(vals)} series, max {top:.6g} :: {one_line(expr)}")
        elif title in allow_empty:
            r.ok(f"{label}: valid, {len(vals)} series with data (allowed empty: {allow_empty[title]}) :: {one_line(expr)}")
        elif vals:
            r.fail(f"{label}: {len(vals)} series but only NaN values :: {one_line(expr)}")
        else:
            r.fail(f"{label}: empty result :: {one_line(expr)}")

    # 3. every alert rule Prometheus loaded from alerts.yml: valid expression, healthy rule
    expected = alert_names_in(a.alerts)
    rules = prom.get("/api/v1/rules", {"type": "alert"})
    loaded = []
    if rules.get("status") == "success":
        for g in rules["data"]["groups"]:
            for rule in g.get("rules", []):
                if rule.get("type") == "alerting":
                    loaded.append(rule)
    names = [x.get("name") for x in loaded]
    r.check(sorted(names) == sorted(expected),
            f"Prometheus loaded all {len(expected)} alert rules of {a.alerts}",
            f"loaded {names}, expected {expected}")
    for rule in loaded:
        expr = rule.get("query", "")
        res = prom.query(expr)
        label = f"alert {rule.get('name')}"
        if res.get("status") != "success":
            r.fail(f"{label}: invalid: {res.get('errorType')}: {res.get('error')} :: {one_line(expr)}")
        elif rule.get("health") == "err":
            r.fail(f"{label}: rule health err: {rule.get('lastError')} :: {one_line(expr)}")
        else:
            n = len(values_of(res))
            r.ok(f"{label}: valid, {n} series now, rule health {rule.get('health')}, state {rule.get('state')} :: {one_line(expr)}")

    # 4. the metrics contract: names and label names
    for metric, labels in CONTRACT_METRICS.items():
        res = prom.query(f'{metric}{{job="{JOB}"}}')
        series = (res.get("data") or {}).get("result") or []
        if res.get("status") != "success":
            r.fail(f"contract metric {metric}: query failed: {res.get('error')}")
        elif not series:
            if metric in allow_absent:
                r.ok(f"contract metric {metric}: absent (allowed: {allow_absent[metric]})")
            else:
                r.fail(f"contract metric {metric}: not exposed (no series with job={JOB})")
        else:
            bad = [s["metric"] for s in series if not all(l in s["metric"] for l in labels)]
            r.check(not bad, f"contract metric {metric}: {len(series)} series with labels {labels}",
                    f"series without those labels: {bad[:3]}")

    # label values within the contract
    checks = [
        ("census_auth_outcomes_total", "flow", ALL_FLOWS),
        ("census_auth_outcomes_total", "result", ALL_RESULTS),
        ("census_locks_started_total", "level", LOCK_LEVELS),
    ]
    for metric, label, allowed in checks:
        res = prom.query(f'count by ({label}) ({metric}{{job="{JOB}"}})')
        got = {s["metric"].get(label, "") for s in (res.get("data") or {}).get("result") or []}
        extra = sorted(got - allowed)
        r.check(res.get("status") == "success" and not extra,
                f"contract {metric} label {label} values {sorted(got)} within the contract", f"unexpected {extra}")
    res = prom.query(f'count by (route) (census_http_requests_total{{job="{JOB}"}})')
    routes = {s["metric"].get("route", "") for s in (res.get("data") or {}).get("result") or []}
    r.check({"/api/v1/login", "/api/v1/password"} <= routes,
            "contract census_http_requests_total route label is the matched pattern (/api/v1/login, /api/v1/password)",
            f"routes seen {sorted(routes)}")
    bad_routes = [x for x in routes if re.search(r"\d{11}", x)]
    r.check(not bad_routes, "no PESEL-like value in any route label (privacy)", f"{bad_routes}")

    # every outcome the live traffic produced is counted with the contract's labels
    for flow, result in EXPECTED_OUTCOMES:
        res = prom.query(f'census_auth_outcomes_total{{job="{JOB}",flow="{flow}",result="{result}"}}')
        vals = describe(values_of(res))
        r.check(vals and max(vals) >= 1, f'outcome counted: census_auth_outcomes_total{{flow="{flow}",result="{result}"}}',
                f"got {values_of(res)}")
    res = prom.query(f'census_locks_started_total{{job="{JOB}",level="1"}}')
    vals = describe(values_of(res))
    r.check(vals and max(vals) >= 1, 'lock counted: census_locks_started_total{level="1"} >= 1', f"got {values_of(res)}")
    res = prom.query(f'census_hash_rejected_total{{job="{JOB}"}}')
    vals = describe(values_of(res))
    r.check(vals and max(vals) >= 1, "shed requests counted: census_hash_rejected_total >= 1", f"got {values_of(res)}")
    res = prom.query(f'sum(census_rate_limited_total{{job="{JOB}"}})')
    vals = describe(values_of(res))
    r.check(vals and max(vals) >= 1, "rate limiting counted: census_rate_limited_total >= 1", f"got {values_of(res)}")
    for gauge, want in (("census_hash_slots", 1), ("census_hash_queue_capacity", 1), ("census_store_up", 1)):
        res = prom.query(f'{gauge}{{job="{JOB}"}}')
        vals = describe(values_of(res))
        r.check(vals == [want], f"{gauge} == {want} (configured in live-check.sh / memory store)", f"got {values_of(res)}")
    return finish(r)


def finish(r):
    print(f"__counts {r.passed} {r.failed}", flush=True)
    return 1 if r.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate")
    v.add_argument("--dashboard", required=True)
    v.add_argument("--alerts", required=True)
    v.add_argument("--readme", required=True)
    v.add_argument("--rules-out", required=True)
    l = sub.add_parser("live")
    l.add_argument("--dashboard", required=True)
    l.add_argument("--alerts", required=True)
    l.add_argument("--prometheus", required=True)
    l.add_argument("--rate-interval", default="1m")
    l.add_argument("--allow-empty", action="append", default=[])
    l.add_argument("--allow-absent", action="append", default=[])
    l.add_argument("--require-nonzero", action="append", default=[])
    a = ap.parse_args()
    return cmd_validate(a) if a.cmd == "validate" else cmd_live(a)


if __name__ == "__main__":
    sys.exit(main())
