#!/usr/bin/env bash
# kemibox on mlua vs kemibox on wasm (the forward plugin), the same stateless KEMI calls,
# interleaved A B A B ... Uses the shared sipp harness.
# Usage: bench/pairs-wasm.sh [PAIRS] [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export KB_ROOT=$PWD
HARNESS=${HARNESS:-../shared/bench/run.sh}
export BENCH_OUT=${BENCH_OUT:-$KB_ROOT/bench/out}
pairs=${1:-3}; rate=${2:-1000}; secs=${3:-15}
T=${CARGO_TARGET_DIR:-$KB_ROOT/target}
cargo build --release -p kemibox
CARGO_TARGET_DIR="$KB_ROOT/plugins/target" \
  cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
for i in $(seq "$pairs"); do
  "$HARNESS" run "cmd:\"$T/release/kemibox\" run -c \"$KB_ROOT/bench/stateless.toml\"" call "$rate" "$secs"
  "$HARNESS" run "cmd:\"$T/release/kemibox\" run -c \"$KB_ROOT/bench/stateless-wasm.toml\"" call "$rate" "$secs"
done
"$HARNESS" report
