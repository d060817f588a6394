#!/usr/bin/env python3
"""What a flood of random well-formed PESELs costs in Redis memory.

Starts a real redis-server (no persistence) and census-login with the Redis backend on
free 127.0.0.1 ports, then sends N failed logins, each for a different valid PESEL that is
not in the registry (`census-login registry generate` makes them; nothing is imported),
from several client threads. Every such failure leaves a lock state in Redis for
lockout.forget_after: the hash census:{<t>}:<r>:lock (fields f l u lf) and, while the attempt
is in flight, the zset census:{<t>}:<r>:pend. It prints:

  - MEMORY USAGE of a sample of lock hashes (bytes, as Redis accounts them),
  - the used_memory delta over the N failures, per key (what maxmemory really sees),
  - the keys left per failure (lock hashes and pend zsets),
  - how many such keys fit before the memory alerts (80% / 90%) of a given maxmemory.

  tests/deploy/lock_state_size.py [--count 20000] [--maxmemory 18gb] [--bin PATH]

Needs redis-server and redis-cli (apt-get install redis-server redis-tools), and the binary
(default target/release/census-login, else target/debug/census-login). About a minute
for 20,000 logins on two cores. Not part of CI: docs/operations.md quotes its figures.
"""
from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time

from local_stack import Stack, find_binary


def size(text: str) -> int:
    # Redis' units: 1gb = 2^30 bytes, 1g = 10^9 bytes.
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "k": 1000, "m": 1000**2, "g": 1000**3}
    t = text.strip().lower()
    for u in sorted(units, key=len, reverse=True):
        if t.endswith(u):
            return int(float(t[: -len(u)]) * units[u])
    return int(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--maxmemory", default="18gb", help="the production maxmemory (k8s/overlays/prod/patches/redis.yaml)")
    ap.add_argument("--bin")
    a = ap.parse_args()
    binary = find_binary(a.bin)

    tmp = tempfile.TemporaryDirectory()
    stack = Stack(tmp.name)
    try:
        cli = stack.cli
        pesels = subprocess.run([binary, "registry", "generate", "--count", str(a.count), "--seed", "17"],
                                capture_output=True, text=True, check=True).stdout.splitlines()[1:]
        pesels = [line.split(",")[0] for line in pesels if line]
        stack.start_service(binary, stack.env("lock-state-size-pepper", {
            "CENSUS__PASSWORD__ARGON2_MEMORY_KIB": "256", "CENSUS__PASSWORD__ARGON2_ITERATIONS": "1",
            "CENSUS__PASSWORD__MAX_QUEUED_HASHES": "1000"}))
        info_used = stack.used_memory

        def dbsize() -> int:
            return int(subprocess.run(cli + ["dbsize"], capture_output=True, text=True).stdout)

        used0, keys0 = info_used(), dbsize()
        statuses: dict[int, int] = {}
        lock = threading.Lock()

        def worker(part: list[str]) -> None:
            c = http.client.HTTPConnection("127.0.0.1", stack.pport, timeout=30)
            for p in part:
                status = stack.post(c, "/api/v1/login", json.dumps({"pesel": p, "password": "NotThePassword1"}))
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

        t0 = time.time()
        parts = [pesels[i :: a.threads] for i in range(a.threads)]
        threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.time() - t0
        time.sleep(0.5)
        used1, keys1 = info_used(), dbsize()
        locks = subprocess.run(cli + ["--scan", "--pattern", "census:{*}:*:lock"], capture_output=True, text=True).stdout.split()
        pends = subprocess.run(cli + ["--scan", "--pattern", "census:{*}:*:pend"], capture_output=True, text=True).stdout.split()
        sample = locks[:200]
        usage = [int(subprocess.run(cli + ["memory", "usage", k, "samples", "0"], capture_output=True, text=True).stdout) for k in sample]
        example = subprocess.run(cli + ["hgetall", locks[0]], capture_output=True, text=True).stdout.split() if locks else []
        ttl = subprocess.run(cli + ["pttl", locks[0]], capture_output=True, text=True).stdout.strip() if locks else "?"
        enc = subprocess.run(cli + ["object", "encoding", locks[0]], capture_output=True, text=True).stdout.strip() if locks else "?"
        n = a.count
        per_key = (used1 - used0) / max(1, len(locks))
        mm = size(a.maxmemory)
        print(f"logins: {n} in {secs:.1f} s ({n / secs:.0f}/s), statuses {statuses}")
        print(f"keys: +{keys1 - keys0} ({len(locks)} lock hashes, {len(pends)} pend zsets left)")
        print(f"lock hash: key {locks[0]!r} ({len(locks[0])} bytes), encoding {enc}, fields {example}, pttl {ttl} ms")
        print(f"MEMORY USAGE of a lock hash: min {min(usage)}, mean {sum(usage) / len(usage):.1f}, max {max(usage)} bytes")
        print(f"used_memory: {used0} -> {used1} bytes, +{used1 - used0}: {per_key:.1f} bytes per lock state")
        base = used0
        for pct in (80, 90, 100):
            print(f"  maxmemory {a.maxmemory}: {pct}% reached after {(mm * pct / 100 - base) / per_key / 1e6:.1f} M lock states "
                  f"(empty Redis; subtract the registry and accounts)")
        print(json.dumps({"memory_usage_mean": sum(usage) / len(usage), "used_memory_per_key": per_key,
                          "lock_keys": len(locks), "pend_keys": len(pends)}))
        return 0
    finally:
        stack.stop()

if __name__ == "__main__":
    sys.exit(main())
