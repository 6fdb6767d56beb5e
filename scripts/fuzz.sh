#!/usr/bin/env bash
# Runs every fuzz target of protocol/fuzz (the frame decoder) for a fixed
# budget of executions and fails on the first crash. Not part of CI (it takes
# minutes per target); run it before a release or after touching the decoder:
#
#   bash scripts/fuzz.sh                # 10,000,000 executions per target
#   FUZZ_RUNS=100000 bash scripts/fuzz.sh decode_body
#
# Needs the nightly toolchain (`rustup toolchain list`) and cargo-fuzz
# (installed here when missing). Seeds each corpus with the golden frames of
# protocol/tests/golden. Prints libFuzzer's final stats (stat::number_of_executed_units)
# and the wall time per target; record new figures in protocol/README.md.
set -euo pipefail
cd "$(dirname "$0")/../protocol"

RUNS="${FUZZ_RUNS:-10000000}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(decode_frame decode_body)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
# Build outside the workspace's target folder (the fuzz crate is its own root).
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-fuzz/target}"
# -a: debug assertions (integer overflow, slice bounds) on in the fuzzed
# build. -s none: no AddressSanitizer; the decoder is safe Rust (the
# workspace denies unsafe code) and ASan cut throughput about threefold.
FUZZ_FLAGS=(-a -s none --target-dir "$FUZZ_TARGET_DIR")
# Build every target first, so the times below are fuzzing only.
cargo +nightly fuzz build "${FUZZ_FLAGS[@]}"

for target in "${TARGETS[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  cp tests/golden/*.bin "$corpus/"
  echo "== $target: $RUNS executions"
  start=$(date +%s)
  set +e
  cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$target" "$corpus" -- \
    -runs="$RUNS" -max_len=16384 -print_final_stats=1 > "fuzz/$target.log" 2>&1
  status=$?
  set -e
  grep -E "^(stat::|Done|INFO: Seed)|panicked|ERROR|SUMMARY" "fuzz/$target.log" || true
  end=$(date +%s)
  if [ "$status" -ne 0 ]; then
    echo "FAILED: $target exited with $status after $((end - start)) s; see protocol/fuzz/$target.log and protocol/fuzz/artifacts/$target" >&2
    exit "$status"
  fi
  executed=$(grep -o 'stat::number_of_executed_units: [0-9]*' "fuzz/$target.log" | tail -1 | awk '{print $2}')
  echo "ok: $target ran ${executed:-?} executions in $((end - start)) s with no crash"
done
