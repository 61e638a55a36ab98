#!/usr/bin/env bash
# Fuzz the TLS certificate/PEM loading path for SECONDS (default 60). Exits non-zero on a crash.
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
# key first and last, and a key file alone) so that it starts inside valid DER.
mkdir -p corpus/cert_bundle
exec cargo fuzz run cert_bundle corpus/cert_bundle seeds -- \
    -max_total_time="$seconds" -max_len=8192 "$@"
