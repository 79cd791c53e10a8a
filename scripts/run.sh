#!/usr/bin/env bash
# Builds kemibox and runs it in the foreground on the loopback example config
# (examples/kemibox.toml: UDP/TCP on 127.0.0.1 and ::1 port 5060, WebSocket on 8080,
# the stateless Lua script). Extra arguments replace the config path.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p kemibox
exec target/release/kemibox run -c "${1:-examples/kemibox.toml}"
