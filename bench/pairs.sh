#!/usr/bin/env bash
# kemibox vs Kamailio 5.6 (app_lua), the same KEMI script, interleaved A B A B ... so
# both see the same background load. Uses the shared sipp harness.
#   bench/pairs.sh [PAIRS] [RATE] [SECONDS] [SET]
# SET: stateless (call), stateful (call), register, regcall, or all.
set -euo pipefail
cd "$(dirname "$0")/.."
export KB_ROOT=$PWD
HARNESS=${HARNESS:-../shared/bench/run.sh}
export BENCH_OUT=${BENCH_OUT:-$KB_ROOT/bench/out}
pairs=${1:-3}; rate=${2:-1000}; secs=${3:-15}; set=${4:-stateless}
cargo build --release -p kemibox
kb() { echo "cmd:\"\$KB_ROOT/target/release/kemibox\" run -c \"\$KB_ROOT/bench/$1.toml\""; }
run_set() {
  case $1 in
    stateless) "$HARNESS" run "$(kb stateless)" call "$rate" "$secs"; "$HARNESS" run kamailio:stateless-lua call "$rate" "$secs" ;;
    stateful) "$HARNESS" run "$(kb stateful)" call "$rate" "$secs"; "$HARNESS" run kamailio:stateful-lua call "$rate" "$secs" ;;
    register) "$HARNESS" run "$(kb registrar)" register "$rate" "$secs"; "$HARNESS" run kamailio:registrar-lua register "$rate" "$secs" ;;
    regcall) "$HARNESS" run "$(kb registrar)" regcall "$rate" "$secs"; "$HARNESS" run kamailio:registrar-lua regcall "$rate" "$secs" ;;
  esac
}
for i in $(seq "$pairs"); do
  if [[ $set == all ]]; then
    for s in stateless stateful register regcall; do run_set "$s"; done
  else
    run_set "$set"
  fi
done
"$HARNESS" report
