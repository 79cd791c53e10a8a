#!/usr/bin/env bash
# Kamailio 5.6 with Kamailio's basic KEMI Lua script (bench/kamailio-basic.cfg), for the
# shared harness as a `cmd:` target of bench/basic-engines.sh. Runs in the foreground in
# the harness's run directory ($RUN_DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN_DIR:-$(mktemp -d)}/run
mkdir -p "$run"
exec kamailio -f "$here/kamailio-basic.cfg" -DD -E -m 256 -M 16 -Y "$run" -w "$run"
