#!/usr/bin/env bash
# Kamailio's basic KEMI script on kemibox: kamailio-basic-kemi-lua.lua on mlua vs
# kamailio-basic-kemi-jsdt.js (LANG js, the default) or kamailio-basic-kemi-python.py
# (LANG py) built into a wasm plugin (kemibox plugin build), or the jsdt script on engine
# js-wasm (LANG jsw: QuickJS in wasm, no build step), all unmodified, with
# examples/basic-kemi/kemibox.toml (the JS/Python run adds nathelper and permissions,
# which those scripts call without testing for them; usrloc in memory).
# Load: sipp registering alice with digest auth (tests/sipp/register-auth.xml: REGISTER
# -> 401, REGISTER with credentials -> 200) at RATE registrations/s for SECONDS,
# interleaved lua js lua js ... (or lua py ...). With KAMAILIO=1 each round also runs
# Kamailio 5.6 with the same two scripts (app_lua, and app_jsdt or app_python3) and the
# same settings (tests/kamailio/basic-kemi.cfg, the config of the differential tests).
# CPU = utime+stime of the server (all of Kamailio's processes) from the sipp start to
# 2 s after it ends, per registration (two requests through the script).
# Usage: [KAMAILIO=1] bench/basic-js-vs-lua.sh [PAIRS] [RATE] [SECONDS] [LANG]
# With SEARCH="R1 R2 ..." each server instead runs the rates in order until one is not
# clean (a failed registration or fewer than RATE*SECONDS done): its max clean rate.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pairs=${1:-3}; rate=${2:-500}; secs=${3:-10}; lang=${4:-js}
port=${PORT:-5260}   # not 5060: the shared harness uses it
T=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -p kemibox
kb=$T/release/kemibox
out=$(mktemp -d /tmp/kemibox-basic-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
kam=$lang
case $lang in
  js) src=/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-jsdt.js ;;
  jsw) src=/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-jsdt.js; kam=js ;;
  py) src=/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-python.py ;;
  *) echo "LANG: js, jsw or py" >&2; exit 2 ;;
esac
if [[ $lang == jsw ]]; then
  CARGO_TARGET_DIR="$root/plugins/target" \
    cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml -p kemibox-quickjs
  routing="engine = \"js-wasm\"\nscript = \"$src\"\ncache_dir = \"$out/cache\""
else
  "$kb" plugin build "$src" -o "$out/basic-$lang.wasm" >/dev/null
  routing="engine = \"wasm\"\nplugin = \"$out/basic-$lang.wasm\"\ncache_dir = \"$out/cache\""
fi
examples/basic-kemi/create-db.sh "$out/kamailio.sqlite" alice:alice123 bob:bob123 >/dev/null
. bench/lib.sh
basic_config > "$out/lua.toml"
plugin_config "$routing" > "$out/$lang.toml"
"$kb" check -c "$out/$lang.toml" >/dev/null 2>&1   # compile the component into the cache
run() {
  local name=$1
  case $name in
    kam-*)
      local define=() script=lua
      [[ $name == kam-js ]] && define=(-A WITH_JSDT) && script=jsdt
      [[ $name == kam-py ]] && define=(-A WITH_PYTHON) && script=python
      local ext=${script/jsdt/js}; ext=${ext/python/py}
      mkdir -p "$out/run"
      # Kamailio drops the first slash of an sqlite path.
      kamailio -f tests/kamailio/basic-kemi.cfg -A "DBURL=\"sqlite:///$out/kamailio.sqlite\"" \
        -A "KEMI_SCRIPT=\"/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-$script.$ext\"" \
        "${define[@]}" -l "udp:127.0.0.1:$port" -DD -E -m 256 -M 16 -Y "$out/run" -w "$out/run" \
        2>"$out/$name.log" &
      ;;
    *) "$kb" run -c "$out/$name.toml" 2>"$out/$name.log" & ;;
  esac
  measure_registrations "$name" $!
}
servers=(lua "$lang")
[[ ${KAMAILIO:-0} == 1 ]] && servers+=(kam-lua "kam-$kam")
if [[ -n ${SEARCH:-} ]]; then
  for name in "${servers[@]}"; do
    best=0
    for r in $SEARCH; do
      rate=$r
      line=$(run "$name" | tail -1)
      echo "$r/s: $line"
      [[ $line =~ \(([0-9]+)\ ok,\ ([0-9]+)\ failed\) ]] || break
      (( BASH_REMATCH[1] == r * secs && BASH_REMATCH[2] == 0 )) || break
      best=$r
    done
    echo "== $name: max clean rate $best registrations/s (${secs}s steps)"
  done
  exit 0
fi
for _ in $(seq "$pairs"); do
  for name in "${servers[@]}"; do run "$name"; done
done
