#!/usr/bin/env bash
# The whole hand-off on one machine, in one command: census-login (memory store, the demo
# client of config/default.toml) on http://localhost:8080 and the example relying party
# (example-rp.mjs, openid-client) on http://127.0.0.1:8081. Open http://127.0.0.1:8081/,
# log in with a person from config/demo-registry.csv, and see the claims the form gets.
#
#   tests/e2e/example-rp.sh                       # builds census-login (cargo build) first
#   CENSUS_BIN=target/release/census-login tests/e2e/example-rp.sh
#
# Needs node >= 20 with npm (installs tests/e2e/node_modules on first use) and cargo.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

[ -d "$HERE/node_modules" ] || (cd "$HERE" && npm ci --no-audit --no-fund)
BIN="${CENSUS_BIN:-}"
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build --quiet)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/census-login"
fi
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac

# Plain HTTP on this machine: cookies without Secure.
(cd "$ROOT" && CENSUS__SESSION__COOKIE_SECURE=false exec "$BIN" serve) &
SVC=$!
trap 'kill "$SVC" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
node -e '
(async () => {
  for (let i = 0; i < 150; i++) {
    try { if ((await fetch("http://127.0.0.1:9090/readyz")).ok) return; } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  console.error("census-login did not become ready on :9090"); process.exit(1);
})();'
echo "census-login on http://localhost:8080; demo people: config/demo-registry.csv"
node "$HERE/example-rp.mjs"
