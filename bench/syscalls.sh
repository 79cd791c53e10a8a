#!/usr/bin/env bash
# System calls, context switches and CPU time per call of one server under the shared
# harness's regcall scenario (1000 calls/s, 10 s): `perf stat` on all of the server's
# threads (all of Kamailio's processes) for 5 s in the middle of the load.
# Usage: bench/syscalls.sh kamailio-lua|mlua|lua-wasm
# Per call = the count / 5000 (5 s at 1000 calls/s).
set -euo pipefail
cd "$(dirname "$0")/.."
export KB_ROOT=$PWD BENCH_OUT=${BENCH_OUT:-$PWD/bench/out}
HARNESS=${HARNESS:-../shared/bench/run.sh}
T=${CARGO_TARGET_DIR:-$KB_ROOT/target}
case ${1:?engine} in
  kamailio-lua) t="cmd:\"$KB_ROOT/bench/kamailio-basic.sh\""; pat=kamailio-basic.cfg ;;
  mlua) t="cmd:\"$T/release/kemibox\" run -c \"$KB_ROOT/bench/basic.toml\""; pat=bench/basic.toml ;;
  lua-wasm) t="cmd:\"$T/release/kemibox\" run -c \"$KB_ROOT/bench/basic-luawasm.toml\""; pat=basic-luawasm.toml ;;
  *) echo "engine: kamailio-lua, mlua or lua-wasm" >&2; exit 2 ;;
esac
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$HARNESS" run "$t" regcall 1000 10 >"$out" 2>&1 &
h=$!
# The measured phase starts when the harness's UAC runs the lookup scenario.
for _ in $(seq 100); do pgrep -f uac-lookup.xml >/dev/null && break; sleep 0.3; done
sleep 2
pids=$(pgrep -f "$pat" | paste -sd,)
perf stat -e raw_syscalls:sys_enter,context-switches,task-clock -p "$pids" -- sleep 5 2>&1 |
  grep -E "sys_enter|context|task-clock"
wait "$h"
grep -E "calls:|proxy CPU" "$out"
