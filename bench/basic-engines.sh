#!/usr/bin/env bash
# Kamailio's basic KEMI script on every kemibox engine and on Kamailio 5.6, interleaved
# in one session (the shared harness's regcall scenario: 10 000 users registered first,
# not measured, then INVITE/180/200/ACK/BYE/200 calls to them through the script):
#   kamailio-lua  Kamailio, app_lua, kamailio-basic-kemi-lua.lua (bench/kamailio-basic.cfg)
#   mlua          kemibox, the Lua script on mlua                (bench/basic.toml)
#   lua-wasm      kemibox, the Lua script on Lua-in-wasm         (bench/basic-luawasm.toml)
#   wasm          kemibox, plugins/basic (its Rust port) on wasm (bench/basic-wasm.toml)
# Unmodified scripts, the same module set and modparams, no auth (the harness's sipp does
# not authenticate; the Lua script skips its auth route without KSR.auth). Kamailio's
# JS version calls KSR.auth_db unconditionally, so it cannot take this scenario: see
# bench/basic-js-vs-lua.sh for it.
# Usage: bench/basic-engines.sh [PAIRS] [RATE] [SECONDS] [ENGINES...]
#        SEARCH=1 bench/basic-engines.sh 1 - [SECONDS] [ENGINES...]   max clean rate of each
#        engine (the harness's search: 500, 1000, 2000, ... then bisection)
set -euo pipefail
cd "$(dirname "$0")/.."
export KB_ROOT=$PWD
HARNESS=${HARNESS:-../shared/bench/run.sh}
export BENCH_OUT=${BENCH_OUT:-$KB_ROOT/bench/out}
pairs=${1:-2}; rate=${2:-1000}; secs=${3:-15}; shift 3 || true
engines=("$@")
((${#engines[@]})) || engines=(kamailio-lua mlua lua-wasm wasm)
T=${CARGO_TARGET_DIR:-$KB_ROOT/target}
cargo build --release -p kemibox
CARGO_TARGET_DIR="$KB_ROOT/plugins/target" \
  cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
target() {
  case $1 in
    kamailio-lua) echo "cmd:\"$KB_ROOT/bench/kamailio-basic.sh\"" ;;
    mlua) echo "cmd:\"$T/release/kemibox\" run -c \"$KB_ROOT/bench/basic.toml\"" ;;
    lua-wasm) echo "cmd:\"$T/release/kemibox\" run -c \"$KB_ROOT/bench/basic-luawasm.toml\"" ;;
    wasm) echo "cmd:\"$T/release/kemibox\" run -c \"$KB_ROOT/bench/basic-wasm.toml\"" ;;
    *) echo "unknown engine $1" >&2; exit 2 ;;
  esac
}
for i in $(seq "$pairs"); do
  for e in "${engines[@]}"; do
    echo "== pair $i: $e"
    if [[ ${SEARCH:-0} == 1 ]]; then
      "$HARNESS" search "$(target "$e")" regcall "$secs"
    else
      "$HARNESS" run "$(target "$e")" regcall "$rate" "$secs"
    fi
  done
done
"$HARNESS" report
