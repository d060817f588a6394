#!/usr/bin/env python3
"""What a defined password costs in Redis memory, with production's redis.conf.

Starts a real redis-server (no persistence) with the hash encoding settings of
k8s/base/redis/files/redis.conf (or with Redis' defaults, --redis-defaults, to compare),
imports a generated registry of N people, and defines a password for every one of them
that is not reserved, through census-login's own API (Redis backend). A definition leaves
the account hash census:{<t>}:<r>:acct (fields pw = the PHC string, fl = first login,
gen) for the rest of the census, and a session with its index and sealed facts that
expire with the idle timeout (30 minutes). It prints:

  - the encoding and MEMORY USAGE of the account hashes,
  - the used_memory delta per defined password, with the sessions and without them (the
    sessions deleted afterwards: what stays at the census end),
  - that figure for 20 million people.

  tests/deploy/account_size.py [--count 10000] [--redis-defaults] [--bin PATH]

Needs redis-server and redis-cli (apt-get install redis-server redis-tools), and the binary
(default target/release/census-login, else target/debug/census-login). About a minute for
10,000 definitions on two cores (production's Argon2 memory, one pass: the same PHC length).
Not part of CI: docs/capacity.md quotes its figures.
"""
from __future__ import annotations

import argparse
import http.client
import json
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

from local_stack import REPO, Stack, find_binary

REDIS_CONF = REPO / "k8s/base/redis/files/redis.conf"


def encoding_settings() -> list[str]:
    """redis-server arguments for the hash/set/zset encoding lines of production's conf."""
    args = []
    for line in REDIS_CONF.read_text().splitlines():
        words = line.split()
        if len(words) == 2 and words[0].endswith(("-listpack-entries", "-listpack-value")):
            args += [f"--{words[0]}", words[1]]
    return args


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--redis-defaults", action="store_true", help="Redis' own encoding limits, not production's")
    ap.add_argument("--bin")
    a = ap.parse_args()
    binary = find_binary(a.bin)

    tmp = tempfile.TemporaryDirectory()
    settings = [] if a.redis_defaults else encoding_settings()
    stack = Stack(tmp.name, settings)
    try:
        run, used = stack.redis, stack.used_memory

        def scan(pattern: str) -> list[str]:
            return run("--scan", "--pattern", pattern).split()

        csv = pathlib.Path(tmp.name, "registry.csv")
        csv.write_text(subprocess.run([binary, "registry", "generate", "--count", str(a.count), "--seed", "23"],
                                      capture_output=True, text=True, check=True).stdout)
        people = [line.split(",") for line in csv.read_text().splitlines()[1:] if line]
        env = stack.env("account-size-pepper", {
            "CENSUS__PASSWORD__MAX_QUEUED_HASHES": "1000",
            # One pass instead of two: faster, and a PHC string of the same length.
            "CENSUS__PASSWORD__ARGON2_ITERATIONS": "1"})
        subprocess.run([binary, "registry", "import", str(csv)], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.start_service(binary, env)

        free = [(p, name) for p, name, reserved in people if reserved.strip().lower() not in ("1", "true", "yes")]
        used0 = used()
        statuses: dict[int, int] = {}
        lock = threading.Lock()

        def worker(part: list[tuple[str, str]]) -> None:
            c = http.client.HTTPConnection("127.0.0.1", stack.pport, timeout=60)
            for pesel, name in part:
                status = stack.post(c, "/api/v1/password", json.dumps({
                    "pesel": pesel, "motherMaidenName": name, "password": "Census2021x", "passwordRepeat": "Census2021x"}))
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

        t0 = time.time()
        threads = [threading.Thread(target=worker, args=(free[i :: a.threads],)) for i in range(a.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.time() - t0
        defined = statuses.get(201, 0)
        if defined == 0:
            sys.exit(f"no password defined: {statuses}")
        time.sleep(0.5)
        used1 = used()
        accounts = scan("census:{*}:*:acct")
        transient = scan("census:{*}:*:s:*") + scan("census:{*}:*:ss") + scan("census:{*}:*:sf:*")
        for i in range(0, len(transient), 500):
            run("unlink", *transient[i : i + 500])
        time.sleep(0.2)
        used2 = used()
        kinds: dict[str, int] = {}
        for k in scan("census:{*}:*"):
            kind = k.split(":")[3] if k.count(":") >= 3 else k
            kinds[kind] = kinds.get(kind, 0) + 1
        sample = accounts[:200]
        usage = [int(run("memory", "usage", k, "samples", "0")) for k in sample]
        encodings = sorted({run("object", "encoding", k).strip() for k in sample})
        fields = run("hgetall", accounts[0]).split()
        with_sessions = (used1 - used0) / defined
        durable = (used2 - used0) / defined
        print(f"redis-server encoding settings: {' '.join(settings) or 'Redis defaults'}")
        print(f"definitions: {defined} of {len(free)} in {secs:.1f} s, statuses {statuses}")
        print(f"account hash: key {accounts[0]!r} ({len(accounts[0])} bytes), encoding {encodings}, "
              f"fields {fields[::2]}, pw {len(fields[fields.index('pw') + 1])} bytes")
        print(f"keys of persons left, by kind: {kinds}")
        print(f"MEMORY USAGE of an account hash: min {min(usage)}, mean {sum(usage) / len(usage):.1f}, max {max(usage)} bytes")
        print(f"used_memory per defined password: {with_sessions:.1f} bytes with its session, "
              f"{durable:.1f} bytes once the session is gone ({len(transient)} session keys deleted)")
        print(f"20 million defined passwords: {durable * 20e6 / 1e9:.1f} GB")
        print(json.dumps({"settings": settings, "encodings": encodings, "memory_usage_mean": sum(usage) / len(usage),
                          "bytes_with_session": with_sessions, "bytes_durable": durable, "defined": defined}))
        return 0
    finally:
        stack.stop()

if __name__ == "__main__":
    sys.exit(main())
