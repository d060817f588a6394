#!/usr/bin/env bash
# Self-test of the test IdP (tests/saml/selftest.py): keys, a fake SP metadata, the IdP
# served on loopback, its answers checked with xmlsec1. Run by `cargo test --test saml_idp`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="$("$HERE/setup.sh")"
exec "$PY" "$HERE/selftest.py"
