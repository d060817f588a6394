#!/usr/bin/env bash
# Offline checks of the monitoring files (no service needed):
#   - promtool check rules k8s/monitoring/alerts.yml
#   - promtool test rules  k8s/monitoring/alerts.test.yml (each alert fires / stays silent)
#   - the Grafana dashboard: valid JSON, structure, datasource variable, every panel has
#     targets with a non-empty expr, and every expr parses as PromQL (promtool)
#   - docs/operations.md explains every alert, panel and contract metric
# Needs: promtool (Debian package `prometheus`), python3.
# Ends with "check-rules: N passed, M failed"; exit status 1 when anything failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MON="$REPO/k8s/monitoring"
PROMTOOL="${PROMTOOL:-promtool}"

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
    echo "promtool not found: apt-get install prometheus" >&2
    echo "check-rules: 0 passed, 1 failed"
    exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 not found: apt-get install python3" >&2
    echo "check-rules: 0 passed, 1 failed"
    exit 1
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

run() { # description, command...
    local desc="$1"; shift
    if "$@" >"$TMP/out" 2>&1; then
        pass "$desc"
    else
        fail "$desc"
        sed 's/^/    /' "$TMP/out"
    fi
}

run "promtool check rules alerts.yml" "$PROMTOOL" check rules "$MON/alerts.yml"
# promtool resolves rule_files relative to the test file.
run "promtool test rules alerts.test.yml" "$PROMTOOL" test rules "$MON/alerts.test.yml"

# Every alert has a unit test that makes it fire (an exp_alerts block naming it).
while read -r name; do
    if grep -A3 "alertname: $name\$" "$MON/alerts.test.yml" | grep -q "exp_labels"; then
        pass "alert $name has a firing unit test"
    else
        fail "alert $name has a firing unit test"
    fi
    if grep -A1 "alertname: $name\$" "$MON/alerts.test.yml" | grep -q "exp_alerts: \[\]"; then
        pass "alert $name has a not-firing unit test"
    else
        fail "alert $name has a not-firing unit test"
    fi
    for key in severity summary description runbook; do
        if awk -v n="$name" '
            $0 ~ "- alert: "n"$" {on=1; next}
            on && /- alert:/ {on=0}
            on {print}' "$MON/alerts.yml" | grep -q "^ *$key:"; then
            pass "alert $name has $key"
        else
            fail "alert $name has $key"
        fi
    done
done < <(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\) *$/\1/p' "$MON/alerts.yml")

python3 "$HERE/monitoring.py" validate \
    --dashboard "$MON/grafana-dashboard.json" --alerts "$MON/alerts.yml" \
    --readme "$REPO/docs/operations.md" --rules-out "$TMP/dashboard-exprs.rules.json" >"$TMP/validate" 2>&1
grep -v '^__counts ' "$TMP/validate"
read -r p f < <(sed -n 's/^__counts //p' "$TMP/validate")
if [ -z "${p:-}" ]; then
    fail "dashboard validation ran (python3 error above)"
else
    passed=$((passed + p)); failed=$((failed + f))
fi

if [ -s "$TMP/dashboard-exprs.rules.json" ]; then
    run "every dashboard expression parses as PromQL (promtool check rules)" \
        "$PROMTOOL" check rules "$TMP/dashboard-exprs.rules.json"
fi

echo "check-rules: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
