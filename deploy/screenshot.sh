#!/usr/bin/env bash
# The README's picture of the stats page: the lab's lb1 page (VRRP block, frontends, both
# backends) with one server DOWN, rendered by headless Chromium.
#
#   deploy/screenshot.sh [OUT.png]     default docs/stats-page.png
#
# Uses the lab named $LAB (default vrrplb-shot) when it is up, else starts it with
# deploy/lab.sh (and takes it down again at the end). web2's link is taken down so its checks
# fail, some requests are sent through the VIP so the counters move, then lb1's page is
# rendered from inside lb1 (the stats listener is never routed to the host). web2's link is
# restored before the script ends, even after a failure.
#
# Environment: LAB, LAB_DIR, VRRPLB_BIN, LAB_NO_APT as for deploy/lab.sh;
#   SHOT_SIZE=W,H   window size in CSS pixels (default 1420,1420: the whole lab page), drawn at
#   SHOT_SCALE (default 0.8), so the PNG is W*scale x H*scale; it must stay under 200 KB.
# Run as root (namespaces); needs chromium and curl.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LAB=${LAB:-vrrplb-shot}
OUT=${1:-$REPO/docs/stats-page.png}
SIZE=${SHOT_SIZE:-1420,1420}
SCALE=${SHOT_SCALE:-0.8}
MAX_BYTES=$((200 * 1024))
URL=http://admin:change-me@127.0.0.1:8404/stats
ns() { printf '%s-%s' "$LAB" "$1"; }
die() { echo "screenshot.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (the lab lives in network namespaces)"
command -v chromium >/dev/null || die "chromium is missing (apt-get install chromium)"

started=""
restore() {
    ip netns exec "$(ns web2)" ip link set eth0 up 2>/dev/null || true
    if [ -n "$started" ]; then
        "$REPO/deploy/lab.sh" down >/dev/null 2>&1 || true
    fi
}
trap restore EXIT

if ! ip netns list | grep -q "^$(ns lb1)\b"; then
    echo "== starting lab $LAB"
    started=1
    "$REPO/deploy/lab.sh" up >/dev/null
fi

csv() { ip netns exec "$(ns lb1)" curl -fsS -m 2 "$URL;csv" 2>/dev/null || true; }

# Wait for lb1 to be MASTER with both servers UP, so the page shows the usual state first.
for _ in $(seq 100); do
    if csv | grep -q '^web,web2,.*,UP,' && ip netns exec "$(ns lb1)" ip -br addr | grep -q 198.51.100.100; then
        break
    fi
    sleep 0.2
done

echo "== web2 off the network: its checks fail"
ip netns exec "$(ns web2)" ip link set eth0 down
for _ in $(seq 150); do
    csv | grep -q '^web,web2,.*,DOWN,' && break
    sleep 0.2
done
csv | grep -q '^web,web2,.*,DOWN,' || die "web2 never DOWN on lb1's stats"

echo "== 40 requests through the VIP"
for _ in $(seq 40); do
    ip netns exec "$(ns client)" curl -fsS -m 1 -o /dev/null http://198.51.100.100:8080/ || true
done

echo "== rendering lb1's page"
mkdir -p "$(dirname "$OUT")"
tmp=$(mktemp -d)
ip netns exec "$(ns lb1)" timeout 60 chromium --headless --no-sandbox --disable-gpu \
    --hide-scrollbars --user-data-dir="$tmp/profile" --window-size="$SIZE" \
    --force-device-scale-factor="$SCALE" \
    --screenshot="$tmp/shot.png" "$URL" >/dev/null 2>&1 || true
[ -s "$tmp/shot.png" ] || die "chromium wrote no screenshot"
bytes=$(stat -c %s "$tmp/shot.png")
[ "$bytes" -le "$MAX_BYTES" ] || die "screenshot is $bytes bytes (limit $MAX_BYTES): use a smaller SHOT_SIZE"
mv "$tmp/shot.png" "$OUT"
rm -rf "$tmp"
echo "== $OUT ($bytes bytes)"
