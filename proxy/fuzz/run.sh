#!/usr/bin/env bash
# Fuzz the proxy's parsers for SECONDS each (default 60): the TLS certificate/PEM loading path
# and the HTTP/1 response side of server connections. Exits non-zero on a crash.
# Usage: proxy/fuzz/run.sh [SECONDS] [extra libFuzzer args...]
set -euo pipefail

seconds="${1:-60}"
shift || true
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

# The fuzz crate's Cargo.lock is tracked: refuse to rewrite it (a test run must leave the
# tree clean). It goes stale when proxy's dependencies change; then refresh and commit it.
if ! cargo metadata --locked --format-version 1 >/dev/null; then
    echo "proxy/fuzz/Cargo.lock is out of date: run 'cargo metadata --format-version 1 >/dev/null' in proxy/fuzz and commit it" >&2
    exit 1
fi

# cargo-fuzz needs nightly-only flags (-Zsanitizer, -Cpasses); RUSTC_BOOTSTRAP lets the
# stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

# corpus/ (git-ignored) collects what the fuzzer finds; seeds/ holds real bundles (EC and RSA,
# key first and last, and a key file alone) so that cert_bundle starts inside valid DER, and
# server responses (h1_*) for http1_responses.
# seeds/client_hello/ holds ClientHellos captured from `openssl s_client` (one cut into
# 100-byte records), seeds/proxy_header/ PROXY v1 and v2 headers.
run() {
    local target=$1 max_len=$2 seeds=$3
    shift 3
    mkdir -p "corpus/$target"
    echo "== fuzzing $target for ${seconds}s"
    cargo fuzz run "$target" "corpus/$target" "$seeds" -- \
        -max_total_time="$seconds" -max_len="$max_len" "$@"
}
run cert_bundle 8192 seeds "$@"
run http1_responses 20000 seeds "$@"
run client_hello 20000 seeds/client_hello "$@"
run proxy_header 4200 seeds/proxy_header "$@"
