#!/bin/sh
# Probes: probe.sh redis-live | redis-ready | sentinel
#   redis-live   the server answers (PONG, or LOADING while it reads a large AOF)
#   redis-ready  the server answers PONG (data loaded)
#   sentinel     the sentinel answers PONG
set -u
. "$(dirname "$0")/redis-lib.sh"

case "${1:-}" in
    redis-live)
        reply=$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_SERVER_PORT" PING 2>&1)
        case "$reply" in PONG | LOADING*) exit 0 ;; esac
        ;;
    redis-ready)
        [ "$(cli 127.0.0.1 "$REDIS_SERVER_PORT" PING)" = PONG ] && exit 0
        ;;
    sentinel)
        [ "$(cli 127.0.0.1 "$SENTINEL_LISTEN_PORT" PING)" = PONG ] && exit 0
        ;;
    *)
        echo "usage: probe.sh redis-live|redis-ready|sentinel" >&2
        exit 2
        ;;
esac
echo "probe ${1:-} failed" >&2
exit 1
