#!/usr/bin/env bash
# Installs what kemibox's build and tests need on a fresh Debian machine (run as root or
# with sudo). Safe to run again: it skips what is already there.
set -euo pipefail

need_apt=()
command -v sipp >/dev/null || need_apt+=(sip-tester)
command -v stunnel >/dev/null || need_apt+=(stunnel4)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v curl >/dev/null || need_apt+=(curl)
command -v dnsmasq >/dev/null || need_apt+=(dnsmasq-base)
# Real Kamailio 5.6 is the reference the tests compare kemibox's answers with.
command -v kamailio >/dev/null || need_apt+=(kamailio)
[[ -f /usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so ]] || need_apt+=(kamailio-lua-modules)
[[ -f /usr/lib/x86_64-linux-gnu/kamailio/modules/db_sqlite.so ]] || need_apt+=(kamailio-sqlite-modules)
# app_python3: the differential test of Kamailio's basic Python script.
[[ -f /usr/lib/x86_64-linux-gnu/kamailio/modules/app_python3.so ]] || need_apt+=(kamailio-python3-modules)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
# baresip: the real softphones of tests/tests/softphones.rs.
command -v baresip >/dev/null || need_apt+=(baresip-core)
# pip installs zig (below) for the Lua and JavaScript (QuickJS) runtime plugins.
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# JavaScript plugins (plugins/js): componentize-js runs on node (20 or later).
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [[ ${#need_apt[@]} -gt 0 ]]; then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  # WebAssembly plugins (plugins/) are components built for wasm32-wasip2.
  rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$' || rustup target add wasm32-wasip2
fi

# The Lua runtime plugin (plugins/lua) compiles Lua 5.4's C for wasm32 with exception
# handling (Lua's setjmp/longjmp): zig's clang, pinned, from the `ziglang` PyPI wheel,
# installed in its own directory (plugins/lua/toolchain/zig-cc looks there first).
ZIG_VERSION=0.15.2
ZIG_DIR=${KEMIBOX_TOOLS:-/opt/kemibox-tools}
if [[ "$("$ZIG_DIR/ziglang/zig" version 2>/dev/null || true)" != "$ZIG_VERSION" ]]; then
  rm -rf "$ZIG_DIR/ziglang" "$ZIG_DIR"/ziglang-*.dist-info
  python3 -m pip install -q --disable-pip-version-check --target "$ZIG_DIR" "ziglang==$ZIG_VERSION" ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages --target "$ZIG_DIR" "ziglang==$ZIG_VERSION"
  "$ZIG_DIR/ziglang/zig" version
fi
# Python plugins (plugins/python): componentize-py, pinned (kemibox plugin build refuses
# another version), in its own directory beside zig (KEMIBOX_COMPONENTIZE_PY moves it).
CPY_VERSION=0.25.1
CPY_DIR=${KEMIBOX_COMPONENTIZE_PY:-$ZIG_DIR/componentize-py}
if [[ "$(PYTHONPATH="$CPY_DIR" python3 -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.argv.append("--version"); script()' 2>/dev/null || true)" != *" $CPY_VERSION"* ]]; then
  rm -rf "$CPY_DIR"
  python3 -m pip install -q --disable-pip-version-check --target "$CPY_DIR" "componentize-py==$CPY_VERSION" ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages --target "$CPY_DIR" "componentize-py==$CPY_VERSION"
fi
# The JS runtime: componentize-js at the version pinned in plugins/js/package-lock.json.
# `npm ci` fills npm's cache too, so a later run works offline.
js_dir="$(dirname "$0")/../plugins/js"
if [[ ! -f "$js_dir/node_modules/@bytecodealliance/componentize-js/src/cli.js" ||
      "$js_dir/package-lock.json" -nt "$js_dir/node_modules/.package-lock.json" ]]; then
  (cd "$js_dir" && npm ci --prefer-offline --no-audit --no-fund)
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [[ $node_major -lt 20 ]]; then
  echo "warning: node $(node --version) is older than componentize-js wants (20 or later)" >&2
fi
