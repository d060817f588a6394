#!/usr/bin/env bash
# The registry at national scale (issue #14), every figure from one run on this machine,
# against a throwaway redis-server on a free port (no persistence):
#
#   1. registry generate ROWS people to a file                         -> rows/s
#   2. registry import of that file into an empty Redis, under /usr/bin/time -v
#                                                  -> rows/s, peak RSS, its summary
#   3. used_memory after minus before, per person, for the bucketed layout
#   4. the same for the one-key-per-person layout before it (census:{<32 hex>}:acct with
#      mn = 64 hex, rsv), written by a Lua loader in the same Redis
#   5. projection to 38 M: ROWS people in 65,536 x ROWS / 38 M tags, i.e. ~580 per tag
#      as 38 M people give, through the real bucket scripts (lua/registry*.lua); with
#      ROWS >= 38 M the import of step 2 is already at that density and this is skipped
#   6. login and password-definition latency with LATENCY_PEOPLE people in the
#      registry vs ROWS, same service settings (cheap Argon2 so that the store's share
#      shows), median and p95 of sequential requests on one keep-alive connection
#   7. the memory store's bytes per person (examples/registry_memory.rs, counting allocator)
#
#   tests/load/registry-scale.sh           (CENSUS_BIN skips the release build)
#
# Knobs: ROWS (2000000), LATENCY_PEOPLE (300). Report: target/load/registry-scale.json.
# Not part of `cargo test` (minutes, and it measures, it does not judge); it exits 1 if a
# target of the issue is missed.
set -euo pipefail

die() { echo "registry-scale.sh: $*" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
rows=${ROWS:-2000000}
latency_people=${LATENCY_PEOPLE:-300}
out="$root/target/load"
mkdir -p "$out"

for tool in redis-server redis-cli python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: apt-get install redis-server redis-tools python3 curl"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found: apt-get install time"

if [ -z "${CENSUS_BIN:-}" ]; then
  (cd "$root" && nice -n 10 cargo build --release --bin census-login --example registry_memory) || die "build failed"
  bin="$root/target/release/census-login"
else
  bin=$CENSUS_BIN
fi
memory_example="$root/target/release/examples/registry_memory"
[ -x "$memory_example" ] || (cd "$root" && nice -n 10 cargo build --release --example registry_memory) || die "build failed"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/registry-scale.XXXXXX")
redis_pid= svc_pid=
cleanup() {
  for pid in $svc_pid $redis_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp" --save '' --appendonly no \
  --daemonize no --logfile "$tmp/redis.log" &
redis_pid=$!
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
for i in $(seq 1 100); do
  rcli ping 2>/dev/null | grep -q PONG && break
  [ "$i" = 100 ] && die "redis-server did not start"
  sleep 0.1
done
used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
export CENSUS__STORE__BACKEND=redis CENSUS__STORE__REDIS_URL="redis://127.0.0.1:$redis_port"
export CENSUS__SECRETS__PEPPER=registry-scale-pepper CENSUS__REGISTRY__SEED_FILE=""
export CENSUS__OIDC__CLIENTS='[]' CENSUS__LOG__LEVEL=warn

# --- 1. generate --------------------------------------------------------------------------
file="$tmp/registry.csv"
t0=$(now)
"$bin" registry generate --count "$rows" --seed 14 >"$file"
t1=$(now)
generate_rps=$(python3 -c "print(round($rows / ($t1 - $t0)))")
echo "generate: $rows rows in $(python3 -c "print(round($t1 - $t0, 2))") s = $generate_rps rows/s ($(du -h "$file" | cut -f1))"

# --- 6a. latency with only the measured people in the registry ----------------------------
head -n $((latency_people + 1)) "$file" >"$tmp/people.csv"
start_service() {
  local port admin
  port=$(free_port) admin=$(free_port)
  base_url="http://127.0.0.1:$port"
  env CENSUS__SERVER__LISTEN="127.0.0.1:$port" CENSUS__SERVER__ADMIN_LISTEN="127.0.0.1:$admin" \
    CENSUS__PASSWORD__ARGON2_MEMORY_KIB=256 CENSUS__PASSWORD__ARGON2_ITERATIONS=1 \
    CENSUS__RATE_LIMIT__PER_IP_PER_MINUTE=1000000 CENSUS__RATE_LIMIT__BURST=1000000 \
    "$bin" serve >"$tmp/service.log" 2>&1 &
  svc_pid=$!
  for i in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$admin/readyz" 2>/dev/null && return
    kill -0 "$svc_pid" 2>/dev/null || { cat "$tmp/service.log" >&2; die "service exited"; }
    sleep 0.1
  done
  die "service not ready"
}
stop_service() { kill "$svc_pid"; wait "$svc_pid" 2>/dev/null || true; svc_pid=; }
# Defines a password for every person, then logs each in: sequential requests on one
# keep-alive connection, medians and p95 in milliseconds, as JSON.
measure_latency() {
  python3 - "$base_url" "$tmp/people.csv" <<'PY'
import csv, http.client, json, statistics, sys, time, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
# Reserved PESELs cannot define a password (403): the others.
people = [p for p in csv.DictReader(open(sys.argv[2])) if p["reserved"] != "true"]
conn = http.client.HTTPConnection(url.hostname, url.port)
def post(path, body, want):
    t = time.perf_counter()
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    r = conn.getresponse(); r.read()
    if r.status != want:
        sys.exit(f"{path}: {r.status}, expected {want}")
    return (time.perf_counter() - t) * 1000
pw = "Spis2021Scale"
# A warm-up: the connection, the service's store connection, the scripts loaded.
for _ in range(10):
    conn.request("GET", "/api/v1/meta")
    r = conn.getresponse(); r.read()
define = [post("/api/v1/password", {"pesel": p["pesel"], "motherMaidenName": p["mother_maiden_name"],
                                     "password": pw, "passwordRepeat": pw}, 201) for p in people]
login = [post("/api/v1/login", {"pesel": p["pesel"], "password": pw}, 200) for p in people]
q = lambda xs: {"median": round(statistics.median(xs), 3), "p95": round(statistics.quantiles(xs, n=20)[-1], 3)}
print(json.dumps({"define": q(define), "login": q(login)}))
PY
}
"$bin" registry import "$tmp/people.csv" 2>/dev/null
start_service
latency_small=$(measure_latency)
stop_service
rcli flushall >/dev/null
echo "latency with $latency_people people: $latency_small"

# --- 2., 3. import ------------------------------------------------------------------------
before=$(used_memory)
/usr/bin/time -v "$bin" registry import "$file" 2>"$tmp/import.err" || {
  cat "$tmp/import.err" >&2; die "import failed"; }
after=$(used_memory)
summary=$(grep '^imported ' "$tmp/import.err")
peak_kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/import.err")
wall=$(awk '/Elapsed \(wall clock\)/ { print $NF }' "$tmp/import.err")
import_rps=$(echo "$summary" | sed -E 's/.* ([0-9]+) rows\/s\)$/\1/')
bucketed=$(python3 -c "print(round(($after - $before) / $rows, 1))")
keys_bucketed=$(rcli dbsize)
not_listpack=$(rcli --scan --pattern 'census:{*}:r:*' | head -2000 |
  while read -r k; do rcli object encoding "$k"; done | grep -vc listpack || true)
echo "import: $summary; wall $wall; peak RSS $peak_kib KiB"
echo "bucketed layout: $bucketed bytes/person ($keys_bucketed keys; of 2000 buckets sampled, $not_listpack not listpack)"

# --- 6b. latency with ROWS people ---------------------------------------------------------
start_service
latency_full=$(measure_latency)
stop_service
echo "latency with $rows people: $latency_full"
rcli flushall >/dev/null

# --- 4. the one-key-per-person layout -------------------------------------------------------
before=$(used_memory)
chunk=100000
for ((from = 0; from < rows; from += chunk)); do
  rcli eval "
    for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
      local k = string.format('census:{%08x%08x%08x%08x}:acct', i, (i * 2654435761) % 4294967296, (i * 40503) % 4294967296, 7)
      redis.call('HSET', k, 'mn', string.format('%08x', i) .. string.rep('ab', 28), 'rsv', '0')
    end
    return 1" 0 "$from" "$((from + chunk < rows ? from + chunk : rows))" >/dev/null
done
after=$(used_memory)
legacy=$(python3 -c "print(round(($after - $before) / $rows, 1))")
echo "one key per person: $legacy bytes/person"
rcli flushall >/dev/null

# --- 5. 38 M projection: the tag density of 38 M people --------------------------------------
if [ "$rows" -ge 38000000 ]; then
  projected=$bucketed proj_not_listpack=$not_listpack
  echo "38 M projection: skipped, the import above had $rows people"
else
tags=$(python3 -c "print(max(1, round(65536 * $rows / 38000000)))")
before=$(used_memory)
# The real scripts: registry.lua's helpers and registry_upsert.lua's loop, fed generated
# rows instead of ARGV (a local ARGV shadows the global one).
lua="$tmp/project.lua"
chunk=20000
for ((from = 0; from < rows; from += chunk)); do
  python3 - "$root/src/store/lua" "$from" "$chunk" "$tags" >"$lua" <<'PY'
import sys
lua, start, n, tags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(open(f"{lua}/registry.lua").read())
print(f"""local ARGV = {{}}
math.randomseed({start + 1})
for i = 1, {n} do
  local b = {{}}
  for j = 1, 14 do b[j] = string.char(math.random(0, 255)) end
  local c = {{}}
  for j = 1, 8 do c[j] = string.char(math.random(0, 255)) end
  ARGV[#ARGV + 1] = string.format('census:{{%04x}}:r:', math.random(0, {tags - 1}))
  ARGV[#ARGV + 1] = table.concat(b)
  ARGV[#ARGV + 1] = table.concat(c) .. '0'
end""")
print(open(f"{lua}/registry_upsert.lua").read())
PY
  rcli --eval "$lua" >/dev/null
done
after=$(used_memory)
projected=$(python3 -c "print(round(($after - $before) / $rows, 1))")
buckets_per_tag=$(rcli hget 'census:{0000}:r:0' '#')
proj_not_listpack=$(rcli --scan --pattern 'census:{*}:r:*' | head -2000 |
  while read -r k; do rcli object encoding "$k"; done | grep -vc listpack || true)
echo "38 M projection ($tags tags, $((rows / tags)) people per tag): $projected bytes/person, tag 0000 has ${buckets_per_tag:-1} buckets, $proj_not_listpack of 2000 sampled buckets not listpack"
rcli flushall >/dev/null
fi

# --- 7. the memory store ----------------------------------------------------------------------
memory_json=$("$memory_example" "$rows")
echo "memory store: $memory_json"

python3 - "$out/registry-scale.json" <<PY
import json, sys
small, full, mem = json.loads('$latency_small'), json.loads('$latency_full'), json.loads('$memory_json')
report = {
  "rows": $rows,
  "generateRowsPerSecond": $generate_rps,
  "importRowsPerSecond": $import_rps,
  "importSummary": "$summary",
  "importPeakRssKiB": $peak_kib,
  "redisBytesPerPerson": {"bucketed": $bucketed, "oneKeyPerPerson": $legacy, "bucketedAt38MDensity": $projected},
  "bucketsNotListpackOfSampled": [$not_listpack, $proj_not_listpack],
  "memoryStoreBytesPerPerson": mem["bytesPerPerson"],
  "latencyMs": {"people_$latency_people": small, "people_$rows": full},
  "latencyRatio": {k: round(full[k]["median"] / small[k]["median"], 3) for k in ("define", "login")},
}
targets = {
  "import >= 150,000 rows/s": report["importRowsPerSecond"] >= 150000,
  "Redis <= 48 bytes/person": $bucketed <= 48 and $projected <= 48,
  "memory store <= 100 bytes/person": mem["bytesPerPerson"] <= 100,
  "import peak RSS < 100 MiB": $peak_kib < 100 * 1024,
  "generate >= 1 M rows/s": $generate_rps >= 1000000,
}
report["targets"] = targets
json.dump(report, open(sys.argv[1], "w"), indent=2)
print(json.dumps(report, indent=2))
sys.exit(0 if all(targets.values()) else 1)
PY
