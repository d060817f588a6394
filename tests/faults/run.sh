#!/usr/bin/env bash
# Fault injection against real processes under a k6 load (issue #15):
#
#   tests/faults/run.sh            about 2 minutes; exits 0 only if every verdict holds
#
# Starts its own redis-server (AOF, fsync always) and census-login replicas A and B on
# loopback (and C in a network namespace of its own, when `ip netns add` works here),
# runs tests/faults/faults.js (definitions, logins, wrong passwords, round-robin over
# the replicas) and injects, one after the other:
#   kill      SIGKILL of replica A; restarted 6 s later
#   redis     redis-server SIGKILLed, restarted 5 s later on the same port and data
#   slow      redis-server paused (SIGSTOP) for 4 s
#   oom       maxmemory below what Redis holds, with noeviction, for 5 s
#   partition C's link to Redis cut (the host end of its veth down) for 5 s, while
#             clients still reach C
# Each fault is logged as NAME_start (injected), NAME_stop (about to be undone) and
# NAME_end (undone). Then tests/faults/verdict.py judges every request against the fault
# going on when it was sent, asks the admin API about every acknowledged definition, and
# reads the replicas' memory samples and logs. Outputs in target/faults/.
# Builds the release binary unless CENSUS_BIN points at one. Sends traffic only to
# 127.0.0.1 and to the addresses of its own namespace (10.200.N.x), and ends only the
# processes it started.
set -euo pipefail

die() { echo "faults/run.sh: $*" >&2; exit 2; }
log_tag=faults/run.sh
say() { echo "$log_tag: $*"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

for tool in k6 redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run tests/all.sh as root (it installs the test tools)"
done
if [ -n "${CENSUS_BIN:-}" ]; then
  bin=$CENSUS_BIN
  [ -x "$bin" ] || die "CENSUS_BIN=$bin is not an executable file"
else
  (cd "$root" && cargo build --release)
  bin="$root/target/release/census-login"
fi

out="$root/target/faults"
mkdir -p "$out"
rm -f "$out"/faults-*
scenario=faults
# Cheap hashing (the faults are about the store, not Argon2) and the store timeout the
# verdicts are measured against.
export CENSUS__PASSWORD__ARGON2_MEMORY_KIB=4096 CENSUS__PASSWORD__ARGON2_ITERATIONS=1
export CENSUS__STORE__TIMEOUT=1s
# The demo OpenID client is refused with Redis; replicas started here need none.
export CENSUS__OIDC__CLIENTS="[]"
export REGISTRY_COUNT=${REGISTRY_COUNT:-3000}
extra_pids=
log_name=faults-a
# shellcheck source=tests/load/lib.sh
source "$root/tests/load/lib.sh" # redis-server and replica A; its cleanup stops them
a_pid=$svc_pid a_url=$base_url a_admin=$admin_url a_port=$port a_admin_port=$admin_port
extra_pids="$a_pid"
log_name=faults-b start_service
b_pid=$svc_pid b_url=$base_url b_admin=$admin_url
extra_pids="$extra_pids $b_pid"
svc_pid=

now_ms() { date +%s%3N; }
event() { echo "$1 $(now_ms)" >>"$out/faults-events.txt"; say "$(date +%T) $1"; }
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# Durable Redis from here on: every acknowledged write is on disk before the reply.
rcli CONFIG SET appendonly yes >/dev/null
rcli CONFIG SET appendfsync always >/dev/null
rcli CONFIG SET protected-mode no >/dev/null # bound to loopback and our namespace only
for _ in $(seq 1 100); do
  rcli INFO persistence | grep -q '^aof_rewrite_in_progress:0' && break
  sleep 0.1
done

ns= c_pid= c_url= c_admin= client_link= redis_link= sampler_pid= k6_pid=
# lib.sh's cleanup (replicas, Redis, temp dir), after what only this script starts.
faults_cleanup() {
  [ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null || true
  [ -z "$k6_pid" ] || kill "$k6_pid" 2>/dev/null || true
  kill -CONT "$redis_pid" 2>/dev/null || true
  cleanup
  if [ -n "$ns" ]; then
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$client_link" 2>/dev/null || true
    ip link del "$redis_link" 2>/dev/null || true
  fi
}
trap faults_cleanup EXIT

# --- replica C in a network namespace of its own (if this machine allows one) ----------
redis_bind="127.0.0.1"
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 && ip netns add "census-faults-$$" 2>/dev/null; then
  ns="census-faults-$$"
  n=$((20 + $$ % 200))
  client_link="cf$$c" redis_link="cf$$r"
  ip link add "$client_link" type veth peer name "${client_link}n"
  ip link add "$redis_link" type veth peer name "${redis_link}n"
  ip link set "${client_link}n" netns "$ns"
  ip link set "${redis_link}n" netns "$ns"
  ip addr add "10.200.$n.1/30" dev "$client_link"
  ip addr add "10.200.$n.5/30" dev "$redis_link"
  ip link set "$client_link" up
  ip link set "$redis_link" up
  ip netns exec "$ns" ip addr add "10.200.$n.2/30" dev "${client_link}n"
  ip netns exec "$ns" ip addr add "10.200.$n.6/30" dev "${redis_link}n"
  ip netns exec "$ns" ip link set "${client_link}n" up
  ip netns exec "$ns" ip link set "${redis_link}n" up
  ip netns exec "$ns" ip link set lo up
  redis_bind="127.0.0.1 10.200.$n.5"
  rcli CONFIG SET bind "$redis_bind" >/dev/null
  c_port=$(free_port) c_admin_port=$(free_port)
  c_url="http://10.200.$n.2:$c_port" c_admin="http://10.200.$n.2:$c_admin_port"
  env CENSUS__SERVER__LISTEN="10.200.$n.2:$c_port" \
      CENSUS__SERVER__ADMIN_LISTEN="10.200.$n.2:$c_admin_port" \
      CENSUS__SERVER__PUBLIC_ORIGIN="$a_url" \
      CENSUS__SERVER__TRUSTED_PROXIES='["10.200.0.0/16"]' \
      CENSUS__SESSION__COOKIE_SECURE=false \
      CENSUS__STORE__BACKEND=redis \
      CENSUS__STORE__REDIS_URL="redis://10.200.$n.5:$redis_port" \
      CENSUS__SECRETS__PEPPER="$pepper" \
      CENSUS__SECRETS__ADMIN_TOKEN="$admin_token" \
      CENSUS__REGISTRY__SEED_FILE= \
      CENSUS__LOG__FORMAT=json CENSUS__LOG__LEVEL=warn \
      ip netns exec "$ns" "$bin" serve >"$out/faults-c-service.log" 2>&1 &
  c_pid=$!
  extra_pids="$extra_pids $c_pid"
  for i in $(seq 1 200); do
    curl -fsS -o /dev/null --max-time 2 "$c_admin/readyz" 2>/dev/null && break
    kill -0 "$c_pid" 2>/dev/null || die "replica C exited (log: $out/faults-c-service.log)"
    [ "$i" = 200 ] && die "replica C not ready"
    sleep 0.1
  done
  say "replica C ready on $c_url, in namespace $ns, Redis through 10.200.$n.5"
else
  say "no network namespace here (needs root and 'ip netns add'): the partition fault is skipped"
fi

# --- memory of every replica, every 200 ms ------------------------------------------------
echo "$a_pid $b_pid $c_pid" >"$out/faults-pids.txt"
(
  while :; do
    t=$(now_ms)
    for p in $(cat "$out/faults-pids.txt"); do
      rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
      [ -z "$rss" ] || echo "$t $p $rss"
    done
    sleep 0.2
  done
) >"$out/faults-rss.txt" 2>/dev/null &
sampler_pid=$!

# --- the load ------------------------------------------------------------------------------
urls="$a_url,$b_url${c_url:+,$c_url}"
duration=${DURATION:-80s}
say "k6: $duration at ${RATE:-30}/s over $urls"
K6_NO_USAGE_REPORT=true k6 run -q --log-format raw --console-output "$out/faults-requests.jsonl" \
  --summary-export "$out/faults-summary.json" \
  -e BASE_URLS="$urls" -e ORIGIN="$a_url" -e DATA_FILE="$people" \
  -e RATE="${RATE:-30}" -e DURATION="$duration" \
  "$here/faults.js" >"$out/faults-k6.log" 2>&1 &
k6_pid=$!
# The scenario starts once setup() has defined the login pool: the first request line.
for i in $(seq 1 600); do
  grep -q '"kind"' "$out/faults-requests.jsonl" 2>/dev/null && break
  kill -0 "$k6_pid" 2>/dev/null || { cat "$out/faults-k6.log" >&2; die "k6 exited early"; }
  [ "$i" = 600 ] && die "k6 never started its scenario"
  sleep 0.1
done
event load_start

# --- the faults ------------------------------------------------------------------------------
sleep 6
event kill_start
kill -KILL "$a_pid"
wait "$a_pid" 2>/dev/null || true
sleep 6
event kill_stop
# The orchestrator's restart: same ports, a new process.
env CENSUS__SERVER__LISTEN="127.0.0.1:$a_port" \
    CENSUS__SERVER__ADMIN_LISTEN="127.0.0.1:$a_admin_port" \
    CENSUS__SERVER__PUBLIC_ORIGIN="$a_url" \
    CENSUS__SERVER__TRUSTED_PROXIES='["127.0.0.1/32"]' \
    CENSUS__SESSION__COOKIE_SECURE=false \
    CENSUS__STORE__BACKEND=redis \
    CENSUS__STORE__REDIS_URL="redis://127.0.0.1:$redis_port" \
    CENSUS__SECRETS__PEPPER="$pepper" \
    CENSUS__SECRETS__ADMIN_TOKEN="$admin_token" \
    CENSUS__REGISTRY__SEED_FILE= \
    CENSUS__LOG__FORMAT=json CENSUS__LOG__LEVEL=warn \
    "$bin" serve >"$out/faults-a2-service.log" 2>&1 &
a_pid=$!
extra_pids="$extra_pids $a_pid"
echo "$a_pid $b_pid $c_pid" >"$out/faults-pids.txt"
event kill_end
for _ in $(seq 1 100); do curl -fsS -o /dev/null --max-time 1 "$a_admin/readyz" 2>/dev/null && break; sleep 0.1; done

sleep 6
replica_pids_before="$a_pid $b_pid $c_pid"
event redis_start
kill -KILL "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
sleep 5
event redis_stop
redis-server --bind "$redis_bind" --port "$redis_port" --dir "$tmp" --save '' \
  --appendonly yes --appendfsync always --protected-mode no --daemonize no \
  --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 1 100); do redis_up && break; sleep 0.05; done
event redis_end

sleep 8
event slow_start
kill -STOP "$redis_pid"
sleep 4
event slow_stop
kill -CONT "$redis_pid"
event slow_end

sleep 8
used=$(rcli INFO memory | awk -F: '/^used_memory:/ { print $2 + 0 }')
# oom_begin ends the previous fault's recovery window before Redis is touched (a request
# refused in between must not count against the pause's recovery); oom_start, once the
# limit is set, begins the OOM verdicts, which judge requests sent under the fault.
event oom_begin
rcli CONFIG SET maxmemory-policy noeviction >/dev/null
rcli CONFIG SET maxmemory "$((used / 2))" >/dev/null
event oom_start
sleep 5
event oom_stop
rcli CONFIG SET maxmemory 0 >/dev/null
event oom_end

if [ -n "$ns" ]; then
  sleep 7
  event partition_start
  ip link set "$redis_link" down
  # What C tells the balancer meanwhile (each answer takes up to store.timeout).
  heal=$(($(now_ms) + 5000))
  while [ "$(now_ms)" -lt "$heal" ]; do
    printf '%s %s\n' "$(now_ms)" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1.5 "$c_admin/readyz")"
    sleep 0.3
  done >"$out/faults-c-readyz.txt"
  event partition_stop
  ip link set "$redis_link" up
  event partition_end
fi

set +e
wait "$k6_pid"
k6_rc=$?
set -e
k6_pid=
event load_end
kill "$sampler_pid" 2>/dev/null || true
sampler_pid=

replica_pids_after=
for p in $replica_pids_before; do kill -0 "$p" 2>/dev/null && replica_pids_after="$replica_pids_after $p"; done
say "k6 exit $k6_rc; replicas alive: before the Redis faults [$replica_pids_before], after [${replica_pids_after# }]"

python3 "$here/verdict.py" \
  --requests "$out/faults-requests.jsonl" --events "$out/faults-events.txt" \
  --rss "$out/faults-rss.txt" --readyz "$out/faults-c-readyz.txt" \
  --admin "$b_admin" --token "$admin_token" --public "$b_url" --origin "$a_url" \
  --replicas-before "$replica_pids_before" --replicas-after "${replica_pids_after# }" \
  --logs "$out/faults-a-service.log" "$out/faults-b-service.log" "$out/faults-a2-service.log" \
  "$out/faults-c-service.log" \
  --store-timeout 1 --report "$out/faults-report.json"
