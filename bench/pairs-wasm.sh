#!/usr/bin/env bash
# kemibox on mlua vs kemibox on wasm, the same routing logic, interleaved A B A B ...
# Uses the shared sipp harness.
# Usage: bench/pairs-wasm.sh [PAIRS] [RATE] [SECONDS] [SET]
# SET: stateless  call scenario: bench/stateless.lua vs the forward plugin (default)
#      basic      regcall scenario: Kamailio's kamailio-basic-kemi-lua.lua vs its Rust
#                 port plugins/basic (bench/basic.toml, bench/basic-wasm.toml)
#      all        both
set -euo pipefail
cd "$(dirname "$0")/.."
export KB_ROOT=$PWD
HARNESS=${HARNESS:-../shared/bench/run.sh}
export BENCH_OUT=${BENCH_OUT:-$KB_ROOT/bench/out}
pairs=${1:-3}; rate=${2:-1000}; secs=${3:-15}; set=${4:-stateless}
T=${CARGO_TARGET_DIR:-$KB_ROOT/target}
cargo build --release -p kemibox
CARGO_TARGET_DIR="$KB_ROOT/plugins/target" \
  cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
kb() { echo "cmd:\"$T/release/kemibox\" run -c \"$KB_ROOT/bench/$1.toml\""; }
run_set() {
  case $1 in
    stateless)
      "$HARNESS" run "$(kb stateless)" call "$rate" "$secs"
      "$HARNESS" run "$(kb stateless-wasm)" call "$rate" "$secs" ;;
    basic)
      "$HARNESS" run "$(kb basic)" regcall "$rate" "$secs"
      "$HARNESS" run "$(kb basic-wasm)" regcall "$rate" "$secs" ;;
    *) echo "unknown set $1 (stateless, basic, all)" >&2; exit 2 ;;
  esac
}
for i in $(seq "$pairs"); do
  if [[ $set == all ]]; then
    for s in stateless basic; do run_set "$s"; done
  else
    run_set "$set"
  fi
done
"$HARNESS" report
