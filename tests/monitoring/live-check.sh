#!/usr/bin/env bash
# Live check of the monitoring files against the real service and a real Prometheus.
#
#  1. starts census-login ($CENSUS_BIN, default /work/bin/census-login) with the memory store
#     on free 127.0.0.1 ports, one hashing slot and a one-place queue (easy overload), a
#     per-IP rate limit (300/min, burst 150) that the scripted traffic stays under and one
#     fast burst of requests exceeds, and a short lockout (30 s);
#  2. starts Prometheus (Debian package `prometheus`) on a free 127.0.0.1 port, data in a temp
#     dir, scraping the admin listener's /metrics every second as job="census-login", with
#     k8s/monitoring/alerts.yml loaded as its rule file;
#  3. drives traffic of every outcome with curl (password definition, login ok, wrong
#     password, lock after 5 failures, locked, validation failures, identity not verified,
#     password already defined, reserved PESEL, an overload of ~30 concurrent logins, rate
#     limiting), the PESELs read at run time from config/demo-registry.csv;
#  4. waits for a few scrapes, then queries Prometheus (/api/v1/query) for EVERY dashboard
#     expression ($__rate_interval -> the traffic's duration, at least 1m; $job ->
#     census-login; $instance -> .*) and requires a non-empty, non-NaN answer except for
#     the panels listed in ALLOW_EMPTY below, and a value other than 0 for the panels in
#     REQUIRE_NONZERO (the traffic must show there); EVERY alert expression (as Prometheus loaded
#     it) must be valid and its rule healthy, but may be empty; the metric names and labels
#     of the helper contract are checked too.
#  5. Redis: a real redis-server master (maxmemory 8 MB, noeviction) and a replica, each with a
#     real redis_exporter (Debian package `prometheus-redis-exporter`), scraped as job="redis"
#     with the `namespace` and `pod` labels the Prometheus Operator adds; the Redis rules are
#     loaded with `for: 0s` (their durations are promtool's job, alerts.test.yml). Redis is
#     filled with lock-state-like hashes until RedisMemoryHigh and RedisMemoryCritical fire,
#     then past maxmemory until writes fail with OOM and RedisEvictionsOrOOM fires; the
#     healthy pair must not fire RedisNotOneMaster, RedisMasterWithoutReplicas or
#     RedisReplicaLinkDown. Every dashboard Redis panel is queried like the others.
# One line per check; the last line is "monitoring: N passed, M failed". Exit 1 on failure.
# Everything started here is stopped on exit.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MON="$REPO/k8s/monitoring"
CENSUS_BIN="${CENSUS_BIN:-/work/bin/census-login}"
REGISTRY="${REGISTRY:-$REPO/config/demo-registry.csv}"
PROMETHEUS="${PROMETHEUS:-prometheus}"
REDIS_EXPORTER="${REDIS_EXPORTER:-prometheus-redis-exporter}"

# Dashboard panels that may legitimately be empty after a short run with the memory store,
# as "panel title=reason".
ALLOW_EMPTY=(
    "Store errors by operation=the memory store never fails, and census_store_errors_total{op} only appears after a first error"
)
# Contract metrics that may be absent in such a run, as "metric=reason".
ALLOW_ABSENT=(
    "census_store_errors_total=labelled by op, it only appears after a first store error, which the memory store never has"
)
# Panels the traffic below must move (a value other than 0 within the rate window): a
# counter that exists but never increases would otherwise pass as "non-empty".
REQUIRE_NONZERO=(
    "Logins/s (ok)"
    "Error ratio (5xx)"
    "Logins per second by outcome"
    "API responses by status"
    "Locks started per minute by level"
    "Shed requests (503 overloaded)"
    "Rate-limited requests"
    "CPU per replica"
    "Redis memory used / maxmemory"
    "Redis keys"
)

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
die() {
    echo "FAIL $*" >&2
    failed=$((failed + 1))
    exit 1
}

SVC_PID=""
PROM_PID=""
REDIS_PIDS=()
TMP="$(mktemp -d)"
stop() { # pid
    local pid="$1" i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
cleanup() {
    local rc=$?
    stop "$SVC_PID"
    stop "$PROM_PID"
    local p
    for p in "${REDIS_PIDS[@]}"; do stop "$p"; done
    if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
        [ -f "$TMP/census.log" ] && { echo "--- census-login log (last 20 lines)"; tail -n 20 "$TMP/census.log"; }
        [ -f "$TMP/prometheus.log" ] && { echo "--- prometheus log (last 10 lines)"; tail -n 10 "$TMP/prometheus.log"; }
    fi
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
    echo "monitoring: $passed passed, $failed failed"
    if [ "$failed" -gt 0 ] && [ "$rc" -eq 0 ]; then rc=1; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ tools
command -v "$PROMETHEUS" >/dev/null 2>&1 || die "prometheus not found: apt-get install prometheus"
command -v curl >/dev/null 2>&1 || die "curl not found: apt-get install curl"
command -v redis-server >/dev/null 2>&1 || die "redis-server not found: apt-get install redis-server"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found: apt-get install redis-tools"
command -v "$REDIS_EXPORTER" >/dev/null 2>&1 || die "$REDIS_EXPORTER not found: apt-get install prometheus-redis-exporter"
command -v python3 >/dev/null 2>&1 || die "python3 not found: apt-get install python3"
[ -x "$CENSUS_BIN" ] || die "census-login binary not found at $CENSUS_BIN (build it: cargo build --release; set CENSUS_BIN)"
[ -r "$REGISTRY" ] || die "registry $REGISTRY not readable"

# ------------------------------------------------------------------ registry rows (read at run time)
mapfile -t FREE_ROWS < <(tail -n +2 "$REGISTRY" | tr -d '\r' | awk -F, 'NF >= 2 && $1 != "" && $3 != "true" { print $1 "," $2 }')
mapfile -t RESERVED_ROWS < <(tail -n +2 "$REGISTRY" | tr -d '\r' | awk -F, 'NF >= 3 && $3 == "true" { print $1 "," $2 }')
[ "${#FREE_ROWS[@]}" -ge 40 ] || die "registry $REGISTRY needs at least 40 unreserved rows, has ${#FREE_ROWS[@]}"
[ "${#RESERVED_ROWS[@]}" -ge 1 ] || die "registry $REGISTRY has no reserved row"
pesel() { echo "${1%%,*}"; }
maiden() { echo "${1#*,}"; }
A_PESEL="$(pesel "${FREE_ROWS[0]}")"; A_NAME="$(maiden "${FREE_ROWS[0]}")"   # defines a password, logs in
B_PESEL="$(pesel "${FREE_ROWS[1]}")"                                          # gets locked
C_PESEL="$(pesel "${FREE_ROWS[2]}")"                                          # wrong maiden name
# rows 3..32: the overload logins; row 35: a second password definition
D_PESEL="$(pesel "${FREE_ROWS[36]}")"                                         # gets locked later
R_PESEL="$(pesel "${RESERVED_ROWS[0]}")"; R_NAME="$(maiden "${RESERVED_ROWS[0]}")"
PASSWORD="Spisowe${RANDOM}Haslo7"

# ------------------------------------------------------------------ ports
read -r PUB_PORT ADMIN_PORT PROM_PORT R0_PORT R1_PORT E0_PORT E1_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(7)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')
PUB="http://127.0.0.1:$PUB_PORT"
ADMIN="http://127.0.0.1:$ADMIN_PORT"
PROM="http://127.0.0.1:$PROM_PORT"

# ------------------------------------------------------------------ census-login
mkdir -p "$TMP/config" "$TMP/run"
(
    cd "$TMP/run" || exit 1
    exec env -u CENSUS_ENV \
        CENSUS_CONFIG_DIR="$TMP/config" \
        CENSUS__SERVER__LISTEN="127.0.0.1:$PUB_PORT" \
        CENSUS__SERVER__ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
        CENSUS__SERVER__PUBLIC_ORIGIN="$PUB" \
        CENSUS__STORE__BACKEND=memory \
        CENSUS__REGISTRY__SEED_FILE="$REGISTRY" \
        CENSUS__SESSION__COOKIE_SECURE=false \
        CENSUS__LOCKOUT__BASE_BLOCK=30s \
        CENSUS__PASSWORD__MAX_CONCURRENT_HASHES=1 \
        CENSUS__PASSWORD__MAX_QUEUED_HASHES=1 \
        CENSUS__RATE_LIMIT__PER_IP_PER_MINUTE=300 \
        CENSUS__RATE_LIMIT__BURST=150 \
        CENSUS__SECRETS__PEPPER="live-check-pepper-$RANDOM$RANDOM" \
        CENSUS__SECRETS__ADMIN_TOKEN="live-check-token-$RANDOM$RANDOM" \
        "$CENSUS_BIN" serve
) >"$TMP/census.log" 2>&1 &
SVC_PID=$!

ready=""
for _ in $(seq 150); do
    kill -0 "$SVC_PID" 2>/dev/null || break
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN/readyz")" = "200" ]; then ready=1; break; fi
    sleep 0.2
done
[ -n "$ready" ] || die "census-login ready on $ADMIN/readyz within 30 s"
pass "census-login started ($CENSUS_BIN, public $PUB, admin $ADMIN)"
curl -s "$ADMIN/metrics" >"$TMP/metrics.txt"
if grep -q '^census_' "$TMP/metrics.txt"; then
    pass "admin /metrics serves census_* metrics"
else
    fail "admin /metrics serves census_* metrics (got $(wc -l <"$TMP/metrics.txt") lines)"
fi

# ------------------------------------------------------------------ redis + redis_exporter
# A master with a small maxmemory (filled below) and its replica, each with an exporter.
REDIS_MAXMEMORY=$((8 * 1024 * 1024))
for i in 0 1; do
    port_var="R${i}_PORT"
    mkdir -p "$TMP/redis-$i"
    extra=()
    [ "$i" = 1 ] && extra=(--replicaof 127.0.0.1 "$R0_PORT")
    redis-server --port "${!port_var}" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP/redis-$i" \
        --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy noeviction "${extra[@]}" >"$TMP/redis-$i.log" 2>&1 &
    REDIS_PIDS+=("$!")
done
for _ in $(seq 50); do
    [ "$(redis-cli -p "$R0_PORT" ping 2>/dev/null)" = PONG ] && [ "$(redis-cli -p "$R1_PORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
for i in 0 1; do
    port_var="R${i}_PORT" eport_var="E${i}_PORT"
    "$REDIS_EXPORTER" --redis.addr="redis://127.0.0.1:${!port_var}" \
        --web.listen-address="127.0.0.1:${!eport_var}" >"$TMP/exporter-$i.log" 2>&1 &
    REDIS_PIDS+=("$!")
done
for _ in $(seq 50); do
    curl -s "http://127.0.0.1:$E0_PORT/metrics" | grep -q '^redis_up 1' &&
        curl -s "http://127.0.0.1:$E1_PORT/metrics" | grep -q '^redis_up 1' && break
    sleep 0.2
done
if curl -s "http://127.0.0.1:$E1_PORT/metrics" | grep -q '^redis_up 1'; then
    pass "redis-server master :$R0_PORT (maxmemory 8 MB) + replica :$R1_PORT, $("$REDIS_EXPORTER" --version 2>&1 | grep -o 'Exporter [0-9.]*') on :$E0_PORT, :$E1_PORT"
else
    die "redis_exporter reports redis_up 1 within 10 s"
fi

# ------------------------------------------------------------------ prometheus
# The Redis rules without their `for:` durations (promtool tests those): the fill below
# must make them fire within seconds.
python3 - "$MON/alerts.yml" "$TMP/alerts-live.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for g in doc["groups"]:
    if g["name"] == "redis":
        for r in g["rules"]:
            r["for"] = "0s"
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
PY
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $TMP/alerts-live.yml
scrape_configs:
  # The labels the Prometheus Operator gives targets: namespace (and pod for Redis).
  - job_name: census-login
    static_configs:
      - targets: ["127.0.0.1:$ADMIN_PORT"]
        labels: {namespace: census}
  - job_name: redis
    static_configs:
      - targets: ["127.0.0.1:$E0_PORT"]
        labels: {namespace: census, pod: redis-0}
      - targets: ["127.0.0.1:$E1_PORT"]
        labels: {namespace: census, pod: redis-1}
EOF
"$PROMETHEUS" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
ready=""
for _ in $(seq 150); do
    kill -0 "$PROM_PID" 2>/dev/null || break
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$PROM/-/ready")" = "200" ]; then ready=1; break; fi
    sleep 0.2
done
[ -n "$ready" ] || die "prometheus ready on $PROM within 30 s"
up=""
for _ in $(seq 60); do
    if curl -s "$PROM/api/v1/query" --data-urlencode 'query=up{job="census-login"} == 1' | grep -q '"value"'; then up=1; break; fi
    sleep 0.5
done
[ -n "$up" ] || die "prometheus scrapes census-login (up == 1) within 30 s"
pass "prometheus $($PROMETHEUS --version 2>&1 | head -1 | cut -d' ' -f3) scrapes $ADMIN/metrics every 1s as job=census-login"
sleep 2

# ------------------------------------------------------------------ traffic
START=$(date +%s)
JAR="$TMP/cookies"
post() { # path json [curl args...] -> prints the HTTP status
    local path="$1" body="$2"; shift 2
    curl -s -o "$TMP/body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$body" "$@" "$PUB$path" || true
}
get() { # path [curl args...]
    local path="$1"; shift
    curl -s -o "$TMP/body" -w '%{http_code}' "$@" "$PUB$path" || true
}
expect() { # description expected actual
    if [ "$3" = "$2" ]; then pass "traffic: $1 -> $3"; else fail "traffic: $1 -> $3 (expected $2; body: $(head -c 300 "$TMP/body" 2>/dev/null))"; fi
}
define_body() { # pesel maiden password
    printf '{"pesel":"%s","motherMaidenName":"%s","password":"%s","passwordRepeat":"%s"}' "$1" "$2" "$3" "$3"
}
login_body() { printf '{"pesel":"%s","password":"%s"}' "$1" "$2"; }
phase() { sleep 1.5; } # lets Prometheus scrape between phases, so rates see increases

expect "GET /api/v1/meta" 200 "$(get /api/v1/meta)"
expect "define password (registry row 1)" 201 "$(post /api/v1/password "$(define_body "$A_PESEL" "$A_NAME" "$PASSWORD")")"
phase
expect "login ok" 200 "$(post /api/v1/login "$(login_body "$A_PESEL" "$PASSWORD")" -c "$JAR")"
expect "GET /api/v1/session" 200 "$(get /api/v1/session -b "$JAR")"
expect "logout" 204 "$(post /api/v1/logout '{}' -b "$JAR")"
phase
expect "login with a wrong password" 401 "$(post /api/v1/login "$(login_body "$A_PESEL" "Wrong${PASSWORD}")")"
phase
lock() { # pesel: 6 wrong logins, the 5th locks, the 6th is refused as locked
    local codes="" i
    for i in 1 2 3 4 5 6; do
        codes="$codes $(post /api/v1/login "$(login_body "$1" "NotThePassword${i}")")"
    done
    expect "6 wrong logins for one PESEL (5th locks, 6th is locked)" " 401 401 401 401 423 423" "$codes"
}
lock "$B_PESEL"
phase
expect "login with a malformed PESEL (validation)" 422 "$(post /api/v1/login "$(login_body "123" "$PASSWORD")")"
expect "define with a weak password (validation)" 422 "$(post /api/v1/password "$(define_body "$C_PESEL" "Nowak" "abc")")"
expect "define with a wrong maiden name" 401 "$(post /api/v1/password "$(define_body "$C_PESEL" "Niepasujaca" "$PASSWORD")")"
expect "define again for the same PESEL" 409 "$(post /api/v1/password "$(define_body "$A_PESEL" "$A_NAME" "$PASSWORD")")"
expect "define for a reserved PESEL" 403 "$(post /api/v1/password "$(define_body "$R_PESEL" "$R_NAME" "$PASSWORD")")"
phase

# Overload: ~30 concurrent logins (distinct PESELs without a password: each one costs a
# dummy-hash verification) against 1 hashing slot + 1 queue place -> 503 overloaded.
# Two rounds a few scrapes apart: the first creates the 503 series, the second makes them
# increase (a counter's first appearance is not an increase for rate()).
overload() { # round -> prints the number of 503s
    local round="$1" i row pids=()
    for i in $(seq 0 29); do
        row="${FREE_ROWS[$((3 + i))]}"
        curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Type: application/json' \
            --data-binary "$(login_body "$(pesel "$row")" "Overload${round}x${i}Z")" \
            "$PUB/api/v1/login" >"$TMP/ov.$round.$i" 2>/dev/null &
        pids+=("$!")
    done
    for i in "${pids[@]}"; do wait "$i"; done
    echo "     overload round $round: $(cat "$TMP"/ov."$round".* | sort | uniq -c | awk '{printf "%s x%s, ", $2, $1}' | sed 's/, $//')" >&2
    cat "$TMP"/ov."$round".* | grep -c '^503$'
}
n503_1=$(overload 1)
phase
n503_2=$(overload 2)
if [ "$n503_1" -gt 0 ] && [ "$n503_2" -gt 0 ]; then
    pass "traffic: 2 rounds of 30 concurrent logins with 1 hashing slot -> $n503_1 + $n503_2 x 503 overloaded"
else
    fail "traffic: 2 rounds of 30 concurrent logins with 1 hashing slot -> $n503_1 + $n503_2 x 503 overloaded (expected some in each round)"
fi
phase
expect "login ok again" 200 "$(post /api/v1/login "$(login_body "$A_PESEL" "$PASSWORD")")"
expect "define password (another registry row)" 201 \
    "$(post /api/v1/password "$(define_body "$(pesel "${FREE_ROWS[35]}")" "$(maiden "${FREE_ROWS[35]}")" "$PASSWORD")")"
lock "$D_PESEL" # a second lock, scrapes after the first: the lock rate is not 0
phase

# Rate limiting: 300 requests over one connection exceed burst 150 + 5/s; a second burst
# of 100 a few scrapes later makes the rate-limited rate visible (a counter's first
# appearance is not an increase for rate()).
burst() { # n
    local _
    for _ in $(seq "$1"); do
        printf 'url = "%s/api/v1/login"\noutput = "/dev/null"\n' "$PUB"
    done >"$TMP/ratelimit.curl"
    curl -s -K "$TMP/ratelimit.curl" -X POST -H 'Content-Type: application/json' \
        --data-binary "$(login_body "123" "$PASSWORD")" -w '%{http_code}\n' 2>/dev/null || true
}
burst 300 >"$TMP/ratelimit.codes"
phase
burst 100 >>"$TMP/ratelimit.codes"
n429=$(grep -c '^429$' "$TMP/ratelimit.codes")
echo "     rate limit bursts: $(sort "$TMP/ratelimit.codes" | uniq -c | awk '{printf "%s x%s, ", $2, $1}' | sed 's/, $//')"
if [ "$n429" -gt 0 ]; then
    pass "traffic: 2 bursts of rapid requests from one IP -> $n429 x 429 rate_limited"
else
    fail "traffic: 2 bursts of rapid requests from one IP -> no 429 rate_limited"
fi

# ------------------------------------------------------------------ fill Redis
# Lock-state-like hashes (the key and fields of census:{<t>}:<r>:lock) until used_memory passes
# 92% of maxmemory, then writes past maxmemory in two rounds a few scrapes apart (a
# counter's first appearance is not an increase): each is refused with -OOM.
used_ratio() {
    redis-cli -p "$R0_PORT" info memory | tr -d '\r' | awk -F: '
        $1 == "used_memory" {u = $2} $1 == "maxmemory" {m = $2} END {printf "%.3f", u / m}'
}
fill() { # first count
    python3 -c '
import sys
first, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(first, first + n):
    h = "%032x" % (i * 2654435761 % 2**128)
    k = "census:{%s}:%s:lock" % (h[:4], h[4:])
    args = ["HSET", k, "f", "1", "l", "0", "u", "0", "lf", "1796057319945"]
    sys.stdout.write("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args))
    args = ["PEXPIRE", k, "86400000"]
    sys.stdout.write("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args))
' "$1" "$2" | redis-cli -p "$R0_PORT" --pipe >"$TMP/fill.out" 2>&1
}
keys=0
while [ "$(used_ratio | awk '{print ($1 < 0.92)}')" = 1 ] && [ "$keys" -lt 400000 ]; do
    fill "$keys" 5000
    keys=$((keys + 5000))
done
ratio=$(used_ratio)
echo "     redis: $keys lock-like hashes -> used_memory $ratio of maxmemory"
sleep 3
fill "$keys" 2000
oom1=$(grep -o 'errors: [0-9]*' "$TMP/fill.out" | grep -o '[0-9]*')
sleep 3
fill $((keys + 2000)) 2000
oom2=$(grep -o 'errors: [0-9]*' "$TMP/fill.out" | grep -o '[0-9]*')
if [ "${oom1:-0}" -gt 0 ] && [ "${oom2:-0}" -gt 0 ]; then
    pass "redis: filled to $ratio of maxmemory with $keys hashes, then $oom1 + $oom2 writes refused with OOM"
else
    fail "redis: filled to $ratio of maxmemory with $keys hashes, then writes refused with OOM (errors: ${oom1:-?}, ${oom2:-?})"
fi

# ------------------------------------------------------------------ query everything
sleep 5 # several scrapes and rule evaluations after the last request
ELAPSED=$(($(date +%s) - START))
RATE_SECS=$((ELAPSED + 15))
[ "$RATE_SECS" -lt 60 ] && RATE_SECS=60
echo "     traffic took ${ELAPSED}s; \$__rate_interval -> ${RATE_SECS}s"

args=(live --dashboard "$MON/grafana-dashboard.json" --alerts "$MON/alerts.yml"
      --prometheus "$PROM" --rate-interval "${RATE_SECS}s")
for x in "${ALLOW_EMPTY[@]}"; do args+=(--allow-empty "$x"); done
for x in "${ALLOW_ABSENT[@]}"; do args+=(--allow-absent "$x"); done
for x in "${REQUIRE_NONZERO[@]}"; do args+=(--require-nonzero "$x"); done
python3 "$HERE/monitoring.py" "${args[@]}" >"$TMP/live" 2>&1
grep -v '^__counts ' "$TMP/live"
read -r p f < <(sed -n 's/^__counts //p' "$TMP/live")
if [ -z "${p:-}" ]; then
    fail "query checks ran (python3 error above)"
else
    passed=$((passed + p)); failed=$((failed + f))
fi
kill -0 "$SVC_PID" 2>/dev/null && pass "census-login still running after the checks" || fail "census-login still running after the checks"

# ------------------------------------------------------------------ Redis alerts, as Prometheus evaluates them
firing() { # -> names of firing alerts, one per line ("name pod")
    curl -s "$PROM/api/v1/alerts" | python3 -c '
import json, sys
for a in json.load(sys.stdin)["data"]["alerts"]:
    if a["state"] == "firing":
        print(a["labels"]["alertname"], a["labels"].get("pod", "-"))'
}
want=(RedisMemoryHigh RedisMemoryCritical RedisEvictionsOrOOM)
for _ in $(seq 30); do
    firing >"$TMP/firing"
    missing=0
    for a in "${want[@]}"; do grep -q "^$a redis-0$" "$TMP/firing" || missing=1; done
    [ "$missing" = 0 ] && break
    sleep 1
done
for a in "${want[@]}"; do
    if grep -q "^$a redis-0$" "$TMP/firing"; then
        pass "alert $a fires for redis-0 (Prometheus /api/v1/alerts, real redis_exporter)"
    else
        fail "alert $a fires for redis-0: firing now: $(tr '\n' ',' <"$TMP/firing")"
    fi
done
for a in RedisNotOneMaster RedisMasterWithoutReplicas RedisReplicaLinkDown RedisDown RedisRejectedConnections; do
    if grep -q "^$a " "$TMP/firing"; then
        fail "alert $a stays silent for a healthy master and replica: it fires"
    else
        pass "alert $a stays silent for a healthy master and replica"
    fi
done
