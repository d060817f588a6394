# shellcheck shell=sh
# Shared helpers for start-redis.sh, start-sentinel.sh, prestop-redis.sh and probe.sh.
# POSIX sh (the redis image's /bin/sh is dash). Sourced, not executed.
#
# Environment (in-cluster defaults; the local test in tests/deploy overrides them):
#   POD_NAME, POD_NAMESPACE        downward API (pod "redis-N" of StatefulSet "redis")
#   HEADLESS_SERVICE               redis-headless
#   CLUSTER_DOMAIN                 cluster.local
#   REDIS_REPLICAS                 3 (number of pods, for the peer list)
#   MASTER_NAME                    mymaster (Sentinel's name for the group)
#   SENTINEL_QUORUM                2
#   SENTINEL_DOWN_AFTER_MS         5000
#   SENTINEL_FAILOVER_TIMEOUT_MS   60000
#   REDIS_SERVER_PORT              6379
#   SENTINEL_LISTEN_PORT           26379
#   REDIS_BIND                     "* -::*" (all IPv4, IPv6 if present)
#   REDIS_DATA_DIR                 /data (PersistentVolume)
#   REDIS_RUN_DIR                  /run/redis (emptyDir: generated configs)
#   REDIS_TEMPLATE_DIR             the directory of these scripts (ConfigMap)
#   REDIS_MAXMEMORY                0 (= no limit; set it, see statefulset.yaml)
#   ANNOUNCE_HOST                  $POD_NAME.$HEADLESS_SERVICE.$POD_NAMESPACE.svc.$CLUSTER_DOMAIN
#   SENTINEL_PEERS                 "host:port ..." of every sentinel (default: each pod's
#                                  name, port $SENTINEL_LISTEN_PORT)
#   INITIAL_MASTER                 "host:port" used when no sentinel knows a master yet
#                                  (default: pod 0)
#   REDIS_PASSWORD_FILE            /var/run/secrets/redis/password (Secret redis-auth):
#                                  AUTH of every server and sentinel; required

: "${HEADLESS_SERVICE:=redis-headless}"
: "${CLUSTER_DOMAIN:=cluster.local}"
: "${REDIS_REPLICAS:=3}"
: "${MASTER_NAME:=mymaster}"
: "${SENTINEL_QUORUM:=2}"
: "${SENTINEL_DOWN_AFTER_MS:=5000}"
: "${SENTINEL_FAILOVER_TIMEOUT_MS:=60000}"
: "${REDIS_SERVER_PORT:=6379}"
: "${SENTINEL_LISTEN_PORT:=26379}"
: "${REDIS_BIND:=* -::*}"
: "${REDIS_DATA_DIR:=/data}"
: "${REDIS_RUN_DIR:=/run/redis}"
: "${REDIS_MAXMEMORY:=0}"
: "${REDIS_TEMPLATE_DIR:=$(cd "$(dirname "$0")" && pwd)}"

if [ -z "${ANNOUNCE_HOST:-}" ] || [ -z "${SENTINEL_PEERS:-}" ] || [ -z "${INITIAL_MASTER:-}" ]; then
    : "${POD_NAME:?POD_NAME not set (downward API metadata.name)}"
    : "${POD_NAMESPACE:?POD_NAMESPACE not set (downward API metadata.namespace)}"
    _set="${POD_NAME%-*}"
    _domain="$HEADLESS_SERVICE.$POD_NAMESPACE.svc.$CLUSTER_DOMAIN"
    : "${ANNOUNCE_HOST:=$POD_NAME.$_domain}"
    if [ -z "${SENTINEL_PEERS:-}" ]; then
        _i=0
        SENTINEL_PEERS=""
        while [ "$_i" -lt "$REDIS_REPLICAS" ]; do
            SENTINEL_PEERS="$SENTINEL_PEERS $_set-$_i.$_domain:$SENTINEL_LISTEN_PORT"
            _i=$((_i + 1))
        done
    fi
    : "${INITIAL_MASTER:=$_set-0.$_domain:$REDIS_SERVER_PORT}"
fi

log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${0##*/}" "$*" >&2
}

# No password, no start: a Redis reachable without AUTH would hold every account.
: "${REDIS_PASSWORD_FILE:=/var/run/secrets/redis/password}"
if ! REDIS_PASSWORD=$(cat "$REDIS_PASSWORD_FILE" 2>/dev/null) || [ -z "$REDIS_PASSWORD" ]; then
    log "no password in $REDIS_PASSWORD_FILE (Secret redis-auth, key password): refusing to run"
    exit 1
fi
case "$REDIS_PASSWORD" in
    *[!A-Za-z0-9._-]*)
        # It is written into the generated configs unquoted.
        log "the password in $REDIS_PASSWORD_FILE may hold only A-Z a-z 0-9 . _ - (use openssl rand -hex 32)"
        exit 1
        ;;
esac
# redis-cli takes it from the environment, not the command line where ps would show it.
REDISCLI_AUTH=$REDIS_PASSWORD
export REDISCLI_AUTH

# cli HOST PORT ARGS...: redis-cli with a hard time limit (an unreachable peer must not
# hang a start-up or a probe).
cli() {
    _h=$1
    _p=$2
    shift 2
    timeout 3 redis-cli -h "$_h" -p "$_p" --raw "$@" 2>/dev/null
}

# resolve NAME: print its first IPv4/IPv6 address (or NAME itself if it is one).
resolve() {
    getent hosts "$1" 2>/dev/null | awk 'NR == 1 { print $1 }'
}

# same_host A B: true if A and B name the same host (equal names or equal addresses).
same_host() {
    [ "$1" = "$2" ] && return 0
    _a=$(resolve "$1")
    _b=$(resolve "$2")
    [ -n "$_a" ] && [ "$_a" = "$_b" ]
}

# find_master: print "HOST PORT" of the master as the first answering sentinel sees it.
# Fails if no sentinel answers with a master.
find_master() {
    for _peer in $SENTINEL_PEERS; do
        _out=$(cli "${_peer%:*}" "${_peer##*:}" SENTINEL get-master-addr-by-name "$MASTER_NAME") || continue
        _mh=$(printf '%s\n' "$_out" | sed -n 1p)
        _mp=$(printf '%s\n' "$_out" | sed -n 2p)
        case "$_mp" in
            '' | *[!0-9]*) continue ;;
        esac
        [ -n "$_mh" ] || continue
        echo "$_mh $_mp"
        return 0
    done
    return 1
}

# current_master: set mhost and mport to the master the sentinels name, and source to
# "sentinel"; if no sentinel answers (a fresh group, or all sentinels down), to pod 0
# ($INITIAL_MASTER) and "initial".
current_master() {
    if _master=$(find_master); then
        source=sentinel
    else
        _master="${INITIAL_MASTER%:*} ${INITIAL_MASTER##*:}"
        source=initial
    fi
    mhost=${_master% *}
    mport=${_master#* }
}

# has_data: true if the data directory holds an AOF or an RDB file.
has_data() {
    [ -s "$REDIS_DATA_DIR/dump.rdb" ] && return 0
    [ -d "$REDIS_DATA_DIR/appendonlydir" ] && [ -n "$(ls -A "$REDIS_DATA_DIR/appendonlydir" 2>/dev/null)" ]
}
