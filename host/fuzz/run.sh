#!/usr/bin/env bash
# Coverage-guided fuzzing of the SIP parser (target `parse`) for a bounded time.
#
#   host/fuzz/run.sh                 # 60 s
#   FUZZ_SECONDS=600 host/fuzz/run.sh
#   host/fuzz/run.sh -jobs=2         # extra arguments go to libFuzzer
#
# Works on the stable toolchain: `-s none` builds the libFuzzer coverage instrumentation
# without AddressSanitizer, whose `-Zsanitizer=address` flag needs nightly. With a nightly
# toolchain, `FUZZ_SANITIZER=address FUZZ_TOOLCHAIN=+nightly host/fuzz/run.sh` adds ASan.
# Debug assertions (overflow checks) are on either way.
#
# Exits non-zero when libFuzzer finds a crash (panic, abort, timeout, OOM); the input is
# written under host/fuzz/artifacts/parse/. Reproduce with
#   cd host && cargo fuzz run -s none parse fuzz/artifacts/parse/<file>
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOST_DIR="$(dirname "$FUZZ_DIR")"
REPO="$(dirname "$HOST_DIR")"
SECONDS_TO_RUN="${FUZZ_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-}"
CORPUS="$FUZZ_DIR/corpus/parse"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$HOST_DIR"
# Coverage instrumentation at one codegen unit makes LLVM's loop analysis recurse deep
# in kemibox's larger functions: rustc's default 8 MiB stack overflowed (SIGSEGV).
export RUST_MIN_STACK="${RUST_MIN_STACK:-268435456}"
# shellcheck disable=SC2086 # TOOLCHAIN is empty or one word (+nightly)
cargo $TOOLCHAIN fuzz build -s "$SANITIZER" parse

# Seed corpus: the RFC 4475 / RFC 5118 torture messages when present, plus our own.
mkdir -p "$CORPUS"
SHARED="$REPO/../shared/corpus"
for f in "$SHARED"/rfc4475/*.dat; do
    if [ -f "$f" ]; then cp -f "$f" "$CORPUS/rfc4475-$(basename "$f")"; fi
done
for f in "$SHARED"/rfc5118/*; do
    if [ -f "$f" ]; then cp -f "$f" "$CORPUS/rfc5118-$(basename "$f")"; fi
done

seed() { printf '%b' "$2" >"$CORPUS/seed-$1"; }
seed invite 'INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;rport\r\nVia: SIP/2.0/UDP 192.0.2.101:5060;received=192.0.2.101;rport=5060;branch=z9hG4bK74bf9\r\nRecord-Route: <sip:proxy.atlanta.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\r\nMax-Forwards: 69\r\nFrom: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\nTo: Bob <sip:bob@biloxi.example.com>\r\nCall-ID: 3848276298220188511@atlanta.example.com\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@192.0.2.101:5060;transport=udp>\r\nAllow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\nSupported: replaces, timer\r\nContent-Type: application/sdp\r\nContent-Length: 36\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.101\r\ns=-\r\n'
seed register 'REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.201:5060;branch=z9hG4bKnashds7\r\nMax-Forwards: 70\r\nFrom: Bob <sip:bob@biloxi.example.com>;tag=a73kszlfl\r\nTo: Bob <sip:bob@biloxi.example.com>\r\nCall-ID: 1j9FpLxk3uxtm8tn@192.0.2.201\r\nCSeq: 2 REGISTER\r\nContact: <sip:bob@192.0.2.201:5060>;expires=3600, <sip:bob@[2001:db8::1]:5070>\r\nAuthorization: Digest username="bob", realm="biloxi.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:registrar.biloxi.example.com", response="245f23415f11432b3434341c022f2d2f", algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b"\r\nExpires: 3600\r\nDate: Sat, 13 Nov 2010 23:29:00 GMT\r\nContent-Length: 0\r\n\r\n'
seed ok200 'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.10\r\nFrom: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\nTo: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\nCall-ID: 3848276298220188511@atlanta.example.com\r\nCSeq: 314159 INVITE\r\nWWW-Authenticate: Digest realm="b.com", nonce="x,y", qop="auth,auth-int"\r\nContent-Length: 0\r\n\r\n'
seed compact 'OPTIONS sips:[2001:db8::10]:5061;transport=tls SIP/2.0\r\nv: SIP / 2.0 / TLS [2001:db8::9:1]:5070;branch=z9hG4bK1;rport\r\nSubject:\r\n  folded\r\n\tmore\r\nf: sip:x@y;tag=1\r\nt: <tel:+1-201-555-0123>\r\ni: c1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n'
seed stream 'OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabcBYE sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n'
seed keepalive '\r\n\r\n'

# libFuzzer exits non-zero (and cargo fuzz with it) when it finds a crash.
# shellcheck disable=SC2086
exec cargo $TOOLCHAIN fuzz run -s "$SANITIZER" parse "$CORPUS" -- \
    -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 "$@"
