#!/usr/bin/env bash
# Argon2id speed of census-login (RustCrypto `argon2`) against the reference C
# implementation (Debian package `argon2`, the phc-winner-argon2 CLI) at the parameters of
# config/default.toml, one thread each, interleaved rounds so both see the same machine.
#
#   benches/argon2_reference.sh [CENSUS_BIN...]     (default: target/release/census-login)
#
# Several binaries may be given (e.g. a default build and a -C target-cpu=x86-64-v3
# build); each is reported as hashes/s and as a ratio to the C reference of the same round.
# Knobs: ROUNDS (3), C_HASHES per round (40), RUST_SECONDS per round (5).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v argon2 >/dev/null || { echo "argon2 (C reference) not found: apt-get install argon2" >&2; exit 2; }
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$root/target/release/census-login")
for b in "${bins[@]}"; do [ -x "$b" ] || { echo "not an executable: $b (cargo build --release)" >&2; exit 2; }; done

read -r kib iters par < <(python3 - "$root/config/default.toml" <<'EOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["password"]
print(p["argon2_memory_kib"], p["argon2_iterations"], p["argon2_parallelism"])
EOF
)
rounds=${ROUNDS:-3}
c_hashes=${C_HASHES:-40}
rust_seconds=${RUST_SECONDS:-5}
echo "Argon2id m=$kib KiB t=$iters p=$par, 1 thread, $rounds rounds"

# The C CLI prints the CPU seconds of its one hash ("0.043 seconds"); sum them.
c_rate() {
  local total=0 s
  for _ in $(seq "$c_hashes"); do
    s=$(echo -n "Bench2021Pass" | argon2 "census-bench-salt" -id -t "$iters" -k "$kib" -p "$par" | awk '/seconds/ { print $1 }')
    total=$(python3 -c "print($total + $s)")
  done
  python3 -c "print($c_hashes / $total)"
}
rust_rate() { # BIN
  (cd "$root" && env -u CENSUS_ENV CENSUS_CONFIG_DIR="$root/config" \
    "$1" bench-hash --threads 1 --duration "${rust_seconds}s" --json) |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["hashesPerSecond"])'
}

declare -A sum_ratio
sum_c=0
for r in $(seq "$rounds"); do
  c=$(c_rate)
  sum_c=$(python3 -c "print($sum_c + $c)")
  line="round $r: C $(printf '%.1f' "$c")/s"
  for i in "${!bins[@]}"; do
    v=$(rust_rate "${bins[$i]}")
    ratio=$(python3 -c "print($v / $c)")
    sum_ratio[$i]=$(python3 -c "print(${sum_ratio[$i]:-0} + $ratio)")
    line+="; bin$i $(printf '%.1f' "$v")/s = $(printf '%.2f' "$ratio") x C"
  done
  echo "$line"
done
echo "C reference (argon2 $(dpkg-query -W -f='${Version}' argon2 2>/dev/null || echo '?')): $(python3 -c "print(round($sum_c / $rounds, 1))") hashes/s/thread"
for i in "${!bins[@]}"; do
  echo "bin$i ${bins[$i]}: mean $(python3 -c "print(round(${sum_ratio[$i]} / $rounds, 2))") x C"
done
