#!/bin/sh
# preStop of the redis container: if this pod is the master, ask a sentinel for a
# failover and wait (up to 20 s) until another pod is master, so a rolling update or a
# node drain costs a planned switch-over instead of down-after-milliseconds of errors.
# Never fails the hook: on any problem it just lets the pod stop.
set -u
. "$(dirname "$0")/redis-lib.sh"

role=$(cli 127.0.0.1 "$REDIS_SERVER_PORT" ROLE | sed -n 1p)
[ "$role" = master ] || exit 0

for peer in $SENTINEL_PEERS; do
    # The sentinel of this pod is stopping too; any sentinel can order the failover.
    if [ "$(cli "${peer%:*}" "${peer##*:}" SENTINEL FAILOVER "$MASTER_NAME")" = OK ]; then
        log "failover of $MASTER_NAME requested via $peer"
        break
    fi
done

i=0
while [ "$i" -lt 20 ]; do
    [ "$(cli 127.0.0.1 "$REDIS_SERVER_PORT" ROLE | sed -n 1p)" = master ] || exit 0
    sleep 1
    i=$((i + 1))
done
log "still master after 20 s; stopping anyway"
exit 0
