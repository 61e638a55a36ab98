#!/usr/bin/env bash
# The ECMP lab: one VIP served by every healthy vrrplb box, announced by each box's FRR over
# BGP (+ BFD) to a router that spreads client flows over the boxes (equal-cost multipath).
#
#   deploy/ecmp-lab.sh up       start it (vrrplb from $VRRPLB_BIN or a release build)
#   deploy/ecmp-lab.sh status   the router's route to the VIP and each box's `vrrplb status`
#   deploy/ecmp-lab.sh drill    measure: spread of new flows, a box's death (link down +
#                               SIGKILL of vrrplb and its FRR), a box whose backends all fail,
#                               a box that joins, vrrplb's SIGTERM on a box; prints the
#                               figures (deploy/ecmp-drill.py)
#   deploy/ecmp-lab.sh fail|revive|sick|heal|stop BOX   one step of the drill by hand
#   deploy/ecmp-lab.sh down     remove everything (idempotent)
#
# Topology (network namespaces, one bridge in its own namespace, nothing routed to the host):
#   segment 198.51.100.0/24: router r .1, boxes b1 .11 b2 .12 b3 .13, nginx backends w1 .21 w2 .22
#   clients 203.0.113.0/24 behind the router: client c 203.0.113.10 plus .100-.189 as sources
#   VIP 198.51.100.200/32: each box holds it on lo while healthy (vrrplb `announce`,
#   deploy/examples/ecmp-box.yaml) and its bgpd announces it with a `network` statement
#   (deploy/examples/frr/box-*.conf); the router (deploy/examples/frr/router-*.conf) installs
#   one route with a next hop per announcing box, hashed by L4 (fib_multipath_hash_policy=1).
#
# Every FRR daemon runs in the foreground in its box's namespace with its own pathspace (-N),
# config file, pid file, zebra socket (-z) and vty socket dir (--vty_socket), so several FRRs
# run side by side; reach one with
#   ip netns exec LAB-r vtysh --vty_socket $DIR/r/run -c 'show bfd peers brief'.
#
# Run as root on Debian 12 (it apt-get installs frr, nginx-light and python3 when missing).
# Environment: LAB (namespace prefix, default ecmp), LAB_DIR (state, default /run/$LAB),
# VRRPLB_BIN (binary to use instead of building one), LAB_NO_APT=1 (install nothing).
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:/usr/lib/frr"

LAB=${LAB:-ecmp}
# The process helpers (start_bg, live_pid, stop_recorded, wait_for) are deploy/lab.sh's,
# which only defines things when sourced; everything below sets this lab's own values.
# shellcheck source=deploy/lab.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lab.sh"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! [[ $LAB =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$ ]]; then
    echo "ecmp-lab.sh: LAB must be 1-21 characters of A-Z a-z 0-9 _ . - (got '$LAB')" >&2
    exit 2
fi
DIR=${LAB_DIR:-/run/$LAB}
PIDS=$DIR/pids
BIN=$DIR/vrrplb
VIP=198.51.100.200
BOXES=(b1 b2 b3)
WEBS=(w1 w2)
SEGMENT=(r b1 b2 b3 w1 w2)
declare -A ADDR=([r]=198.51.100.1 [b1]=198.51.100.11 [b2]=198.51.100.12 [b3]=198.51.100.13
    [w1]=198.51.100.21 [w2]=198.51.100.22)
FRR_EXAMPLES=$REPO/deploy/examples/frr

say() { printf '%s\n' "$*"; }
die() {
    printf 'ecmp-lab.sh: %s\n' "$*" >&2
    exit 1
}
ns() { printf '%s-%s' "$LAB" "$1"; }
need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (network namespaces)"; }

# --- processes: deploy/lab.sh's start_bg, live_pid, stop_recorded, wait_for ---

# --- the binary and the tools ---

need_tools() {
    local t missing=()
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v python3 >/dev/null || missing+=(python3)
    command -v vtysh >/dev/null && [ -x /usr/lib/frr/bgpd ] || missing+=(frr)
    if [ ${#missing[@]} -gt 0 ] && [ -z "${LAB_NO_APT:-}" ]; then
        say "== apt-get install ${missing[*]}"
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
        # The distribution's FRR and nginx must not run on the host; the lab runs its own.
        systemctl disable --now frr nginx >/dev/null 2>&1 || true
    fi
    for t in ip nginx python3 zebra bgpd bfdd vtysh; do
        command -v "$t" >/dev/null || die "$t is missing (apt-get install iproute2 nginx-light python3 frr)"
    done
}

build() {
    if [ -n "${VRRPLB_BIN:-}" ]; then
        [ -x "$VRRPLB_BIN" ] || die "VRRPLB_BIN=$VRRPLB_BIN is not an executable"
        install -m 0755 "$VRRPLB_BIN" "$BIN"
        return
    fi
    command -v cargo >/dev/null || die "cargo not found (or set VRRPLB_BIN)"
    say "== cargo build --release"
    cargo build --release --manifest-path "$REPO/Cargo.toml" --bin vrrplb
    install -m 0755 "${CARGO_TARGET_DIR:-$REPO/target}/release/vrrplb" "$BIN"
}

# --- the topology ---

make_namespaces() {
    local h
    ip netns add "$(ns sw)"
    ip -n "$(ns sw)" link set lo up
    ip -n "$(ns sw)" link add br0 type bridge
    ip -n "$(ns sw)" link set br0 type bridge mcast_snooping 0
    ip -n "$(ns sw)" link set br0 up
    for h in "${SEGMENT[@]}" c; do
        ip netns add "$(ns "$h")"
        ip -n "$(ns "$h")" link set lo up
        ip netns exec "$(ns "$h")" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 || true
    done
    for h in "${SEGMENT[@]}"; do
        ip -n "$(ns "$h")" link add eth0 type veth peer name "$h" netns "$(ns sw)"
        ip -n "$(ns sw)" link set "$h" master br0
        ip -n "$(ns sw)" link set "$h" up
        ip -n "$(ns "$h")" addr add "${ADDR[$h]}/24" dev eth0
        ip -n "$(ns "$h")" link set eth0 up
    done
    # The clients' side: a point-to-point link to the router, many source addresses.
    ip -n "$(ns r)" link add eth1 type veth peer name eth0 netns "$(ns c)"
    ip -n "$(ns r)" addr add 203.0.113.1/24 dev eth1
    ip -n "$(ns r)" link set eth1 up
    ip -n "$(ns c)" addr add 203.0.113.10/24 dev eth0
    local i
    for ((i = 100; i < 190; i++)); do
        ip -n "$(ns c)" addr add "203.0.113.$i/32" dev eth0
    done
    ip -n "$(ns c)" link set eth0 up
    ip -n "$(ns c)" route add default via 203.0.113.1
    ip netns exec "$(ns r)" sysctl -q -w net.ipv4.ip_forward=1
    # Flows spread by the L4 hash (addresses and ports), not only by addresses.
    ip netns exec "$(ns r)" sysctl -q -w net.ipv4.fib_multipath_hash_policy=1
    for h in "${BOXES[@]}"; do
        ip -n "$(ns "$h")" route add default via "${ADDR[r]}"
        # The VIP on lo must not be answered for in ARP on the segment: the router reaches
        # it through the BGP next hops only.
        ip netns exec "$(ns "$h")" sysctl -q -w net.ipv4.conf.all.arp_ignore=1
    done
}

start_web() {
    local w=$1 d=$DIR/$1
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
        listen ${ADDR[$w]}:80;
        location / {
            default_type text/plain;
            return 200 "$w via \$remote_addr\n";
        }
    }
}
EOF
    start_bg "nginx-$w" "$(ns "$w")" "$d/nginx.out" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
}

# frr_conf TEMPLATE BOX: the example with the box's address filled in.
frr_conf() { sed -e "s/@ADDR@/${ADDR[$2]}/g" "$FRR_EXAMPLES/$1"; }

start_frr() {
    local h=$1 role=$2 d=$DIR/$1 daemon
    mkdir -p "$d/run"
    # FRR drops to the frr user (the package creates it) and writes its sockets and pids here.
    chown frr:frr "$d/run"
    frr_conf "$role-zebra.conf" "$h" >"$d/zebra.conf"
    frr_conf "$role-bfdd.conf" "$h" >"$d/bfdd.conf"
    frr_conf "$role-bgpd.conf" "$h" >"$d/bgpd.conf"
    # zebra first: bfdd and bgpd connect to its socket.
    start_bg "zebra-$h" "$(ns "$h")" "$d/zebra.log" zebra -N "$(ns "$h")" -u frr -g frr \
        -f "$d/zebra.conf" -i "$d/run/zebra.pid" -z "$d/run/zserv.api" --vty_socket "$d/run" --log stdout
    wait_for 10 test -S "$d/run/zserv.api" || die "zebra of $h did not start: $(tail -5 "$d/zebra.log")"
    for daemon in bfdd bgpd; do
        start_bg "$daemon-$h" "$(ns "$h")" "$d/$daemon.log" "$daemon" -N "$(ns "$h")" -u frr -g frr \
            -f "$d/$daemon.conf" -i "$d/run/$daemon.pid" -z "$d/run/zserv.api" --vty_socket "$d/run" --log stdout
    done
}

stop_frr() {
    local h=$1 sig=${2:-TERM} daemon
    for daemon in bgpd bfdd zebra; do
        stop_recorded "$daemon-$h" "$sig"
    done
}

start_box() {
    local b=$1 d=$DIR/$1
    mkdir -p "$d"
    sed -e "s/^  node: .*/  node: $b/" -e "s|^  control_socket: .*|  control_socket: $d/vrrplb.sock|" \
        "$REPO/deploy/examples/ecmp-box.yaml" >"$d/vrrplb.yaml"
    ip netns exec "$(ns "$b")" "$BIN" check -c "$d/vrrplb.yaml" >/dev/null ||
        die "vrrplb check refused $d/vrrplb.yaml"
    start_frr "$b" box
    start_bg "vrrplb-$b" "$(ns "$b")" "$d/vrrplb.log" "$BIN" run -c "$d/vrrplb.yaml" --log stderr
}

# The router's next hops for the VIP, sorted, one line ("-" when there is no route).
nexthops() {
    local out
    out=$(ip -n "$(ns r)" route show "$VIP/32" 2>/dev/null | grep -o 'via [0-9.]*' | awk '{print $2}' | sort | tr '\n' ' ')
    printf '%s' "${out:--}"
}

cmd_up() {
    need_root
    need_tools
    if ip netns list | awk '{print $1}' | grep -qx "$(ns sw)"; then
        die "lab $LAB is already up (deploy/ecmp-lab.sh down first)"
    fi
    mkdir -p "$PIDS"
    build
    make_namespaces
    for w in "${WEBS[@]}"; do start_web "$w"; done
    start_frr r router
    for b in "${BOXES[@]}"; do start_box "$b"; done
    say "== waiting for the router's route to $VIP through the three boxes"
    if ! wait_for 30 check_nexthops "${ADDR[b1]} ${ADDR[b2]} ${ADDR[b3]} "; then
        say "router route: $(nexthops)"
        for b in "${BOXES[@]}"; do tail -3 "$DIR/$b/vrrplb.log" "$DIR/$b/bgpd.log" || true; done
        die "the route did not get its three next hops"
    fi
    touch "$DIR/up"
    say "lab $LAB up: $VIP via $(nexthops)"
    say "try: ip netns exec $(ns c) curl -s --interface 203.0.113.101 http://$VIP/"
}

check_nexthops() { [ "$(nexthops)" = "$1" ]; }

cmd_status() {
    say "router: $VIP via $(nexthops)"
    for b in "${BOXES[@]}"; do
        say "--- $b"
        ip netns exec "$(ns "$b")" "$BIN" status -c "$DIR/$b/vrrplb.yaml" 2>&1 | grep -E '^(announce|backend|frontend)' || true
    done
}

# --- what the drill does to a box (called by deploy/ecmp-drill.py) ---

# fail BOX: the box dies as on a power loss: its link goes down first (no FIN, no BGP
# NOTIFICATION reaches the router: BFD has to notice), then vrrplb and FRR are SIGKILLed.
cmd_fail() {
    local b=$1
    ip -n "$(ns "$b")" link set eth0 down
    stop_recorded "vrrplb-$b" KILL
    stop_frr "$b" KILL
}

# revive BOX: it boots again: link up, FRR and vrrplb started (the VIP left on lo by the
# SIGKILL is there until vrrplb judges its health).
cmd_revive() {
    local b=$1
    ip -n "$(ns "$b")" link set eth0 up
    # The link's down flushed the routes through it.
    ip -n "$(ns "$b")" route replace default via "${ADDR[r]}"
    start_frr "$b" box
    start_bg "vrrplb-$b" "$(ns "$b")" "$DIR/$b/vrrplb.log" "$BIN" run -c "$DIR/$b/vrrplb.yaml" --log stderr
}

# stop BOX: vrrplb's orderly stop (SIGTERM): it removes the VIP and bgpd withdraws it.
cmd_stop() { stop_recorded "vrrplb-$1" TERM; }

# sick BOX / heal BOX: the box cannot reach any backend (prohibit routes: connects fail at once).
cmd_sick() {
    local w
    for w in "${WEBS[@]}"; do ip -n "$(ns "$1")" route add prohibit "${ADDR[$w]}/32"; done
}
cmd_heal() {
    local w
    for w in "${WEBS[@]}"; do ip -n "$(ns "$1")" route del prohibit "${ADDR[$w]}/32" 2>/dev/null || true; done
}

cmd_drill() {
    need_root
    [ -f "$DIR/up" ] || die "lab $LAB is not up (deploy/ecmp-lab.sh up)"
    ip netns exec "$(ns c)" python3 "$REPO/deploy/ecmp-drill.py" \
        --lab-script "$REPO/deploy/ecmp-lab.sh" --router-ns "$(ns r)" --vip "$VIP" "$@"
}

cmd_down() {
    local f name h
    if [ -d "$PIDS" ]; then
        for f in "$PIDS"/vrrplb-*.pid "$PIDS"/*.pid; do
            [ -f "$f" ] || continue
            name=$(basename "$f" .pid)
            stop_recorded "$name" TERM
        done
    fi
    for h in "${SEGMENT[@]}" c sw; do
        ip netns del "$(ns "$h")" 2>/dev/null || true
    done
    rm -rf "$DIR"
    say "lab $LAB removed"
}

case "${1:-}" in
    up) cmd_up ;;
    status) cmd_status ;;
    drill) shift; cmd_drill "$@" ;;
    fail | revive | sick | heal | stop)
        c=$1
        shift
        [ $# -eq 1 ] && [[ " ${BOXES[*]} " == *" $1 "* ]] || die "$c needs a box: ${BOXES[*]}"
        "cmd_$c" "$1"
        ;;
    nexthops) nexthops; echo ;;
    down) cmd_down ;;
    *) die "usage: $0 up|status|drill|down (LAB=$LAB)" ;;
esac
