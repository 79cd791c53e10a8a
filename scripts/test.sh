#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole test suite: formatting, clippy, a bounded
# fuzzing run of the parser, unit tests and end-to-end tests over real sockets (sipp,
# stunnel, dnsmasq, a WebSocket client, real Kamailio, the torture corpora in a private
# network namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The WIT reference page is generated from wit/kemi.wit and must be up to date.
if command -v python3 >/dev/null; then scripts/wit-doc.py --check; fi

# Fuzz the parser for FUZZ_SECONDS (a crash fails the run; its log is shown then).
fuzz_log=$(mktemp)
if ! FUZZ_SECONDS="${FUZZ_SECONDS:-60}" host/fuzz/run.sh >"$fuzz_log" 2>&1; then
  tail -60 "$fuzz_log"
  if compgen -G "host/fuzz/artifacts/parse/*" >/dev/null; then
    echo "fuzzing found a crash (input under host/fuzz/artifacts/parse/)" >&2
  else
    echo "the fuzz target did not build or run (log above)" >&2
  fi
  exit 1
fi
grep -E "^(Done|stat::number_of_executed_units)" "$fuzz_log" || true
rm -f "$fuzz_log"

# The end-to-end tests start the kemibox binary as a real process; the wasm tests load
# the plugins (release components in plugins/target, built here once for all tests),
# the runtimes of engines "lua-wasm" (plugins/lua -> kemibox_lua.wasm) and "js-wasm"
# (plugins/quickjs -> kemibox_quickjs.wasm) among them.
cargo build -p kemibox
CARGO_TARGET_DIR="$PWD/plugins/target" \
  cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
# The plugins are their own workspace: the same formatting and lint rules.
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check
CARGO_TARGET_DIR="$PWD/plugins/target" \
  cargo clippy --manifest-path plugins/Cargo.toml --target wasm32-wasip2 -- -D warnings

# The JS plugins the tests load, built once per run (tests/tests/js_plugins.rs reuses an
# output newer than its script, the shim, the WIT and the npm lock file).
kemibox="${CARGO_TARGET_DIR:-target}/debug/kemibox"
mkdir -p plugins/js/build
for js in examples/js/stateless.js examples/js/stateful.js tests/js/semantics.js tests/js/onsend.js \
    /usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-jsdt.js; do
  "$kemibox" plugin build "$js" -o "plugins/js/build/$(basename "$js" .js).wasm"
done
# The Python plugins, likewise (tests/tests/python_plugins.rs and basic_kemi.rs reuse an
# output newer than its script, plugins/python/*.py and the WIT).
mkdir -p plugins/python/build
for py in examples/python/stateless.py examples/python/stateful.py tests/python/semantics.py \
    /usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-python.py; do
  "$kemibox" plugin build "$py" -o "plugins/python/build/$(basename "$py" .py).wasm"
done
cargo test --workspace
