#!/usr/bin/env python3
"""Validate the manifests rendered from one kustomize overlay.

For every resource:
  * built-in kinds: kubernetes-validate (strict: unknown fields are errors) against the
    Kubernetes version given with --k8s-version;
  * monitoring.coreos.com/v1 ServiceMonitor and PrometheusRule, for which
    kubernetes-validate ships no schema: the JSON schemas in tests/deploy/schemas/
    (written for this project from the Prometheus Operator CRDs, strict about unknown
    fields), plus the cross-checks below.
Then the project's deployment rules across resources (security context, probes, drain,
sizing, HPA/PDB, Services, Gateway API routing, NetworkPolicies, ConfigMap = config/production.toml,
no Secret in prod, Redis/Sentinel wiring, monitoring wiring).

Prints one line per check, "ok - ..." or "FAIL - ...: why"; exits 1 if any failed.

  validate_manifests.py --overlay prod --rendered prod.yaml [--k8s-version 1.33.0]
  validate_manifests.py --template k8s/base/census-login/secret.template.yaml
  validate_manifests.py --self-test --rendered prod.yaml   (mutations must be caught)
  validate_manifests.py --self-test --national-node --rendered prod-national-node.yaml
Needs: pip install kubernetes-validate (brings jsonschema and PyYAML).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import pathlib
import re
import subprocess
import sys
import tomllib
from typing import Any, Callable, Iterable

try:
    import yaml
    import jsonschema
    import kubernetes_validate
except ImportError as e:  # pragma: no cover
    sys.exit(f"{e.name} not found: pip install kubernetes-validate")

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"
DEFAULT_K8S_VERSION = "1.33.0"

# Configuration keys the service accepts: API.md's table, the lead's extensions
# (helper contract), and whatever config/default.toml defines (the compiled-in defaults,
# including extensions added since). Secrets are deliberately not allowed in files.
API_KEYS = {
    "server.listen", "server.admin_listen", "server.public_origin", "server.trusted_proxies",
    "store.backend", "store.redis_url", "registry.seed_file", "registry.refuse_reserved",
    "census.opens_at", "census.closes_at", "survey.window", "password.min_length",
    "password.argon2_memory_kib", "password.argon2_iterations", "password.argon2_parallelism",
    "password.max_concurrent_hashes", "password.max_queued_hashes", "lockout.max_failures",
    "lockout.base_block", "lockout.multiplier", "lockout.max_block", "lockout.forget_after",
    "session.idle_timeout", "session.cookie_secure", "rate_limit.per_ip_per_minute",
    "rate_limit.burst", "secrets.pepper", "secrets.admin_token", "secrets.admin_tokens_file",
    # extensions (helper contract)
    "web.login_gov_url", "web.form_url", "census.helpline", "lockout.reservation_ttl",
    "log.format", "log.level", "secrets.redis_password", "secrets.redis_sentinel_password",
}
SECRET_FILE_ENV = {"secrets.pepper_file", "secrets.admin_token_file", "secrets.admin_tokens_file",
                   "secrets.redis_password_file",
                   "secrets.redis_sentinel_password_file"}
# Which Secret each secret file of census-login must come from.
SECRET_SOURCES = {"PEPPER": "census-login-secrets", "ADMIN_TOKEN": "census-login-secrets",
                  "ADMIN_TOKENS": "census-login-secrets",
                  "REDIS_PASSWORD": "redis-auth", "REDIS_SENTINEL_PASSWORD": "redis-auth"}
MIB = 1024 * 1024
BASELINE_BYTES = 64 * MIB  # see the sizing comment in deployment.yaml


# ------------------------------------------------------------------ helpers


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def allowed_keys() -> set[str]:
    keys = set(API_KEYS)
    default = REPO / "config" / "default.toml"
    if default.is_file():
        keys |= set(flatten(tomllib.loads(default.read_text())))
    return keys


def parse_env_value(v: str) -> Any:
    """Roughly how figment reads an environment value."""
    low = v.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    if v.strip().startswith("["):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def quantity(q: Any) -> float:
    """Kubernetes quantity -> float (bytes for memory, cores for cpu)."""
    s = str(q)
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
             "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", s)
    if not m or (m.group(2) and m.group(2) not in units):
        raise ValueError(f"bad quantity {s!r}")
    return float(m.group(1)) * units.get(m.group(2), 1)


def redis_bytes(s: str) -> float:
    m = re.fullmatch(r"(\d+)(gb|mb|kb|b)?", s.strip().lower())
    if not m:
        raise ValueError(f"bad redis memory {s!r}")
    return int(m.group(1)) * {"gb": 1024**3, "mb": 1024**2, "kb": 1024, "b": 1, None: 1}[m.group(2)]


def humantime_secs(s: str) -> float:
    total = 0.0
    for num, unit in re.findall(r"(\d+)\s*(ms|s|m|h|d)", s):
        total += int(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def selector_matches(sel: dict, labels: dict) -> bool:
    ml = sel.get("matchLabels", sel if "matchExpressions" not in sel else {})
    if not ml and not sel.get("matchExpressions"):
        return False
    return all(labels.get(k) == v for k, v in ml.items())


class Render:
    def __init__(self, docs: list[dict]):
        self.docs = docs

    def kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def named(self, kind: str, name: str) -> dict | None:
        """By name, also matching kustomize's generated hash suffix (name-xxxxxxxxxx)."""
        for d in self.kind(kind):
            n = d["metadata"]["name"]
            if n == name or re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", n):
                return d
        return None

    def workloads(self) -> list[dict]:
        return self.kind("Deployment") + self.kind("StatefulSet")


def pod_spec(w: dict) -> dict:
    return w["spec"]["template"]["spec"]


def pod_labels(w: dict) -> dict:
    return w["spec"]["template"]["metadata"].get("labels", {})


def container(w: dict, name: str) -> dict | None:
    return next((c for c in pod_spec(w)["containers"] if c["name"] == name), None)


def effective_config(r: Render) -> tuple[dict[str, Any], list[str]]:
    """production.toml from the rendered ConfigMap, overlaid with the env ConfigMap."""
    problems = []
    cm = r.named("ConfigMap", "census-login-config")
    if not cm or "production.toml" not in cm.get("data", {}):
        return {}, ["ConfigMap census-login-config with key production.toml not found"]
    conf = flatten(tomllib.loads(cm["data"]["production.toml"]))
    default = REPO / "config" / "default.toml"
    base = flatten(tomllib.loads(default.read_text())) if default.is_file() else {}
    eff = {**base, **conf}
    env = r.named("ConfigMap", "census-login-env")
    for k, v in (env or {}).get("data", {}).items():
        if k.startswith("CENSUS__"):
            key = ".".join(p.lower() for p in k[len("CENSUS__"):].split("__"))
            eff[key] = parse_env_value(v)
    return eff, problems


# ------------------------------------------------------------------ the checks


CheckFn = Callable[[Render, str], Iterable[str]]
CHECKS: list[tuple[str, CheckFn]] = []


def check(name: str) -> Callable[[CheckFn], CheckFn]:
    def deco(fn: CheckFn) -> CheckFn:
        CHECKS.append((name, fn))
        return fn
    return deco


@check("every pod is hardened (non-root, read-only root fs, no capabilities, seccomp, no token)")
def _hardened(r: Render, overlay: str) -> Iterable[str]:
    if not r.workloads():
        yield "no Deployment/StatefulSet rendered"
    for w in r.workloads():
        wn = f"{w['kind']}/{w['metadata']['name']}"
        ps = pod_spec(w)
        psc = ps.get("securityContext", {})
        if ps.get("automountServiceAccountToken") is not False:
            yield f"{wn}: automountServiceAccountToken must be false"
        if psc.get("runAsNonRoot") is not True or psc.get("runAsUser", 1) == 0:
            yield f"{wn}: pod securityContext must set runAsNonRoot and a non-zero runAsUser"
        for c in ps["containers"] + ps.get("initContainers", []):
            cn = f"{wn}/{c['name']}"
            sc = c.get("securityContext", {})
            seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
            if seccomp != "RuntimeDefault":
                yield f"{cn}: seccompProfile must be RuntimeDefault"
            if sc.get("allowPrivilegeEscalation") is not False:
                yield f"{cn}: allowPrivilegeEscalation must be false"
            if sc.get("readOnlyRootFilesystem") is not True:
                yield f"{cn}: readOnlyRootFilesystem must be true"
            if sc.get("privileged"):
                yield f"{cn}: privileged"
            if "ALL" not in sc.get("capabilities", {}).get("drop", []) or sc.get("capabilities", {}).get("add"):
                yield f"{cn}: capabilities must drop ALL and add none"
            res = c.get("resources", {})
            for path in ("requests.cpu", "requests.memory", "limits.memory"):
                a, b = path.split(".")
                if b not in res.get(a, {}):
                    yield f"{cn}: resources.{path} missing"
            if "readinessProbe" not in c or "livenessProbe" not in c:
                yield f"{cn}: readiness and liveness probes required"
            image = c.get("image", "")
            if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
                yield f"{cn}: image {image!r} must be pinned (tag other than latest, or digest)"


@check("census-login: probes on the admin port, graceful drain adds up")
def _probes(r: Render, overlay: str) -> Iterable[str]:
    d = r.named("Deployment", "census-login")
    if not d:
        yield "Deployment census-login missing"
        return
    c = container(d, "census-login")
    eff, problems = effective_config(r)
    yield from problems
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    want = {"http": int(str(eff.get("server.listen", ":0")).rsplit(":", 1)[1]),
            "admin": int(str(eff.get("server.admin_listen", ":0")).rsplit(":", 1)[1])}
    if ports != want:
        yield f"container ports {ports} != listeners in the config {want}"
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        hg = c.get(probe, {}).get("httpGet", {})
        if hg.get("path") != path or hg.get("port") not in ("admin", want["admin"]):
            yield f"{probe} must be GET {path} on the admin port, got {hg}"
    pre = c.get("lifecycle", {}).get("preStop", {})
    sleep = pre.get("sleep", {}).get("seconds")
    if not isinstance(sleep, int) or sleep < 1:
        yield "preStop must be a sleep action (no shell in the image)"
        sleep = 0
    delay = humantime_secs(str(eff.get("server.shutdown_delay", "0s")))
    grace = humantime_secs(str(eff.get("server.shutdown_grace", "30s")))
    tgps = pod_spec(d).get("terminationGracePeriodSeconds", 30)
    if tgps < sleep + delay + grace + 5:
        yield (f"terminationGracePeriodSeconds {tgps} < preStop {sleep} + shutdown_delay {delay:g}"
               f" + shutdown_grace {grace:g} + 5")


@check("census-login: config from the ConfigMap (= config/production.toml), secrets from files")
def _config(r: Render, overlay: str) -> Iterable[str]:
    d = r.named("Deployment", "census-login")
    cm = r.named("ConfigMap", "census-login-config")
    if not d or not cm:
        yield "Deployment or ConfigMap census-login-config missing"
        return
    src = (REPO / "config" / "production.toml").read_text()
    if cm.get("data", {}).get("production.toml") != src:
        yield "ConfigMap census-login-config production.toml differs from config/production.toml"
    ps, c = pod_spec(d), container(d, "census-login")
    vols = {v["name"]: v for v in ps.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    conf_dir = "/etc/census-login"
    dockerfile = (REPO / "Dockerfile").read_text()
    m = re.search(r"CENSUS_CONFIG_DIR=(\S+)", dockerfile)
    if m:
        conf_dir = m.group(1)
    mnt = mounts.get(conf_dir)
    if not mnt or vols.get(mnt["name"], {}).get("configMap", {}).get("name") != cm["metadata"]["name"]:
        yield f"ConfigMap {cm['metadata']['name']} not mounted at CENSUS_CONFIG_DIR {conf_dir}"
    env = {e["name"]: e for e in c.get("env", [])}
    if any("value" in e and "SECRETS__" in n and not n.endswith("_FILE") for n, e in env.items()):
        yield "a secret is given as a literal env value"
    for key, secret in SECRET_SOURCES.items():
        path = env.get(f"CENSUS__SECRETS__{key}_FILE", {}).get("value")
        if not path:
            yield f"CENSUS__SECRETS__{key}_FILE not set"
            continue
        folder, fname = path.rsplit("/", 1)
        mnt = mounts.get(folder)
        sec = vols.get(mnt["name"], {}).get("secret") if mnt else None
        if not sec or not re.fullmatch(rf"{secret}(-[a-z0-9]{{10}})?", sec.get("secretName", "")):
            yield f"{path}: not inside a mount of Secret {secret}"
        elif sec.get("items") and fname not in {i["path"] for i in sec["items"]}:
            yield f"{path}: the Secret volume does not project {fname}"
    env_cm = r.named("ConfigMap", "census-login-env")
    refs = [e.get("configMapRef", {}).get("name") for e in c.get("envFrom", [])]
    if not env_cm or env_cm["metadata"]["name"] not in refs:
        yield "ConfigMap census-login-env not used through envFrom"


@check("census-login: effective configuration uses only known keys and production settings")
def _effective(r: Render, overlay: str) -> Iterable[str]:
    cm = r.named("ConfigMap", "census-login-config")
    if not cm:
        yield "ConfigMap census-login-config missing"
        return
    file_keys = set(flatten(tomllib.loads(cm["data"]["production.toml"])))
    env_cm = r.named("ConfigMap", "census-login-env")
    env_keys = {".".join(p.lower() for p in k[len("CENSUS__"):].split("__"))
                for k in (env_cm or {}).get("data", {}) if k.startswith("CENSUS__")}
    known = allowed_keys()
    for k in sorted(file_keys - known):
        yield f"production.toml: unknown key {k} (start-up would abort)"
    for k in sorted(file_keys):
        if k.startswith("secrets."):
            yield f"production.toml: secret {k} must not be in the file"
    for k in sorted(env_keys - known - SECRET_FILE_ENV):
        yield f"census-login-env: unknown key {k}"
    for k in sorted(env_keys):
        if k.startswith("secrets."):
            yield f"census-login-env: secret {k} must not be in a ConfigMap"
    for k in (env_cm or {}).get("data", {}):
        if not (k.startswith("CENSUS__") or k.startswith("RUST_")):
            yield f"census-login-env: unexpected variable {k}"
    eff, problems = effective_config(r)
    yield from problems
    if eff.get("store.backend") != "redis":
        yield "store.backend must be redis"
    if eff.get("session.cookie_secure") is not True:
        yield "session.cookie_secure must be true"
    for k in ("server.listen", "server.admin_listen"):
        if not str(eff.get(k, "")).startswith("0.0.0.0:"):
            yield f"{k} must listen on 0.0.0.0 in the container"
    if not str(eff.get("server.public_origin", "")).startswith("https://"):
        yield "server.public_origin must be https://"
    if eff.get("registry.seed_file") != "":
        yield 'registry.seed_file must be "" (no demo registry in a deployment)'
    if not eff.get("server.trusted_proxies"):
        yield "server.trusted_proxies empty: every client would share the ingress' IP for rate limiting"


@check("census-login: CPU and memory sized from hashing slots (19 MiB x slots + baseline)")
def _sizing(r: Render, overlay: str) -> Iterable[str]:
    d = r.named("Deployment", "census-login")
    if not d:
        yield "Deployment census-login missing"
        return
    eff, problems = effective_config(r)
    yield from problems
    slots = eff.get("password.max_concurrent_hashes")
    if not isinstance(slots, int) or slots < 1:
        yield "password.max_concurrent_hashes must be set explicitly (the default follows the node's CPUs)"
        return
    res = container(d, "census-login").get("resources", {})
    kib = int(eff.get("password.argon2_memory_kib", 19456))
    need = slots * kib * 1024 + BASELINE_BYTES
    for part in ("requests", "limits"):
        mem = quantity(res.get(part, {}).get("memory", 0))
        if mem < need:
            yield (f"memory {part} {mem / MIB:.0f} MiB < {slots} slots x {kib / 1024:.0f} MiB"
                   f" + {BASELINE_BYTES // MIB} MiB baseline = {need / MIB:.0f} MiB")
    cpu = quantity(res.get("limits", {}).get("cpu", 0))
    if cpu != slots:
        yield f"cpu limit {cpu:g} != hashing slots {slots} (one slot per CPU)"


@check("HorizontalPodAutoscaler: CPU-based, owns the replica count (prod: at least 3)")
def _hpa(r: Render, overlay: str) -> Iterable[str]:
    hpas = r.kind("HorizontalPodAutoscaler")
    d = r.named("Deployment", "census-login")
    if len(hpas) != 1 or not d:
        yield "exactly one HPA and the census-login Deployment expected"
        return
    h = hpas[0]
    ref = h["spec"]["scaleTargetRef"]
    if (ref.get("kind"), ref.get("name")) != ("Deployment", d["metadata"]["name"]):
        yield f"HPA targets {ref}"
    if h["apiVersion"] != "autoscaling/v2":
        yield "HPA must be autoscaling/v2"
    if not any(m.get("resource", {}).get("name") == "cpu" for m in h["spec"].get("metrics", [])):
        yield "HPA has no CPU metric"
    lo, hi = h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"]
    if lo > hi:
        yield f"minReplicas {lo} > maxReplicas {hi}"
    if overlay == "prod" and lo < 3:
        yield f"prod minReplicas {lo} < 3"
    if "replicas" in d["spec"]:
        yield "Deployment sets spec.replicas while an HPA owns it (apply would reset the scale)"
    if overlay == "prod":
        need = census_day_pods(r)
        if need and hi < need:
            yield f"prod maxReplicas {hi} < {need} pods the census-day peak needs (docs/capacity.md)"


# Census-day sizing (docs/capacity.md): the peak, and logins/s of one core at saturation
# (the stock argon2 crate's ceiling, 50-54 hashes/s per core on the reference box; the
# service's polite saturation measured at 0.9-1.1 of it; the lower end taken).
PEAK_LOGINS_PER_S = 2000
HASHES_PER_CORE_S = 50


def census_day_pods(r: Render) -> int | None:
    """Pods the HPA settles at for the peak: per pod = CPU request x hashes/core x target."""
    h = (r.kind("HorizontalPodAutoscaler") or [None])[0]
    c = container(r.named("Deployment", "census-login") or {"spec": {"template": {"spec": {"containers": []}}}}, "census-login")
    if not h or not c:
        return None
    cpu = c.get("resources", {}).get("requests", {}).get("cpu", "1")
    cores = float(cpu[:-1]) / 1000 if str(cpu).endswith("m") else float(cpu)
    target = next((m["resource"]["target"].get("averageUtilization", 100) for m in h["spec"].get("metrics", [])
                   if m.get("resource", {}).get("name") == "cpu"), 100) / 100
    return math.ceil(PEAK_LOGINS_PER_S / (cores * HASHES_PER_CORE_S * target))


@check("pre-scale (prod): CronJobs raise the HPA's minimum to the census-day size before the peaks, within maxReplicas, with RBAC for that HPA only")
def _prescale(r: Render, overlay: str) -> Iterable[str]:
    jobs = [j for j in r.kind("CronJob") if j["metadata"]["name"].startswith("census-login-prescale")]
    if overlay != "prod":
        if jobs:
            yield f"{len(jobs)} CronJobs outside prod"
        return
    h = (r.kind("HorizontalPodAutoscaler") or [None])[0]
    if not h or not jobs:
        yield "no HPA or no pre-scale CronJob"
        return
    mins = {}
    for j in jobs:
        if not j["spec"].get("timeZone"):
            yield f"CronJob {j['metadata']['name']}: no timeZone (the schedule would be the controller's UTC)"
        ps = j["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        args = " ".join(ps["containers"][0].get("args", []))
        m = re.search(r'horizontalpodautoscaler/(\S+) .*"minReplicas":(\d+)', args)
        if not m or m.group(1) != h["metadata"]["name"]:
            yield f"CronJob {j['metadata']['name']}: does not patch the HPA's minReplicas ({args})"
            continue
        mins[j["metadata"]["name"]] = int(m.group(2))
        sc = ps["containers"][0].get("securityContext", {})
        if not (ps.get("securityContext", {}).get("runAsNonRoot") and sc.get("readOnlyRootFilesystem")
                and sc.get("allowPrivilegeEscalation") is False and "ALL" in sc.get("capabilities", {}).get("drop", [])):
            yield f"CronJob {j['metadata']['name']}: pod not hardened (non-root, read-only, no escalation, drop ALL)"
        sa = ps.get("serviceAccountName")
        binds = [b for b in r.kind("RoleBinding") if any(s.get("name") == sa for s in b.get("subjects", []))]
        roles = [r.named("Role", b["roleRef"]["name"]) for b in binds]
        rules = [x for role in roles if role for x in role.get("rules", [])]
        if not rules or any(x.get("resources") != ["horizontalpodautoscalers"] or x.get("resourceNames") != [h["metadata"]["name"]]
                            or set(x.get("verbs", [])) - {"get", "patch"} for x in rules):
            yield f"CronJob {j['metadata']['name']}: ServiceAccount {sa} must only get/patch HPA {h['metadata']['name']}"
    need = census_day_pods(r)
    if mins and (max(mins.values()) > h["spec"]["maxReplicas"] or (need and max(mins.values()) < need)):
        yield f"pre-scale minimums {mins} must reach the census-day {need} pods and stay within maxReplicas {h['spec']['maxReplicas']}"
    if mins and min(mins.values()) != h["spec"].get("minReplicas", 1):
        yield f"no CronJob brings the minimum back to the HPA's floor {h['spec'].get('minReplicas')} ({mins})"


@check("PodDisruptionBudgets cover census-login and Redis")
def _pdb(r: Render, overlay: str) -> Iterable[str]:
    for wname in ("census-login", "redis"):
        w = next((x for x in r.workloads() if x["metadata"]["name"] == wname), None)
        if not w:
            yield f"workload {wname} missing"
            continue
        pdbs = [p for p in r.kind("PodDisruptionBudget")
                if selector_matches(p["spec"]["selector"], pod_labels(w))]
        if len(pdbs) != 1:
            yield f"{wname}: {len(pdbs)} PDBs select its pods, want 1"
        elif "maxUnavailable" not in pdbs[0]["spec"] and "minAvailable" not in pdbs[0]["spec"]:
            yield f"{wname}: PDB without maxUnavailable/minAvailable"


@check("Services select pods and name ports that exist")
def _services(r: Render, overlay: str) -> Iterable[str]:
    for s in r.kind("Service"):
        sn = s["metadata"]["name"]
        ws = [w for w in r.workloads() if selector_matches(s["spec"].get("selector", {}), pod_labels(w))]
        if len(ws) != 1:
            yield f"Service {sn} selects {len(ws)} workloads, want 1"
            continue
        names = {p["name"]: p["containerPort"] for c in pod_spec(ws[0])["containers"] for p in c.get("ports", [])}
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            if tp not in names and tp not in names.values():
                yield f"Service {sn} port {p.get('name')}: targetPort {tp} not a container port"
    pub = r.named("Service", "census-login")
    adm = r.named("Service", "census-login-admin")
    if not pub or {p["name"] for p in pub["spec"]["ports"]} != {"http"}:
        yield "public Service census-login must expose only the http port"
    if not adm or {p["name"] for p in adm["spec"]["ports"]} != {"admin"}:
        yield "Service census-login-admin must expose only the admin port"
    for s in (pub, adm):
        if s and s["spec"].get("type", "ClusterIP") != "ClusterIP":
            yield f"Service {s['metadata']['name']} must be ClusterIP"


GATEWAY = ("gateway", "census-gateway")  # namespace, name of the shared Gateway (k8s/gateway)


@check("Gateway API: no Ingress; HTTPRoute to the public Service only, host = server.public_origin, HTTPS listener, HTTP redirects, TLS grant, body limit")
def _gateway(r: Render, overlay: str) -> Iterable[str]:
    if r.kind("Ingress"):
        yield "an Ingress is rendered: routing is the Gateway API's (ingress-nginx is retired)"
    routes = r.kind("HTTPRoute")
    eff, problems = effective_config(r)
    yield from problems
    origin = str(eff.get("server.public_origin", ""))
    if not origin.startswith("https://"):
        yield f"server.public_origin {origin!r} is not https"
    origin_host = re.sub(r"^https?://", "", origin).split("/")[0].split(":")[0]
    main = [rt for rt in routes if any(b for rule in rt["spec"].get("rules", []) for b in rule.get("backendRefs", []))]
    redirects = [rt for rt in routes if rt not in main]
    if len(main) != 1:
        yield f"{len(main)} HTTPRoutes with backends, want 1"
    for rt in routes:
        name = rt["metadata"]["name"]
        if rt["spec"].get("hostnames") != [origin_host]:
            yield f"HTTPRoute {name} hostnames {rt['spec'].get('hostnames')} != [{origin_host}] (public_origin)"
        for ref in rt["spec"].get("parentRefs", []):
            if (ref.get("namespace"), ref.get("name")) != GATEWAY or ref.get("kind", "Gateway") != "Gateway":
                yield f"HTTPRoute {name} attaches to {ref.get('namespace')}/{ref.get('name')}, want the shared Gateway {'/'.join(GATEWAY)}"
        for rule in rt["spec"].get("rules", []):
            for b in rule.get("backendRefs", []):
                s = r.named("Service", b.get("name", ""))
                if b.get("kind", "Service") != "Service" or b.get("name") != "census-login" or not s:
                    yield f"HTTPRoute {name} routes to {b.get('kind', 'Service')} {b.get('name')}: only the public Service census-login may be exposed"
                elif b.get("port") not in {p["port"] for p in s["spec"]["ports"] if p.get("name") == "http"}:
                    yield f"HTTPRoute {name} routes to port {b.get('port')}, not the Service's http port (never the admin port)"
    for rt in main:
        if [ref.get("sectionName") for ref in rt["spec"].get("parentRefs", [])] not in (["https"], ["https-dev"]):
            yield f"HTTPRoute {rt['metadata']['name']} must attach only to an HTTPS listener, got {rt['spec'].get('parentRefs')}"
    for rt in redirects:
        filters = [f for rule in rt["spec"].get("rules", []) for f in rule.get("filters", [])]
        if not filters or any(f.get("type") != "RequestRedirect" or f.get("requestRedirect", {}).get("scheme") != "https"
                              for f in filters):
            yield f"HTTPRoute {rt['metadata']['name']} without backends must only redirect to https"
    grants = r.kind("ReferenceGrant")
    if not any(any(f.get("kind") == "Gateway" and f.get("namespace") == GATEWAY[0] for f in g["spec"].get("from", []))
               and any(t.get("kind") == "Secret" and t.get("name") == "census-login-tls" for t in g["spec"].get("to", []))
               for g in grants):
        yield "no ReferenceGrant lets the Gateway read Secret census-login-tls (TLS)"
    pols = [p for p in r.kind("ClientSettingsPolicy") if p["spec"].get("targetRef", {}).get("kind") == "HTTPRoute"
            and p["spec"]["targetRef"].get("name") in {rt["metadata"]["name"] for rt in main}]
    size = str((pols[0]["spec"].get("body") or {}).get("maxSize", "")) if pols else ""
    m = re.fullmatch(r"(\d+)([kKmM]?)", size)
    if not m or int(m.group(1)) * {"": 1, "k": 1024, "K": 1024, "m": 2**20, "M": 2**20}[m.group(2)] > 64 * 1024:
        yield f"no ClientSettingsPolicy limiting the route's body to at most 64k (got {size!r})"
    ns = r.kind("Namespace")
    if ns and ns[0]["metadata"].get("labels", {}).get("census-login/gateway-access") != "true":
        yield "the namespace lacks census-login/gateway-access=true: the shared Gateway would not accept its routes"


# The importer streams: its peak RSS stays under 100 MiB whatever the file
# (docs/capacity.md, "Registry at scale").
IMPORT_MEMORY_LIMIT = 128 * MIB


@check("registry import: a suspended, never-due CronJob as the Job's template, hardened, streaming within 128Mi, "
       "same config and secrets (as files) as census-login, the file read-only from a volume, Redis reachable")
def _registry_import(r: Render, overlay: str) -> Iterable[str]:
    cj = r.named("CronJob", "census-login-registry-import")
    app = r.named("Deployment", "census-login")
    if not cj or not app:
        yield "CronJob census-login-registry-import or Deployment census-login missing"
        return
    if cj["spec"].get("suspend") is not True:
        yield "not suspended: it would import on a schedule"
    job = cj["spec"]["jobTemplate"]["spec"]
    if job.get("backoffLimit") != 0 or not job.get("activeDeadlineSeconds"):
        yield "want backoffLimit 0 (look at a failed import) and an activeDeadlineSeconds"
    ps = job["template"]["spec"]
    labels = job["template"].get("metadata", {}).get("labels", {})
    for svc in r.kind("Service"):
        if svc["spec"].get("selector") and selector_matches({"matchLabels": svc["spec"]["selector"]}, labels):
            yield f"import pods would be endpoints of Service {svc['metadata']['name']}"
    psc = ps.get("securityContext", {})
    if ps.get("automountServiceAccountToken") is not False or not psc.get("runAsNonRoot") or psc.get("runAsUser", 0) == 0:
        yield "pod must run as non-root without a service account token"
    if ps.get("restartPolicy") != "Never":
        yield "restartPolicy must be Never"
    c = ps["containers"][0]
    sc = c.get("securityContext", {})
    if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
            and "ALL" in sc.get("capabilities", {}).get("drop", [])
            and sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") == "RuntimeDefault"):
        yield "container not hardened (read-only, no escalation, drop ALL, RuntimeDefault)"
    if c.get("image") != container(app, "census-login").get("image"):
        yield f"image {c.get('image')} is not census-login's {container(app, 'census-login').get('image')}"
    args = c.get("args", [])
    if args[:2] != ["registry", "import"] or len(args) != 3 or not args[2].startswith("/"):
        yield f"args {args}: want registry import /path/on/the/volume"
    limit = quantity(c.get("resources", {}).get("limits", {}).get("memory", "0"))
    if not 0 < limit <= IMPORT_MEMORY_LIMIT:
        yield f"memory limit {limit / MIB:.0f} MiB: want at most {IMPORT_MEMORY_LIMIT // MIB} MiB (it streams)"
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    app_env = {e["name"]: e.get("value") for e in container(app, "census-login").get("env", [])}
    for name in ("CENSUS__SECRETS__PEPPER_FILE", "CENSUS__SECRETS__REDIS_PASSWORD_FILE"):
        if not env.get(name) or env.get(name) != app_env.get(name):
            yield f"{name} = {env.get(name)!r}, census-login reads {app_env.get(name)!r}"
    if any(e.get("valueFrom", {}).get("secretKeyRef") for e in c.get("env", [])):
        yield "a secret in an environment variable"
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in ps.get("volumes", [])}
    app_vols = {v["name"]: v for v in pod_spec(app).get("volumes", [])}
    for name in ("config",):
        if volumes.get(name, {}).get("configMap") != app_vols.get(name, {}).get("configMap"):
            yield f"volume {name}: not census-login's ConfigMap"
    envfrom = [e.get("configMapRef", {}).get("name") for e in c.get("envFrom", [])]
    app_envfrom = [e.get("configMapRef", {}).get("name") for e in container(app, "census-login").get("envFrom", [])]
    if envfrom != app_envfrom:
        yield f"envFrom {envfrom}, census-login has {app_envfrom}"
    file_dir = args[2].rsplit("/", 1)[0] if len(args) == 3 else ""
    m = mounts.get(file_dir)
    if not m or not m.get("readOnly") or "persistentVolumeClaim" not in volumes.get(m["name"], {}):
        yield f"the file's directory {file_dir} is not a read-only PersistentVolumeClaim mount"
    for path in (env.get("CENSUS__SECRETS__PEPPER_FILE") or "", env.get("CENSUS__SECRETS__REDIS_PASSWORD_FILE") or ""):
        d = path.rsplit("/", 1)[0]
        if d not in mounts or "secret" not in volumes.get(mounts[d]["name"], {}):
            yield f"{path}: not on a Secret volume"
    pols = [p for p in r.kind("NetworkPolicy") if selector_matches(p["spec"]["podSelector"], labels)]
    types = {t for p in pols for t in p["spec"].get("policyTypes", [])}
    if types != {"Ingress", "Egress"} or any(p["spec"].get("ingress") for p in pols):
        yield "import pods: want a NetworkPolicy with no ingress and egress to Redis/DNS only"
    for p in pols:
        for rule in p["spec"].get("egress", []):
            if not rule.get("to") or any(port.get("port") not in (6379, 26379, 53) for port in rule.get("ports", [{}])):
                yield f"{p['metadata']['name']}: egress beyond Redis and DNS"
    red = r.named("StatefulSet", "redis")
    if red:
        red_pol = [p for p in r.kind("NetworkPolicy") if selector_matches(p["spec"]["podSelector"], pod_labels(red))]
        peers = [peer for p in red_pol for rule in p["spec"].get("ingress", []) for peer in rule.get("from", [])]
        if not any("podSelector" in peer and selector_matches(peer["podSelector"], labels) for peer in peers):
            yield "Redis' NetworkPolicy does not admit the import pods"


NODE_POLICY = "census-login-national-node"


def node_egress(policy: dict, rule: dict, port: dict) -> bool:
    """The one egress beyond Redis and DNS: k8s/components/national-node's HTTPS to
    login.gov.pl's artifact service, to address blocks only (never the whole Internet)."""
    return (policy["metadata"]["name"] == NODE_POLICY and port.get("port") == 443
            and port.get("protocol", "TCP") == "TCP"
            and all("ipBlock" in peer and not peer["ipBlock"]["cidr"].endswith("/0") for peer in rule["to"]))


@check("NetworkPolicies: census-login and Redis locked down in both directions")
def _netpol(r: Render, overlay: str) -> Iterable[str]:
    app = r.named("Deployment", "census-login")
    red = r.named("StatefulSet", "redis")
    if not app or not red:
        yield "workloads missing"
        return
    for w in (app, red):
        pols = [p for p in r.kind("NetworkPolicy") if selector_matches(p["spec"]["podSelector"], pod_labels(w))]
        types = {t for p in pols for t in p["spec"].get("policyTypes", [])}
        if types != {"Ingress", "Egress"}:
            yield f"{w['metadata']['name']}: policies cover {sorted(types)}, want Ingress and Egress"
        for p in pols:
            for rule in p["spec"].get("ingress", []):
                if not rule.get("from") or not rule.get("ports"):
                    yield f"{p['metadata']['name']}: an ingress rule without from/ports allows too much"
            for rule in p["spec"].get("egress", []):
                if not rule.get("to") or not rule.get("ports"):
                    yield f"{p['metadata']['name']}: an egress rule without to/ports allows too much"
                for port in rule.get("ports", []):
                    if port.get("port") in (6379, 26379, 53) or node_egress(p, rule, port):
                        continue
                    yield f"{p['metadata']['name']}: egress to port {port.get('port')}"
    pol = next((p for p in r.kind("NetworkPolicy")
                if selector_matches(p["spec"]["podSelector"], pod_labels(app))), None)
    if pol:
        by_port: dict[Any, list] = {}
        for rule in pol["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                by_port.setdefault(port.get("port"), []).extend(rule.get("from", []))
        if set(by_port) - {"http", "admin", 8080, 9090}:
            yield f"census-login ingress opens ports {sorted(map(str, by_port))}"
        for port, peers in by_port.items():
            for peer in peers:
                if "namespaceSelector" not in peer or "ipBlock" in peer:
                    yield f"census-login port {port}: peer {peer} is not a namespace-scoped selector"
        nss = {port: {p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                      for p in peers} for port, peers in by_port.items()}
        admin_ns = nss.get("admin", set()) | nss.get(9090, set())
        http_ns = nss.get("http", set()) | nss.get(8080, set())
        if not http_ns or not admin_ns or http_ns & admin_ns:
            yield f"public port from {http_ns}, admin port from {admin_ns}: want separate namespaces"


NODE_FILES = {
    "CENSUS__NATIONAL_NODE__IDP_METADATA_FILE": "configMap",
    "CENSUS__NATIONAL_NODE__SP_CERTIFICATE_FILE": "configMap",
    "CENSUS__SECRETS__SAML_SP_KEY_FILE": "secret",
}


@check("login.gov.pl, when enabled (k8s/components/national-node): its files mounted, keys from a Secret, egress to the node")
def _national_node(r: Render, overlay: str) -> Iterable[str]:
    app = r.named("Deployment", "census-login")
    c = container(app, "census-login") if app else None
    if not c:
        return
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    if env.get("CENSUS__NATIONAL_NODE__ENABLED") != "true":
        return
    mounts = {m["mountPath"].rstrip("/"): m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod_spec(app).get("volumes", [])}
    optional = {k: ("secret" if k.startswith("CENSUS__SECRETS__") else "configMap")
                for k in env if k.endswith("_FILE") and ("NATIONAL_NODE" in k or "SAML" in k)}
    for key, kind in {**optional, **NODE_FILES}.items():
        path = env.get(key)
        if not path:
            yield f"{key} is not set"
            continue
        mount = next((m for mp, m in mounts.items() if path.startswith(mp + "/")), None)
        if not mount:
            yield f"{key}={path} is not under a mounted volume"
            continue
        if mount.get("subPath"):
            yield f"{key}: mounted with subPath, so an update never reaches the pod"
        vol = volumes.get(mount["name"], {})
        if kind not in vol:
            yield f"{key}={path} comes from volume {mount['name']}, want a {kind}"
        elif kind == "secret" and vol["secret"].get("defaultMode", 0o644) & 0o007:
            yield f"{key}: Secret volume {mount['name']} readable by others"
    egress = [p for p in r.kind("NetworkPolicy") if p["metadata"]["name"] == NODE_POLICY
              and selector_matches(p["spec"]["podSelector"], pod_labels(app))]
    if not any(node_egress(p, rule, port) for p in egress for rule in p["spec"].get("egress", [])
               for port in rule.get("ports", [])):
        yield f"no NetworkPolicy {NODE_POLICY} opening HTTPS to the node: the artifact back channel would be blocked"


@check("Namespace enforces Pod Security 'restricted' and holds every resource")
def _namespace(r: Render, overlay: str) -> Iterable[str]:
    nss = r.kind("Namespace")
    if len(nss) != 1:
        yield f"{len(nss)} Namespace objects, want 1"
        return
    ns = nss[0]
    name = ns["metadata"]["name"]
    if ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
        yield f"Namespace {name} does not enforce restricted"
    for d in r.docs:
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != name:
            yield f"{d['kind']}/{d['metadata']['name']} in namespace {d['metadata'].get('namespace')}"


@check("Secrets: none in prod; dev's are marked dev-only; the template holds placeholders")
def _secrets(r: Render, overlay: str) -> Iterable[str]:
    secrets = r.kind("Secret")
    if overlay == "prod" and secrets:
        yield f"prod renders Secrets {[s['metadata']['name'] for s in secrets]}: real secrets never live in git"
    for s in secrets:
        for k, v in s.get("data", {}).items():
            value = base64.b64decode(v).decode(errors="replace")
            if "dev-only" not in value.lower():
                yield f"Secret {s['metadata']['name']} key {k} is not marked dev-only"


@check("Redis: 3-pod Sentinel StatefulSet, AUTH everywhere, AOF everysec, noeviction, matches store.redis_url")
def _redis(r: Render, overlay: str) -> Iterable[str]:
    sts = r.named("StatefulSet", "redis")
    if not sts:
        yield "StatefulSet redis missing"
        return
    n = sts["spec"].get("replicas", 1)
    if n != 3:
        yield f"replicas {n}, want 3 (Sentinel quorum 2)"
    svc = r.named("Service", sts["spec"]["serviceName"])
    if not svc or svc["spec"].get("clusterIP") != "None" or not svc["spec"].get("publishNotReadyAddresses"):
        yield f"serviceName {sts['spec']['serviceName']} must be a headless Service publishing not-ready pods"
    ports = {p["port"] for p in (svc or {"spec": {"ports": []}})["spec"]["ports"]}
    if not {6379, 26379} <= ports:
        yield f"headless Service ports {ports}, want 6379 and 26379"
    cm = r.named("ConfigMap", "redis-config")
    conf = (cm or {}).get("data", {}).get("redis.conf", "")
    directives = {}
    for line in conf.splitlines():
        parts = line.split(None, 1)
        if parts and not parts[0].startswith("#"):
            directives[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
    for k, v in (("appendonly", "yes"), ("appendfsync", "everysec"), ("maxmemory-policy", "noeviction")):
        if directives.get(k) != v:
            yield f"redis.conf {k} = {directives.get(k)!r}, want {v!r}"
    # An account hash holds a PHC string of ~97 bytes: below 128 it is a hashtable, and a
    # defined password costs 485 bytes of Redis instead of 309 (tests/deploy/account_size.py).
    listpack_value = directives.get("hash-max-listpack-value", "64")
    if not listpack_value.isdigit() or int(listpack_value) < 128:
        yield f"redis.conf hash-max-listpack-value = {listpack_value!r}, want at least 128 (account hashes as listpacks)"
    lib = (cm or {}).get("data", {}).get("redis-lib.sh", "")
    m = re.search(r'MASTER_NAME:=([A-Za-z0-9_-]+)', lib)
    master = m.group(1) if m else "?"
    eff, problems = effective_config(r)
    yield from problems
    want = "redis+sentinel://" + ",".join(
        f"{sts['metadata']['name']}-{i}.{sts['spec']['serviceName']}:26379" for i in range(n)) + f"/{master}"
    if eff.get("store.redis_url") != want:
        yield f"store.redis_url {eff.get('store.redis_url')!r} != deployed Sentinels {want!r}"
    exp = container(sts, "redis-exporter")
    if not exp or not any(p.get("containerPort") == 9121 and p.get("name") == "metrics" for p in exp.get("ports", [])):
        yield "no redis-exporter container with port 9121 named metrics beside the Redis server"
    elif {e["name"]: e.get("value") for e in exp.get("env", [])}.get("REDIS_ADDR") != "redis://localhost:6379":
        yield "redis-exporter must watch its own pod's Redis (REDIS_ADDR redis://localhost:6379)"
    c = container(sts, "redis")
    env = {e["name"]: e.get("value") for e in (c or {}).get("env", [])}
    limit = quantity((c or {}).get("resources", {}).get("limits", {}).get("memory", 0))
    try:
        maxmem = redis_bytes(env.get("REDIS_MAXMEMORY") or "0")
    except ValueError as e:
        yield str(e)
        maxmem = 0
    if not maxmem or maxmem > 0.75 * limit:
        yield f"REDIS_MAXMEMORY {env.get('REDIS_MAXMEMORY')} must be set and <= 75% of the memory limit"
    if not sts["spec"].get("volumeClaimTemplates"):
        yield "no volumeClaimTemplates: AOF would not survive a pod restart"
    aff = pod_spec(sts).get("affinity", {}).get("podAntiAffinity", {})
    if overlay == "prod" and not aff.get("requiredDuringSchedulingIgnoredDuringExecution"):
        yield "prod Redis pods must be on different nodes (required anti-affinity)"
    # AUTH: both containers mount Secret redis-auth where the scripts read the password.
    m = re.search(r'REDIS_PASSWORD_FILE:=(\S+?)}', lib)
    folder, fname = m.group(1).rsplit("/", 1) if m else ("?", "?")
    vols = {v["name"]: v for v in pod_spec(sts).get("volumes", [])}
    for c in pod_spec(sts)["containers"]:
        if c["name"] == "redis-exporter":
            # The exporter takes the password from its environment (a secretKeyRef).
            ref = next((e.get("valueFrom", {}).get("secretKeyRef", {}) for e in c.get("env", [])
                        if e["name"] == "REDIS_PASSWORD"), {})
            if not re.fullmatch(r"redis-auth(-[a-z0-9]{10})?", ref.get("name", "")) or ref.get("key") != "password":
                yield "container redis-exporter: REDIS_PASSWORD not from Secret redis-auth key password"
            continue
        mnt = next((x for x in c.get("volumeMounts", []) if x["mountPath"] == folder), None)
        sec = vols.get(mnt["name"], {}).get("secret") if mnt else None
        if not sec or not re.fullmatch(r"redis-auth(-[a-z0-9]{10})?", sec.get("secretName", "")) \
                or fname not in {i["path"] for i in sec.get("items", [{"path": fname}])}:
            yield f"container {c['name']}: no Secret redis-auth with {fname} at {folder} (REDIS_PASSWORD_FILE)"
    for script, lines in (("start-redis.sh", ("requirepass", "masterauth")),
                          ("start-sentinel.sh", ("requirepass", "sentinel sentinel-pass", "sentinel auth-pass"))):
        text = (cm or {}).get("data", {}).get(script, "")
        for line in lines:
            if f'echo "{line} ' not in text:
                yield f"{script} does not write {line!r}"


@check("monitoring: ServiceMonitors scrape census-login (admin Service) and every redis_exporter as jobs census-login and redis; PrometheusRule = alerts.yml")
def _monitoring(r: Render, overlay: str) -> Iterable[str]:
    sms = r.kind("ServiceMonitor")
    want = {"census-login": ("census-login-admin", "census-login"), "redis": ("redis-metrics", "redis")}
    if sorted(sm["metadata"]["name"] for sm in sms) != sorted(want):
        yield f"ServiceMonitors {[sm['metadata']['name'] for sm in sms]}, want {sorted(want)}"
    for sm in sms:
        want_svc, want_job = want.get(sm["metadata"]["name"], ("?", "?"))
        sel = sm["spec"]["selector"]
        svcs = [s for s in r.kind("Service") if selector_matches(sel, s["metadata"].get("labels", {}))]
        if [s["metadata"]["name"] for s in svcs] != [want_svc]:
            yield f"ServiceMonitor {sm['metadata']['name']} selects {[s['metadata']['name'] for s in svcs]}, want only {want_svc}"
            continue
        svc = svcs[0]
        job = svc["metadata"]["labels"].get(sm["spec"].get("jobLabel", ""), svc["metadata"]["name"])
        if job != want_job:
            yield f"Prometheus job would be {job!r}, dashboards and alerts use {want_job!r}"
        names = {p.get("name") for p in svc["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in names:
                yield f"endpoint port {ep.get('port')} not in Service {svc['metadata']['name']}"
            if ep.get("path", "/metrics") != "/metrics":
                yield f"endpoint path {ep.get('path')}"
    rules = r.kind("PrometheusRule")
    alerts = REPO / "k8s" / "monitoring" / "alerts.yml"
    if len(rules) != 1:
        yield f"{len(rules)} PrometheusRules, want 1"
    elif not alerts.is_file():
        yield "k8s/monitoring/alerts.yml missing"
    elif rules[0]["spec"] != yaml.safe_load(alerts.read_text()):
        yield "PrometheusRule spec differs from k8s/monitoring/alerts.yml: run python3 k8s/tools/sync.py"
    else:
        names = [g["name"] for g in rules[0]["spec"]["groups"]]
        if len(names) != len(set(names)):
            yield f"duplicate rule group names {names}"


# ------------------------------------------------------------------ schema validation


def crd_validators() -> dict[str, jsonschema.protocols.Validator]:
    out = {}
    for kind, fname in (("ServiceMonitor", "servicemonitor.schema.json"),
                        ("PrometheusRule", "prometheusrule.schema.json")):
        schema = json.loads((SCHEMAS / fname).read_text())
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        out[kind] = cls(schema)
    return out


CRD_DIR = pathlib.Path(__file__).resolve().parent / "crd"


def gateway_api_results(docs: list[dict], label: str) -> list[tuple[bool, str, str]]:
    """Gateway API objects against the CRD schemas compiled by @kubernetes-models/gateway-api
    (tests/deploy/crd: `npm ci` there; node >= 20)."""
    gw = [d for d in docs if str(d.get("apiVersion", "")).startswith("gateway.networking.k8s.io/")]
    if not gw:
        return []
    if not (CRD_DIR / "node_modules" / "@kubernetes-models" / "gateway-api").is_dir():
        return [(False, f"{label}: Gateway API schemas", f"not installed: (cd {CRD_DIR} && npm ci)")]
    try:
        out = subprocess.run(["node", str(CRD_DIR / "validate.mjs")], input=json.dumps(gw), capture_output=True,
                             text=True, timeout=120, check=True).stdout
        res = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return [(False, f"{label}: Gateway API schemas", f"{type(e).__name__}: {e}")]
    return [(x["ok"], f"{label}: Gateway API schema {x['kind']}/{x['name']}", "; ".join(x["errors"][:5])) for x in res]


def schema_results(docs: list[dict], version: str, label: str) -> list[tuple[bool, str, str]]:
    results = gateway_api_results(docs, label)
    crds = crd_validators()
    for d in docs:
        what = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if str(d.get("apiVersion", "")).startswith("gateway.networking.k8s.io/"):
            continue  # gateway_api_results
        if str(d.get("apiVersion", "")).startswith("gateway.nginx.org/"):
            # NGINX Gateway Fabric's policy: no schema package; its fields are checked by the
            # Gateway API policy check (body.maxSize on the route).
            ok = d.get("kind") == "ClientSettingsPolicy" and set(d.get("spec", {})) <= {"targetRef", "body", "keepAlive"}
            results.append((ok, f"{label}: {what} (fields targetRef/body/keepAlive only; no published schema)", f"spec keys {sorted(d.get('spec', {}))}"))
            continue
        if str(d.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
            v = crds.get(d.get("kind"))
            if v is None:
                results.append((False, f"{label}: schema {what}", "no schema for this CRD kind"))
                continue
            errs = sorted(v.iter_errors(d), key=lambda e: list(e.path))
            why = "; ".join(f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message[:160]}" for e in errs[:5])
            results.append((not errs, f"{label}: CRD schema {what}", why))
            continue
        try:
            kubernetes_validate.validate(d, version, strict=True)
            results.append((True, f"{label}: kubernetes-validate {what}", ""))
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            results.append((False, f"{label}: kubernetes-validate {what}", f"{path}: {e.message[:200]}"))
        except Exception as e:  # SchemaNotFoundError, VersionNotSupportedError, ...
            results.append((False, f"{label}: kubernetes-validate {what}", f"{type(e).__name__}: {e}"))
    return results


def policy_results(docs: list[dict], overlay: str) -> list[tuple[bool, str, str]]:
    r = Render(docs)
    results = []
    for name, fn in CHECKS:
        try:
            problems = list(fn(r, overlay))
        except Exception as e:  # a malformed manifest must fail, not crash the run
            problems = [f"{type(e).__name__}: {e}"]
        results.append((not problems, f"{overlay}: {name}", "; ".join(problems)))
    return results


def load(path: pathlib.Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ------------------------------------------------------------------ self-test


def mutations() -> dict[str, Callable[[list[dict]], None]]:
    def find(docs, kind, name=None):
        return next(d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name)))

    def app(docs):
        return pod_spec(find(docs, "Deployment", "census-login"))["containers"][0]

    def cm_toml(docs, fn):
        cm = find(docs, "ConfigMap", "census-login-config")
        cm["data"]["production.toml"] = fn(cm["data"]["production.toml"])

    return {
        "an unknown Deployment field (schema)": lambda d: app(d).__setitem__("readinessProbee", {}),
        "a wrong type in the HPA (schema)": lambda d: find(d, "HorizontalPodAutoscaler")["spec"].__setitem__("minReplicas", "three"),
        "a ServiceMonitor without endpoints (CRD schema)": lambda d: find(d, "ServiceMonitor")["spec"].pop("endpoints"),
        "a rule with neither alert nor record (CRD schema)": lambda d: find(d, "PrometheusRule")["spec"]["groups"][0]["rules"][0].pop("alert"),
        "a writable root filesystem": lambda d: app(d)["securityContext"].__setitem__("readOnlyRootFilesystem", False),
        "a missing capability drop": lambda d: app(d)["securityContext"]["capabilities"].__setitem__("drop", []),
        "readiness on /healthz": lambda d: app(d)["readinessProbe"]["httpGet"].__setitem__("path", "/healthz"),
        "a grace period shorter than the drain": lambda d: pod_spec(find(d, "Deployment")).__setitem__("terminationGracePeriodSeconds", 20),
        "prod maxReplicas below the census-day sizing": lambda d: find(d, "HorizontalPodAutoscaler")["spec"].__setitem__("maxReplicas", 24),
        "a pre-scale above maxReplicas": lambda d: find(d, "CronJob", "census-login-prescale-opening")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"].__setitem__(3, '--patch={"spec":{"minReplicas":120}}'),
        "a pre-scale role that may patch anything": lambda d: find(d, "Role", "census-login-prescale")["rules"][0].pop("resourceNames"),
        "prod minReplicas 2": lambda d: find(d, "HorizontalPodAutoscaler")["spec"].__setitem__("minReplicas", 2),
        "a replicas field next to the HPA": lambda d: find(d, "Deployment")["spec"].__setitem__("replicas", 3),
        "memory below 19 MiB x slots + baseline": lambda d: app(d)["resources"]["limits"].__setitem__("memory", "80Mi"),
        "a drifted ConfigMap": lambda d: cm_toml(d, lambda s: s.replace("cookie_secure = true", "cookie_secure = false")),
        "an unknown config key": lambda d: cm_toml(d, lambda s: s + "\n[extra]\nbogus = 1\n"),
        "an HTTPRoute host other than public_origin": lambda d: find(d, "HTTPRoute", "census-login")["spec"].__setitem__("hostnames", ["other.example.org"]),
        "the admin Service behind the HTTPRoute": lambda d: find(d, "HTTPRoute", "census-login")["spec"]["rules"][0]["backendRefs"][0].__setitem__("name", "census-login-admin"),
        "the admin port behind the HTTPRoute": lambda d: find(d, "HTTPRoute", "census-login")["spec"]["rules"][0]["backendRefs"][0].__setitem__("port", 9090),
        "an HTTPRoute port as a string (Gateway API schema)": lambda d: find(d, "HTTPRoute", "census-login")["spec"]["rules"][0]["backendRefs"][0].__setitem__("port", "http"),
        "no body size limit": lambda d: d.remove(find(d, "ClientSettingsPolicy")),
        "an Ingress again": lambda d: d.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x", "namespace": "census"}, "spec": {"defaultBackend": {"service": {"name": "census-login", "port": {"number": 8080}}}}}),
        "an allow-all egress rule": lambda d: find(d, "NetworkPolicy", "census-login")["spec"]["egress"].append({}),
        "a Service selector typo": lambda d: find(d, "Service", "census-login-admin")["spec"].__setitem__("selector", {"app.kubernetes.io/name": "census-logn"}),
        "a Secret in prod": lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "census"}, "data": {"k": "eA=="}}),
        "two Redis pods": lambda d: find(d, "StatefulSet", "redis")["spec"].__setitem__("replicas", 2),
        "appendfsync always": lambda d: find(d, "ConfigMap", "redis-config")["data"].__setitem__("redis.conf", find(d, "ConfigMap", "redis-config")["data"]["redis.conf"].replace("appendfsync everysec", "appendfsync always")),
        "account hashes as hashtables (Redis' default listpack limit)": lambda d: find(d, "ConfigMap", "redis-config")["data"].__setitem__("redis.conf", find(d, "ConfigMap", "redis-config")["data"]["redis.conf"].replace("hash-max-listpack-value 128", "")),
        "a ServiceMonitor job name other than census-login": lambda d: find(d, "ServiceMonitor")["spec"].pop("jobLabel"),
        "a PrometheusRule out of date": lambda d: find(d, "PrometheusRule")["spec"]["groups"][0].__setitem__("name", "renamed"),
        "a root pod": lambda d: pod_spec(find(d, "StatefulSet", "redis"))["securityContext"].__setitem__("runAsUser", 0),
        "an unpinned image": lambda d: pod_spec(find(d, "StatefulSet", "redis"))["containers"][0].__setitem__("image", "redis:latest"),
        "a sentinel without the Redis password": lambda d: pod_spec(find(d, "StatefulSet", "redis"))["containers"][1].__setitem__(
            "volumeMounts", [m for m in pod_spec(find(d, "StatefulSet", "redis"))["containers"][1]["volumeMounts"] if m["name"] != "auth"]),
        "a scheduled registry import": lambda d: find(d, "CronJob", "census-login-registry-import")["spec"].__setitem__("suspend", False),
        "a registry import reading the whole file into 3 GiB": lambda d: find(d, "CronJob", "census-login-registry-import")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].__setitem__("memory", "3Gi"),
        "a registry import pod behind the public Service": lambda d: find(d, "CronJob", "census-login-registry-import")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].__setitem__("app.kubernetes.io/name", "census-login"),
        "census-login reading the Redis password from its own Secret": lambda d: next(
            e for e in app(d)["env"] if e["name"] == "CENSUS__SECRETS__REDIS_PASSWORD_FILE").__setitem__("value", "/var/run/secrets/census-login/pepper"),
    }


def node_mutations() -> dict[str, Callable[[list[dict]], None]]:
    """For a render with k8s/components/national-node: its own rules must bite too."""
    def app(docs):
        d = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "census-login")
        return pod_spec(d)

    def env(docs, name):
        return next(e for e in app(docs)["containers"][0]["env"] if e["name"] == name)

    def policy(docs):
        return next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == NODE_POLICY)

    def volume(docs, kind):
        return next(v for v in app(docs)["volumes"] if kind in v and "national-node" in v[kind].get("name", v[kind].get("secretName", "")))

    return {
        "the node's egress policy gone": lambda d: d.remove(policy(d)),
        "egress to the whole Internet for the node": lambda d: policy(d)["spec"]["egress"][0]["to"][0]["ipBlock"].__setitem__("cidr", "0.0.0.0/0"),
        "the node's egress on another port": lambda d: policy(d)["spec"]["egress"][0]["ports"][0].__setitem__("port", 8443),
        "the SP key read from the ConfigMap": lambda d: env(d, "CENSUS__SECRETS__SAML_SP_KEY_FILE").__setitem__("value", "/etc/census-login-node/sp-sign.key"),
        "the metadata outside any mount": lambda d: env(d, "CENSUS__NATIONAL_NODE__IDP_METADATA_FILE").__setitem__("value", "/srv/idp-metadata.xml"),
        "the node's keys readable by others": lambda d: volume(d, "secret")["secret"].__setitem__("defaultMode", 0o444),
    }


def self_test(rendered: pathlib.Path, version: str, national_node: bool = False) -> int:
    base = load(rendered)
    baseline = [x for x in schema_results(base, version, "prod") + policy_results(base, "prod") if not x[0]]
    if baseline:
        print(f"FAIL - self-test: the unmutated render already fails: {baseline[0][1]}: {baseline[0][2]}")
        return 1
    failures = 0
    for name, mutate in (node_mutations() if national_node else mutations()).items():
        docs = copy.deepcopy(base)
        mutate(docs)
        bad = [x for x in schema_results(docs, version, "prod") + policy_results(docs, "prod") if not x[0]]
        if bad:
            print(f"ok - self-test: detects {name} ({bad[0][1].split(': ', 1)[1]})")
        else:
            print(f"FAIL - self-test: {name} went unnoticed")
            failures += 1
    return failures


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--overlay", choices=("dev", "prod"))
    ap.add_argument("--rendered", type=pathlib.Path)
    ap.add_argument("--template", type=pathlib.Path, help="validate a standalone manifest (the Secret template)")
    ap.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION)
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--national-node", action="store_true",
                    help="with --self-test: the mutations of k8s/components/national-node")
    ap.add_argument("--schemas-only", type=pathlib.Path, help="only the schemas of a rendered file (k8s/gateway)")
    a = ap.parse_args()

    if a.self_test:
        return 1 if self_test(a.rendered, a.k8s_version, a.national_node) else 0
    if a.schemas_only:
        docs = load(a.schemas_only)
        results = schema_results(docs, a.k8s_version, a.schemas_only.stem)
        results.append((any(d.get("kind") == "Gateway" for d in docs), f"{a.schemas_only.stem}: holds a Gateway", ""))
    elif a.template:
        docs = load(a.template)
        results = schema_results(docs, a.k8s_version, "template")
        want = {"census-login-secrets": {"pepper", "admin-token", "admin-tokens"}, "redis-auth": {"password"}}
        names = [d["metadata"]["name"] for d in docs]
        results.append((sorted(names) == sorted(want), f"template: {a.template.name} holds Secrets {sorted(want)}",
                        f"holds {names}"))
        for d in docs:
            values = {**d.get("stringData", {}), **{k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}}
            bad = [k for k, v in values.items() if not str(v).startswith("REPLACE_ME")]
            keys = want.get(d["metadata"]["name"], set())
            results.append((d["kind"] == "Secret" and not bad and set(values) == keys,
                            f"template: {d['metadata']['name']} holds only REPLACE_ME placeholders for {sorted(keys)}",
                            f"kind {d['kind']}, keys {sorted(values)}, real-looking values in {bad}"))
    else:
        docs = load(a.rendered)
        results = schema_results(docs, a.k8s_version, a.overlay) + policy_results(docs, a.overlay)
    for ok, name, why in results:
        print(f"{'ok' if ok else 'FAIL'} - {name}" + ("" if ok else f": {why}"))
    return 0 if all(ok for ok, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
