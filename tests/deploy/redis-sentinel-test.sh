#!/usr/bin/env bash
# Runs the Redis StatefulSet's own scripts (k8s/base/redis/files) on this machine: three
# redis-server + three sentinels on 127.0.0.1 (free ports), with the same redis.conf and
# sentinel.conf the pods use, and checks:
#   1. the group forms: pod 0 master, two replicas, sentinels agree, quorum reachable;
#   2. the persistence / safety settings are live (AOF everysec, noeviction,
#      min-replicas-to-write);
#   3. a write reaches both replicas;
#   4. killing the master (SIGKILL) makes the sentinels promote a replica that has the data;
#   5. restarting the old master with start-redis.sh makes it rejoin as a replica of the
#      new master (master discovery through the sentinels);
#   6. start-redis.sh refuses to start an empty master the sentinels still name;
#   7. prestop-redis.sh on the master hands mastership over before returning;
#   8. every server and sentinel refuses commands without the password, and the scripts
#      refuse to start without a password file.
# Usage: tests/deploy/redis-sentinel-test.sh   (exit 0 = all passed)
# Needs redis-server and redis-cli (apt-get install redis-server), dash or sh, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FILES="$ROOT/k8s/base/redis/files"

for tool in redis-server redis-cli timeout python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$tool not found: apt-get install redis-server" >&2
        exit 1
    fi
done
SH=$(command -v dash || command -v sh)

# shellcheck source=tests/deploy/lib.sh
. "$(dirname "$0")/lib.sh"

fail() {
    echo "FAIL - redis-sentinel: $*"
    echo "--- logs" >&2
    tail -n 15 "$WORK"/*.log >&2 || true
    exit 1
}

# Six free loopback ports.
read -r -a PORTS <<<"$(python3 - <<'EOF'
import socket
socks = []
for _ in range(6):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"
RP=("${PORTS[0]}" "${PORTS[1]}" "${PORTS[2]}")
SP=("${PORTS[3]}" "${PORTS[4]}" "${PORTS[5]}")
PEERS="127.0.0.1:${SP[0]} 127.0.0.1:${SP[1]} 127.0.0.1:${SP[2]}"

# The Secret redis-auth, as the pods mount it; this script's redis-cli calls use it too.
PASSWORD_FILE="$WORK/password"
printf 'local-test-password\n' >"$PASSWORD_FILE"
export REDISCLI_AUTH=local-test-password

# env_for I: set E to the environment a pod would get, with loopback addresses and ports.
# Short, so failovers come quickly, but not so short that a busy CI machine (a replica's
# full sync forks the master) makes a healthy master look down and starts a failover
# the test did not ask for.
DOWN_AFTER_MS=2500
E=()
env_for() {
    local i=$1
    E=("ANNOUNCE_HOST=127.0.0.1"
        "REDIS_BIND=127.0.0.1"
        "REDIS_SERVER_PORT=${RP[$i]}"
        "SENTINEL_LISTEN_PORT=${SP[$i]}"
        "REDIS_DATA_DIR=$WORK/data$i"
        "REDIS_RUN_DIR=$WORK/run$i"
        "REDIS_TEMPLATE_DIR=$FILES"
        "REDIS_MAXMEMORY=64mb"
        "REDIS_PASSWORD_FILE=$PASSWORD_FILE"
        "SENTINEL_PEERS=$PEERS"
        "INITIAL_MASTER=127.0.0.1:${RP[0]}"
        "SENTINEL_DOWN_AFTER_MS=$DOWN_AFTER_MS"
        "SENTINEL_FAILOVER_TIMEOUT_MS=4000")
}

REDIS_PID=()
start_redis() {
    local i=$1
    env_for "$i"
    env "${E[@]}" "$SH" "$FILES/start-redis.sh" >>"$WORK/redis$i.log" 2>&1 &
    REDIS_PID[$i]=$!
    PIDS+=("$!")
}
start_sentinel() {
    local i=$1
    env_for "$i"
    env "${E[@]}" "$SH" "$FILES/start-sentinel.sh" >>"$WORK/sentinel$i.log" 2>&1 &
    PIDS+=("$!")
}
rcli() { timeout 3 redis-cli -h 127.0.0.1 -p "$1" --raw "${@:2}" 2>/dev/null; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "timed out after ${limit}s waiting for: $what"
        fi
        sleep 0.2
    done
}

role_of() { rcli "$1" ROLE | sed -n 1p; }
is_role() { [ "$(role_of "$1")" = "$2" ]; }
master_port_seen_by() { rcli "$1" SENTINEL get-master-addr-by-name mymaster | sed -n 2p; }
all_sentinels_say() {
    local s
    for s in "${SP[@]}"; do
        [ "$(master_port_seen_by "$s")" = "$1" ] || return 1
    done
}
# Replicas that are synced and acknowledging (what min-replicas-to-write counts).
good_replicas() { rcli "$1" INFO replication | tr -d '\r' | sed -n 's/^min_slaves_good_slaves://p'; }
has_replicas() { [ "$(good_replicas "$1")" = "$2" ]; }
known_sentinels() { rcli "$1" SENTINEL sentinels mymaster | grep -c '^name$' || true; }
sentinels_know_each_other() {
    local s
    for s in "${SP[@]}"; do
        [ "$(known_sentinels "$s")" = 2 ] || return 1
    done
}
# Sentinels learn replicas from the master's INFO (every 10 s): a failover before that
# has no candidate, so wait until every sentinel lists them.
known_replicas() { rcli "$1" SENTINEL replicas mymaster | grep -c '^name$' || true; }
sentinels_know_replicas() {
    local s
    for s in "${SP[@]}"; do
        [ "$(known_replicas "$s")" = "$1" ] || return 1
    done
}
replica_of() {
    local info
    info=$(rcli "$1" INFO replication | tr -d '\r')
    grep -qx "master_port:$2" <<<"$info" && grep -qx "master_link_status:up" <<<"$info"
}

echo "redis ports ${RP[*]}, sentinel ports ${SP[*]}"

# --- 1. the group forms (all six started at once, like podManagementPolicy: Parallel)
for i in 0 1 2; do start_redis "$i"; done
for i in 0 1 2; do start_sentinel "$i"; done
wait_for 20 "redis 0 master" is_role "${RP[0]}" master
wait_for 20 "two replicas in sync with redis 0" has_replicas "${RP[0]}" 2
wait_for 20 "all sentinels name redis 0" all_sentinels_say "${RP[0]}"
wait_for 30 "sentinels discover each other" sentinels_know_each_other
wait_for 30 "sentinels discover both replicas" sentinels_know_replicas 2
[ "$(rcli "${SP[0]}" SENTINEL ckquorum mymaster | cut -c1-2)" = OK ] || fail "ckquorum not OK"
echo "ok - redis-sentinel: group formed: master :${RP[0]}, 2 replicas, 3 sentinels, quorum OK"

# --- 2. settings from redis.conf are live
for kv in "appendonly yes" "appendfsync everysec" "maxmemory-policy noeviction" \
    "min-replicas-to-write 1" "maxmemory 67108864" "hash-max-listpack-value 128"; do
    key=${kv% *}
    want=${kv#* }
    got=$(rcli "${RP[1]}" CONFIG GET "$key" | sed -n 2p)
    [ "$got" = "$want" ] || fail "CONFIG $key = '$got', want '$want'"
done
[ -d "$WORK/data0/appendonlydir" ] || fail "no appendonlydir in the master's data directory"
echo "ok - redis-sentinel: AOF everysec, noeviction, min-replicas-to-write 1, maxmemory set, account hashes as listpacks"

# --- 3. replication
out=$(redis-cli -h 127.0.0.1 -p "${RP[0]}" SET census:test:key before-failover 2>&1)
[ "$out" = OK ] || fail "SET on master failed: $out"
[ "$(rcli "${RP[0]}" WAIT 2 2000)" = 2 ] || fail "write not acknowledged by 2 replicas"
for i in 1 2; do
    [ "$(rcli "${RP[$i]}" GET census:test:key)" = before-failover ] || fail "replica $i lacks the key"
done
echo "ok - redis-sentinel: write replicated to both replicas"

# --- 4. failover on a crashed master
kill -9 "${REDIS_PID[0]}"
wait "${REDIS_PID[0]}" 2>/dev/null || true
new_master_known() {
    local p
    p=$(master_port_seen_by "${SP[1]}")
    [ -n "$p" ] && [ "$p" != "${RP[0]}" ] && all_sentinels_say "$p"
}
wait_for 30 "sentinels promote a replica" new_master_known
NEW=$(master_port_seen_by "${SP[1]}")
wait_for 20 "promoted :$NEW reports master" is_role "$NEW" master
[ "$(rcli "$NEW" GET census:test:key)" = before-failover ] || fail "new master lacks the key"
wait_for 20 "the other replica follows :$NEW" has_replicas "$NEW" 1
[ "$(rcli "$NEW" SET census:test:key after-failover)" = OK ] || fail "write on the new master failed"
echo "ok - redis-sentinel: master killed, sentinels promoted :$NEW with the data, writes accepted"

# --- 5. the old master rejoins as a replica of the new one
start_redis 0
wait_for 20 "old master rejoins as replica of :$NEW" replica_of "${RP[0]}" "$NEW"
wait_for 10 "old master has the new write" \
    test "$(rcli "${RP[0]}" GET census:test:key)" = after-failover
grep -q "starting as replica (master 127.0.0.1:$NEW, from sentinel)" "$WORK/redis0.log" ||
    fail "start-redis.sh did not take the master from the sentinels"
echo "ok - redis-sentinel: restarted old master found :$NEW via the sentinels and resynced"

# --- 6. no empty master: the sentinels name :$NEW; pretend to be it with an empty volume
# (re-read: should the sentinels have moved on since, the pod to imitate is the new one)
agreed_master() {
    local p
    p=$(master_port_seen_by "${SP[0]}")
    [ -n "$p" ] && all_sentinels_say "$p" && is_role "$p" master
}
wait_for 20 "the sentinels agree on a master" agreed_master
NEW=$(master_port_seen_by "${SP[0]}")
idx=-1
for i in 0 1 2; do [ "${RP[$i]}" = "$NEW" ] && idx=$i; done
[ "$idx" -ge 0 ] || fail "cannot map :$NEW to a pod"
mkdir -p "$WORK/empty"
env_for "$idx"
set +e
out=$(env "${E[@]}" REDIS_DATA_DIR="$WORK/empty" REDIS_RUN_DIR="$WORK/empty-run" \
    timeout 20 "$SH" "$FILES/start-redis.sh" 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] || fail "start-redis.sh with an empty volume exited $rc, want 1: $out"
grep -q "refusing to start as an empty master" <<<"$out" || fail "no refusal message: $out"
echo "ok - redis-sentinel: start-redis.sh refuses to come up as an empty master"

# --- 7. preStop hands mastership over
wait_for 20 "both replicas attached to :$NEW" has_replicas "$NEW" 2
wait_for 30 "sentinels discover both replicas of :$NEW" sentinels_know_replicas 2
env_for "$idx"
env "${E[@]}" timeout 30 "$SH" "$FILES/prestop-redis.sh" >>"$WORK/prestop.log" 2>&1 ||
    fail "prestop-redis.sh failed"
is_role "$NEW" master && fail "prestop-redis.sh returned but :$NEW is still master"
moved() {
    local p
    p=$(master_port_seen_by "${SP[0]}")
    [ -n "$p" ] && [ "$p" != "$NEW" ] && is_role "$p" master
}
wait_for 20 "sentinels name the new master" moved
echo "ok - redis-sentinel: preStop failed over from :$NEW to :$(master_port_seen_by "${SP[0]}") before returning"

# --- 8. AUTH everywhere; no password file, no start
for p in "${RP[@]}" "${SP[@]}"; do
    out=$(env -u REDISCLI_AUTH timeout 3 redis-cli -h 127.0.0.1 -p "$p" PING 2>&1)
    grep -q NOAUTH <<<"$out" || fail ":$p answered PING without the password: $out"
done
env_for 0
for script in start-redis.sh start-sentinel.sh; do
    set +e
    out=$(env "${E[@]}" REDIS_PASSWORD_FILE="$WORK/missing" REDIS_RUN_DIR="$WORK/nopw-run" \
        timeout 10 "$SH" "$FILES/$script" 2>&1)
    rc=$?
    set -e
    [ "$rc" = 1 ] && grep -q "refusing to run" <<<"$out" ||
        fail "$script without a password file exited $rc: $out"
done
echo "ok - redis-sentinel: servers and sentinels require the password; no password file, no start"

echo "redis-sentinel: 8 passed, 0 failed"
