#!/usr/bin/env python3
"""Check the Dockerfile against the repository, as far as that is possible without a
Docker engine: every file the build needs is present and not excluded by .dockerignore,
the stages are in the cargo-chef order, and the runtime stage matches production.toml.

Prints one line per check ("ok - ..." / "FAIL - ...") and exits 1 if any failed.
Usage: tests/deploy/dockerfile_context.py [REPO_ROOT]
       tests/deploy/dockerfile_context.py --self-test   (the checks catch known breakage)
"""

from __future__ import annotations

import fnmatch
import pathlib
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field

# ------------------------------------------------------------------ .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker (moby/patternmatcher) pattern -> regex: Go filepath.Match plus `**`."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i)
            if j == -1:
                out.append(re.escape(c))
            else:
                cls = pattern[i + 1 : j].replace("\\", "\\\\")
                if cls.startswith("^"):
                    cls = "^" + cls[1:]
                out.append(f"[{cls}]")
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass
class DockerIgnore:
    rules: list[tuple[bool, re.Pattern[str], str]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> "DockerIgnore":
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = line.lstrip("/")
            # filepath.Clean: drop "./", trailing "/", duplicate slashes.
            line = re.sub(r"/+", "/", line)
            while line.startswith("./"):
                line = line[2:]
            line = line.rstrip("/") or "."
            rules.append((negate, _pattern_regex(line), raw.strip()))
        return cls(rules)

    def excluded(self, path: str) -> str | None:
        """The pattern that excludes PATH (relative, posix), or None if it is sent."""
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = None
        for negate, rx, raw in self.rules:
            if any(rx.match(c) for c in candidates):
                verdict = None if negate else raw
        return verdict


# ------------------------------------------------------------------ Dockerfile


@dataclass
class Instr:
    line: int
    cmd: str
    args: str
    stage: int


def parse_dockerfile(text: str) -> tuple[list[Instr], list[str]]:
    instrs: list[Instr] = []
    stages: list[str] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        cmd, _, args = buf.partition(" ")
        cmd = cmd.upper()
        if cmd == "FROM":
            m = re.search(r"\bAS\s+(\S+)\s*$", args, re.I)
            stages.append(m.group(1) if m else str(len(stages)))
        instrs.append(Instr(start, cmd, args.strip(), len(stages) - 1))
        buf = ""
    return instrs, stages


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(args)
    flags, rest = {}, []
    for w in words:
        if w.startswith("--") and not rest:
            k, _, v = w[2:].partition("=")
            flags[k] = v
        else:
            rest.append(w)
    return flags, rest


def parse_kv(args: str) -> dict[str, str]:
    out = {}
    for w in shlex.split(args):
        if "=" in w:
            k, _, v = w.partition("=")
            out[k] = v
    return out


# ------------------------------------------------------------------ checks


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[bool, str, str]] = []

    def check(self, ok: bool, name: str, why: str = "") -> None:
        self.results.append((bool(ok), name, why))

    def failed(self) -> list[tuple[bool, str, str]]:
        return [r for r in self.results if not r[0]]


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def run_checks(root: pathlib.Path) -> Checks:
    c = Checks()
    dockerfile = root / "Dockerfile"
    if not dockerfile.is_file():
        c.check(False, "Dockerfile exists", f"{dockerfile} missing")
        return c
    instrs, stages = parse_dockerfile(dockerfile.read_text())
    ignore_file = root / ".dockerignore"
    ignore = DockerIgnore.parse(ignore_file.read_text() if ignore_file.is_file() else "")
    cargo = tomllib.loads((root / "Cargo.toml").read_text())
    prod = tomllib.loads((root / "config" / "production.toml").read_text())

    # --- build context: what the build needs is there and sent
    needed = ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs", "src/web",
              "src/web/index.html", "config/production.toml"]
    for section in ("bin", "bench", "test", "example"):
        for target in cargo.get(section, []):
            if "path" in target:
                needed.append(target["path"])
    build_rs = cargo.get("package", {}).get("build")
    if isinstance(build_rs, str):
        needed.append(build_rs)
    elif (root / "build.rs").is_file():
        needed.append("build.rs")
    missing = [p for p in needed if not (root / p).exists()]
    c.check(not missing, "files the build needs exist",
            "missing: " + ", ".join(missing) + (
                " (the binary embeds src/web at build time: the image cannot be built"
                " without it)" if any(p.startswith("src/web") for p in missing) else ""))
    ignored = {p: ignore.excluded(p) for p in needed}
    bad = {p: pat for p, pat in ignored.items() if pat}
    c.check(not bad, "files the build needs are not excluded by .dockerignore",
            "; ".join(f"{p} excluded by '{pat}'" for p, pat in bad.items()))
    heavy = [p for p in ("target", ".git") if not ignore.excluded(p + "/x")]
    c.check(not heavy, ".dockerignore keeps target/ and .git/ out of the context",
            "not excluded: " + ", ".join(heavy))

    # --- every local COPY/ADD source exists and is sent
    problems = []
    for ins in instrs:
        if ins.cmd not in ("COPY", "ADD"):
            continue
        flags, words = split_flags(ins.args)
        if "from" in flags or len(words) < 2:
            continue
        for src in words[:-1]:
            if src in (".", "./"):
                continue
            matches = [p for p in root.glob(src)] if any(ch in src for ch in "*?[") else (
                [root / src] if (root / src).exists() else [])
            if not matches:
                problems.append(f"line {ins.line}: {src} does not exist")
            for m in matches:
                rel = m.relative_to(root).as_posix()
                if ignore.excluded(rel):
                    problems.append(f"line {ins.line}: {rel} excluded by .dockerignore")
    c.check(not problems, "COPY sources exist in the build context", "; ".join(problems))

    # --- stages and cargo-chef order
    names = [s.lower() for s in stages]
    c.check(len(stages) >= 3, "multi-stage build (chef/planner/builder/runtime)",
            f"stages: {stages}")
    runs = [(i.stage, i.args) for i in instrs if i.cmd == "RUN"]
    prepare = [s for s, a in runs if "cargo chef prepare" in a]
    cook = [(k, s) for k, (s, a) in enumerate(runs) if "cargo chef cook" in a]
    build = [(k, s) for k, (s, a) in enumerate(runs) if re.search(r"cargo (auditable )?build\b", a)]
    ok = bool(prepare and cook and build)
    why = "need cargo chef prepare, cargo chef cook and cargo build"
    if ok:
        cook_stage = cook[0][1]
        copy_all = [i for i in instrs if i.cmd == "COPY" and i.stage == cook_stage
                    and "--from" not in i.args and split_flags(i.args)[1][:1] == ["."]]
        cook_line = [i.line for i in instrs if i.cmd == "RUN" and "cargo chef cook" in i.args][0]
        ok = bool(copy_all) and all(i.line > cook_line for i in copy_all)
        why = "the builder stage must cook dependencies before COPY . ."
        if ok and build[0][1] != cook_stage:
            ok, why = False, "cargo build must run in the stage that cooked the dependencies"
    c.check(ok, "dependencies cooked (cargo-chef) before the sources are copied", why)

    # --- provenance: version and commit passed in, dependency list embedded, SBOM
    build_runs = [(s, a) for s, a in runs if re.search(r"cargo (auditable )?build\b", a)]
    c.check(build_runs and all("cargo auditable build" in a for _, a in build_runs),
            "the binary is built with cargo auditable (dependency list embedded)",
            f"{[a[:60] for _, a in build_runs]}")
    installs = " ".join(a for _, a in runs if "cargo install" in a)
    pinned = all(re.search(rf"cargo install {tool} --locked --version \S+", installs)
                 for tool in ("cargo-chef", "cargo-auditable", "cargo-cyclonedx"))
    c.check(pinned, "cargo-chef, cargo-auditable and cargo-cyclonedx installed --locked at pinned versions",
            installs[:160])
    build_stage = build_runs[0][0] if build_runs else -1
    stage_instrs = [i for i in instrs if i.stage == build_stage]
    build_line = next((i.line for i in stage_instrs if i.cmd == "RUN" and "cargo auditable build" in i.args), 0)
    cook_line = next((i.line for i in stage_instrs if i.cmd == "RUN" and "cargo chef cook" in i.args), 0)
    benv = {}
    bargs = set()
    for i in stage_instrs:
        if i.line < build_line and i.cmd == "ENV":
            benv.update(parse_kv(i.args))
        if i.line < build_line and i.cmd == "ARG":
            bargs.add(i.args.partition("=")[0].strip())
    env_lines = [i.line for i in stage_instrs if i.cmd == "ENV" and "CENSUS_GIT_COMMIT" in i.args]
    c.check({"VERSION", "GIT_COMMIT"} <= bargs and benv.get("CENSUS_GIT_COMMIT") == "${GIT_COMMIT}"
            and benv.get("CENSUS_VERSION") == "${VERSION}",
            "the build stage passes the VERSION and GIT_COMMIT build args to build.rs (CENSUS_VERSION, CENSUS_GIT_COMMIT)",
            f"ARGs {sorted(bargs)}, ENV {benv}")
    c.check(env_lines and all(n > cook_line for n in env_lines),
            "the commit is set after the dependencies are cooked (a new commit keeps the cached layer)",
            f"ENV at lines {env_lines}, cook at {cook_line}")
    build_rs = (root / "build.rs").read_text() if (root / "build.rs").exists() else ""
    c.check(all(f"rustc-env={v}" in build_rs for v in ("CENSUS_VERSION", "CENSUS_GIT_COMMIT")),
            "build.rs turns CENSUS_VERSION / CENSUS_GIT_COMMIT into the binary's build info", "")
    sbom_run = next((a for _, a in runs if "cargo cyclonedx" in a), "")
    c.check(bool(sbom_run) and "--format json" in sbom_run,
            "a CycloneDX SBOM is produced in the build (cargo cyclonedx --format json)", sbom_run[:80])
    sbom_copied = any(i.cmd == "COPY" and "--from=builder" in i.args and "sbom" in i.args
                      for i in instrs if i.stage == len(stages) - 1)
    c.check(sbom_copied and any(s.lower() == "sbom" for s in stages),
            "the SBOM is in the runtime image and in an `sbom` stage of its own", f"stages {stages}")
    rv = cargo["package"].get("rust-version", "")
    c.check(bool(rv), "Cargo.toml pins rust-version", "")

    # --- the binary built is the one Cargo.toml declares
    bins = {b.get("name") for b in cargo.get("bin", [])} | {cargo["package"]["name"]}
    built = set()
    for _, a in runs:
        built |= set(re.findall(r"--bin[ =]([A-Za-z0-9_-]+)", a))
    c.check("census-login" in bins and built == {"census-login"},
            "builds the census-login binary Cargo.toml declares",
            f"declared {sorted(bins)}, built {sorted(built)}")

    # --- toolchain new enough for the crate
    args = {}
    for i in instrs:
        if i.cmd == "ARG":
            k, _, v = i.args.partition("=")
            args.setdefault(k.strip(), v.strip().strip('"'))
    rust = args.get("RUST_VERSION", "")
    rv = cargo["package"].get("rust-version")
    c.check(not rv or rust.startswith(rv),
            "the Dockerfile's RUST_VERSION is the toolchain Cargo.toml's rust-version names",
            f"RUST_VERSION={rust!r}, rust-version={rv!r}")
    need = (1, 85) if cargo["package"].get("edition") == "2024" else (1, 70)
    if "rust-version" in cargo["package"]:
        need = max(need, version_tuple(cargo["package"]["rust-version"]))
    c.check(rust and version_tuple(rust) >= need,
            "RUST_VERSION satisfies the crate's edition / rust-version",
            f"RUST_VERSION={rust!r}, need >= {'.'.join(map(str, need))}")
    c.check("target-cpu=x86-64-v3" in args.get("RUSTFLAGS", ""),
            "RUSTFLAGS build ARG sets target-cpu=x86-64-v3", f"RUSTFLAGS={args.get('RUSTFLAGS')!r}")

    # --- runtime stage
    last = len(stages) - 1
    final = [i for i in instrs if i.stage == last]
    base = final[0].args.split()[0] if final else ""
    c.check(base.startswith("gcr.io/distroless/cc-debian12") or re.match(r"debian:\S*-slim", base),
            "runtime image is distroless cc or debian-slim", base)
    users = [i.args for i in final if i.cmd == "USER"]
    uid = users[-1].split(":")[0] if users else ""
    c.check(uid.isdigit() and int(uid) != 0, "runtime runs as a numeric non-root USER",
            f"USER {users[-1] if users else '(none)'}")
    exposed = set()
    for i in final:
        if i.cmd == "EXPOSE":
            exposed |= {p.split("/")[0] for p in i.args.split()}
    ports = {prod["server"]["listen"].rsplit(":", 1)[1], prod["server"]["admin_listen"].rsplit(":", 1)[1]}
    c.check(exposed == ports == {"8080", "9090"}, "EXPOSE matches production.toml listeners",
            f"EXPOSE {sorted(exposed)}, production.toml {sorted(ports)}")
    env = {}
    for i in final:
        if i.cmd == "ENV":
            env.update(parse_kv(i.args))
    conf_dir, conf_env = env.get("CENSUS_CONFIG_DIR"), env.get("CENSUS_ENV")
    copies = [split_flags(i.args)[1] for i in final if i.cmd == "COPY" and "--from" not in i.args]
    baked = any(w[:1] == ["config/production.toml"] and
                w[-1].rstrip("/") in (f"{conf_dir}/{conf_env}.toml", conf_dir) for w in copies)
    c.check(conf_dir == "/etc/census-login" and conf_env == "production" and baked,
            "config baked at $CENSUS_CONFIG_DIR/$CENSUS_ENV.toml",
            f"CENSUS_CONFIG_DIR={conf_dir} CENSUS_ENV={conf_env} copies={copies}")
    listen_ok = all(prod["server"][k].startswith("0.0.0.0:") for k in ("listen", "admin_listen"))
    c.check(listen_ok, "production.toml listens on 0.0.0.0 inside the container",
            f"{prod['server'].get('listen')} / {prod['server'].get('admin_listen')}")
    entry = [i.args for i in final if i.cmd == "ENTRYPOINT"]
    c.check(entry and entry[-1].startswith("["), "ENTRYPOINT in exec form (no shell needed)",
            f"{entry}")
    labels = " ".join(i.args for i in final if i.cmd == "LABEL")
    c.check("org.opencontainers.image.revision" in labels and "org.opencontainers.image.version" in labels,
            "OCI labels (version, revision) set", labels[:80])
    has_hc = any(i.cmd == "HEALTHCHECK" for i in final)
    explained = "HEALTHCHECK" in dockerfile.read_text() and not has_hc
    c.check(has_hc or explained, "HEALTHCHECK present or its absence explained", "")
    return c


# ------------------------------------------------------------------ self-test


def self_test(root: pathlib.Path) -> int:
    """Each mutation of a copy of the repo's build inputs must make some check fail."""
    import shutil
    import tempfile

    mutations = {
        "src/web excluded": (".dockerignore", lambda s: s + "\nsrc/web\n"),
        "Cargo.lock excluded via glob": (".dockerignore", lambda s: s + "\n*.lock\n"),
        "target/ sent": (".dockerignore", lambda s: s.replace("target/\n", "").replace("**/target/\n", "")),
        "sources copied before cook": ("Dockerfile", lambda s: s.replace(
            "COPY --from=planner /app/recipe.json recipe.json",
            "COPY . .\nCOPY --from=planner /app/recipe.json recipe.json")),
        "root user": ("Dockerfile", lambda s: s.replace("USER 65532:65532", "USER root")),
        "a plain cargo build (no embedded dependency list)": ("Dockerfile", lambda s: s.replace("cargo auditable build", "cargo build")),
        "the commit not passed to the build": ("Dockerfile", lambda s: s.replace('CENSUS_GIT_COMMIT="${GIT_COMMIT}"', 'CENSUS_COMMIT="${GIT_COMMIT}"')),
        "no SBOM": ("Dockerfile", lambda s: s.replace("cargo cyclonedx --format json", "true --format json")),
        "an unpinned cargo-auditable": ("Dockerfile", lambda s: re.sub(r"cargo install cargo-auditable --locked --version \S+", "cargo install cargo-auditable", s)),
        "admin port not exposed": ("Dockerfile", lambda s: s.replace("EXPOSE 8080 9090", "EXPOSE 8080")),
        "wrong binary": ("Dockerfile", lambda s: s.replace("--bin census-login", "--bin census")),
        "missing COPY source": ("Dockerfile", lambda s: s.replace(
            "COPY --chown=0:0 --chmod=0444 config/production.toml",
            "COPY --chown=0:0 --chmod=0444 config/prod.toml")),
    }
    # Exceptions must be able to re-include: sanity of the matcher itself.
    di = DockerIgnore.parse("target/\n**/*.md\n!README.md\nsrc/*/x?.rs\n")
    assert di.excluded("target/release/a") == "target/"
    assert di.excluded("docs/a.md") == "**/*.md" and di.excluded("a.md") == "**/*.md"
    assert di.excluded("README.md") is None
    assert di.excluded("src/web/x1.rs") == "src/*/x?.rs" and di.excluded("src/x1.rs") is None
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (rel, fn) in mutations.items():
            work = pathlib.Path(tmp) / re.sub(r"\W+", "_", name)
            for p in ("Dockerfile", ".dockerignore", "Cargo.toml", "Cargo.lock", "build.rs", "config", "src"):
                s = root / p
                if s.is_dir():
                    shutil.copytree(s, work / p)
                elif s.exists():
                    work.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(s, work / p)
            # The mutation must be the only problem: provide src/web if the repo lacks it.
            (work / "src" / "web").mkdir(parents=True, exist_ok=True)
            (work / "src" / "web" / "index.html").touch()
            target = work / rel
            before = target.read_text()
            after = fn(before)
            assert after != before, f"mutation '{name}' did not apply"
            target.write_text(after)
            if run_checks(work).failed():
                print(f"ok - self-test: detects {name}")
            else:
                print(f"FAIL - self-test: {name} went unnoticed")
                failures += 1
    return failures


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        root = pathlib.Path(__file__).resolve().parents[2]
        return 1 if self_test(root) else 0
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
    c = run_checks(root)
    for ok, name, why in c.results:
        print(f"{'ok' if ok else 'FAIL'} - dockerfile: {name}" + ("" if ok else f": {why}"))
    return 1 if c.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
