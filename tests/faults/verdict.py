#!/usr/bin/env python3
"""Judges a tests/faults/run.sh run from the outside: every request k6 sent (one JSON
line each: t0, t1, kind, pesel, replica, attempt, status, code, retryAfter) against the
fault going on when it was sent, every acknowledged password definition against the
admin API, the replicas' memory samples, and their logs. Prints what the attackers
tried and what was lost; exits 1 if any verdict fails."""

import argparse
import collections
import json
import random
import sys
import urllib.error
import urllib.request

OK = {200, 201, 401, 409}  # a definition, a login, a wrong password, a repeat definition
RECOVERY_MS = 5000  # "full recovery within 5 s"
failures = []
verdicts = []


def verdict(name, ok, detail):
    print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    verdicts.append({"verdict": name, "pass": bool(ok), "detail": detail})
    if not ok:
        failures.append(name)


def serving(r):
    """Answered as without a fault: or shed politely (503 overloaded with Retry-After),
    which a replica taking a dead one's share may do on a busy machine."""
    return r["status"] in OK or (r["status"] == 503 and r.get("code") == "overloaded" and bool(r.get("retryAfter")))


def http(method, url, token=None, body=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--rss", required=True)
    ap.add_argument("--readyz")
    ap.add_argument("--admin", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--public", required=True)
    ap.add_argument("--origin", required=True)
    ap.add_argument("--replicas-before", default="")
    ap.add_argument("--replicas-after", default="")
    ap.add_argument("--logs", nargs="*", default=[])
    ap.add_argument("--store-timeout", type=float, default=1.0)
    ap.add_argument("--report", required=True)
    a = ap.parse_args()
    timeout_ms = a.store_timeout * 1000

    reqs = []
    with open(a.requests) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{") and '"kind"' in line:
                reqs.append(json.loads(line))
    ev = {}
    with open(a.events) as f:
        for line in f:
            name, t = line.split()
            ev[name] = int(t)

    def during(lo, hi, replica=None):
        return [r for r in reqs if lo <= r["t0"] <= hi and (replica is None or r["replica"] == replica)]

    def answered_within(lo, hi, replica=None):
        """Sent and answered while the fault lasted: a request sent in the gap may wait
        for its store call (up to store.timeout) and succeed once the store is back,
        with every check done; that is no answer given during the fault."""
        return [r for r in during(lo, hi, replica) if r["t1"] <= hi]

    def overlapping(lo, hi):
        return [r for r in reqs if r["t0"] <= hi and r["t1"] >= lo]

    def tally(rs):
        c = collections.Counter(f"{r['status']}{' ' + r['code'] if r.get('code') else ''}" for r in rs)
        return ", ".join(f"{k}: {v}" for k, v in sorted(c.items()))

    def recovered(start_event, until, replica=None):
        """Requests from RECOVERY_MS after the fault ended that were answered before
        the next fault began: all must be answered as without a fault."""
        lo = ev[start_event] + RECOVERY_MS
        rs = [r for r in during(lo, until, replica) if r["t1"] < until]
        bad = [r for r in rs if not serving(r)]
        late = [r for r in during(ev[start_event], until, replica) if not serving(r) and r["t1"] < until]
        last = max((r["t1"] - ev[start_event] for r in late), default=0)
        return rs, bad, last

    report = {"events": ev}
    print(f"faults/verdict.py: {len(reqs)} requests; all answers: {tally(reqs)}")
    end = ev["load_end"]

    # --- SIGKILL of replica A ------------------------------------------------------------
    print("kill: replica A SIGKILLed, restarted 6 s later")
    k0, k1 = ev["kill_start"], ev["kill_stop"]
    on_b = during(k0, k1, replica=1)
    verdict("kill/the other keeps serving", bool(on_b) and all(serving(r) for r in on_b),
            f"{len(on_b)} requests to B while A was dead: {tally(on_b)}")
    finals = {}
    for r in during(k0 - 1000, k1 + 2000):
        finals[r["i"]] = r  # the later attempt (after failover) overwrites the first
    refused = [r for r in during(k0 - 1000, k1 + 2000) if r["status"] == 0]
    retried_bad = [r for r in finals.values() if not serving(r)]
    verdict("kill/every request answered after one failover", not retried_bad,
            f"{len(refused)} connections refused or reset on A, failed over to B; final answers: {tally(finals.values())}")

    # --- Redis stopped for 5 s -------------------------------------------------------------
    print("redis: redis-server SIGKILLed, restarted 5 s later")
    r0, r1 = ev["redis_start"], ev["redis_stop"]
    gap = answered_within(r0 + 100, r1)
    wrong = [r for r in gap if not (r["status"] == 503 and r.get("code") == "store_unavailable" and r.get("retryAfter"))]
    verdict("redis/only store_unavailable 503s in the gap", bool(gap) and not wrong,
            f"{len(gap)} requests in the gap: {tally(gap)}")
    logins = [r for r in gap if r["status"] in (200, 201)]
    verdict("redis/no login or definition without the lockout check", not logins, f"{len(logins)} in the gap")
    rs, bad, last = recovered("redis_end", ev["slow_start"])
    verdict("redis/full recovery within 5 s", bool(rs) and not bad,
            f"last failure {last} ms after Redis was back; {len(rs)} requests from 5 s on: {tally(rs)}")
    before = a.replicas_before.split()
    after = a.replicas_after.split()
    verdict("redis/no replica restarted", before == after and len(before) >= 2,
            f"replica pids before the Redis faults {before}, after the run {after}")

    # --- Redis slow (paused) ---------------------------------------------------------------
    print("slow: redis-server paused (SIGSTOP) for 4 s")
    s0, s1 = ev["slow_start"], ev["slow_stop"]
    started = during(s0 + 100, s1 - timeout_ms)
    slowest = max((r["t1"] - r["t0"] for r in started), default=0)
    verdict("slow/requests fail at store.timeout", bool(started) and all(r["status"] == 503 for r in started)
            and slowest <= timeout_ms + 1000,
            f"{len(started)} requests sent while paused: {tally(started)}; slowest {slowest} ms (store.timeout {timeout_ms:.0f} ms)")
    ov = overlapping(s0, s1)
    slowest_any = max((r["t1"] - r["t0"] for r in ov), default=0)
    verdict("slow/nothing piles up", slowest_any <= 2 * timeout_ms + 1000,
            f"{len(ov)} requests overlapping the pause, slowest {slowest_any} ms")
    rss = collections.defaultdict(list)
    with open(a.rss) as f:
        for line in f:
            t, pid, kib = (int(x) for x in line.split())
            rss[pid].append((t, kib))
    growth = {}
    for pid, samples in rss.items():
        base = [k for t, k in samples if s0 - 5000 <= t < s0]
        peak = [k for t, k in samples if s0 <= t <= s1 + 2000]
        if base and peak:
            growth[pid] = (max(base), max(peak))
    verdict("slow/memory stays bounded", bool(growth) and all(p - b <= 64 * 1024 for b, p in growth.values()),
            "; ".join(f"pid {pid}: {b // 1024} -> {p // 1024} MiB" for pid, (b, p) in growth.items()))
    rs, bad, last = recovered("slow_end", ev.get("oom_begin", ev["oom_start"]))
    verdict("slow/full recovery within 5 s", bool(rs) and not bad,
            f"last failure {last} ms after the pause; {len(rs)} requests from 5 s on: {tally(rs)}")

    # --- Redis out of memory ----------------------------------------------------------------
    print("oom: maxmemory below what Redis holds, noeviction, for 5 s")
    o0, o1 = ev["oom_start"], ev["oom_stop"]
    oom = answered_within(o0 + 100, o1)
    wrong = [r for r in oom if not (r["status"] == 503 and r.get("code") == "store_unavailable")]
    verdict("oom/a clear 503", bool(oom) and not wrong, f"{len(oom)} requests: {tally(oom)}")
    refused_defs = [r for r in during(o0, o1 + 200) if r["kind"] == "define" and r["status"] != 201]
    partial = []
    for r in refused_defs:
        st, acc = http("GET", f"{a.admin}/admin/v1/accounts/{r['pesel']}", a.token)
        if st != 200 or acc.get("passwordDefined"):
            partial.append(r["pesel"])
    verdict("oom/no partial account", not partial,
            f"{len(refused_defs)} refused definitions, {len(partial)} of them left a password behind")
    next_fault = ev.get("partition_start", end)
    rs, bad, last = recovered("oom_end", next_fault)
    verdict("oom/full recovery within 5 s", bool(rs) and not bad,
            f"last failure {last} ms after; {len(rs)} requests from 5 s on: {tally(rs)}")

    # --- partition between replica C and Redis ---------------------------------------------
    if "partition_start" in ev:
        print("partition: replica C cut off from Redis (veth down) for 5 s, clients still reach it")
        p0, p1 = ev["partition_start"], ev["partition_stop"]
        cut = answered_within(p0 + 100, p1, replica=2)
        wrong = [r for r in cut if r["status"] != 503 or r.get("code") != "store_unavailable"]
        slowest = max((r["t1"] - r["t0"] for r in cut), default=0)
        verdict("partition/C fails closed", bool(cut) and not wrong and slowest <= 2 * timeout_ms + 1000,
                f"{len(cut)} requests to C: {tally(cut)}; slowest {slowest} ms")
        others = during(p0, p1, replica=0) + during(p0, p1, replica=1)
        verdict("partition/A and B unaffected", bool(others) and all(serving(r) for r in others),
                f"{len(others)} requests: {tally(others)}")
        ready = []
        if a.readyz:
            with open(a.readyz) as f:
                ready = [line.split() for line in f if line.strip()]
        late = [code for t, code in ready if int(t) >= p0 + 2 * timeout_ms]
        verdict("partition/C reports not ready", bool(late) and all(c == "503" for c in late),
                f"readyz during the cut: {[c for _, c in ready]}")
        rs, bad, last = recovered("partition_end", end, replica=2)
        verdict("partition/C recovers within 5 s, no restart", bool(rs) and not bad,
                f"last failure {last} ms after; {len(rs)} requests to C from 5 s on: {tally(rs)}")
    else:
        print("partition: skipped (no network namespace on this machine)")

    # --- nothing acknowledged is lost --------------------------------------------------------
    acked = sorted({r["pesel"] for r in reqs if r["kind"] == "define" and r["status"] == 201})
    lost = []
    for pesel in acked:
        st, acc = http("GET", f"{a.admin}/admin/v1/accounts/{pesel}", a.token)
        if st != 200 or not acc.get("passwordDefined"):
            lost.append(pesel)
    verdict("no acknowledged definition lost", bool(acked) and not lost,
            f"{len(acked)} definitions answered 201, {len(lost)} without a password now")

    # --- what the faults left on the accounts of the people who logged in ----------------
    # RULES.md: an attempt reserved and never settled counts as a failure once its
    # reservation expires. Attempts whose store calls timed out (Redis paused, C cut
    # off) are such attempts: shown here, not judged.
    login_pesels = sorted({r["pesel"] for r in reqs if r["kind"] == "login"})
    with_failures = locked = 0
    for pesel in login_pesels:
        st, acc = http("GET", f"{a.admin}/admin/v1/accounts/{pesel}", a.token)
        lock = (acc or {}).get("lockout") or {}
        with_failures += bool(lock.get("failures"))
        locked += bool(lock.get("lockedUntil"))
    contended = len({r["pesel"] for r in reqs if r["status"] == 423})
    print(f"  note  abandoned attempts: of {len(login_pesels)} people who logged in correctly, "
          f"{with_failures} carry failures now, {locked} are locked, {contended} were answered 423")
    report["abandonedAttempts"] = {"people": len(login_pesels), "withFailures": with_failures,
                                   "locked": locked, "answered423": contended}

    # --- logs -------------------------------------------------------------------------------
    pesels = {r["pesel"] for r in reqs}
    panics, leaks = [], []
    for path in a.logs:
        try:
            text = open(path, errors="replace").read()
        except FileNotFoundError:
            continue
        if "panicked" in text:
            panics.append(path)
        if any(p in text for p in pesels):
            leaks.append(path)
    verdict("no panic in any replica's log", not panics, f"{len(a.logs)} logs read; panics in {panics}")
    verdict("no PESEL in any replica's log", not leaks, f"{len(pesels)} PESELs sent; found in {leaks}")

    report.update({
        "requests": len(reqs),
        "answers": dict(collections.Counter(f"{r['status']} {r.get('code') or ''}".strip() for r in reqs)),
        "acknowledgedDefinitions": len(acked),
        "lostDefinitions": len(lost),
        "failedVerdicts": failures,
        "verdicts": verdicts,
    })
    with open(a.report, "w") as f:
        json.dump(report, f, indent=2)
    faults = sum(1 for k in ev if k.endswith("_start") and k != "load_start")
    print(f"faults: {len(reqs)} requests, {faults} faults injected, {len(acked)} definitions acknowledged, "
          f"{len(lost)} lost, {len(failures)} verdicts failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
