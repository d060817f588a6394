# shellcheck shell=bash
# Sourced by check.sh and redis-sentinel-test.sh: a scratch directory $WORK and the
# background processes listed in PIDS, both gone when the script exits.
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
