#!/usr/bin/env python3
"""Drive Argon2 work through a running census-login and check its memory stays inside the
pod's limit (the sizing in k8s/base/census-login/deployment.yaml).

  hash_memory_load.py PUBLIC_PORT ADMIN_PORT PESEL_CSV LIMIT_BYTES SLOTS ARGON2_KIB

Sends login attempts for well-formed PESELs that are not in the store (each costs one
full Argon2id verification against the dummy hash), in waves of slots + queue so none is
shed, while sampling process_resident_memory_bytes. Passes when every attempt was hashed
(401), the peak stays under LIMIT_BYTES, and after the load the RSS is back within one
Argon2 buffer per slot of the idle value (freed buffers go back to the kernel).
Prints one "ok - ..." or "FAIL - ..." line and exits accordingly.
"""

import csv
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request

app, admin, pesel_csv, limit, slots, kib = sys.argv[1:7]
limit, slots, kib = int(limit), int(slots), int(kib)
MIB = 1024 * 1024


def rss() -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return float(re.search(r"^process_resident_memory_bytes (\S+)", text, re.M).group(1))


def metric(name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return float(re.search(rf"^{name}(?:\{{[^}}]*\}})? (\S+)", text, re.M).group(1))


pesels = [row["pesel"] for row in csv.DictReader(open(pesel_csv))]
wave = int(metric("census_hash_slots") + metric("census_hash_queue_capacity"))
idle = rss()
peak = idle
stop = False


def sample() -> None:
    global peak
    while not stop:
        peak = max(peak, rss())
        time.sleep(0.005)


codes: dict[int, int] = {}
lock = threading.Lock()


def login(pesel: str) -> None:
    body = json.dumps({"pesel": pesel, "password": "NotTheRight1"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{app}/api/v1/login", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        code = urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as e:
        code = e.code
    with lock:
        codes[code] = codes.get(code, 0) + 1


sampler = threading.Thread(target=sample)
sampler.start()
t0 = time.time()
for start in range(0, len(pesels), wave):
    threads = [threading.Thread(target=login, args=(p,)) for p in pesels[start:start + wave]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
elapsed = time.time() - t0
time.sleep(0.2)
stop = True
sampler.join()
after = rss()

buffers = slots * kib * 1024
summary = (f"{sum(codes.values())} Argon2 verifications in {elapsed:.1f} s, responses {codes}; "
           f"RSS idle {idle / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, after {after / MIB:.0f} MiB; "
           f"limit {limit / MIB:.0f} MiB")
problems = []
if codes != {401: len(pesels)}:
    problems.append("not every attempt was hashed (want only 401)")
if peak >= limit:
    problems.append("peak RSS reaches the pod's memory limit")
if after > idle + buffers + 8 * MIB:
    problems.append("freed Argon2 buffers stay resident (allocator keeps them)")
name = "memory under hashing load stays within the pod limit, buffers returned"
if problems:
    print(f"FAIL - {name}: {'; '.join(problems)}: {summary}")
    sys.exit(1)
print(f"ok - {name} ({summary})")
