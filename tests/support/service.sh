# Sourced by the suites that start one census-login of their own (tests/e2e/run.sh,
# tests/schemathesis/run.sh): on exit, stops exactly that process (SERVICE_PID), politely
# first, and keeps the suite's exit status. Nothing else is ever killed.
SERVICE_PID=""
cleanup() {
  local rc=$?
  if [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; then
    kill "$SERVICE_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVICE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVICE_PID" 2>/dev/null || true
    wait "$SERVICE_PID" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
