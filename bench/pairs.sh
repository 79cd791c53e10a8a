#!/usr/bin/env bash
# kemibox vs Kamailio 5.6 (app_lua), the same stateless KEMI script logic, interleaved
# A B A B ... so both see the same background load. Uses the shared sipp harness.
# Usage: bench/pairs.sh [PAIRS] [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export KB_ROOT=$PWD
HARNESS=${HARNESS:-../shared/bench/run.sh}
export BENCH_OUT=${BENCH_OUT:-$KB_ROOT/bench/out}
pairs=${1:-3}; rate=${2:-1000}; secs=${3:-15}
cargo build --release -p kemibox
for i in $(seq "$pairs"); do
  "$HARNESS" run 'cmd:"$KB_ROOT/target/release/kemibox" run -c "$KB_ROOT/bench/stateless.toml"' call "$rate" "$secs"
  "$HARNESS" run kamailio:stateless-lua call "$rate" "$secs"
done
"$HARNESS" report
