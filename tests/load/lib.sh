# Shared by run.sh and capacity.sh (sourced, not run): starts a throwaway redis-server
# and census-login on free ports with a generated registry, stops both on exit, and
# writes the service's footprint. Expects: root, bin, scenario; sets: out, tmp,
# redis_port, redis_pid, svc_pid, base_url, admin_url, admin_token, people, log.
# Extra processes to stop on exit go in extra_pids.

out="${out:-$root/target/load}" # a caller may choose another folder
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/census-load.XXXXXX")
redis_pid=
svc_pid=

cleanup() {
  local pid
  for pid in $svc_pid $redis_pid ${extra_pids:-}; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1, from the kernel (bind to port 0): a random guess can hit
# a port held by one of k6's thousands of client connections.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' ||
    die "no free port found"
}
random_hex() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# --- Redis ------------------------------------------------------------------------------
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp" --save '' --appendonly no \
  --protected-mode yes --daemonize no --logfile "$tmp/redis.log" &
redis_pid=$!
redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null
  fi
}
for i in $(seq 1 100); do
  redis_up && break
  kill -0 "$redis_pid" 2>/dev/null || { cat "$tmp/redis.log" >&2; die "redis-server exited"; }
  [ "$i" = 100 ] && die "redis-server did not answer on port $redis_port"
  sleep 0.1
done

# --- registry of demo people --------------------------------------------------------------
registry_count=${REGISTRY_COUNT:-10000}
registry_seed=${REGISTRY_SEED:-2021}
people="$out/people.csv"
"$bin" registry generate --count "$registry_count" --seed "$registry_seed" >"$people.tmp" ||
  die "census-login registry generate failed"
mv "$people.tmp" "$people"
head -1 "$people" | grep -q '^pesel,mother_maiden_name' || die "$people: unexpected header: $(head -1 "$people")"

# --- the service ----------------------------------------------------------------------------
pepper=$(random_hex)
admin_token=$(random_hex)
# The census form as a relying party (census-day.js arrives through it); its secret and
# the provider's signing key are random per run.
oidc_client_id=census-form-load
oidc_client_secret=$(random_hex)
oidc_secret_sha256=$(printf %s "$oidc_client_secret" | sha256sum | cut -d' ' -f1)
oidc_clients="[{id=\"$oidc_client_id\", secret_sha256=\"$oidc_secret_sha256\", redirect_uris=[\"https://form.load.test/callback\"]}]"
command -v openssl >/dev/null 2>&1 || die "openssl not found: apt-get install openssl"
oidc_signing_key=$(openssl ecparam -name prime256v1 -genkey -noout) || die "openssl could not make a P-256 key"
# start_service: census-login on fresh free ports, ready; CENSUS_LOG_LEVEL (default warn)
# and log_name choose its log. stop_service: SIGTERM, wait.
start_service() {
  port=$(free_port)
  admin_port=$(free_port)
  [ "$admin_port" != "$port" ] || admin_port=$(free_port)
  base_url="http://127.0.0.1:$port"
  admin_url="http://127.0.0.1:$admin_port"
  log="$out/${log_name:-$scenario}-service.log"
  env CENSUS__SERVER__LISTEN="127.0.0.1:$port" \
      CENSUS__SERVER__ADMIN_LISTEN="127.0.0.1:$admin_port" \
      CENSUS__SERVER__PUBLIC_ORIGIN="$base_url" \
      CENSUS__SERVER__TRUSTED_PROXIES='["127.0.0.1/32"]' \
      CENSUS__SESSION__COOKIE_SECURE=false \
      CENSUS__STORE__BACKEND=redis \
      CENSUS__OIDC__CLIENTS="$oidc_clients" \
      CENSUS__SECRETS__OIDC_SIGNING_KEYS="$oidc_signing_key" \
      CENSUS__STORE__REDIS_URL="redis://127.0.0.1:$redis_port" \
      CENSUS__SECRETS__PEPPER="$pepper" \
      CENSUS__SECRETS__ADMIN_TOKEN="$admin_token" \
      CENSUS__REGISTRY__SEED_FILE="$people" \
      CENSUS__LOG__FORMAT=json \
      CENSUS__LOG__LEVEL="${CENSUS_LOG_LEVEL:-warn}" \
      "$bin" serve >"$log" 2>&1 &
  svc_pid=$!
  local ready=0
  for _ in $(seq 1 1200); do   # up to 120 s (the registry is loaded at start)
    if curl -fsS -o /dev/null --max-time 2 "$admin_url/readyz" 2>/dev/null; then ready=1; break; fi
    kill -0 "$svc_pid" 2>/dev/null || { tail -20 "$log" >&2; die "census-login exited during start-up (log: $log)"; }
    sleep 0.1
  done
  [ "$ready" = 1 ] || { tail -20 "$log" >&2; die "census-login not ready after 120 s (log: $log)"; }
  echo "${log_tag:-run.sh}: census-login ready on $base_url (admin $admin_url), redis on $redis_port, registry $registry_count people"
}
stop_service() {
  kill -TERM "$svc_pid" 2>/dev/null || true
  wait "$svc_pid" 2>/dev/null || true
  svc_pid=
}
start_service

# write_footprint NAME K6_EXIT_CODE: the service's RSS, CPU and hashing counters after
# a k6 run, as $out/NAME-service.json (and its /metrics as $out/NAME-metrics.txt).
write_footprint() {
  local scenario=$1 rc=$2
  curl -fsS --max-time 5 "$admin_url/metrics" >"$out/$scenario-metrics.txt" 2>/dev/null || true
  metric() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF; f = 1 } END { if (f) printf "%.6g", s; else printf "null" }' "$out/$scenario-metrics.txt"; }
  hwm=null rss=null cpu=null
  if [ -r "/proc/$svc_pid/status" ]; then
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$svc_pid/status")
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$svc_pid/status")
    # utime + stime (fields 14, 15 of /proc/PID/stat, after the parenthesised name) in clock ticks
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$svc_pid/stat")
  fi
  alive=false
  kill -0 "$svc_pid" 2>/dev/null && alive=true
  cat >"$out/$scenario-service.json" <<JSON
{
  "scenario": "$scenario",
  "k6ExitCode": $rc,
  "serviceAliveAtEnd": $alive,
  "peakResidentKiB": ${hwm:-null},
  "residentAtEndKiB": ${rss:-null},
  "cpuSeconds": ${cpu:-null},
  "hashSlots": $(metric census_hash_slots),
  "hashQueueCapacity": $(metric census_hash_queue_capacity),
  "hashesDone": $(metric census_hash_duration_seconds_count),
  "hashSecondsTotal": $(metric census_hash_duration_seconds_sum),
  "hashRejected": $(metric census_hash_rejected_total),
  "rateLimited": $(metric census_rate_limited_total),
  "storeErrors": $(metric census_store_errors_total),
  "registryPeople": $registry_count,
  "cpus": $(getconf _NPROCESSORS_ONLN),
  "loadAvg1mBefore": $load_before,
  "loadAvg1mAfter": $load_after
}
JSON
}
