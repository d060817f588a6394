"""A redis-server and census-login (Redis backend) on free loopback ports, for the
measurement scripts in this folder (lock_state_size.py, account_size.py)."""
from __future__ import annotations

import http.client
import os
import pathlib
import socket
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def find_binary(given: str | None) -> str:
    binary = given or next((str(p) for p in (REPO / "target/release/census-login", REPO / "target/debug/census-login")
                            if p.exists()), None)
    if not binary:
        sys.exit("no census-login binary: cargo build --release")
    return binary


class Stack:
    """redis-server without persistence, then (start_service) census-login on it."""

    def __init__(self, workdir: str, redis_args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.rport, self.pport, self.aport = free_port(), free_port(), free_port()
        self.procs = [subprocess.Popen(["redis-server", "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
                                        "--appendonly", "no", "--dir", workdir, *(redis_args or [])],
                                       stdout=subprocess.DEVNULL)]
        self.cli = ["redis-cli", "-p", str(self.rport)]
        for _ in range(50):
            if subprocess.run(self.cli + ["ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.1)

    def redis(self, *args: str) -> str:
        return subprocess.run(self.cli + list(args), capture_output=True, text=True, check=True).stdout

    def used_memory(self) -> int:
        return int(next(l.split(":")[1] for l in self.redis("info", "memory").splitlines()
                        if l.startswith("used_memory:")))

    def env(self, pepper: str, extra: dict[str, str]) -> dict[str, str]:
        env = {**os.environ, "CENSUS_CONFIG_DIR": self.workdir,
               "CENSUS__SERVER__LISTEN": f"127.0.0.1:{self.pport}",
               "CENSUS__SERVER__ADMIN_LISTEN": f"127.0.0.1:{self.aport}",
               "CENSUS__SERVER__PUBLIC_ORIGIN": f"http://127.0.0.1:{self.pport}",
               "CENSUS__STORE__BACKEND": "redis", "CENSUS__STORE__REDIS_URL": f"redis://127.0.0.1:{self.rport}",
               "CENSUS__STORE__WAIT_REPLICAS": "0", "CENSUS__REGISTRY__SEED_FILE": "",
               "CENSUS__OIDC__CLIENTS": "[]", "CENSUS__SECRETS__PEPPER": pepper,
               "CENSUS__SESSION__COOKIE_SECURE": "false",
               "CENSUS__RATE_LIMIT__PER_IP_PER_MINUTE": "100000000", "CENSUS__RATE_LIMIT__BURST": "100000000",
               "CENSUS__LOG__LEVEL": "error", **extra}
        env.pop("CENSUS_ENV", None)
        return env

    def start_service(self, binary: str, env: dict[str, str]) -> None:
        self.procs.append(subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        for _ in range(150):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.aport, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        sys.exit("census-login not ready")

    def post(self, conn: http.client.HTTPConnection, path: str, body: str) -> int:
        conn.request("POST", path, body, {"Content-Type": "application/json",
                                          "Origin": f"http://127.0.0.1:{self.pport}"})
        r = conn.getresponse()
        r.read()
        return r.status

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
