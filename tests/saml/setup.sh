#!/usr/bin/env bash
# Prints the path of a python with pysaml2 7.5.5 and python-xmlsec 1.3.17 for the test IdP
# (tests/saml/idp.py). python-xmlsec comes as its PyPI wheel only: the wheel bundles libxmlsec1
# 1.3, which has ECDH-ES; a source build would link Debian's 1.2.37, which has not.
#
#   PY="$(tests/saml/setup.sh)"
#
# The first call creates a venv in target/saml-venv from PyPI (~20 s); later calls only
# check it. Concurrent callers (parallel cargo tests) wait for each other (flock).
# Needs python3 with venv (Debian: python3-venv) and Debian's xmlsec1, which pysaml2
# runs to sign, verify and encrypt; tests/all.sh installs both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/target/saml-venv"
PY="$VENV/bin/python"
PINS=(pysaml2==7.5.5 xmlsec==1.3.17 lxml==6.1.3)
die() { echo "tests/saml/setup.sh: $*" >&2; exit 1; }

command -v xmlsec1 >/dev/null || die "xmlsec1 not found: apt-get install -y xmlsec1"
command -v python3 >/dev/null || die "python3 not found: apt-get install -y python3 python3-venv"
ready() {
  "$PY" -c '
import importlib.metadata as m, sys, xmlsec
sys.exit(m.version("pysaml2") != "7.5.5" or m.version("xmlsec") != "1.3.17"
         or xmlsec.get_libxmlsec_version() < (1, 3, 0))' 2>/dev/null
}

mkdir -p "$ROOT/target"
exec 9>"$ROOT/target/saml-venv.lock"
flock 9
if ! ready; then
  python3 -c 'import ensurepip, venv' 2>/dev/null || die "python3's venv module is missing: apt-get install -y python3-venv"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2 || die "python3 -m venv $VENV failed (apt-get install -y python3-venv)"
  "$PY" -m pip install -q --disable-pip-version-check --only-binary xmlsec,lxml "${PINS[@]}" >&2 \
    || die "pip install ${PINS[*]} into $VENV failed (is PyPI reachable? python-xmlsec has wheels for CPython 3.9-3.13 on x86_64/aarch64 Linux)"
  ready || die "${PINS[*]} is not importable from $PY after the install, or its libxmlsec1 is older than 1.3"
fi
echo "$PY"
