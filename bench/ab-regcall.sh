#!/usr/bin/env bash
# A/B two kemibox binaries on Kamailio's basic script (mlua, bench/basic.toml) under the
# shared harness's regcall scenario, alternated PAIRS times in one session, then the
# harness's report (CPU-µs per call per run).
# Usage: bench/ab-regcall.sh BIN_A BIN_B [PAIRS] [RATE] [SECONDS] [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
KB_ROOT=$PWD
HARNESS=${HARNESS:-../shared/bench/run.sh}
export BENCH_OUT=${BENCH_OUT:-$KB_ROOT/bench/out}
a=$1; b=$2; pairs=${3:-3}; rate=${4:-1000}; secs=${5:-10}
cfg=${6:-$KB_ROOT/bench/basic.toml}
# The harness's port is shared with anyone else benchmarking on this machine: wait for it.
wait_port() {
  local n=0
  while ss -uln | grep -q '127.0.0.1:5060 '; do
    ((n++ < 600)) || { echo "port 5060 busy for 10 min" >&2; exit 1; }
    sleep 1
  done
}
for i in $(seq "$pairs"); do
  for bin in "$a" "$b"; do
    wait_port
    echo "== pair $i: $bin"
    "$HARNESS" run "cmd:\"$bin\" run -c \"$cfg\"" regcall "$rate" "$secs"
  done
done
"$HARNESS" report
