#!/usr/bin/env bash
# Coverage-guided fuzzing of the service's parsers (libFuzzer via cargo-fuzz).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]   each target for SECONDS (default 60), one
#                                              after the other; all targets by default
#   tests/fuzz/run.sh --merge [TARGET...]      add to corpus/TARGET the fewest inputs that
#                                              cover what target/fuzz/corpus/TARGET covers
#                                              (tests/fuzz.rs replays the corpus in CI)
#
# Targets (tests/fuzz/src/lib.rs): pesel, maiden_name, password, json_bodies, registry_csv.
# Builds them with `cargo fuzz build -s none` (no sanitizer: stable Rust; AddressSanitizer
# needs nightly, and the parsers under test have no unsafe of their own) into
# $CARGO_TARGET_DIR/fuzz (default target/fuzz). Each run starts from the committed corpus
# (corpus/TARGET) and every crash found so far (regressions/TARGET); what it learns stays
# in target/fuzz/corpus, so the repository is not touched. A crash stops that target,
# is saved as target/fuzz/artifacts/TARGET/crash-*, and the script exits 1 at the end:
# copy the file into regressions/TARGET/ (tests/fuzz.rs replays it in every cargo test)
# and fix the code. Prints executions per target; the last line is the total.
set -euo pipefail

die() { echo "fuzz/run.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
merge=0
if [ "${1:-}" = --merge ]; then merge=1; shift; seconds=1; else
  seconds=${1:-60}
  [[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || die "usage: $0 [SECONDS] [TARGET...] | $0 --merge [TARGET...]"
  shift || true
fi
all=(pesel maiden_name password json_bodies registry_csv)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || die "no such target: $t (${all[*]})"
done

command -v cargo >/dev/null 2>&1 || die "cargo not found"
cargo fuzz --version >/dev/null 2>&1 ||
  die "cargo-fuzz not found: cargo install --locked cargo-fuzz (or run tests/all.sh as root)"

work="${CARGO_TARGET_DIR:-$root/target}/fuzz"
mkdir -p "$work"
echo "fuzz/run.sh: building ${#targets[@]} targets (cargo fuzz build -s none, into $work)"
start=$(date +%s)
if ! (cd "$root" && cargo fuzz build -s none --fuzz-dir "$here" --target-dir "$work") >"$work.build.log" 2>&1; then
  tail -30 "$work.build.log" >&2
  die "cargo fuzz build failed (log: $work.build.log)"
fi
bindir="$work/x86_64-unknown-linux-gnu/release"
for t in "${targets[@]}"; do [ -x "$bindir/$t" ] || die "build failed: no $bindir/$t"; done
echo "fuzz/run.sh: built in $(($(date +%s) - start)) s"

if [ "$merge" = 1 ]; then
  for t in "${targets[@]}"; do
    merged=$(mktemp -d)
    "$bindir/$t" -merge=1 "$merged" "$here/corpus/$t" "$work/corpus/$t" >"$work/$t.merge.log" 2>&1 ||
      { tail -5 "$work/$t.merge.log" >&2; die "merging $t failed"; }
    before=$(find "$here/corpus/$t" -type f | wc -l)
    cp -n "$merged"/* "$here/corpus/$t/" 2>/dev/null || true
    rm -rf "$merged"
    echo "$t: corpus $before -> $(find "$here/corpus/$t" -type f | wc -l) inputs"
  done
  exit 0
fi

total=0 crashed=()
printf '%-14s %8s %12s %10s %7s  %s\n' target seconds executions 'exec/s' corpus result
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t" artifacts="$work/artifacts/$t"
  mkdir -p "$corpus" "$artifacts" "$here/regressions/$t"
  log="$work/$t.log"
  set +e
  # First directory: where new inputs go; the others are read only.
  "$bindir/$t" "$corpus" "$here/corpus/$t" "$here/regressions/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(awk '/^stat::number_of_executed_units:/ { print $NF }' "$log")
  execs=${execs:-0}
  total=$((total + execs))
  result=ok
  if [ "$rc" != 0 ]; then
    found=$(grep -oE "Test unit written to \S+" "$log" | awk '{ print $NF }' | tail -1)
    result="CRASH (exit $rc): ${found:-see $log}"
    crashed+=("$t")
    grep -E "panicked at|^==[0-9]+== ERROR|SUMMARY" -A3 "$log" | head -12 >&2 || true
  fi
  printf '%-14s %8s %12s %10s %7s  %s\n' "$t" "$seconds" "$execs" "$((execs / seconds))" \
    "$(find "$corpus" -type f | wc -l)" "$result"
done

if [ ${#crashed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: crashes in ${crashed[*]}: copy each crash file into tests/fuzz/regressions/TARGET/ and fix" >&2
  echo "fuzz: ${#targets[@]} targets, $total executions, ${#crashed[@]} crashed"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, $total executions, 0 crashed"
