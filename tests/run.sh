#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine, as root:
#   sudo tests/run.sh            (CI: .ci/run calls exactly this)
# Installs what the tests need, then runs rustfmt, clippy, every test (network-namespace
# tests included: VRRPLB_REQUIRE_NETNS=1 makes a test fail instead of skipping), and the
# VRRP packet, certificate loading, HTTP/1 response, ClientHello/SNI and PROXY header fuzzers for
# a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: run as root (network namespaces, raw sockets, apt-get)" >&2
    exit 1
fi

echo "== installing test dependencies (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# tshark asks whether non-root users may capture; the answer does not matter for us.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get install -y -q --no-install-recommends \
    iproute2 procps psmisc iputils-ping nftables curl ca-certificates \
    rsyslog logrotate systemd util-linux bsdutils keepalived haproxy tshark tcpdump wrk nginx-light \
    openssl python3 nghttp2-client chromium libnss3-tools cmake prometheus valgrind frr \
    build-essential pkg-config git >/dev/null
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "tests/run.sh: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi
# Distribution daemons we installed must not run on their own and hold the VIPs or ports.
for svc in keepalived haproxy nginx frr; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

export VRRPLB_REQUIRE_NETNS="${VRRPLB_REQUIRE_NETNS:-1}"
export RUST_BACKTRACE=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test (VRRPLB_REQUIRE_NETNS=$VRRPLB_REQUIRE_NETNS)"
cargo test --locked --workspace --no-fail-fast -- --nocapture
if [ -x vrrp/fuzz/run.sh ]; then
    echo "== fuzzing the VRRP packet parser (bounded)"
    vrrp/fuzz/run.sh "${VRRPLB_FUZZ_SECONDS:-20}"
fi
if [ -x proxy/fuzz/run.sh ]; then
    echo "== fuzzing certificate loading, HTTP/1 responses, ClientHello/SNI, PROXY headers (bounded)"
    proxy/fuzz/run.sh "${VRRPLB_FUZZ_SECONDS:-20}"
fi
# The suite must leave the tracked tree as it found it (no rewritten lockfile, no stray
# generated file); untracked build output is git-ignored.
echo "== tracked tree unchanged"
if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
    dirty="$(git status --porcelain --untracked-files=no)"
    if [ -n "$dirty" ]; then
        echo "tests/run.sh: the test run changed tracked files:" >&2
        echo "$dirty" >&2
        git diff --stat >&2
        exit 1
    fi
fi
echo "== all tests passed"
