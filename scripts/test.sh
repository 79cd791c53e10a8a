#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole test suite: formatting, clippy, unit tests,
# end-to-end tests over real sockets (sipp, stunnel, WebSocket, the torture corpora in a
# private network namespace) and a bounded fuzzing run of the parser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests start the kemibox binary as a real process.
cargo build -p kemibox
cargo test --workspace

if [[ -x host/fuzz/run.sh ]]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-60}" host/fuzz/run.sh
fi
