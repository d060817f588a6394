"""Defines passwords for a slice of the load registry and prints "pesel password"
lines for wrk's login.lua (tests/load/capacity.sh). The passwords are lib.js's
passwordFor(), so k6 and wrk runs agree on them.

    python3 define_people.py BASE_URL PEOPLE_CSV OFFSET COUNT > people.txt
"""
import csv
import json
import sys
import time
import urllib.error
import urllib.request


def fnv36(s: str) -> str:
    h = 0x811C9DC5
    for ch in s:
        h ^= ord(ch)
        h = (h * 0x01000193) & 0xFFFFFFFF
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        h, r = divmod(h, 36)
        out = digits[r] + out
        if h == 0:
            return out


def password_for(pesel: str) -> str:
    return f"Spis-{fnv36('pw:' + pesel)}-Kx7"


def main() -> None:
    base, path, offset, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("reserved", "").strip().lower() not in ("true", "1", "yes")]
    people = rows[offset : offset + count]
    if len(people) < count:
        sys.exit(f"define_people.py: only {len(people)} usable people from offset {offset}")
    for i, p in enumerate(people):
        pw = password_for(p["pesel"])
        body = json.dumps({"pesel": p["pesel"], "motherMaidenName": p["mother_maiden_name"],
                           "password": pw, "passwordRepeat": pw}).encode()
        for _ in range(100):
            req = urllib.request.Request(f"{base}/api/v1/password", data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "X-Forwarded-For": f"10.9.{i // 250}.{i % 250 + 1}"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            if status in (201, 409):
                break
            if status != 503:
                sys.exit(f"define_people.py: {p['pesel']}: HTTP {status}")
            time.sleep(0.2)
        else:
            sys.exit(f"define_people.py: {p['pesel']}: still overloaded")
        print(p["pesel"], pw)


if __name__ == "__main__":
    main()
