#!/usr/bin/env bash
# The vrrplb lab: a keepalived + HAProxy-style pair on one Linux machine, in network namespaces.
#
#   deploy/lab.sh                   build vrrplb (release), start the lab, print what to try
#   deploy/lab.sh up --advert 100ms the same in VRRPv3 with 100 ms adverts (sub-second failover;
#                                   the engine thread at SCHED_RR 50); --advert 1s is the default
#   deploy/lab.sh status            who is MASTER (vrrplb status of both boxes)
#   deploy/lab.sh drill             kill the MASTER (SIGKILL + link down) under a 20 ms client,
#                                   measure the outage, restore it and measure the failback
#   deploy/lab.sh drill --graceful  the same with SIGTERM (priority-0 advert)
#   deploy/lab.sh drill --https     either drill with the client on https://VIP/ (lab CA in
#                                   $DIR/tls, a new TLS connection per request)
#   deploy/lab.sh drill --tcp       either drill over the tcp frontend VIP:8081: one long-lived
#                                   connection carries the polls until it breaks, then each
#                                   poll tries a new connection (kept once it works)
#   deploy/lab.sh chaos [--events N] [--seed S]
#                                   N faults from a fixed-seed PRNG under steady client load,
#                                   each checked against its bound (deploy/chaos.sh)
#   deploy/lab.sh soak [--minutes M] [--seed S]
#                                   faults every few seconds for M minutes; RSS, descriptors,
#                                   threads of both boxes sampled every 10 s (deploy/chaos.sh)
#   deploy/lab.sh down              remove everything (idempotent)
#
# deploy/aa-lab.sh is its sibling for N boxes sharing M VIPs (active-active by VIP); it uses
# this file's functions.
#
# Run as root on Debian 12 (it apt-get installs what it needs). One bridge in its own namespace
# joins five namespaces: lb1 198.51.100.11 and lb2 .12 (vrrplb from deploy/examples/lb1.yaml
# and lb2.yaml, VIP 198.51.100.100), web1 .21 and web2 .22 (nginx), and a client .50. Only
# 198.51.100.0/24 is used and nothing is routed to the host.
#
# The VIP serves what a keepalived + HAProxy site serves (seeds 001 and 002):
#   :80    302 to https://VIP/ (redirect_https, as seed 001's Apache did)
#   :443   TLS terminated with the lab CA's certificate for www.lab.test and the VIP
#   :8080  plain HTTP, the example's frontend (seed 001's HAProxy listened there behind
#          Apache); the plain drill polls it, so its figures carry no TLS cost
#   :8443  mode tcp TLS pass-through by SNI (seed 002, deploy/examples/seed002-passthrough.yaml's
#          shape): admin.lab.test -> web2:9443, anything else -> web1/web2:443; the servers
#          present their own certificates (from the lab CA)
#   :8081  mode tcp to the servers' plain port 80 (the TCP drill's long-lived connections)
#
# Environment:
#   LAB=name          namespace prefix and state dir name (default vrrplb-lab), so several labs
#                     (tests) can run side by side
#   LAB_DIR=dir       state dir (default /run/$LAB): configs, logs, PIDs of every process started
#   VRRPLB_BIN=path   use this vrrplb binary instead of building one (cargo build --release)
#   LAB_NO_APT=1      do not install packages (fail if a tool is missing)
#   CHAOS_PCAP=1      chaos/soak also write every client segment and ARP to all.pcap
set -euo pipefail
# ip, nginx, rsyslogd and sysctl live in sbin, which a non-login root shell may not have.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=${LAB:-vrrplb-lab}
if ! [[ $LAB =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$ ]]; then
    echo "lab.sh: LAB must be 1-31 characters of A-Z a-z 0-9 _ . - (got '$LAB')" >&2
    exit 2
fi
DIR=${LAB_DIR:-/run/$LAB}
PIDS=$DIR/pids
BIN=$DIR/vrrplb
VIP=198.51.100.100
URL=http://$VIP:8080/
CACERT=()
# Extra `vrrplb poll` options of a drill (--keep-alive for --tcp).
POLL_OPTS=()
BRNS=$LAB-br
BOXES=(lb1 lb2)
WEBS=(web1 web2)
HOSTS=(lb1 lb2 web1 web2 client)
declare -A ADDR=([lb1]=198.51.100.11 [lb2]=198.51.100.12 [web1]=198.51.100.21
    [web2]=198.51.100.22 [client]=198.51.100.50)

# The command prefix a person types to reach this lab again (LAB only when not the default).
ME=deploy/lab.sh
[ "$LAB" = vrrplb-lab ] || ME="LAB=$LAB deploy/lab.sh"
[ -z "${LAB_DIR:-}" ] || ME="LAB_DIR=$LAB_DIR $ME"

say() { printf '%s\n' "$*"; }
die() {
    printf 'lab.sh: %s\n' "$*" >&2
    exit 1
}
ns() { printf '%s-%s' "$LAB" "$1"; }

# Milliseconds since the epoch, without forking.
now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    printf '%s' $((t / 1000))
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, raw sockets, apt-get)"
}

# --- processes: started in a namespace, recorded by PID + start time, killed only by that ---

starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

# start_bg NAME NAMESPACE LOGFILE COMMAND...   (ip netns exec execs, so $! is the command)
start_bg() {
    local name=$1 netns=$2 log=$3
    shift 3
    ip netns exec "$netns" "$@" </dev/null >>"$log" 2>&1 &
    local pid=$!
    printf '%s %s %s\n' "$pid" "$(starttime "$pid")" "$*" >"$PIDS/$name.pid"
}

# The recorded PID of NAME if that very process is still alive, else nothing.
live_pid() {
    local f=$PIDS/$1.pid pid st rest
    [ -f "$f" ] || return 0
    read -r pid st rest <"$f" || return 0
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    [ "$(starttime "$pid")" = "$st" ] || return 0
    gone "$pid" || printf '%s' "$pid"
}

# gone PID: true once PID has exited (a zombie counts as gone)
gone() {
    [ -d "/proc/$1" ] || return 0
    case "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $1}')" in
        Z | X | "") return 0 ;;
    esac
    return 1
}

# stop_recorded NAME [SIGNAL]: signal the recorded process, wait up to 5 s, then SIGKILL it.
stop_recorded() {
    local name=$1 sig=${2:-TERM} pid i
    pid=$(live_pid "$name")
    if [ -n "$pid" ]; then
        kill "-$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            [ -n "$(live_pid "$name")" ] || break
            sleep 0.1
        done
        pid=$(live_pid "$name")
        if [ -n "$pid" ]; then
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.1
        fi
    fi
    rm -f "$PIDS/$name.pid"
}

# wait_for SECONDS COMMAND...: retry every 0.1 s until COMMAND succeeds; bounded.
wait_for() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

lab_is_up() { [ -f "$DIR/up" ] && ip netns list | awk '{print $1}' | grep -qx "$BRNS"; }

# --- packages and the binary ---

install_deps() {
    local missing=()
    command -v ip >/dev/null || missing+=(iproute2)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
    command -v curl >/dev/null || missing+=(curl)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v tcpdump >/dev/null || [ -x /usr/bin/tcpdump ] || missing+=(tcpdump)
    command -v sysctl >/dev/null || [ -x /usr/sbin/sysctl ] || missing+=(procps)
    # vrrplb's hand-over relay (a new MASTER passes the old one's connections back to it).
    command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing+=(nftables)
    # Building needs a C linker (rustup does not bring one).
    [ -n "${VRRPLB_BIN:-}" ] || command -v cc >/dev/null || missing+=(build-essential)
    [ ${#missing[@]} -gt 0 ] || return 0
    [ "${LAB_NO_APT:-}" != 1 ] || die "missing packages: ${missing[*]} (LAB_NO_APT=1)"
    say "== installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends iproute2 nginx-light rsyslog curl tcpdump \
        procps openssl ca-certificates "${missing[@]}" >/dev/null
    # The distribution's nginx must not hold port 80 on the host; the lab runs its own.
    if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
        systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
}

find_cargo() {
    local c home
    if c=$(command -v cargo); then printf '%s' "$c" && return 0; fi
    for home in "$HOME" ${SUDO_USER:+"$(getent passwd "$SUDO_USER" | cut -d: -f6)"}; do
        [ -x "$home/.cargo/bin/cargo" ] && printf '%s' "$home/.cargo/bin/cargo" && return 0
    done
    return 1
}

build() {
    local src
    if [ -n "${VRRPLB_BIN:-}" ]; then
        src=$VRRPLB_BIN
        [ -x "$src" ] || die "VRRPLB_BIN=$src is not an executable"
        say "== using $src (VRRPLB_BIN)"
    else
        local cargo
        cargo=$(find_cargo) || die "cargo not found; install Rust with rustup (https://rustup.rs) first"
        say "== cargo build --release"
        if [ -n "${SUDO_USER:-}" ] && [[ $cargo == /home/* ]] &&
            [ "$(stat -c %U "$REPO")" = "$SUDO_USER" ]; then
            # Build as the user who owns the clone, with their toolchain.
            runuser -u "$SUDO_USER" -- env PATH="$(dirname "$cargo"):$PATH" \
                "$cargo" build --release --manifest-path "$REPO/Cargo.toml" --bin vrrplb
        else
            "$cargo" build --release --manifest-path "$REPO/Cargo.toml" --bin vrrplb
        fi
        src=${CARGO_TARGET_DIR:-$REPO/target}/release/vrrplb
    fi
    # The lab runs its own copy, so a rebuild never pulls the binary from under it.
    install -m 0755 "$src" "$BIN"
}

# --- the topology ---

make_namespaces() {
    local h
    ip netns add "$BRNS"
    ip -n "$BRNS" link set lo up
    ip -n "$BRNS" link add br0 type bridge
    # Snooping would hide the VRRP adverts (224.0.0.18) from ports that sent no IGMP report.
    ip -n "$BRNS" link set br0 type bridge mcast_snooping 0
    ip -n "$BRNS" link set br0 up
    for h in "${HOSTS[@]}"; do
        ip netns add "$(ns "$h")"
        ip -n "$(ns "$h")" link set lo up
        ip -n "$(ns "$h")" link add eth0 type veth peer name "$h" netns "$BRNS"
        ip -n "$BRNS" link set "$h" master br0
        ip -n "$BRNS" link set "$h" up
        # IPv4 only: no IPv6 DAD or MLD chatter in the captures.
        ip netns exec "$(ns "$h")" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 || true
        ip -n "$(ns "$h")" addr add "${ADDR[$h]}/24" dev eth0
        ip -n "$(ns "$h")" link set eth0 up
    done
}

# The pass-through's admin pool: web2 serves admin.lab.test on :9443 with its own certificate.
admin_server() {
    [ "$1" = web2 ] || return 0
    cat <<EOF
    server {
        listen ${ADDR[$1]}:9443 ssl;
        server_name admin.lab.test;
        ssl_certificate $DIR/tls/admin.crt;
        ssl_certificate_key $DIR/tls/admin.key;
        location / {
            default_type text/plain;
            return 200 "admin on $1 via \$lb\nTLS by $1 itself (admin.lab.test), passed through by \$lb.\n";
        }
    }
EOF
}

start_web() {
    local w=$1 d=$DIR/$1
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
# Demo backend $w of the vrrplb lab (generated by deploy/lab.sh).
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 256; }
http {
    access_log $d/access.log;
    # The TCP drill keeps one connection for up to ~2000 polls.
    keepalive_requests 100000;
    keepalive_timeout 120s;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    map \$remote_addr \$lb {
        ${ADDR[lb1]} lb1;
        ${ADDR[lb2]} lb2;
        default \$remote_addr;
    }
    server {
        listen ${ADDR[$w]}:80;
        server_name $w;
        location / {
            default_type text/plain;
            return 200 "$w via \$lb\nHello from $w (${ADDR[$w]}), reached through load balancer \$lb for client \$http_x_forwarded_for.\n";
        }
    }
    # TLS terminated here, with this server's own certificate: the balancer passes it through
    # (tcp frontend :8443, SNI routing).
    server {
        listen ${ADDR[$w]}:443 ssl;
        server_name $w.lab.test app.lab.test;
        ssl_certificate $DIR/tls/$w.crt;
        ssl_certificate_key $DIR/tls/$w.key;
        location / {
            default_type text/plain;
            return 200 "$w via \$lb\nTLS by $w itself ($w.lab.test), passed through by \$lb.\n";
        }
    }
$(admin_server "$w")
}
EOF
    ip netns exec "$(ns "$w")" nginx -t -q -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
    start_bg "nginx-$w" "$(ns "$w")" "$d/nginx.out" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
}

start_rsyslog() {
    local b=$1 d=$DIR/$1
    mkdir -p "$d/rsyslog"
    cat >"$d/rsyslog.conf" <<EOF
# The syslog daemon of box $b in the vrrplb lab (generated by deploy/lab.sh): vrrplb logs to
# $d/log.sock (global.log.syslog_socket), lines land in $d/syslog.log with a
# microsecond receive time.
global(workDirectory="$d/rsyslog")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$d/log.sock" RateLimit.Interval="0")
template(name="lab" type="string"
         string="%timegenerated:::date-rfc3339% $b %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\n")
action(type="omfile" file="$d/syslog.log" template="lab")
EOF
    : >"$d/syslog.log"
    start_bg "rsyslog-$b" "$(ns "$b")" "$d/rsyslog.out" \
        rsyslogd -n -f "$d/rsyslog.conf" -i "$d/rsyslog.pid"
    wait_for 10 test -S "$d/log.sock" || die "rsyslog of $b did not create $d/log.sock: $(cat "$d/rsyslog.out")"
}

# The advert interval of the lab in ms (`up --advert`, kept in $DIR/advert_ms): 1000 is the
# examples' VRRPv2; anything else is VRRPv3 at that interval.
advert_ms() { cat "$DIR/advert_ms" 2>/dev/null || echo 1000; }

# `--advert 100ms|1s|2`: the interval in ms (v3: 10 ms steps, 10..40950; v2: whole seconds).
parse_advert() {
    local v=$1 ms
    case "$v" in
        *ms) ms=${v%ms} ;;
        *s) ms=$((${v%s} * 1000)) ;;
        *) ms=$((v * 1000)) ;;
    esac
    [[ $ms =~ ^[0-9]+$ ]] && ((ms >= 10 && ms <= 40950 && ms % 10 == 0)) ||
        die "--advert $v: expected 10ms..40950ms in steps of 10 ms, or whole seconds"
    echo "$ms"
}

# The box's config: the example, with the lab's syslog socket, control socket and maintenance
# file; everything else (interface eth0, addresses, VIP) is already right for the lab. With a
# sub-second or non-default advert the instance speaks VRRPv3 (no authentication in v3) and
# the engine thread runs SCHED_RR, as keepalived advises for sub-second timers.
write_config() {
    local b=$1 d=$DIR/$1 ms v3=() rt=""
    ms=$(advert_ms)
    if [ "$ms" != 1000 ]; then
        v3=(-e "s|^    advert_int: 1\$|    version: 3\n    advert_int: ${ms}ms|"
            -e "/^    authentication:\$/,/^      auth_pass:/d")
        rt="\n  vrrp_realtime_priority: 50"
    fi
    lab_frontends >"$d/lab-frontends.yaml"
    lab_backends >"$d/lab-backends.yaml"
    {
        printf '# Generated by deploy/lab.sh from deploy/examples/%s.yaml for lab %s.\n' "$b" "$LAB"
        sed -e "s|^global:\$|global:\n  control_socket: $d/vrrplb.sock$rt|" \
            -e "/^frontends:\$/r $d/lab-frontends.yaml" \
            -e "/^backends:\$/r $d/lab-backends.yaml" \
            -e "s|^    bind: \[\"$VIP:80\"\]|    bind: [\"$VIP:8080\"]|" \
            -e "s|^  log:\$|  log:\n    syslog_socket: $d/log.sock|" \
            -e "s|/etc/vrrplb/maintenance|$d/maintenance|g" \
            "${v3[@]}" "$REPO/deploy/examples/$b.yaml"
    } >"$d/vrrplb.yaml"
    if ! grep -q "bind: \[\"$VIP:8080\"\]" "$d/vrrplb.yaml" ||
        ! grep -q "name: www-redirect" "$d/vrrplb.yaml" || ! grep -q "name: app$" "$d/vrrplb.yaml"; then
        die "deploy/examples/$b.yaml changed shape: cannot move its frontend to :8080 or add the lab's"
    fi
    if [ "$ms" != 1000 ] && ! grep -q "advert_int: ${ms}ms" "$d/vrrplb.yaml"; then
        die "deploy/examples/$b.yaml changed shape: cannot set advert_int ${ms}ms in it"
    fi
    if ! grep -q "control_socket: $d/vrrplb.sock" "$d/vrrplb.yaml" ||
        ! grep -q "syslog_socket: $d/log.sock" "$d/vrrplb.yaml"; then
        die "deploy/examples/$b.yaml changed shape: cannot place the lab's sockets in it"
    fi
    "$BIN" check -c "$d/vrrplb.yaml" >"$d/check.out" 2>&1 ||
        die "vrrplb check -c $d/vrrplb.yaml failed:$(printf '\n')$(cat "$d/check.out")"
}

# The frontends the lab adds to the example's (which it moves from VIP:80 to VIP:8080).
lab_frontends() {
    cat <<EOF
  # Added by deploy/lab.sh: http -> https on :80 (seed 001), TLS on :443 with the lab CA's
  # certificate, seed 002's TLS pass-through by SNI on :8443, plain TCP on :8081.
  - name: www-redirect
    bind: ["$VIP:80"]
    gate: [VI_1]
    redirect_https: true
    default_backend: web
  - name: www-tls
    bind: ["$VIP:443"]
    gate: [VI_1]
    tls: { certificates: ["$DIR/tls/www.pem"] }
    forwarded_for: true
    default_backend: web
  - name: tls-in
    mode: tcp
    bind: ["$VIP:8443"]
    gate: [VI_1]
    timeouts: { client: 1m }
    routes:
      - match: { sni: "admin.lab.test" }
        backend: admin
    default_backend: app
  - name: tcp-in
    mode: tcp
    bind: ["$VIP:8081"]
    gate: [VI_1]
    timeouts: { client: 1m }
    default_backend: web-tcp
EOF
}

# The lab's tcp backends: the servers terminate TLS themselves (checks on their plain port).
lab_backends() {
    cat <<EOF
  - name: app
    mode: tcp
    balance: roundrobin
    servers:
      - { name: web1, address: "${ADDR[web1]}:443", check_port: 80 }
      - { name: web2, address: "${ADDR[web2]}:443", check_port: 80 }
    health_check: { kind: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 3 }
    retries: 3
    redispatch: true
    timeouts: { connect: 5s, server: 1m }
  - name: admin
    mode: tcp
    servers:
      - { name: adm1, address: "${ADDR[web2]}:9443" }
    health_check: { kind: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 3 }
    timeouts: { connect: 5s, server: 1m }
  - name: web-tcp
    mode: tcp
    balance: roundrobin
    servers:
      - { name: web1, address: "${ADDR[web1]}:80" }
      - { name: web2, address: "${ADDR[web2]}:80" }
    health_check: { kind: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 3 }
    retries: 3
    redispatch: true
    timeouts: { connect: 5s, server: 1m }
EOF
}

start_box() {
    local b=$1 d=$DIR/$1
    start_bg "vrrplb-$b" "$(ns "$b")" "$d/stderr.log" "$BIN" run -c "$d/vrrplb.yaml"
}

# --- status ---

# box_state BOX: the state of VI_1 from `vrrplb status` (empty when it does not answer).
box_state() {
    "$BIN" status -c "$DIR/$1/vrrplb.yaml" 2>/dev/null | awk '$1 == "instance" {print $4; exit}'
}

has_vip() { ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null | grep -q " $VIP/"; }

masters() {
    local b out=()
    for b in "${BOXES[@]}"; do
        [ "$(box_state "$b")" != MASTER ] || out+=("$b")
    done
    printf '%s' "${out[*]}"
}

one_master() { local m; m=$(masters) && [ -n "$m" ] && [[ $m != *" "* ]] && has_vip "$m"; }

# one_master, and the other box does not hold the VIP any more.
settled() {
    local m b
    one_master || return 1
    m=$(masters)
    for b in "${BOXES[@]}"; do
        [ "$b" = "$m" ] || ! has_vip "$b" || return 1
    done
}

client_get() { ip netns exec "$(ns client)" curl -fsS -m 1 "${CACERT[@]}" "$URL"; }

# issue_cert NAME CN SAN: $DIR/tls/NAME.crt + .key signed by the lab CA.
issue_cert() {
    local t=$DIR/tls
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$3" >"$t/$1.ext"
    openssl req -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$t/$1.key" \
        -out "$t/$1.csr" -subj "/CN=$2" >/dev/null 2>&1 &&
        openssl x509 -req -in "$t/$1.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
            -days 30 -extfile "$t/$1.ext" -out "$t/$1.crt" >/dev/null 2>&1 ||
        die "openssl: cannot make the lab certificate $1"
    chmod 600 "$t/$1.key"
}

# A throwaway CA in $DIR/tls and its certificates: www (www.lab.test and the VIP) for the
# balancers' TLS frontend on VIP:443, and each server's own for the pass-through on VIP:8443
# (web1.lab.test, web2.lab.test, both also app.lab.test; admin.lab.test on web2:9443).
# Clients trust ca.pem.
make_lab_tls() {
    local t=$DIR/tls w
    mkdir -p "$t"
    openssl req -x509 -nodes -days 30 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$t/ca.key" -out "$t/ca.pem" -subj "/CN=vrrplb lab $LAB CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        >/dev/null 2>&1 || die "openssl: cannot make the lab CA"
    issue_cert www www.lab.test "DNS:www.lab.test,IP:$VIP"
    cat "$t/www.crt" "$t/www.key" >"$t/www.pem"
    for w in "${WEBS[@]}"; do issue_cert "$w" "$w.lab.test" "DNS:$w.lab.test,DNS:app.lab.test"; done
    issue_cert admin admin.lab.test DNS:admin.lab.test
    chmod 600 "$t/www.pem" "$t/ca.key"
}

cmd_status() {
    lab_is_up || die "lab $LAB is not up (start it with: $ME)"
    local b out state prio backend pid m
    for b in "${BOXES[@]}"; do
        out=$("$BIN" status -c "$DIR/$b/vrrplb.yaml" 2>&1) || true
        state=$(awk '$1 == "instance" {print $4; exit}' <<<"$out")
        prio=$(awk '$1 == "instance" {print $6; exit}' <<<"$out")
        backend=$(awk '$1 == "backend" {print "backend " $2 " up " $4; exit}' <<<"$out")
        pid=$(live_pid "vrrplb-$b")
        if [ -z "$state" ]; then
            say "$b ${ADDR[$b]}: not answering (${pid:+pid $pid running}${pid:-not running}): $out"
        else
            say "$b ${ADDR[$b]}: $state priority $prio, VIP $(has_vip "$b" && echo present || echo absent), $backend (pid ${pid:-?})"
        fi
    done
    m=$(masters)
    case "$m" in
        "") say "MASTER: none" ;;
        *" "*) say "MASTER: $m (more than one: split brain)" ;;
        *) say "MASTER: $m" ;;
    esac
}

# --- up / down ---

cmd_up() {
    local ms=1000
    while [ $# -gt 0 ]; do
        case "$1" in
            --advert)
                [ $# -ge 2 ] || die "up: --advert needs a value (100ms, 1s)"
                ms=$(parse_advert "$2")
                shift 2
                ;;
            *) die "up: unknown option $1 (use --advert INTERVAL)" ;;
        esac
    done
    need_root
    install_deps
    if lab_is_up || [ -d "$DIR" ] || ip netns list | awk '{print $1}' | grep -q "^$LAB-"; then
        say "== lab $LAB exists: removing it first"
        cmd_down
    fi
    mkdir -p "$PIDS"
    chmod 755 "$DIR"
    echo "$ms" >"$DIR/advert_ms"
    build
    say "== namespaces: $BRNS (bridge br0) and $(printf "$LAB-%s " "${HOSTS[@]}")"
    make_namespaces
    local w b
    make_lab_tls
    for w in "${WEBS[@]}"; do start_web "$w"; done
    for w in "${WEBS[@]}"; do
        wait_for 10 ip netns exec "$(ns client)" curl -fsS -m 1 "http://${ADDR[$w]}/" ||
            die "backend $w does not answer: $(cat "$DIR/$w/error.log" "$DIR/$w/nginx.out" 2>/dev/null)"
    done
    say "== backends web1 web2 answer (nginx)"
    for b in "${BOXES[@]}"; do
        mkdir -p "$DIR/$b"
        start_rsyslog "$b"
        write_config "$b"
    done
    for b in "${BOXES[@]}"; do start_box "$b"; done
    touch "$DIR/up"
    say "== vrrplb started in lb1 and lb2; waiting for the election (Master_Down_Interval ~3.6 s)"
    # Settled: one MASTER and only it holding the VIP. Both boxes start BACKUP, and when lb1
    # starts a little later lb2 may be MASTER for a moment, keeping the VIP a short hand-back
    # after lb1 preempts it; a client that resolved the VIP then may need the new MASTER's
    # second set of gratuitous ARPs (garp_master_delay, 5 s) before it is served.
    if ! wait_for 20 settled || ! wait_for 10 client_get; then
        cmd_status || true
        for b in "${BOXES[@]}"; do
            say "---- $b syslog ----"
            tail -n 20 "$DIR/$b/syslog.log" "$DIR/$b/stderr.log" 2>/dev/null || true
        done
        die "the pair did not come up: see above ($ME down removes it)"
    fi
    local m
    m=$(masters)
    cat <<EOF

vrrplb lab "$LAB" is up. State, configs and logs: $DIR

  VIP     $VIP    held by $m (MASTER)
  lb1     ${ADDR[lb1]}  vrrplb -c $DIR/lb1/vrrplb.yaml   syslog $DIR/lb1/syslog.log
  lb2     ${ADDR[lb2]}  vrrplb -c $DIR/lb2/vrrplb.yaml   syslog $DIR/lb2/syslog.log
  web1    ${ADDR[web1]}  nginx    web2 ${ADDR[web2]}  nginx
  client  ${ADDR[client]}  namespace $(ns client)

$(client_get | head -n 1 | sed 's/^/  The client gets: /')

Try:
  ip netns exec $(ns client) curl -I http://$VIP/     # 302 to https://$VIP/ (redirect_https)
  ip netns exec $(ns client) curl --cacert $DIR/tls/ca.pem https://$VIP/   # a page naming the backend and the balancer
  ip netns exec $(ns client) curl http://$VIP:8080/   # the same in plain HTTP (the drill's default)
  ip netns exec $(ns client) openssl s_client -connect $VIP:8443 -servername admin.lab.test -CAfile $DIR/tls/ca.pem
                                  # TLS pass-through by SNI: the server's own certificate (admin.lab.test)
  $ME status                     # who is MASTER
  $ME drill                      # SIGKILL + link down of the MASTER under a 20 ms client, then failback
  $ME drill --graceful           # the same with SIGTERM
  $ME drill --https              # the client polls https://VIP/ (a new TLS connection per request)
  $ME drill --tcp                # a long-lived TCP connection through VIP:8081, then new ones
  touch $DIR/lb1/maintenance      # maintenance: lb1 drops 20 priority, the VIP moves (rm to return)
  tail -f $DIR/lb1/syslog.log     # (VI_1) Entering MASTER STATE, Server web/web1 is DOWN, access log
  $DIR/vrrplb status -c $DIR/lb1/vrrplb.yaml
  $ME down                       # remove everything
EOF
}

cmd_down() {
    local f name h removed=0 left
    if [ -d "$PIDS" ]; then
        # Drill helpers first, then the balancers (SIGTERM: orderly stop), then the rest.
        for f in "$PIDS"/drill-*.pid "$PIDS"/vrrplb-*.pid "$PIDS"/*.pid; do
            [ -f "$f" ] || continue
            name=$(basename "$f" .pid)
            stop_recorded "$name" TERM
            removed=$((removed + 1))
        done
    fi
    for h in "${HOSTS[@]}" br; do
        if ip netns list | awk '{print $1}' | grep -qx "$LAB-$h"; then
            left=$(ip netns pids "$LAB-$h" 2>/dev/null | tr '\n' ' ')
            [ -z "$left" ] || say "lab.sh: warning: processes the lab did not start are still in $LAB-$h: $left (not killed)" >&2
            ip netns del "$LAB-$h" 2>/dev/null || true
            removed=$((removed + 1))
        fi
    done
    if [ -d "$DIR" ]; then
        rm -rf "$DIR"
        removed=$((removed + 1))
    fi
    if [ "$removed" -eq 0 ]; then say "lab $LAB: nothing to remove"; else say "lab $LAB removed"; fi
}

# --- the drill ---

# ms since the epoch of an rsyslog RFC 3339 stamp or an `ip -ts` stamp ([2024-...])
to_ms() {
    local s=${1#[}
    s=${s%]}
    date -d "$s" +%s%3N 2>/dev/null
}

# first_syslog BOX FROM_LINE PATTERN: the ms time of the first line after FROM_LINE matching
first_syslog() {
    local line
    # grep -m 1 may end before tail has written everything: tail's SIGPIPE fails the
    # pipeline (pipefail), so the status is ignored and the captured line decides.
    line=$(tail -n "+$(($2 + 1))" "$DIR/$1/syslog.log" | grep -F -m 1 -- "$3") || true
    [ -n "$line" ] || return 0
    to_ms "${line%% *}"
}

# first_monitor FILE REGEX: the ms time of the first `ip -ts monitor` line matching
first_monitor() {
    local line
    line=$(grep -E -m 1 -- "$2" "$1" 2>/dev/null) || return 0
    to_ms "${line%%]*}]"
}

# first_garp FILE MAC: the ms time of the first gratuitous ARP for the VIP sent by MAC
first_garp() {
    awk -v mac="$2" -v vip="$VIP" '
        $2 == mac && ((index($0, "who-has " vip " ") && index($0, " tell " vip ",")) ||
                      index($0, "Reply " vip " is-at")) {
            split($1, t, "."); printf "%d%03d", t[1], substr(t[2] "000000", 1, 3); exit
        }' "$1" 2>/dev/null
}

# stream_broke POLL_FILE: the epoch ms of the first `STREAM broke` line (--keep-alive), or nothing
stream_broke() { sed -n '/^STREAM broke at=/{s/^STREAM broke at=\([0-9]*\) .*/\1/p;q}' "$1" 2>/dev/null; }

rel() { if [ -n "$1" ]; then printf '%s' $(($1 - $2)); else printf -- '-'; fi; }

result_field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# Helpers that watch the drill (capture, address and neighbour monitors): started here,
# stopped by their recorded PIDs at the end (or by `down`).
start_watchers() {
    local d=$1 b
    start_bg drill-tcpdump "$BRNS" "$d/tcpdump.err" \
        sh -c "exec tcpdump -i br0 -n -l -tt -e arp >'$d/arp.txt'"
    for b in "${BOXES[@]}"; do
        start_bg "drill-addr-$b" "$(ns "$b")" "$d/addr-$b.txt" ip -ts monitor address
    done
    start_bg drill-neigh "$(ns client)" "$d/neigh.txt" ip -ts monitor neigh
    wait_for 5 grep -q "listening on" "$d/tcpdump.err" || say "(tcpdump did not start: $(cat "$d/tcpdump.err"))"
}

stop_watchers() {
    local f
    for f in "$PIDS"/drill-*.pid; do
        [ -f "$f" ] || continue
        stop_recorded "$(basename "$f" .pid)" TERM
    done
}

# syslog_since BOX FROM_LINE: the box's syslog lines since FROM_LINE, without access-log lines
syslog_since() {
    tail -n "+$(($2 + 1))" "$DIR/$1/syslog.log" |
        grep -Ev '\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:.]+\] ' | sed 's/^/  /' || true
}

lines_of() { wc -l <"$DIR/$1/syslog.log"; }

# poll_lines FILE T0: the poller's FAIL/OK lines (at most 12), their t= counted from T0 (the
# kill or the restore) instead of from the client's start, like every other figure printed.
poll_lines() {
    grep -E '^(FAIL|OK|STREAM)' "$1" | head -n 12 |
        awk -v t0="$2" '{
            for (i = 1; i <= NF; i++) if ($i ~ /^at=[0-9]+$/) at = substr($i, 4) + 0
            for (i = 1; i <= NF; i++) if ($i ~ /^t=\+[0-9]+ms$/) $i = sprintf("t=%+dms", at - t0)
            print "     " $0
        }' || true
}

# state_events BOX FROM_LINE: "state BOX MS STATE" for each VRRP state change in the box's
# syslog since FROM_LINE (the timeline's bands).
state_events() {
    local line st
    tail -n "+$(($2 + 1))" "$DIR/$1/syslog.log" | grep -E '\(VI_1\) Entering [A-Z]+ STATE' |
        while IFS= read -r line; do
            st=${line##*Entering }
            printf 'state %s %s %s\n' "$1" "$(to_ms "${line%% *}")" "${st%% *}"
        done || true
}

# draw_timeline OUT TITLE T0 EVENTS TRACE: an SVG of one drill phase, times counted from T0
# (the kill or the restore): every poll of the client as an ok/failed mark, each box's state
# band (BACKUP/MASTER/FAULT/stopped), the VIP, GARP and "mark" moments as vertical lines.
# EVENTS lines: "state BOX MS STATE", "vip MS", "garp MS", "mark MS LABEL", "end MS".
# TRACE: `vrrplb poll --trace` lines "MS ok|fail".
draw_timeline() {
    awk -v out="$1" -v title="$2" -v t0="$3" '
        function x(ms) { return sprintf("%.1f", 80 + (ms - lo) * 900 / (hi - lo)) }
        function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
        function vline(ms, cls, colour, label, dy) {
            printf "<line class=\"%s\" x1=\"%s\" y1=\"40\" x2=\"%s\" y2=\"190\" stroke=\"%s\" stroke-width=\"1.5\"%s/>\n", cls, x(ms), x(ms), colour, cls == "mark" ? " stroke-dasharray=\"5,3\"" : "" > out
            printf "<text x=\"%s\" y=\"%d\" font-size=\"11\" fill=\"%s\">%s +%d ms</text>\n", x(ms) + 3, 200 + dy, colour, esc(label), ms > out
        }
        FNR == NR {
            if ($1 == "state") { n = ++ns; sbox[n] = $2; sms[n] = $3 - t0; sst[n] = $4 }
            else if ($1 == "end") end = $2 - t0
            else { n = ++ne; etype[n] = $1; ems[n] = $2 - t0; elabel[n] = $3 }
            next
        }
        { n = ++np; pms[n] = $1 - t0; pok[n] = ($2 == "ok") }
        END {
            lo = -1000; hi = end
            for (i = 1; i <= np; i++) { if (pms[i] < lo) lo = pms[i]; if (pms[i] + 20 > hi) hi = pms[i] + 20 }
            for (i = 1; i <= ne; i++) if (ems[i] + 200 > hi) hi = ems[i] + 200
            if (hi <= lo) hi = lo + 1000
            colour["MASTER"] = "#2e7d32"; colour["BACKUP"] = "#90a4ae"; colour["FAULT"] = "#c62828"; colour["stopped"] = "#212121"
            print "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" > out
            print "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1000\" height=\"260\" viewBox=\"0 0 1000 260\" font-family=\"sans-serif\">" > out
            print "<rect width=\"1000\" height=\"260\" fill=\"white\"/>" > out
            printf "<text x=\"10\" y=\"20\" font-size=\"14\">%s</text>\n", esc(title) > out
            # the time axis, a tick a second (ms counted from t0)
            for (t = int(lo / 1000) * 1000; t <= hi; t += 1000) if (t >= lo)
                printf "<line x1=\"%s\" y1=\"40\" x2=\"%s\" y2=\"160\" stroke=\"#eee\"/><text x=\"%s\" y=\"175\" font-size=\"10\" fill=\"#666\">%+.1f s</text>\n", x(t), x(t), x(t), t / 1000 > out
            print "<text x=\"10\" y=\"62\" font-size=\"12\">client</text>" > out
            for (i = 1; i <= np; i++)
                printf "<rect class=\"poll %s\" x=\"%s\" y=\"48\" width=\"1.5\" height=\"20\" fill=\"%s\"/>\n", pok[i] ? "ok" : "fail", x(pms[i]), pok[i] ? "#43a047" : "#e53935" > out
            row["lb1"] = 85; row["lb2"] = 120
            for (b in row) {
                printf "<text x=\"10\" y=\"%d\" font-size=\"12\">%s</text>\n", row[b] + 14, b > out
                # the changes of this box in time order (one syslog keeps them in order)
                m = 0
                for (i = 1; i <= ns; i++) if (sbox[i] == b) { m++; bs[m] = sms[i]; bt[m] = sst[i] }
                for (k = 1; k <= m; k++) {
                    a = bs[k] < lo ? lo : bs[k]; z = k < m ? bs[k + 1] : hi
                    if (z <= a) continue
                    printf "<rect class=\"band %s %s\" x=\"%s\" y=\"%d\" width=\"%.1f\" height=\"20\" fill=\"%s\"/>\n", b, bt[k], x(a), row[b], x(z) - x(a), colour[bt[k]] > out
                    printf "<text x=\"%s\" y=\"%d\" font-size=\"10\" fill=\"white\">%s</text>\n", x(a) + 3, row[b] + 14, bt[k] > out
                }
            }
            vline(0, "t0", "#000", "t0", 0)
            for (i = 1; i <= ne; i++) {
                if (etype[i] == "vip") vline(ems[i], "vip", "#1565c0", "VIP", 14)
                else if (etype[i] == "garp") vline(ems[i], "garp", "#6a1b9a", "GARP", 28)
                else if (etype[i] == "mark") vline(ems[i], "mark", "#ef6c00", elabel[i], 42)
            }
            print "</svg>" > out
        }' "$4" "$5"
}

cmd_drill() {
    local mode=hard proto=http
    while [ $# -gt 0 ]; do
        case "$1" in
            --graceful) mode=graceful ;;
            # The client polls https://VIP/ (a new TLS connection per request, the lab CA).
            --https) proto=https URL=https://$VIP/ CACERT=(--cacert "$DIR/tls/ca.pem") ;;
            # One long-lived connection through the tcp frontend carries the polls until it
            # breaks; then each poll tries a new connection, kept once it answers.
            --tcp) proto=tcp URL=http://$VIP:8081/ POLL_OPTS=(--keep-alive) ;;
            *) die "drill: unknown option $1 (use --graceful and one of --https, --tcp)" ;;
        esac
        shift
    done
    need_root
    lab_is_up || die "lab $LAB is not up (start it with: $ME)"
    wait_for 15 settled || {
        cmd_status
        die "drill: need exactly one MASTER holding the VIP to start"
    }
    wait_for 10 client_get || die "drill: the client does not get an answer from $URL"
    local old new pid d
    old=$(masters)
    new=lb1
    [ "$old" != lb1 ] || new=lb2
    pid=$(live_pid "vrrplb-$old")
    [ -n "$pid" ] || die "drill: no recorded vrrplb process for $old"
    d=$DIR/drill-$(date +%Y%m%d-%H%M%S)-$mode
    mkdir -p "$d"
    trap stop_watchers EXIT
    local mac_old mac_new
    mac_old=$(ip netns exec "$(ns "$old")" cat /sys/class/net/eth0/address)
    mac_new=$(ip netns exec "$(ns "$new")" cat /sys/class/net/eth0/address)
    local bound_ms ms skew_ms
    ms=$(advert_ms)
    # Skew_Time of the backup (priority 100): v2 (256 - 100)/256 s whatever the interval,
    # v3 (256 - 100) x advert_int / 256 (RFC 5798).
    if [ "$ms" = 1000 ]; then skew_ms=$((156 * 1000 / 256)); else skew_ms=$((156 * ms / 256)); fi
    if [ $mode = hard ]; then
        # Master_Down_Interval of the backup (3 x advert_int + Skew_Time) + 0.5 s
        bound_ms=$((3 * ms + skew_ms + 500))
    else
        # Skew_Time of the backup + 0.5 s
        bound_ms=$((skew_ms + 500))
    fi

    say "== drill ($mode, $proto): $old is MASTER (pid $pid, MAC $mac_old), $new is BACKUP (MAC $mac_new)"
    start_watchers "$d"
    local off_old off_new
    off_old=$(lines_of "$old")
    off_new=$(lines_of "$new")
    local t_start
    t_start=$(now_ms)
    start_bg drill-poll "$(ns client)" "$d/poll-failover.txt" \
        "$BIN" poll --url "$URL" "${CACERT[@]}" "${POLL_OPTS[@]}" --every 20ms --for 30s --settle 3s \
        --trace "$d/trace-failover.txt"
    sleep 1
    local t_kill
    t_kill=$(now_ms)
    if [ $mode = hard ]; then
        say "== SIGKILL $old (pid $pid) and its link down; client polls $URL every 20 ms"
        kill -KILL "$pid"
        ip -n "$(ns "$old")" link set eth0 down
        ip -n "$BRNS" link set "$old" down
    else
        say "== SIGTERM $old (pid $pid); client polls $URL every 20 ms"
        kill -TERM "$pid"
    fi
    wait_for 10 gone "$pid" || say "(the old vrrplb pid $pid has not exited yet)"
    local t_gone
    t_gone=$(now_ms)
    rm -f "$PIDS/vrrplb-$old.pid"
    # The poller stops 3 s after the service answers again (or after 30 s).
    local i
    for ((i = 0; i < 400; i++)); do
        [ -n "$(live_pid drill-poll)" ] || break
        sleep 0.1
    done
    stop_recorded drill-poll TERM
    local r1
    r1=$(grep '^RESULT' "$d/poll-failover.txt" || true)
    local t_master t_vip t_garp t_neigh
    t_master=$(first_syslog "$new" "$off_new" "(VI_1) Entering MASTER STATE")
    t_vip=$(first_monitor "$d/addr-$new.txt" "^\[[^]]*\] [0-9]+: eth0 +inet $VIP/")
    # A graceful stop: when the old box let the VIP go, and how long both held it (negative:
    # a gap with the VIP on neither box, where a client's SYN is lost).
    local t_vip_gone overlap=-
    t_vip_gone=$(first_monitor "$d/addr-$old.txt" "^\[[^]]*\] Deleted [0-9]+: eth0 +inet $VIP/")
    [ -z "$t_vip_gone" ] || [ -z "$t_vip" ] || overlap=$((t_vip_gone - t_vip))
    t_garp=$(first_garp "$d/arp.txt" "$mac_new")
    t_neigh=$(first_monitor "$d/neigh.txt" "$VIP dev eth0 lladdr $mac_new")

    # The theoretical bound drawn: Master_Down_Interval (hard) or Skew_Time (graceful).
    local theory theory_ms
    if [ $mode = hard ]; then theory=Master_Down_Interval theory_ms=$((3 * ms + skew_ms)); else theory=Skew_Time theory_ms=$skew_ms; fi
    {
        echo "state $old $t_start MASTER"
        state_events "$old" "$off_old"
        echo "state $old $t_gone stopped"
        echo "state $new $t_start BACKUP"
        state_events "$new" "$off_new"
        [ -z "$t_vip" ] || echo "vip $t_vip"
        [ -z "$t_garp" ] || echo "garp $t_garp"
        echo "mark $((t_kill + theory_ms)) $theory"
        echo "end $(now_ms)"
    } >"$d/events-failover.txt"
    local svg1=$DIR/drill-failover.svg
    draw_timeline "$svg1" "failover ($mode): $old -> $new, ms from the $([ $mode = hard ] && echo SIGKILL || echo SIGTERM)" \
        "$t_kill" "$d/events-failover.txt" "$d/trace-failover.txt"
    cp "$svg1" "$d/"

    say ""
    say "== failover ($mode): $old -> $new (all times in ms from the $([ $mode = hard ] && echo SIGKILL || echo SIGTERM))"
    say "   client (20 ms polls, 200 ms timeouts):"
    poll_lines "$d/poll-failover.txt" "$t_kill"
    local nfail
    nfail=$(grep -c '^FAIL' "$d/poll-failover.txt" || true)
    [ "$nfail" -le 10 ] || say "     ... ($nfail FAIL lines in $d/poll-failover.txt)"
    say "   outage seen by the client : $(result_field "$r1" outage_ms) ms, $(result_field "$r1" failed) failed request(s) of $(result_field "$r1" requests) (bound $bound_ms ms)"
    say "   answered before / after   : $(sed -n 's/.* before="\([^"]*\)" after="\([^"]*\)".*/\1  \/  \2/p' <<<"$r1")"
    local t_switch
    t_switch=$(sed -n '/^SWITCH at=/{s/^SWITCH at=\([0-9]*\) .*/\1/p;q}' "$d/poll-failover.txt" 2>/dev/null || true)
    say "   first answer via $new      : +$(rel "$t_switch" "$t_kill") ms"
    local t_broke t_back
    t_broke=$(stream_broke "$d/poll-failover.txt")
    t_back=$(result_field "$r1" recovered_at)
    [ "$t_back" != - ] || t_back=""
    if [ $proto = tcp ]; then
        say "   long-lived connection     : broke at +$(rel "$t_broke" "$t_kill") ms ($(sed -n '/^STREAM broke/{s/^.* on it: //p;q}' "$d/poll-failover.txt"))"
        say "   first new connection ok   : +$(rel "$t_back" "$t_kill") ms ($(result_field "$r1" connections) connection(s) opened in all)"
    fi
    say "   $new entered MASTER        : +$(rel "$t_master" "$t_kill") ms after the $([ $mode = hard ] && echo SIGKILL || echo SIGTERM)"
    say "   VIP added on $new          : +$(rel "$t_vip" "$t_kill") ms"
    [ -z "$t_vip_gone" ] || say "   VIP removed from $old      : +$(rel "$t_vip_gone" "$t_kill") ms (both held it $overlap ms)"
    say "   first GARP from $new       : +$(rel "$t_garp" "$t_kill") ms (tcpdump on the bridge)"
    say "   client ARP entry -> $new   : +$(rel "$t_neigh" "$t_kill") ms (ip monitor neigh in the client)"
    say "   timeline                  : $svg1 ($(wc -l <"$d/trace-failover.txt") polls)"
    say "   syslog of $old:"
    if [ -n "$(syslog_since "$old" "$off_old")" ]; then
        syslog_since "$old" "$off_old"
    elif [ $mode = hard ]; then
        say "  (empty: $old was killed with SIGKILL, so it logged no last words)"
    else
        say "  (empty)"
    fi
    say "   syslog of $new:"
    syslog_since "$new" "$off_new"

    # --- failback: the old master comes back and, with the higher priority, preempts ---
    off_old=$(lines_of "$old")
    off_new=$(lines_of "$new")
    local garp_lines
    garp_lines=$(wc -l <"$d/arp.txt")
    local addr_lines neigh_lines
    addr_lines=$(wc -l <"$d/addr-$old.txt")
    neigh_lines=$(wc -l <"$d/neigh.txt")
    t_start=$(now_ms)
    start_bg drill-poll "$(ns client)" "$d/poll-failback.txt" \
        "$BIN" poll --url "$URL" "${CACERT[@]}" "${POLL_OPTS[@]}" --every 20ms --for 40s --settle 3s \
        --trace "$d/trace-failback.txt"
    sleep 1
    local t_restore
    t_restore=$(now_ms)
    if [ $mode = hard ]; then
        say ""
        say "== restoring $old: link up, vrrplb restarted (preemption: priority $( [ "$old" = lb1 ] && echo 101 || echo 100 ))"
        ip -n "$BRNS" link set "$old" up
        ip -n "$(ns "$old")" link set eth0 up
    else
        say ""
        say "== restoring $old: vrrplb restarted"
    fi
    start_box "$old"
    # Wait for whoever should be MASTER after the restore (the higher priority preempts).
    local want=lb1
    for ((i = 0; i < 300; i++)); do
        [ "$(masters)" = "$want" ] && has_vip "$want" && ! has_vip "$([ $want = lb1 ] && echo lb2 || echo lb1)" && break
        sleep 0.1
    done
    # Watch 3 s more for late failures, then stop the client.
    sleep 3
    stop_recorded drill-poll TERM
    local r2 m_after
    r2=$(grep '^RESULT' "$d/poll-failback.txt" || true)
    m_after=$(masters)
    local t2_master t2_backup t2_vip t2_garp t2_neigh mac_want
    mac_want=$(ip netns exec "$(ns "$want")" cat /sys/class/net/eth0/address)
    t2_master=$(first_syslog "$want" "$([ "$want" = "$old" ] && echo "$off_old" || echo "$off_new")" "(VI_1) Entering MASTER STATE")
    t2_backup=$(first_syslog "$new" "$off_new" "(VI_1) Entering BACKUP STATE")
    t2_vip=$(tail -n "+$((addr_lines + 1))" "$d/addr-$old.txt" >"$d/addr-failback.txt"; first_monitor "$d/addr-failback.txt" "^\[[^]]*\] [0-9]+: eth0 +inet $VIP/")
    t2_garp=$(tail -n "+$((garp_lines + 1))" "$d/arp.txt" >"$d/arp-failback.txt"; first_garp "$d/arp-failback.txt" "$mac_want")
    t2_neigh=$(tail -n "+$((neigh_lines + 1))" "$d/neigh.txt" >"$d/neigh-failback.txt"; first_monitor "$d/neigh-failback.txt" "$VIP dev eth0 lladdr $mac_want")
    stop_watchers
    trap - EXIT
    {
        echo "state $old $t_start stopped"
        state_events "$old" "$off_old"
        echo "state $new $t_start MASTER"
        state_events "$new" "$off_new"
        [ -z "$t2_vip" ] || echo "vip $t2_vip"
        [ -z "$t2_garp" ] || echo "garp $t2_garp"
        echo "end $(now_ms)"
    } >"$d/events-failback.txt"
    local svg2=$DIR/drill-failback.svg
    draw_timeline "$svg2" "failback ($mode): $old restarted, ms from the restore" \
        "$t_restore" "$d/events-failback.txt" "$d/trace-failback.txt"
    cp "$svg2" "$d/"

    say ""
    say "== failback: $old back, MASTER now: ${m_after:-none} (all times in ms from the restore)"
    poll_lines "$d/poll-failback.txt" "$t_restore"
    say "   outage seen by the client : $(result_field "$r2" outage_ms) ms, $(result_field "$r2" failed) failed request(s) of $(result_field "$r2" requests) (bound $bound_ms ms)"
    say "   answered before / after   : $(sed -n 's/.* before="\([^"]*\)" after="\([^"]*\)".*/\1  \/  \2/p' <<<"$r2")"
    local t2_broke
    t2_broke=$(stream_broke "$d/poll-failback.txt")
    if [ $proto = tcp ]; then
        say "   long-lived connection     : broke at +$(rel "$t2_broke" "$t_restore") ms ($(sed -n '/^STREAM broke/{s/^.* on it: //p;q}' "$d/poll-failback.txt"))"
    fi
    say "   $want entered MASTER        : +$(rel "$t2_master" "$t_restore") ms after the restore"
    say "   $new entered BACKUP        : +$(rel "$t2_backup" "$t_restore") ms"
    say "   VIP added on $want          : +$(rel "$t2_vip" "$t_restore") ms"
    say "   first GARP from $want       : +$(rel "$t2_garp" "$t_restore") ms"
    say "   client ARP entry -> $want   : +$(rel "$t2_neigh" "$t_restore") ms"
    say "   timeline                  : $svg2 ($(wc -l <"$d/trace-failback.txt") polls)"
    say "   syslog of $old:"
    syslog_since "$old" "$off_old"
    say "   syslog of $new:"
    syslog_since "$new" "$off_new"
    say ""
    say "   files: $d"
    local nm
    nm=$(wc -w <<<"$m_after")
    say "RESULT phase=failover mode=$mode proto=$proto old=$old new=$new outage_ms=$(result_field "$r1" outage_ms) failed=$(result_field "$r1" failed) runs=$(result_field "$r1" runs) failed_after_recovery=$(result_field "$r1" failed_after_recovery) recovered=$(result_field "$r1" recovered) switch_ms=$(rel "$t_switch" "$t_kill") master_ms=$(rel "$t_master" "$t_kill") vip_ms=$(rel "$t_vip" "$t_kill") garp_ms=$(rel "$t_garp" "$t_kill") client_arp_ms=$(rel "$t_neigh" "$t_kill") bound_ms=$bound_ms requests=$(result_field "$r1" requests) connections=$(result_field "$r1" connections) stream_broke_ms=$(rel "$t_broke" "$t_kill") new_connection_ms=$(rel "$t_back" "$t_kill") vip_gone_ms=$(rel "$t_vip_gone" "$t_kill") vip_overlap_ms=$overlap files=$d svg=$svg1 polls=$(wc -l <"$d/trace-failover.txt")"
    say "RESULT phase=failback mode=$mode proto=$proto master=$want masters=$nm outage_ms=$(result_field "$r2" outage_ms) failed=$(result_field "$r2" failed) runs=$(result_field "$r2" runs) failed_after_recovery=$(result_field "$r2" failed_after_recovery) recovered=$(result_field "$r2" recovered) master_ms=$(rel "$t2_master" "$t_restore") backup_ms=$(rel "$t2_backup" "$t_restore") vip_ms=$(rel "$t2_vip" "$t_restore") garp_ms=$(rel "$t2_garp" "$t_restore") client_arp_ms=$(rel "$t2_neigh" "$t_restore") bound_ms=$bound_ms requests=$(result_field "$r2" requests) connections=$(result_field "$r2" connections) stream_broke_ms=$(rel "$t2_broke" "$t_restore") files=$d svg=$svg2 polls=$(wc -l <"$d/trace-failback.txt")"
}

lab_main() {
    case "${1:-up}" in
        up)
            if [ $# -gt 0 ]; then shift; fi
            cmd_up "$@"
            ;;
        status) cmd_status ;;
        drill)
            shift
            cmd_drill "$@"
            ;;
        chaos | soak)
            # The bulk lives in deploy/chaos.sh (faults on repeat, the soak's samples).
            # shellcheck source=deploy/chaos.sh
            . "$REPO/deploy/chaos.sh"
            cmd_chaos "$@"
            ;;
        down)
            need_root
            cmd_down
            ;;
        -h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
        *) die "unknown command '$1' (up, status, drill [--graceful] [--https|--tcp], chaos, soak, down)" ;;
    esac
}

# deploy/aa-lab.sh sources this file for its functions; only a run of lab.sh itself acts.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    lab_main "$@"
fi
