#!/usr/bin/env bash
# vrrplb against keepalived + HAProxy 2.6, side by side on this machine, in one run (issue 6).
#
#   deploy/bench.sh                 the full benchmark (about 30 minutes); writes
#                                   deploy/bench-results.md
#   deploy/bench.sh --quick         a short run proving the script works (about 4 minutes);
#                                   prints the table, writes no file unless --out is given
#
# Run as root on Debian 12 from a clone of the repository (Rust from rustup installed). It
# apt-get installs haproxy, keepalived, nginx-light, wrk, iproute2, curl, openssl, python3,
# nghttp2-client (h2load) and valgrind, builds vrrplb as it is shipped (deploy/pgo.sh: a
# release build with profile-guided optimisation; --no-pgo: `cargo build --release`), and
# builds a lab of network namespaces joined by one bridge (also in its own namespace): a
# client 198.51.100.10, two balancer boxes lb1 .11 and lb2 .12 (VIP 198.51.100.100), two
# nginx backends web1 .21 and web2 .22. Only 198.51.100.0/24 is used and
# nothing is routed to the host. Everything it starts is tracked by PID and stopped, and the
# namespaces removed, on exit (also on failure or Ctrl-C).
#
# What it measures, alternating between the implementations so drift hits both alike:
#  1. proxy: wrk from the client to the balancer on lb1 (vrrplb, then HAProxy 2.6, order
#     swapped every round), configured equivalently (same backends, roundrobin, forwardfor,
#     HTTP health checks every 2 s, no logging). Three shapes: small responses over keep-alive
#     (32 connections), a new connection per request (Connection: close), 100 KB responses.
#     Requests/s, p50/p99 latency, CPU seconds per 1000 requests (utime+stime of the balancer
#     from /proc/PID/stat; for keep-alive and the TLS shapes also utime alone, "of which user
#     space": the rest is the kernel's work for the balancer), peak RSS (VmHWM). The balancer is pinned to the first CPU, the
#     client and the backends to the second; nginx reached directly is the ceiling.
#  2. failover: a vrrplb pair against a keepalived + HAProxy pair (priorities 101/100,
#     advert_int 1, auth PASS), a client polling the VIP every 20 ms (200 ms timeouts):
#     outage after SIGKILL + link down of the master, on failback (the master returns and
#     preempts), after a graceful stop (SIGTERM) of the master.
#  3. idle: RSS and CPU of the master box over an idle period: vrrplb vs keepalived + HAProxy.
#  4. tls: TLS termination against HAProxy 2.6 `bind ssl crt` (OpenSSL 3.0), same certificate,
#     TLS 1.2 + 1.3, ALPN h2,http/1.1: keep-alive small responses (wrk https -c32), full
#     handshakes with a new connection per request for an ECDSA P-256 and an RSA 2048
#     certificate (parallel python3 ssl clients that never offer a session), resumed handshakes
#     (wrk https with Connection: close: wrk resumes its session), HTTP/2 (h2load -c8 -m32),
#     HTTP/2 at a fixed rate below both balancers' capacity (h2load --rps, BENCH_H2_RPS per
#     connection, default 2500: CPU per request at equal load), TLS keep-alive at a fixed rate
#     (h2load --h1 -c32 --rps, BENCH_H1_RPS per connection, default 800), and the RSS of the balancer holding 1000 idle TLS connections (a python3 ssl client).
#  5. tcp: `mode: tcp` against HAProxy `mode tcp`: 100 KB and 1 MB responses through the
#     tunnel (wrk keep-alive; CPU s per GB), new TCP connections per second (Connection: close),
#     TLS pass-through by SNI to nginx serving TLS itself (full handshakes/s, python3 ssl).
#  6. scrape: 2 frontends, 4 backends, 100 servers: CPU of one scrape of /metrics and of the
#     stats page (HAProxy: its Prometheus exporter and stats page). Under callgrind (the same
#     config without health checks): the instructions of one scrape of /metrics, of the stats
#     page and of its CSV, per keep-alive request, and per request while scrapes run beside
#     the requests (less the scrapes' own); from them the share of one scrape a second in the
#     balancer's instructions at the measured keep-alive rate. Wall clock: one balancer,
#     SCRAPE_PAIRS pairs (default 8) of SCRAPE_SECS-second (3) wrk keep-alive rounds without
#     and with a curl fetching /metrics every second, order AB BA AB ...: the median of the
#     paired changes of requests/s and of the balancer's CPU s per 1000 requests.
#  7. callgrind: instructions per proxied request under `valgrind --tool=callgrind`, vrrplb and
#     HAProxy, plain HTTP and TLS keep-alive (h2load --h1 -c1) and HTTP/2 over TLS (h2load -c8
#     -m32): (Ir(N2) - Ir(N1)) / (N2 - N1) over two phases of new connections each, which
#     cancels the connections' setup, the TLS handshakes and their close.
#  8. vrrp3: a vrrplb pair against a keepalived 2.2 + HAProxy pair in VRRPv3 at 100 ms (and v2
#     at 1 s), the 20 ms poller: link down + hard kill (outage, failed polls), graceful stop and
#     failback (failed requests, v3 and v2); 60 s of wrk keep-alive through the MASTER with the
#     adverts captured on the bridge (tshark): gaps p50/p99/max and state changes; the idle
#     MASTER box's CPU and wake-ups per second over 30 s. Rounds, load and idle seconds:
#     VRRP3_REPS, VRRP3_LOAD, VRRP3_IDLE in the environment.
#
# Options:
#   --quick            2 s per load shape, 1 round, 1 failover repetition, 5 s idle, 300 idle
#                      TLS connections, few requests and scrapes under callgrind, 2 pairs of
#                      1 s scrape rounds; vrrp3: 1 round, 3 s of load, 2 s of idle
#   --rounds N         proxy rounds per shape (default 3)
#   --duration S       seconds per wrk measurement (default 10; warm-up 2 s before each)
#   --reps N           failover repetitions per implementation (default 3)
#   --idle S           idle measurement seconds (default 30)
#   --name NAME        lab name: namespace prefix (default vb<pid>), for parallel runs
#   --bin PATH         use this vrrplb binary instead of building one (also VRRPLB_BIN)
#   --no-pgo           build with plain `cargo build --release` instead of deploy/pgo.sh
#   --out FILE         write the results (markdown) here; default deploy/bench-results.md
#                      for a full run, none for --quick
#   --no-out           write no results file
#   --no-install       do not apt-get install (fail if a tool is missing)
#   --only LIST        comma-separated parts to run: proxy,tls,tcp,scrape,callgrind,failover,
#                      idle,vrrp3 (default all)
#   --perf DIR         after the measurements, profile vrrplb on the keep-alive shape with
#                      `perf record -g` (needs linux-perf) and leave perf.data + report in DIR
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ME=$(basename "$0")
SELF=$(readlink -f "$0")

say() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$ME" "$*" >&2; }
die() {
    printf '%s: %s\n' "$ME" "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# The failover client when `vrrplb poll` is not available: a bounded curl loop, run inside the
# client namespace as `bench.sh __poll URL FOR_S SETTLE_S`. Prints a RESULT line like vrrplb
# poll's (outage_ms from the first failure to the first success after the last one).
if [ "${1:-}" = __poll ]; then
    url=$2 for_s=$3 settle_s=$4
    now() { local t=${EPOCHREALTIME/[.,]/}; printf '%s' $((t / 1000)); }
    start=$(now) end=$((start + for_s * 1000)) next=$start
    n=0 ok=0 failed=0 first_fail= last_fail= final_ok= in_outage=0
    while [ "$(now)" -lt "$end" ] && [ $n -lt 200000 ]; do
        t=$(now)
        if [ "$next" -gt "$t" ]; then sleep "$(printf '0.%03d' $((next - t)))"; fi
        t=$(now)
        n=$((n + 1))
        if curl -fsS -o /dev/null --connect-timeout 0.2 -m 0.2 "$url" 2>/dev/null; then
            ok=$((ok + 1))
            if [ $in_outage = 1 ]; then in_outage=0 final_ok=$t; fi
        else
            failed=$((failed + 1)) in_outage=1 final_ok= last_fail=$t
            [ -n "$first_fail" ] || first_fail=$t
        fi
        if [ -n "$final_ok" ] && [ $(($(now) - final_ok)) -ge $((settle_s * 1000)) ]; then break; fi
        next=$((next + 20))
        t=$(now)
        [ "$next" -ge "$t" ] || next=$t
    done
    outage=0
    if [ -n "$first_fail" ]; then outage=$(( ${final_ok:-$last_fail} - first_fail )); fi
    echo "RESULT requests=$n ok=$ok failed=$failed outage_ms=$outage"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
QUICK=0 ROUNDS=3 DURATION=10 WARM=2 REPS=3 IDLE=30 NAME=vb$$ BIN=${VRRPLB_BIN:-} OUT=
OUT_SET=0 INSTALL=1 PGO=1 ONLY=proxy,tls,tcp,scrape,callgrind,failover,idle,vrrp3 PERF_DIR=
IDLE_TLS=1000 CG_N1=1000 CG_N2=6000
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ROUNDS=1 DURATION=2 WARM=1 REPS=1 IDLE=5 IDLE_TLS=300 CG_N1=50 CG_N2=250 ;;
        --rounds) ROUNDS=$2 && shift ;;
        --duration) DURATION=$2 && shift ;;
        --reps) REPS=$2 && shift ;;
        --idle) IDLE=$2 && shift ;;
        --name) NAME=$2 && shift ;;
        --bin) BIN=$2 && shift ;;
        --out) OUT=$2 OUT_SET=1 && shift ;;
        --no-out) OUT= OUT_SET=1 ;;
        --no-install) INSTALL=0 ;;
        --no-pgo) PGO=0 ;;
        --only) ONLY=$2 && shift ;;
        --perf) PERF_DIR=$2 && shift ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
for v in ROUNDS DURATION REPS IDLE; do
    [[ ${!v} =~ ^[1-9][0-9]{0,3}$ ]] || die "--${v,,} must be a whole number from 1 to 9999"
done
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$ ]] || die "--name: 1-20 characters of A-Z a-z 0-9 _ -"
[ $OUT_SET = 1 ] || [ $QUICK = 1 ] || OUT=$REPO/deploy/bench-results.md
part() { [[ ,$ONLY, == *,$1,* ]]; }

[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, raw sockets, apt-get)"

# --- packages ---------------------------------------------------------------------------------
if [ $INSTALL = 1 ]; then
    say "== apt-get update + install haproxy keepalived nginx-light wrk iproute2 curl openssl python3 nghttp2-client valgrind tshark"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends haproxy keepalived nginx-light wrk iproute2 \
        curl procps util-linux coreutils openssl python3 nghttp2-client valgrind tshark >/dev/null
    # The distribution daemons must not run on their own on the host.
    for svc in keepalived haproxy nginx; do
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
fi
need=(ip haproxy keepalived nginx wrk curl taskset timeout awk)
! part tls || need+=(openssl python3 h2load)
! part tcp || need+=(openssl)
! part callgrind || need+=(openssl valgrind h2load)
! part scrape || need+=(valgrind h2load)
! part vrrp3 || need+=(tshark)
for tool in "${need[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
        die "$tool is missing (run without --no-install, or install it)"
done
# 1000 idle TLS connections and 32-connection loads need more than the usual 1024 descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export PATH=$PATH:/usr/sbin:/sbin

# --- the binary -------------------------------------------------------------------------------
BUILD_NOTE="given with --bin: $BIN"
if [ -z "$BIN" ]; then
    cargo=$(command -v cargo || true)
    [ -n "$cargo" ] || [ ! -x "$HOME/.cargo/bin/cargo" ] || cargo=$HOME/.cargo/bin/cargo
    [ -n "$cargo" ] || die "cargo not found; install Rust with rustup (https://rustup.rs) first"
    if [ "$PGO" = 1 ]; then
        # The shipped build (deploy/deb/build.sh): profile-guided, see deploy/pgo.sh.
        say "== deploy/pgo.sh (release build with profile-guided optimisation)"
        no_install=()
        [ "$INSTALL" = 1 ] || no_install=(--no-install)
        "$REPO/deploy/pgo.sh" "${no_install[@]}"
        BIN=${CARGO_TARGET_DIR:-$REPO/target}/pgo/dist/vrrplb
        BUILD_NOTE="release build with profile-guided optimisation (deploy/pgo.sh)"
    else
        say "== cargo build --release"
        "$cargo" build --release --manifest-path "$REPO/Cargo.toml" --bin vrrplb
        BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/vrrplb
        BUILD_NOTE="release build without PGO (--no-pgo)"
    fi
    [[ $BIN == /* ]] || BIN=$REPO/$BIN
fi
[ -x "$BIN" ] || die "$BIN is not an executable"

# --- CPUs: the balancer on the first allowed CPU, client and backends on the second ------------
cpus=()
while IFS= read -r r; do
    if [[ $r == *-* ]]; then
        for ((c = ${r%-*}; c <= ${r#*-}; c++)); do cpus+=("$c"); done
    elif [ -n "$r" ]; then cpus+=("$r"); fi
done < <(awk '/^Cpus_allowed_list:/{print $2}' /proc/self/status | tr ',' '\n')
BAL_CPU=${cpus[0]:-0}
LOAD_CPU=${cpus[1]:-$BAL_CPU}
PIN_NOTE="balancer on CPU $BAL_CPU; wrk and both nginx on CPU $LOAD_CPU"
[ "$BAL_CPU" != "$LOAD_CPU" ] || PIN_NOTE="only one CPU available: everything on CPU $BAL_CPU"
HZ=$(getconf CLK_TCK)

# --- state, processes, clean-up ---------------------------------------------------------------
WORK=$(mktemp -d /tmp/vrrplb-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers (nobody) read the document root below it
RAW=$WORK/raw.tsv # kind impl shape run value-fields...
: >"$RAW"
FAILURES=0
declare -A PIDOF=() # role -> PID of a process we started (its start time in START)
declare -A START=()
VIP=198.51.100.100
declare -A ADDR=([cl]=198.51.100.10 [lb1]=198.51.100.11 [lb2]=198.51.100.12
    [web1]=198.51.100.21 [web2]=198.51.100.22)
HOSTS=(cl lb1 lb2 web1 web2)
ns() { printf '%s-%s' "$NAME" "$1"; }
BRNS=$(ns br)
nsx() {
    local h=$1
    shift
    ip netns exec "$(ns "$h")" "$@"
}

starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

# alive ROLE: the recorded process of ROLE still runs (same PID and start time, not a zombie)
alive() {
    local pid=${PIDOF[$1]:-}
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    [ "$(starttime "$pid")" = "${START[$1]}" ] || return 1
    case "$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $1}')" in
        Z | X | "") return 1 ;;
    esac
}

# spawn ROLE HOST CPU|- LOG CMD...: start CMD in HOST's namespace (pinned to CPU unless -)
spawn() {
    local role=$1 host=$2 cpu=$3 log=$4
    shift 4
    if [ "$cpu" = - ]; then
        ip netns exec "$(ns "$host")" "$@" </dev/null >>"$log" 2>&1 &
    else
        ip netns exec "$(ns "$host")" taskset -c "$cpu" "$@" </dev/null >>"$log" 2>&1 &
    fi
    PIDOF[$role]=$!
    START[$role]=$(starttime $!)
}

# stop ROLE [SIGNAL]: signal it, wait up to 8 s, then SIGKILL; reaps it. (bash's "Killed"
# notice for a job it reaps is silenced; our own warnings go to the real stderr.)
stop() { stop_ "$@" 3>&2 2>/dev/null; }
stop_() {
    local role=$1 sig=${2:-TERM} i pid=${PIDOF[$1]:-}
    if [ -n "$pid" ] && alive "$role"; then
        kill "-$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < 80; i++)); do
            alive "$role" || break
            sleep 0.1
        done
        if alive "$role"; then
            warn "$role (pid $pid) ignored SIG$sig for 8 s: SIGKILL" 2>&3
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    unset "PIDOF[$role]" "START[$role]"
}

# A keepalived VRRP child is not our child: remembered by its PID file and start time.
declare -A KCHILD=()
kchild_alive() {
    local pid=${KCHILD[$1]:-}
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(starttime "$pid")" = "${KCHILD_START[$1]}" ]
}
declare -A KCHILD_START=()

cleanup() {
    local rc=$? role h
    trap - EXIT INT TERM
    for role in "${!PIDOF[@]}"; do
        [[ $role == poll* ]] || continue
        stop "$role" KILL
    done
    for role in "${!PIDOF[@]}"; do stop "$role" TERM; done
    for role in "${!KCHILD[@]}"; do
        if kchild_alive "$role"; then kill -KILL "${KCHILD[$role]}" 2>/dev/null || true; fi
    done
    for h in "${HOSTS[@]}" br; do
        ip netns del "$(ns "$h")" 2>/dev/null || true
    done
    if [ "${KEEP_WORK:-0}" = 1 ] || [ $rc -ne 0 ]; then
        say "(files of this run kept in $WORK)" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # wait_for SECONDS COMMAND...: retry every 0.1 s, bounded
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ticks PID [user]: utime + stime of a whole process (all threads), or utime alone with
# "user", in clock ticks; 0 when gone
ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return
    }
    s=${s##*) }
    local only=${2:-}
    # shellcheck disable=SC2086
    set -- $s
    if [ "$only" = user ]; then echo "${12}"; else echo $((${12} + ${13})); fi
}
# oncpu_ns PID: time on CPU of a whole process (all threads) in nanoseconds, from
# /proc/PID/task/*/schedstat (first field); 0 when gone. Used for the idle figure, where
# utime + stime in 10 ms ticks are too coarse. (%.0f: Debian's mawk prints %d no higher than
# 2^31 - 1, which is 2.1 s of CPU.)
oncpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- the lab ----------------------------------------------------------------------------------
lab_up() {
    local h i=0
    ip netns add "$BRNS"
    ip -n "$BRNS" link set lo up
    ip -n "$BRNS" link add br0 type bridge
    # Snooping would hide VRRP adverts (224.0.0.18) from ports that sent no IGMP report.
    ip -n "$BRNS" link set br0 type bridge mcast_snooping 0
    ip -n "$BRNS" link set br0 up
    for h in "${HOSTS[@]}"; do
        ip netns add "$(ns "$h")"
        ip -n "$(ns "$h")" link set lo up
        ip -n "$(ns "$h")" link add eth0 type veth peer name "p$i" netns "$BRNS"
        ip -n "$BRNS" link set "p$i" master br0
        ip -n "$BRNS" link set "p$i" up
        nsx "$h" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
        nsx "$h" sysctl -q -w net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1 \
            net.core.somaxconn=4096 >/dev/null
        # HAProxy binds the VIP before it arrives (vrrplb uses IP_FREEBIND).
        [[ $h != lb* ]] || nsx "$h" sysctl -q -w net.ipv4.ip_nonlocal_bind=1 >/dev/null
        ip -n "$(ns "$h")" addr add "${ADDR[$h]}/24" dev eth0
        ip -n "$(ns "$h")" link set eth0 up
        i=$((i + 1))
    done
}

# link HOST up|down: its eth0 and the bridge port facing it (pulling the cable)
link() {
    local i
    for i in "${!HOSTS[@]}"; do [ "${HOSTS[$i]}" != "$1" ] || break; done
    if [ "$2" = down ]; then
        ip -n "$(ns "$1")" link set eth0 down
        ip -n "$BRNS" link set "p$i" down
    else
        ip -n "$BRNS" link set "p$i" up
        ip -n "$(ns "$1")" link set eth0 up
    fi
}

start_web() {
    local w=$1 d=$WORK/$1
    mkdir -p "$d/tmp" "$d/www"
    chmod 755 "$d" "$d/www"
    head -c 102400 /dev/zero | tr '\0' 'x' >"$d/www/100k"
    head -c 1048576 /dev/zero | tr '\0' 'x' >"$d/www/1m"
    chmod 644 "$d/www/100k" "$d/www/1m"
    cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    default_type text/plain;
    server {
        listen ${ADDR[$w]}:80 backlog=4096;
        root $d/www;
        location = / { return 200 "$w\n"; }
        location = /100k { }
        location = /1m { }
    }
    # TLS of its own, for the pass-through shape (the balancer never decrypts)
    server {
        listen ${ADDR[$w]}:443 ssl backlog=4096;
        ssl_certificate $WORK/tls/ecdsa.crt;
        ssl_certificate_key $WORK/tls/ecdsa.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $d/www;
        location = / { return 200 "$w\n"; }
    }
}
EOF
    spawn "nginx-$w" "$w" "$LOAD_CPU" "$d/nginx.out" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
}

# --- certificates -----------------------------------------------------------------------------
# make_certs: self-signed ECDSA P-256 and RSA 2048 certificates for bench.test and lb1's address,
# as .crt + .key (nginx) and one PEM with both (vrrplb and HAProxy `crt`), in $WORK/tls
make_certs() {
    local d=$WORK/tls k
    mkdir -p "$d"
    chmod 755 "$d"
    for k in ecdsa rsa; do
        local algo=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
        [ $k = ecdsa ] || algo=(-newkey rsa:2048)
        openssl req -x509 "${algo[@]}" -nodes -days 30 -subj "/CN=bench.test" \
            -addext "subjectAltName=DNS:bench.test,IP:${ADDR[lb1]}" \
            -keyout "$d/$k.key" -out "$d/$k.crt" >/dev/null 2>&1 ||
            die "openssl could not make the $k certificate"
        cat "$d/$k.crt" "$d/$k.key" >"$d/$k.pem"
        chmod 644 "$d/$k".*
    done
}

# fixed_rate_rows SHAPE: the rows of a shape both balancers get at the same fixed rate. A rate
# one of them cannot keep up with is no longer the same load for both: the CPU row says so
# instead of comparing (lower BENCH_H2_RPS / BENCH_H1_RPS).
fixed_rate_rows() {
    local s=$1 rv ra equal="≤ 0.8"
    read -r -a rv <<<"$(agg tls vrrplb "$s" 5)"
    read -r -a ra <<<"$(agg tls anchor "$s" 5)"
    if awk -v v="${rv[0]}" -v a="${ra[0]}" 'BEGIN { exit !(v == "-" || a == "-" || v < 0.98 * a || a < 0.98 * v) }'; then
        equal="≤ 0.8 (not comparable: the rates differ by more than 2%, one balancer fell behind)"
    fi
    row "${SHAPE_NAME[$s]}: requests/s" "equal load" 0 tls "$s" 5 range
    row "${SHAPE_NAME[$s]}: CPU s per 1000 requests" "$equal" 4 tls "$s" 8 range
    row "${SHAPE_NAME[$s]}: of which user space, CPU s per 1000 requests" "" 4 tls "$s" 13 range
}

# --- configs ----------------------------------------------------------------------------------
HC_VRRPLB='{ kind: http, path: /, interval: 2s, timeout: 1s, rise: 2, fall: 3 }'

# vrrplb_proxy_conf FILE: the balancer alone, on lb1's own address
vrrplb_proxy_conf() {
    {
        cat <<EOF
global:
  node: bench
  control_socket: $WORK/vrrplb-proxy.sock
  log: { target: stderr, level: warn, access_log: false }
EOF
        vrrplb_balancer "${ADDR[lb1]}:80" ""
    } >"$1"
}

# vrrplb_balancer BIND GATE: the frontend and backend both vrrplb configs share, on stdout
# (GATE: the frontend's gate list; empty for an ungated frontend)
vrrplb_balancer() {
    cat <<EOF
frontends:
  - name: www
    bind: ["$1"]${2:+
    gate: [$2]}
    forwarded_for: true
    timeouts: { client: 50s, http_request: 10s }
    default_backend: web
backends:
EOF
    vrrplb_web_backend web 80 "$HC_VRRPLB"
}

# vrrplb_web_backend NAME PORT HEALTH_CHECK [MODE]: web1 and web2 on PORT (one list item;
# no health check when HEALTH_CHECK is empty)
vrrplb_web_backend() {
    cat <<EOF
  - name: $1${4:+
    mode: $4}
    balance: roundrobin
    servers:
      - { name: web1, address: "${ADDR[web1]}:$2" }
      - { name: web2, address: "${ADDR[web2]}:$2" }${3:+
    health_check: $3}
    retries: 3
    redispatch: true
    timeouts: { connect: 5s, server: 50s, queue: 5s }
EOF
}

# vrrplb_head NAME: the global section of a single-balancer config
vrrplb_head() {
    cat <<EOF
global:
  node: bench
  control_socket: $WORK/$1.sock
  log: { target: stderr, level: warn, access_log: false }
EOF
}

# vrrplb_tls_conf FILE ecdsa|rsa [HEALTH_CHECK]: TLS termination on lb1:443 (TLS 1.2 + 1.3,
# ALPN h2 + http/1.1), HTTP/1.1 to the same backends as the plain proxy
vrrplb_tls_conf() {
    {
        vrrplb_head "vrrplb-tls-$2"
        cat <<EOF
frontends:
  - name: www-tls
    bind: ["${ADDR[lb1]}:443"]
    tls:
      certificates: ["$WORK/tls/$2.pem"]
      min_version: "1.2"
      alpn: [h2, "http/1.1"]
    forwarded_for: true
    timeouts: { client: 50s, http_request: 10s }
    default_backend: web
backends:
EOF
        vrrplb_web_backend web 80 "${3-$HC_VRRPLB}"
    } >"$1"
}

# vrrplb_tcp_conf FILE: mode tcp on lb1:80 (to the servers' :80) and TLS pass-through by SNI
# on lb1:443 (bench.test to the servers' own TLS on :443)
vrrplb_tcp_conf() {
    local hc='{ kind: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 3 }'
    {
        vrrplb_head vrrplb-tcp
        cat <<EOF
frontends:
  - name: tcp80
    mode: tcp
    bind: ["${ADDR[lb1]}:80"]
    timeouts: { client: 50s }
    default_backend: web-tcp
  - name: tls-pass
    mode: tcp
    bind: ["${ADDR[lb1]}:443"]
    timeouts: { client: 50s }
    routes:
      - match: { sni: bench.test }
        backend: web-tls
    default_backend: web-tcp
backends:
EOF
        vrrplb_web_backend web-tcp 80 "$hc" tcp
        vrrplb_web_backend web-tls 443 "$hc" tcp
    } >"$1"
}

STATS_AUTH=admin:bench
# vrrplb_stats_conf FILE: the proxy config grown to 2 frontends, 4 backends and 100 servers
# (HTTP checks every 2 s), with the stats listener on lb1:8404
vrrplb_stats_conf() {
    local b i
    {
        vrrplb_head vrrplb-stats
        cat <<EOF
  stats:
    bind: "${ADDR[lb1]}:8404"
    uri: /stats
    refresh: 10s
    show_node: true
    auth: { user: ${STATS_AUTH%%:*}, password: "${STATS_AUTH#*:}" }
frontends:
  - name: www
    bind: ["${ADDR[lb1]}:80"]
    forwarded_for: true
    timeouts: { client: 50s, http_request: 10s }
    default_backend: web
  - name: www2
    bind: ["${ADDR[lb1]}:8080"]
    forwarded_for: true
    timeouts: { client: 50s, http_request: 10s }
    routes:
      - match: { path_prefix: /b3/ }
        backend: b3
      - match: { path_prefix: /b4/ }
        backend: b4
    default_backend: b2
backends:
EOF
        for b in web b2 b3 b4; do
            cat <<EOF
  - name: $b
    balance: roundrobin
    health_check: $HC_VRRPLB
    retries: 3
    redispatch: true
    timeouts: { connect: 5s, server: 50s, queue: 5s }
    servers:
EOF
            for ((i = 1; i <= 25; i++)); do
                printf '      - { name: %s-s%02d, address: "%s:80" }\n' "$b" "$i" "${ADDR[web$((i % 2 + 1))]}"
            done
        done
    } >"$1"
}

# haproxy_conf FILE BIND: HAProxy doing what vrrplb does above. vrrplb's forwarded_for also sets
# X-Forwarded-Proto and X-Forwarded-Host, so HAProxy is given the same work.
haproxy_conf() {
    {
        haproxy_head "$1" http
        haproxy_www_frontend www "$2:80" http
        haproxy_web_backend web 80
    } >"$1"
}

# haproxy_head FILE http|tcp: global + defaults. HAProxy's defaults, one thread (the balancer
# gets one CPU), `tune.ssl.default-dh-param 2048` as recommended for TLS, and the TLS suites
# in vrrplb's default order (Mozilla's "intermediate"), so that both negotiate the same one
# (HAProxy, like vrrplb, picks by its own order; OpenSSL's default puts AES-256 first).
haproxy_head() {
    cat <<EOF
global
    maxconn 4096
    nbthread 1
    tune.ssl.default-dh-param 2048
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
${BENCH_HAPROXY_GLOBAL:-}
    pidfile $1.pid
    stats socket $1.sock mode 600
defaults
    mode $2
    timeout connect 5s
    timeout client 50s
    timeout server 50s
    timeout queue 5s
    retries 3
    option redispatch
EOF
    [ "$2" = tcp ] || cat <<EOF
    timeout http-request 10s
    option http-keep-alive
    option forwardfor
EOF
}

# haproxy_www_frontend NAME BIND PROTO [BACKEND]: an HTTP frontend setting what vrrplb's
# forwarded_for sets (PROTO: http or https for X-Forwarded-Proto)
haproxy_www_frontend() {
    cat <<EOF
frontend $1
    bind $2
    http-request set-header X-Forwarded-Proto $3
    http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found } !{ req.hdr(x-forwarded-host) -m found }
    default_backend ${4:-web}
EOF
}

# haproxy_web_backend NAME PORT [tcp]: web1 and web2 on PORT, checked every 2 s
haproxy_web_backend() {
    local chk="option httpchk GET /"
    [ "${3:-}" != tcp ] || chk="option tcp-check"
    cat <<EOF
backend $1
    balance roundrobin
    $chk
    server web1 ${ADDR[web1]}:$2 check inter 2s rise 2 fall 3
    server web2 ${ADDR[web2]}:$2 check inter 2s rise 2 fall 3
EOF
}

# haproxy_tls_conf FILE ecdsa|rsa: `bind ssl crt` with the same PEM, TLS 1.2 + 1.3, same ALPN
haproxy_tls_conf() {
    {
        haproxy_head "$1" http
        haproxy_www_frontend www-tls \
            "${ADDR[lb1]}:443 ssl crt $WORK/tls/$2.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2" https
        haproxy_web_backend web 80
    } >"$1"
}

# haproxy_tcp_conf FILE: mode tcp on :80 and SNI pass-through on :443, as vrrplb_tcp_conf
haproxy_tcp_conf() {
    {
        haproxy_head "$1" tcp
        cat <<EOF
frontend tcp80
    bind ${ADDR[lb1]}:80
    default_backend web-tcp
frontend tls-pass
    bind ${ADDR[lb1]}:443
    tcp-request inspect-delay 5s
    tcp-request content accept if { req_ssl_hello_type 1 }
    use_backend web-tls if { req_ssl_sni -i bench.test }
    default_backend web-tcp
EOF
        haproxy_web_backend web-tcp 80 tcp
        haproxy_web_backend web-tls 443 tcp
    } >"$1"
}

# haproxy_stats_conf FILE: as vrrplb_stats_conf: 2 frontends, 4 backends of 25 servers, the
# stats page and the Prometheus exporter on lb1:8404
haproxy_stats_conf() {
    local b i
    {
        haproxy_head "$1" http
        cat <<EOF
frontend stats
    bind ${ADDR[lb1]}:8404
    stats enable
    stats uri /stats
    stats refresh 10s
    stats show-node
    stats auth $STATS_AUTH
    http-request use-service prometheus-exporter if { path /metrics }
EOF
        haproxy_www_frontend www "${ADDR[lb1]}:80" http
        haproxy_www_frontend www2 "${ADDR[lb1]}:8080" http b2
        cat <<EOF
    use_backend b3 if { path_beg /b3/ }
    use_backend b4 if { path_beg /b4/ }
EOF
        for b in web b2 b3 b4; do
            printf 'backend %s\n    balance roundrobin\n    option httpchk GET /\n' "$b"
            for ((i = 1; i <= 25; i++)); do
                printf '    server %s-s%02d %s:80 check inter 2s rise 2 fall 3\n' "$b" "$i" "${ADDR[web$((i % 2 + 1))]}"
            done
        done
    } >"$1"
}

# vrrplb_pair_conf FILE BOX PRIORITY
vrrplb_pair_conf() {
    {
        cat <<EOF
global:
  node: $2
  control_socket: $WORK/$2.sock
  log: { target: stderr, level: info, access_log: false }
vrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: $3
    advert_int: 1
    state: BACKUP
    authentication: { auth_type: PASS, auth_pass: "bench51" }
    virtual_ipaddress: [$VIP/24]
EOF
        vrrplb_balancer "$VIP:80" VI_1
    } >"$1"
}

# keepalived_conf FILE BOX PRIORITY: the same VRRP instance for keepalived
keepalived_conf() {
    cat >"$1" <<EOF
global_defs {
    router_id $2
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority $3
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass bench51
    }
    virtual_ipaddress {
        $VIP/24
    }
}
EOF
}

# --- load measurements (parts proxy, tls, tcp, scrape) ------------------------------------------
# to_ms VALUE: wrk's "612.00us" / "1.23ms" / "1.01s" in milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v == "") { print "-"; exit }
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

# A shape: which config the balancer runs (CFG: $WORK/vrrplb-CFG.yaml, $WORK/haproxy-CFG.cfg),
# what the client asks (URL, on lb1 or, for the nginx ceiling, on web1), with which client
# (wrk: -c32 keep-alive, wrk-close: Connection: close, handshake: parallel python3 ssl clients,
# h2load: -c8 -m32), and the response body size (for CPU per GB).
read -r -a SHAPES <<<"${BENCH_SHAPES:-ka close big}" # (BENCH_SHAPES: a subset, for experiments)
TLS_SHAPES=(tka tkar tfull-ecdsa tfull-rsa tresume th2 th2r)
# th2r: HTTP/2 at the same fixed rate for both (h2load --rps per connection, 8 connections),
# below either's capacity: at saturation CPU per request also depends on which side (the
# balancer or the client's core) sets the pace, as busier rounds serve more streams per wake-up
# (--quick: 500, 4,000 requests/s, which a debug build keeps up with)
H2_RPS=${BENCH_H2_RPS:-$([ "$QUICK" = 1 ] && echo 500 || echo 2500)}
# tkar: TLS keep-alive (HTTP/1.1) at the same fixed rate for both, for the same reason:
# h2load --h1 -c32 --rps per connection, 25,600 requests/s (--quick: 3,200)
H1_RPS=${BENCH_H1_RPS:-$([ "$QUICK" = 1 ] && echo 100 || echo 800)}
TCP_SHAPES=(cbig c1m cclose cpass)
declare -A SHAPE_CFG=([ka]=proxy [close]=proxy [big]=proxy
    [tka]=tls-ecdsa [tkar]=tls-ecdsa [tfull-ecdsa]=tls-ecdsa [tfull-rsa]=tls-rsa [tresume]=tls-ecdsa [th2]=tls-ecdsa [th2r]=tls-ecdsa
    [cbig]=tcp [c1m]=tcp [cclose]=tcp [cpass]=tcp)
declare -A SHAPE_URL=([ka]=http://@/ [close]=http://@/ [big]=http://@/100k
    [tka]=https://@/ [tkar]=https://@/ [tfull-ecdsa]=@:443 [tfull-rsa]=@:443 [tresume]=https://@/ [th2]=https://@/ [th2r]=https://@/
    [cbig]=http://@/100k [c1m]=http://@/1m [cclose]=http://@/ [cpass]=@:443)
declare -A SHAPE_CLIENT=([ka]=wrk [close]=wrk-close [big]=wrk
    [tka]=wrk [tkar]=h2load-h1-rate [tfull-ecdsa]=handshake [tfull-rsa]=handshake [tresume]=wrk-close [th2]=h2load [th2r]=h2load-rate
    [cbig]=wrk [c1m]=wrk [cclose]=wrk-close [cpass]=handshake)
declare -A SHAPE_BYTES=([big]=102400 [cbig]=102400 [c1m]=1048576)
declare -A SHAPE_NAME=([ka]="small, keep-alive (32 conns)" [close]="small, new connection per request"
    [big]="100 KB, keep-alive (32 conns)"
    [tka]="TLS, small, keep-alive (wrk, 32 conns)"
    [tkar]="TLS, small, keep-alive at a fixed rate (h2load --h1 -c32 --rps $H1_RPS, $((H1_RPS * 32)) requests/s)"
    [tfull-ecdsa]="TLS full handshake, ECDSA P-256, new connection per request (python3 ssl)"
    [tfull-rsa]="TLS full handshake, RSA 2048, new connection per request (python3 ssl)"
    [tresume]="TLS resumed handshake, new connection per request (wrk, Connection: close)"
    [th2]="HTTP/2 over TLS (h2load -c8 -m32)"
    [th2r]="HTTP/2 over TLS at a fixed rate (h2load -c8 -m32 --rps $H2_RPS, $((H2_RPS * 8)) requests/s)"
    [cbig]="tcp mode, 100 KB responses (wrk keep-alive, 32 conns)"
    [c1m]="tcp mode, 1 MB responses (wrk keep-alive, 32 conns)"
    [cclose]="tcp mode, new TCP connection per request (small, Connection: close)"
    [cpass]="tcp mode, TLS pass-through by SNI (python3 ssl, full handshakes with the servers)")
HS_CLIENTS=4 # parallel handshake clients: the client's own handshakes set the pace

# client_run CLIENT URL SECONDS OUTFILE: one load run from the client namespace, on LOAD_CPU;
# prints "requests rate p50_ms p99_ms errors" (a "-" where the client gives no figure)
client_run() {
    local client=$1 url=$2 secs=$3 out=$4 i
    local cl=(nsx cl taskset -c "$LOAD_CPU" timeout $((secs + 15)))
    case "$client" in
        wrk | wrk-close)
            local args=(-t1 -c32 "-d${secs}s" --latency)
            [ "$client" != wrk-close ] || args+=(-H "Connection: close")
            "${cl[@]}" wrk "${args[@]}" "$url" >"$out" 2>&1 || true
            local reqs rps p50 p99 errs non2xx
            reqs=$(awk '/ requests in /{print $1}' "$out")
            rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
            p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
            p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
            errs=$(awk '/Socket errors:/{gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
            non2xx=$(awk '/Non-2xx/{print $NF}' "$out")
            [ -n "$reqs" ] && [ -n "$rps" ] || return 1
            echo "$reqs $rps $p50 $p99 $((${errs:-0} + ${non2xx:-0}))"
            ;;
        handshake)
            # HS_CLIENTS python3 ssl clients in parallel, each a new connection with a full
            # handshake per request (a session is never offered again), SNI bench.test
            local pids=()
            for ((i = 0; i < HS_CLIENTS; i++)); do
                "${cl[@]}" python3 "$REPO/deploy/tls-handshakes.py" "${url%:*}" "${url##*:}" "$secs" >"$out.$i" 2>&1 &
                pids+=($!)
            done
            for i in "${pids[@]}"; do wait "$i" || true; done
            cat "$out".[0-9] >"$out"
            # each client: "RESULT n errors" and its latencies (ms), one a line, after "LAT"
            awk '$1 == "LAT" {print $2}' "$out" | sort -g >"$out.lat"
            awk -v s="$secs" -v k="$HS_CLIENTS" -v lat="$out.lat" '
                $1 == "RESULT" { c += $2; e += $3; r++ }
                END { if (r < k || c == 0) exit 1
                      while ((getline x < lat) > 0) v[++n] = x
                      printf "%d %.2f %.3f %.3f %d\n", c, c / s, v[int(n * 0.5) + 1], v[int(n * 0.99) + 1], e }' "$out"
            ;;
        h2load | h2load-rate | h2load-h1-rate)
            local args=(-c8 -m32)
            [ "$client" = h2load ] || args+=(--rps "$H2_RPS")
            [ "$client" != h2load-h1-rate ] || args=(--h1 -c32 --rps "$H1_RPS")
            "${cl[@]}" h2load -t1 "${args[@]}" -D "$secs" "$url" >"$out" 2>&1 || true
            awk '/^finished in/ { gsub(",", ""); rps = $4 }
                 /^requests:/ { done = $8; bad = $10 + $12 + $14 }
                 END { if (done == "" || rps == "") exit 1; printf "%d %s - - %d\n", done, rps, bad }' "$out"
            ;;
        *) die "unknown client $client" ;;
    esac
}

ready() { nsx cl curl -fsS -o /dev/null -m 1 "$1"; }
# ready_url SHAPE HOST: the URL to wait for before a run (plain or https; a TLS pass-through
# shape has the servers' certificate, so no verification)
ready_url() {
    local u=${SHAPE_URL[$1]/@/$2}
    [[ $u == *://* ]] || u=https://bench.test/
    echo "$u"
}
ready_k() { nsx cl curl -kfsS -o /dev/null -m 1 --resolve "bench.test:443:${ADDR[lb1]}" "$1"; }

# bal_start IMPL CFG LOG [CPU]: the balancer under test on lb1 (role bal), pinned to BAL_CPU
bal_start() {
    local cpu=${4:-$BAL_CPU}
    if [ "$1" = vrrplb ]; then
        spawn bal lb1 "$cpu" "$3" "$BIN" run -c "$WORK/vrrplb-$2.yaml" --log stderr
    else
        spawn bal lb1 "$cpu" "$3" haproxy -db -f "$WORK/haproxy-$2.cfg"
    fi
}

# load_run KIND IMPL SHAPE ROUND: one measurement; appends a KIND line to RAW:
#   KIND impl shape round rate p50_ms p99_ms cpu_s_per_1000 vmhwm_kB errors threads cpu_s_per_GB
#   user_cpu_s_per_1000 (the user-space part of cpu_s_per_1000; the rest is the kernel's)
load_run() {
    local kind=$1 impl=$2 shape=$3 round=$4 role="" pid="" url log out t0 t1 u0 u1 hwm=0 threads=0
    local host=${ADDR[lb1]} client=${SHAPE_CLIENT[$3]} res
    out=$WORK/load-$impl-$shape-$round.txt
    [ "$impl" != nginx ] || host=${ADDR[web1]}
    url=${SHAPE_URL[$shape]/@/$host}
    if [ "$impl" != nginx ]; then
        role=bal
        log=$WORK/$impl-$shape-$round.log
        bal_start "$impl" "${SHAPE_CFG[$shape]}" "$log"
        pid=${PIDOF[bal]}
    fi
    if ! wait_for 15 ready_k "$(ready_url "$shape" "$host")"; then
        warn "$impl does not answer for $shape: $(tail -n 5 "${log:-/dev/null}" 2>/dev/null | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
        [ -z "$role" ] || stop "$role"
        return 0
    fi
    client_run "$client" "$url" "$WARM" "$out.warm" >/dev/null || true
    t0=$([ -z "$pid" ] && echo 0 || ticks "$pid")
    u0=$([ -z "$pid" ] && echo 0 || ticks "$pid" user)
    res=$(client_run "$client" "$url" "$DURATION" "$out") || res=
    if [ -n "$pid" ]; then
        t1=$(ticks "$pid")
        u1=$(ticks "$pid" user)
        hwm=$(status_kb "$pid" VmHWM)
        threads=$(status_kb "$pid" Threads)
        alive bal || {
            warn "$impl died during the $shape run: $(tail -n 5 "$log" | tr '\n' ' ')"
            FAILURES=$((FAILURES + 1))
        }
        stop bal
    else
        t1=0 u1=0
    fi
    if [ -z "$res" ]; then
        warn "no $client figures for $impl ($shape): $(head -c 300 "$out" | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
        return 0
    fi
    local reqs rps p50 p99 errs cpu1k cpugb ucpu1k
    read -r reqs rps p50 p99 errs <<<"$res"
    cpu1k=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.5f", d / hz / n * 1000}')
    ucpu1k=$(awk -v d=$((u1 - u0)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.5f", d / hz / n * 1000}')
    cpugb=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" -v b="${SHAPE_BYTES[$shape]:-0}" \
        'BEGIN { if (b == 0) print "-"; else printf "%.3f", d / hz / (n * b / 1e9) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$impl" "$shape" "$round" \
        "$rps" "$p50" "$p99" "$cpu1k" "$hwm" "$errs" "$threads" "$cpugb" "$ucpu1k" >>"$RAW"
    printf '   %-7s %-12s round %s: %9.0f req/s  p50 %7s ms  p99 %7s ms  cpu %.4f s/1000 (user %.4f)  hwm %s kB  errors %s\n' \
        "$impl" "$shape" "$round" "$rps" "$p50" "$p99" "$cpu1k" "$ucpu1k" "$hwm" "$errs"
}

# scraper_start SECONDS: the client fetches /metrics once a second (role scraper), bounded
scraper_start() {
    spawn scraper cl "$LOAD_CPU" /dev/null timeout "$1" bash -c \
        "while :; do curl -s -o /dev/null -m 2 -u '$STATS_AUTH' 'http://${ADDR[lb1]}:8404/metrics'; sleep 1; done"
}

# rounds KIND SHAPE...: ROUNDS rounds of every shape, vrrplb and HAProxy (and nginx for the
# proxy part) in an order swapped every round
rounds() {
    local kind=$1 r s impl order
    shift
    for ((r = 1; r <= ROUNDS; r++)); do
        for s in "$@"; do
            if [ $((r % 2)) = 1 ]; then order=(vrrplb anchor); else order=(anchor vrrplb); fi
            [ "$kind" != proxy ] || order+=(nginx)
            for impl in "${order[@]}"; do
                load_run "$kind" "$([ "$impl" = anchor ] && echo haproxy || echo "$impl")" "$s" "$r"
            done
        done
    done
    # The table names the HAProxy rows "anchor".
    sed -i "s/^$kind\thaproxy\t/$kind\tanchor\t/" "$RAW"
}

# --- idle TLS connections -----------------------------------------------------------------------
# The client: opens N TLS connections (full handshake, ALPN http/1.1), sends nothing, says
# HELD, holds them, closes them. Bounded: 60 s to open, 5 s per connection.
IDLE_TLS_PY='
import socket, ssl, sys, time
host, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
conns, failed, deadline = [], 0, time.monotonic() + 60
try:
    while len(conns) + failed < n and time.monotonic() < deadline:
        try:
            s = socket.create_connection((host, port), timeout=5)
            conns.append(ctx.wrap_socket(s, server_hostname="bench.test"))
        except OSError as e:
            failed += 1
            print("failed:", e, file=sys.stderr)
    print("HELD", len(conns), "failed", failed, flush=True)
    time.sleep(hold)
finally:
    for c in conns:
        c.close()
print("DONE", flush=True)
'

# idle_tls_run IMPL ROUND: RSS of the balancer before and while IDLE_TLS idle TLS connections
# are open; appends "tlsidle impl - round rss_before_kB rss_held_kB held"
idle_tls_run() {
    local impl=$1 round=$2 out=$WORK/idle-tls-$1-$2.txt pid before held n i
    bal_start "$impl" tls-ecdsa "$WORK/$impl-idle-tls-$round.log"
    pid=${PIDOF[bal]}
    if ! wait_for 15 ready_k "https://${ADDR[lb1]}/"; then
        warn "$impl does not answer on https for the idle TLS measurement"
        FAILURES=$((FAILURES + 1))
        stop bal
        return 0
    fi
    sleep 1
    before=$(status_kb "$pid" VmRSS)
    spawn idleclient cl "$LOAD_CPU" "$out" python3 -c "$IDLE_TLS_PY" "${ADDR[lb1]}" 443 "$IDLE_TLS" 5
    for ((i = 0; i < 700; i++)); do
        grep -q '^HELD' "$out" 2>/dev/null && break
        alive idleclient || break
        sleep 0.1
    done
    sleep 1 # the last handshakes' buffers settle
    held=$(status_kb "$pid" VmRSS)
    n=$(awk '/^HELD/{print $2}' "$out")
    for ((i = 0; i < 150; i++)); do
        alive idleclient || break
        sleep 0.1
    done
    stop idleclient
    stop bal
    if [ -z "$n" ] || [ "$n" -lt "$IDLE_TLS" ]; then
        warn "$impl: the idle TLS client held ${n:-no} connections of $IDLE_TLS: $(head -c 300 "$out" | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
        return 0
    fi
    printf 'tlsidle\t%s\t-\t%s\t%s\t%s\t%s\n' "$impl" "$round" "$before" "$held" "$n" >>"$RAW"
    printf '   %-7s %s idle TLS connections: RSS %s kB before, %s kB while held\n' "$impl" "$n" "$before" "$held"
}

# --- scrape cost ----------------------------------------------------------------------------------
# scrape_run IMPL ROUND: CPU of one scrape of /metrics and of the stats page, from the
# balancer's on-CPU time over K scrapes on one keep-alive connection, less its background rate
# (health checks of 100 servers) measured just before; appends "scrape impl metrics|page
# round cpu_ms bytes"
scrape_run() {
    local impl=$1 round=$2 pid what path k=$((QUICK == 1 ? 50 : 300)) i cfgf
    bal_start "$impl" stats "$WORK/$impl-scrape-$round.log"
    pid=${PIDOF[bal]}
    if ! wait_for 15 nsx cl curl -fsS -o /dev/null -m 1 -u "$STATS_AUTH" "http://${ADDR[lb1]}:8404/metrics"; then
        warn "$impl does not answer on its stats listener"
        FAILURES=$((FAILURES + 1))
        stop bal
        return 0
    fi
    sleep $((QUICK == 1 ? 2 : 5)) # the first checks of every server done
    for what in metrics page; do
        path=/metrics
        [ $what = metrics ] || path=/stats
        cfgf=$WORK/scrape-$impl-$what.curl
        : >"$cfgf"
        for ((i = 0; i < k; i++)); do
            printf 'url = "http://%s:8404%s"\noutput = "/dev/null"\n' "${ADDR[lb1]}" "$path" >>"$cfgf"
        done
        local bytes a b c ta tb tc
        bytes=$(nsx cl curl -fsS -u "$STATS_AUTH" "http://${ADDR[lb1]}:8404$path" | wc -c)
        ta=$(date +%s%N) a=$(oncpu_ns "$pid")
        sleep $((QUICK == 1 ? 1 : 3))
        tb=$(date +%s%N) b=$(oncpu_ns "$pid")
        nsx cl taskset -c "$LOAD_CPU" timeout 60 curl -fsS -u "$STATS_AUTH" -K "$cfgf" ||
            warn "$impl: a scrape of $path failed"
        tc=$(date +%s%N) c=$(oncpu_ns "$pid")
        local ms
        ms=$(awk -v bg=$((b - a)) -v bgt=$((tb - ta)) -v d=$((c - b)) -v t=$((tc - tb)) -v k="$k" \
            'BEGIN { printf "%.4f", (d - bg * t / bgt) / k / 1e6 }')
        printf 'scrape\t%s\t%s\t%s\t%s\t%s\n' "$impl" "$what" "$round" "$ms" "$bytes" >>"$RAW"
        printf '   %-7s scrape of %-8s (%s bytes): %s ms of CPU (%s scrapes)\n' "$impl" "$path" "$bytes" "$ms" "$k"
    done
    stop bal
}

# --- scrape cost in instructions, and paired rounds with and without a scraper -----------------
# The CPU-ms rows above and the wall-clock rows below move with the machine's load; callgrind's
# instruction counts do not. Scrapes and requests are counted on the stats config without health
# checks (their instructions grow with time, not with requests or scrapes): same frontends,
# backends and servers.
SCG_K=$((QUICK == 1 ? 1 : 20))   # fetches per counted phase
SCG_S_N=$((QUICK == 1 ? 1 : 10)) # scrapes during the phase of CG_N2 requests
SCRAPE_PAIRS=${SCRAPE_PAIRS:-$((QUICK == 1 ? 2 : 8))} # paired rounds (no scraper, scraper)
SCRAPE_SECS=${SCRAPE_SECS:-$((QUICK == 1 ? 1 : 3))}   # seconds of wrk per round
[[ $SCRAPE_PAIRS =~ ^[1-9][0-9]{0,2}$ ]] || die "SCRAPE_PAIRS must be a whole number from 1 to 999"
[[ $SCRAPE_SECS =~ ^[1-9][0-9]{0,2}$ ]] || die "SCRAPE_SECS must be a whole number from 1 to 999"

# scg_confs: $WORK/vrrplb-scg.yaml and $WORK/haproxy-scg.cfg, the stats configs less the checks
scg_confs() {
    sed -e '/^    health_check:/d' -e 's/vrrplb-stats\.sock/vrrplb-scg.sock/' \
        "$WORK/vrrplb-stats.yaml" >"$WORK/vrrplb-scg.yaml"
    sed -e '/option httpchk/d' -e 's/ check inter 2s rise 2 fall 3$//' \
        -e "s#haproxy-stats\.cfg#haproxy-scg.cfg#g" "$WORK/haproxy-stats.cfg" >"$WORK/haproxy-scg.cfg"
}

# scg_zero PID: zero callgrind's counters; the phase's clock starts (SCG_T0, ns)
scg_zero() {
    callgrind_control -z "$1" >/dev/null 2>&1 || return 1
    SCG_T0=$(date +%s%N)
}

# scg_dump PID OUT: dump callgrind's counters; sets SCG_IR to the instructions since the last
# zero and SCG_S to the phase's seconds
scg_dump() {
    local n t
    SCG_IR=
    n=$(ls "$2".* 2>/dev/null | grep -c '\.[0-9]*$')
    t=$(date +%s%N)
    callgrind_control -d "$1" >/dev/null 2>&1 || return 1
    SCG_S=$(awk -v a="$SCG_T0" -v b="$t" -v c="$(date +%s%N)" 'BEGIN { printf "%.3f", ((b + c) / 2 - a) / 1e9 }')
    SCG_IR=$(awk '/^(summary|totals):/ {print $2; exit}' "$2.$((n + 1))" 2>/dev/null)
    [ -n "$SCG_IR" ]
}

# scg_idle PID OUT SECONDS: the balancer's own instructions per second with nothing asked of it
# (timers, the VRRP engine's loop); sets SCG_BG
scg_idle() {
    SCG_BG=
    scg_zero "$1" || return 1
    sleep "$3"
    scg_dump "$1" "$2" || return 1
    SCG_BG=$(awk -v i="$SCG_IR" -v s="$SCG_S" 'BEGIN { printf "%.0f", i / s }')
}

# scg_requests PID OUT N: N keep-alive requests on one new connection (h2load --h1 -c1) between
# a zero and a dump; sets SCG_IR, SCG_S
scg_requests() {
    local ok
    scg_zero "$1" || return 1
    nsx cl taskset -c "$LOAD_CPU" timeout 300 h2load --h1 -t1 -c1 -n "$3" "http://${ADDR[lb1]}/" >"$2.h2load" 2>&1 || true
    ok=$(awk '/^requests:/ {print $8}' "$2.h2load")
    if [ "${ok:-0}" != "$3" ]; then
        warn "h2load under callgrind: ${ok:-no} of $3 requests succeeded: $(tail -n 4 "$2.h2load" | tr '\n' ' ')"
        return 1
    fi
    scg_dump "$1" "$2"
}

# scg_scrapes PID OUT PATH K: K fetches of PATH, each on a new connection (as the scraper
# below does), between a zero and a dump; sets SCG_IR, SCG_BYTES (of one response)
scg_scrapes() {
    local pid=$1 out=$2 path=$3 k=$4 cfgf=$2.curl i ok
    {
        printf 'user = "%s"\nheader = "Connection: close"\nwrite-out = "%%{http_code} %%{size_download}\\n"\n' "$STATS_AUTH"
        for ((i = 0; i < k; i++)); do
            printf 'url = "http://%s:8404%s"\noutput = "/dev/null"\n' "${ADDR[lb1]}" "$path"
        done
    } >"$cfgf"
    SCG_IR= SCG_BYTES=
    scg_zero "$pid" || return 1
    nsx cl taskset -c "$LOAD_CPU" timeout 300 curl -sS -m 60 -K "$cfgf" >"$out.codes" 2>&1 || true
    ok=$(grep -c '^200 ' "$out.codes")
    if [ "$ok" != "$k" ]; then
        warn "under callgrind: $ok of $k fetches of $path answered 200: $(head -c 200 "$out.codes" | tr '\n' ' ')"
        return 1
    fi
    SCG_BYTES=$(awk '$1 == 200 {print $2; exit}' "$out.codes")
    scg_dump "$pid" "$out"
}

# scg_scraped_phase PID OUT N S GAP_S: N keep-alive requests on one connection (h2load --h1 -c1)
# while S scrapes of /metrics (a new connection each) run beside them, GAP_S apart, all between
# a zero and a dump; sets SCG_IR
scg_scraped_phase() {
    local pid=$1 out=$2 n=$3 s=$4 gap=$5 i ok
    SCG_IR=
    scg_zero "$pid" || return 1
    : >"$out.scraper"
    spawn scgscraper cl "$LOAD_CPU" "$out.scraper" timeout 300 bash -c \
        "for ((i = 0; i < $s; i++)); do sleep $gap; curl -sS -o /dev/null -m 60 -H 'Connection: close' -w '%{http_code}\n' -u '$STATS_AUTH' 'http://${ADDR[lb1]}:8404/metrics'; done"
    nsx cl taskset -c "$LOAD_CPU" timeout 300 h2load --h1 -t1 -c1 -n "$n" "http://${ADDR[lb1]}/" >"$out.h2load" 2>&1 || true
    for ((i = 0; i < 3000; i++)); do
        alive scgscraper || break
        sleep 0.1
    done
    stop scgscraper
    ok=$(awk '/^requests:/ {print $8}' "$out.h2load")
    if [ "${ok:-0}" != "$n" ] || [ "$(grep -c '^200$' "$out.scraper")" != "$s" ]; then
        warn "under callgrind: ${ok:-no} of $n requests and $(grep -c '^200$' "$out.scraper") of $s scrapes answered"
        return 1
    fi
    scg_dump "$pid" "$out"
}

# scrape_cg IMPL: the balancer on the stats config under callgrind: its own instructions per
# second when idle (taken out of every phase below in proportion to the phase's length), per
# scrape of /metrics, per load of the stats page and of its CSV, per keep-alive request
# ((Ir(N2) - Ir(N1)) / (N2 - N1), as part callgrind), and per request in a phase of N2 requests
# with SCG_S_N scrapes beside them, less those scrapes' own instructions. Appends
#   scrapecg IMPL idle 1 Ir_per_s seconds
#   scrapecg IMPL metrics|page|csv 1 Ir_per_fetch bytes K
#   scrapecg IMPL req 1 Ir_per_request Ir(N1) Ir(N2)
#   scrapecg IMPL reqscraped 1 Ir_per_request Ir(N2 + scrapes) scrapes
scrape_cg() {
    local impl=$1 out=$WORK/scg-$1.out log=$WORK/scg-$1.log pid what path a b m per i bg
    local cmd=("$BIN" run -c "$WORK/vrrplb-scg.yaml" --log stderr) idle=5
    [ "$impl" = vrrplb ] || cmd=(haproxy -db -f "$WORK/haproxy-scg.cfg")
    [ "$QUICK" = 0 ] || idle=0.5
    rm -f "$out" "$out".*
    spawn bal lb1 "$BAL_CPU" "$log" valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}"
    pid=${PIDOF[bal]}
    if ! wait_for 120 ready "http://${ADDR[lb1]}/" ||
        ! wait_for 60 nsx cl curl -fsS -o /dev/null -m 5 -u "$STATS_AUTH" "http://${ADDR[lb1]}:8404/metrics" ||
        ! scg_idle "$pid" "$out" "$idle"; then
        warn "$impl under callgrind (stats config) does not answer: $(tail -n 5 "$log" | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
        stop bal
        return 0
    fi
    bg=$SCG_BG
    printf 'scrapecg\t%s\tidle\t1\t%s\t%s\n' "$impl" "$bg" "$SCG_S" >>"$RAW"
    # net INSTRUCTIONS SECONDS: less the idle rate over the phase's length
    net() { awk -v i="$1" -v s="$2" -v bg="$bg" 'BEGIN { printf "%.0f", i - bg * s }'; }
    for what in metrics page csv; do
        case $what in metrics) path=/metrics ;; page) path=/stats ;; csv) path='/stats;csv' ;; esac
        if scg_scrapes "$pid" "$out" "$path" "$SCG_K"; then
            per=$(awk -v t="$(net "$SCG_IR" "$SCG_S")" -v k="$SCG_K" 'BEGIN { printf "%.0f", t / k }')
            printf 'scrapecg\t%s\t%s\t1\t%s\t%s\t%s\n' "$impl" "$what" "$per" "$SCG_BYTES" "$SCG_K" >>"$RAW"
            printf '   %-7s %-10s under callgrind: %s instructions per fetch (%s bytes, %s fetches)\n' \
                "$impl" "$path" "$per" "$SCG_BYTES" "$SCG_K"
        else
            FAILURES=$((FAILURES + 1))
        fi
    done
    a= b= m=
    ! scg_requests "$pid" "$out" "$CG_N1" || a=$(net "$SCG_IR" "$SCG_S")
    ! scg_requests "$pid" "$out" "$CG_N2" || b=$(net "$SCG_IR" "$SCG_S")
    # the scrapes spread over about the time the same requests took alone
    local gap x
    gap=$(awk -v d="${SCG_S:-1}" -v s="$SCG_S_N" 'BEGIN { printf "%.2f", d / (s + 1) }')
    ! scg_scraped_phase "$pid" "$out" "$CG_N2" "$SCG_S_N" "$gap" || m=$(net "$SCG_IR" "$SCG_S")
    x=$(awk -F'\t' -v i="$impl" '$1 == "scrapecg" && $2 == i && $3 == "metrics" {print $5}' "$RAW")
    if [ -z "$a" ] || [ -z "$b" ] || [ -z "$m" ] || [ -z "$x" ]; then
        warn "callgrind $impl, stats config: no instruction count for the request phases"
        FAILURES=$((FAILURES + 1))
    else
        per=$(awk -v a="$a" -v b="$b" -v n1="$CG_N1" -v n2="$CG_N2" 'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }')
        printf 'scrapecg\t%s\treq\t1\t%s\t%s\t%s\n' "$impl" "$per" "$a" "$b" >>"$RAW"
        printf '   %-7s under callgrind: %s instructions per request alone (idle: %s a second),' "$impl" "$per" "$bg"
        # the same formula with Ir(N2) taken from the scraped phase less the scrapes' own count
        per=$(awk -v a="$a" -v m="$m" -v s="$SCG_S_N" -v x="$x" -v n1="$CG_N1" -v n2="$CG_N2" \
            'BEGIN { printf "%.0f", (m - s * x - a) / (n2 - n1) }')
        printf 'scrapecg\t%s\treqscraped\t1\t%s\t%s\t%s\n' "$impl" "$per" "$m" "$SCG_S_N" >>"$RAW"
        printf ' %s with %s scrapes beside them (their own instructions taken out)\n' "$per" "$SCG_S_N"
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        alive bal || break
        sleep 0.1
    done
    stop bal
}

# scrape_pairs IMPL: one balancer on the stats config (with its checks), SCRAPE_PAIRS pairs of
# SCRAPE_SECS-second wrk keep-alive rounds, one without and one with the scraper (a curl fetching
# /metrics every second), the order swapped every pair (AB BA AB ...) so a drift hits both alike;
# the balancer's on-CPU time per round. Appends "scrapeab IMPL none|scraped PAIR req/s
# cpu_s_per_1000 errors"
scrape_pairs() {
    local impl=$1 p kind pid log=$WORK/$1-scrapeab.log out res t0 t1 reqs rps errs cpu1k order
    bal_start "$impl" stats "$log"
    pid=${PIDOF[bal]}
    if ! wait_for 15 ready "http://${ADDR[lb1]}/"; then
        warn "$impl does not answer on the stats config: $(tail -n 5 "$log" | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
        stop bal
        return 0
    fi
    [ $QUICK = 1 ] || sleep 4 # the first checks of every server done
    client_run wrk "http://${ADDR[lb1]}/" "$WARM" "$WORK/scrapeab-$impl.warm" >/dev/null || true
    for ((p = 1; p <= SCRAPE_PAIRS; p++)); do
        order=(none scraped)
        [ $((p % 2)) = 1 ] || order=(scraped none)
        for kind in "${order[@]}"; do
            out=$WORK/scrapeab-$impl-$kind-$p.txt
            [ "$kind" = none ] || scraper_start $((SCRAPE_SECS + 5))
            t0=$(oncpu_ns "$pid")
            res=$(client_run wrk "http://${ADDR[lb1]}/" "$SCRAPE_SECS" "$out") || res=
            t1=$(oncpu_ns "$pid")
            [ "$kind" = none ] || stop scraper
            if [ -z "$res" ]; then
                warn "no wrk figures for $impl ($kind, pair $p): $(head -c 300 "$out" | tr '\n' ' ')"
                FAILURES=$((FAILURES + 1))
                continue
            fi
            read -r reqs rps _ _ errs <<<"$res"
            cpu1k=$(awk -v d=$((t1 - t0)) -v n="$reqs" 'BEGIN {printf "%.5f", d / 1e9 / n * 1000}')
            printf 'scrapeab\t%s\t%s\t%s\t%s\t%s\t%s\n' "$impl" "$kind" "$p" "$rps" "$cpu1k" "$errs" >>"$RAW"
            printf '   %-7s pair %s %-7s: %9.0f req/s  cpu %.4f s/1000  errors %s\n' "$impl" "$p" "$kind" "$rps" "$cpu1k" "$errs"
        done
    done
    alive bal || {
        warn "$impl died during the paired scrape rounds: $(tail -n 5 "$log" | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
    }
    stop bal
}

# --- callgrind ----------------------------------------------------------------------------------
# vrrplb_cg_conf FILE: the plain frontend of the proxy part and the TLS one (ECDSA) in one
# process, without health checks (their cost grows with time, not with requests)
vrrplb_cg_conf() {
    {
        vrrplb_head vrrplb-cg
        cat <<EOF
frontends:
  - name: www
    bind: ["${ADDR[lb1]}:80"]
    forwarded_for: true
    timeouts: { client: 50s, http_request: 10s }
    default_backend: web
  - name: www-tls
    bind: ["${ADDR[lb1]}:443"]
    tls:
      certificates: ["$WORK/tls/ecdsa.pem"]
      min_version: "1.2"
      alpn: [h2, "http/1.1"]
    forwarded_for: true
    timeouts: { client: 50s, http_request: 10s }
    default_backend: web
backends:
EOF
        vrrplb_web_backend web 80 ""
    } >"$1"
}

# haproxy_cg_conf FILE: the same two frontends for HAProxy, no checks
haproxy_cg_conf() {
    {
        haproxy_head "$1" http
        haproxy_www_frontend www "${ADDR[lb1]}:80" http
        haproxy_www_frontend www-tls \
            "${ADDR[lb1]}:443 ssl crt $WORK/tls/ecdsa.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2" https
        printf 'backend web\n    balance roundrobin\n'
        printf '    server web%s %s:80\n' 1 "${ADDR[web1]}" 2 "${ADDR[web2]}"
    } >"$1"
}

# cg_phase PID OUT URL N [H2LOAD_ARGS]: zero the counters, N keep-alive requests on one new
# connection (h2load --h1 -c1, or the arguments given), dump; sets CG_IR to the instructions
# (Ir) of the phase
cg_phase() {
    local pid=$1 out=$2 url=$3 n=$4 before ok args=(--h1 -t1 -c1)
    [ -z "${5:-}" ] || read -r -a args <<<"$5"
    CG_IR=
    callgrind_control -z "$pid" >/dev/null 2>&1 || return 1
    nsx cl taskset -c "$LOAD_CPU" timeout 300 h2load "${args[@]}" -n "$n" "$url" >"$out.h2load" 2>&1 || true
    ok=$(awk '/^requests:/ {print $8}' "$out.h2load")
    if [ "${ok:-0}" != "$n" ]; then
        warn "h2load under callgrind: ${ok:-no} of $n requests succeeded: $(tail -n 4 "$out.h2load" | tr '\n' ' ')"
        return 1
    fi
    before=$(ls "$out".* 2>/dev/null | grep -c '\.[0-9]*$')
    callgrind_control -d "$pid" >/dev/null 2>&1 || return 1
    CG_IR=$(awk '/^(summary|totals):/ {print $2; exit}' "$out.$((before + 1))" 2>/dev/null)
    [ -n "$CG_IR" ]
}

# cg_session IMPL ROUND: the balancer under callgrind; per protocol (plain, tls, h2) a phase of
# CG_N1 and one of CG_N2 requests: (Ir(N2) - Ir(N1)) / (N2 - N1) cancels the connection's setup
# (and the TLS handshake) and close. Appends "callgrind IMPL plain|tls|h2 round per_request
# Ir(N1) Ir(N2)".
cg_session() {
    local impl=$1 round=$2 out=$WORK/cg-$1-$2.out log=$WORK/cg-$1-$2.log pid proto url a b per i args
    local cmd=("$BIN" run -c "$WORK/vrrplb-cg.yaml" --log stderr)
    [ "$impl" = vrrplb ] || cmd=(haproxy -db -f "$WORK/haproxy-cg.cfg")
    rm -f "$out" "$out".*
    spawn bal lb1 "$BAL_CPU" "$log" valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}"
    pid=${PIDOF[bal]}
    if ! wait_for 120 ready_k "https://${ADDR[lb1]}/" || ! wait_for 10 ready "http://${ADDR[lb1]}/"; then
        warn "$impl under callgrind does not answer: $(tail -n 5 "$log" | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
        stop bal
        return 0
    fi
    for proto in plain tls h2; do
        url=http://${ADDR[lb1]}/ args=
        [ $proto = plain ] || url=https://${ADDR[lb1]}/
        [ $proto != h2 ] || args="-t1 -c8 -m32"
        a= b=
        ! cg_phase "$pid" "$out" "$url" "$CG_N1" "$args" || a=$CG_IR
        ! cg_phase "$pid" "$out" "$url" "$CG_N2" "$args" || b=$CG_IR
        if [ -z "$a" ] || [ -z "$b" ]; then
            warn "callgrind $impl $proto: no instruction count (callgrind_control failed?)"
            FAILURES=$((FAILURES + 1))
            continue
        fi
        per=$(awk -v a="$a" -v b="$b" -v n1="$CG_N1" -v n2="$CG_N2" 'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }')
        printf 'callgrind\t%s\t%s\t%s\t%s\t%s\t%s\n' "$impl" "$proto" "$round" "$per" "$a" "$b" >>"$RAW"
        printf '   %-7s %-5s round %s: %s instructions per request (Ir %s for %s requests, %s for %s)\n' \
            "$impl" "$proto" "$round" "$per" "$a" "$CG_N1" "$b" "$CG_N2"
    done
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do # valgrind writes its last file on exit
        alive bal || break
        sleep 0.1
    done
    stop bal
}

# --- pairs: start, kill, stop -----------------------------------------------------------------
has_vip() { ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null | grep -q " $VIP/"; }
drop_vip() { ip -n "$(ns "$1")" addr del "$VIP/24" dev eth0 2>/dev/null || true; }
only_master() { has_vip "$1" && ! has_vip "$([ "$1" = lb1 ] && echo lb2 || echo lb1)"; }
vip_answers() { nsx cl curl -fsS -o /dev/null -m 1 "http://$VIP/"; }

prio() { [ "$1" = lb1 ] && echo 101 || echo 100; }

# box_start IMPL BOX
box_start() {
    local impl=$1 b=$2
    if [ "$impl" = vrrplb ]; then
        vrrplb_pair_conf "$WORK/pair-$b.yaml" "$b" "$(prio "$b")"
        spawn "vrrplb-$b" "$b" - "$WORK/pair-vrrplb-$b.log" "$BIN" run -c "$WORK/pair-$b.yaml" --log stderr
    else
        haproxy_conf "$WORK/pair-haproxy-$b.cfg" "$VIP"
        keepalived_conf "$WORK/pair-keepalived-$b.conf" "$b" "$(prio "$b")"
        rm -f "$WORK/ka-$b".*.pid
        spawn "haproxy-$b" "$b" - "$WORK/pair-haproxy-$b.log" haproxy -db -f "$WORK/pair-haproxy-$b.cfg"
        spawn "keepalived-$b" "$b" - "$WORK/pair-keepalived-$b.log" keepalived -P -n -l -D \
            -f "$WORK/pair-keepalived-$b.conf" -p "$WORK/ka-$b.main.pid" \
            -r "$WORK/ka-$b.vrrp.pid" -c "$WORK/ka-$b.checkers.pid"
        if wait_for 10 test -s "$WORK/ka-$b.vrrp.pid"; then
            KCHILD[$b]=$(tr -d ' \n' <"$WORK/ka-$b.vrrp.pid")
            KCHILD_START[$b]=$(starttime "${KCHILD[$b]}")
        else
            warn "keepalived on $b wrote no VRRP child PID file"
        fi
    fi
}

# box_pids IMPL BOX: every PID making up the box's balancer + VRRP
box_pids() {
    if [ "$1" = vrrplb ]; then
        echo "${PIDOF[vrrplb-$2]:-}"
    else
        echo "${PIDOF[keepalived-$2]:-} ${KCHILD[$2]:-} ${PIDOF[haproxy-$2]:-}"
    fi
}

# box_kill_hard IMPL BOX: SIGKILL everything, no goodbye
box_kill_hard() {
    local impl=$1 b=$2
    if [ "$impl" = vrrplb ]; then
        stop "vrrplb-$b" KILL
    else
        # Freeze the parent so it neither respawns the child nor lets it see its parent die.
        kill -STOP "${PIDOF[keepalived-$b]}" 2>/dev/null || true
        if kchild_alive "$b"; then kill -KILL "${KCHILD[$b]}" 2>/dev/null || true; fi
        stop "keepalived-$b" KILL
        stop "haproxy-$b" KILL
        unset "KCHILD[$b]"
    fi
}

# box_stop IMPL BOX: the graceful stop (vrrplb: SIGTERM; the pair: SIGTERM keepalived, whose
# Master sends a priority-0 advert; HAProxy keeps running, as with `systemctl stop keepalived`)
box_stop() {
    local impl=$1 b=$2
    if [ "$impl" = vrrplb ]; then
        stop "vrrplb-$b" TERM
    else
        stop "keepalived-$b" TERM
        wait_for 5 bash -c "! kill -0 ${KCHILD[$b]:-0} 2>/dev/null" || true
        unset "KCHILD[$b]"
    fi
}

box_down() { # everything of the box, whatever is left
    local b=$2 r
    for r in "vrrplb-$b" "keepalived-$b" "haproxy-$b"; do stop "$r" TERM; done
    if kchild_alive "$b"; then kill -KILL "${KCHILD[$b]}" 2>/dev/null || true; fi
    unset "KCHILD[$b]"
    drop_vip "$b"
}

HAVE_POLL=0
"$BIN" poll --help >/dev/null 2>&1 && HAVE_POLL=1

# poll_start FOR_S SETTLE_S OUTFILE: the client, in the background (role poll)
poll_start() {
    if [ $HAVE_POLL = 1 ]; then
        spawn poll cl - "$3" "$BIN" poll --url "http://$VIP/" --every 20ms --for "${1}s" \
            --timeout 200ms --settle "${2}s"
    else
        spawn poll cl - "$3" bash "$SELF" __poll "http://$VIP/" "$1" "$2"
    fi
}

# poll_result OUTFILE: waits for the client to finish (it is bounded); sets OUTAGE (ms)
poll_result() {
    local i
    for ((i = 0; i < 600; i++)); do
        alive poll || break
        sleep 0.1
    done
    stop poll KILL
    OUTAGE=$(sed -n 's/^RESULT.* outage_ms=\([0-9]*\).*/\1/p' "$1")
}

record_failover() { # impl scenario rep outage_ms
    if [ -z "$4" ]; then
        warn "no client result for $1 $2 #$3"
        FAILURES=$((FAILURES + 1))
        return 0
    fi
    printf 'failover\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"
    printf '   %-7s %-9s rep %s: outage %5s ms\n' "$1" "$2" "$3" "$4"
}

# idle_measure IMPL: CPU and memory of the master box (lb1) over IDLE seconds
idle_measure() {
    local impl=$1 pids p t0=0 t1=0 rss=0 pss=0 n=0
    pids=$(box_pids "$impl" lb1)
    for p in $pids; do t0=$((t0 + $(oncpu_ns "$p"))); done
    sleep "$IDLE"
    for p in $pids; do
        [ -d "/proc/$p" ] || continue
        t1=$((t1 + $(oncpu_ns "$p")))
        rss=$((rss + $(status_kb "$p" VmRSS)))
        pss=$((pss + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
        n=$((n + 1))
    done
    local cpu_ms
    cpu_ms=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1e6 }')
    printf 'idle\t%s\t-\t1\t%s\t%s\t%s\t%s\n' "$impl" "$rss" "$pss" "$cpu_ms" "$n" >>"$RAW"
    printf '   %-7s idle %ss: RSS %s kB (PSS %s kB, %s processes), CPU %s ms\n' \
        "$impl" "$IDLE" "$rss" "$pss" "$n" "$cpu_ms"
}

# drill IMPL REP: start the pair, (idle), hard failover, failback, graceful stop, stop the pair
drill() {
    local impl=$1 rep=$2 out
    nsx cl ip neigh flush all 2>/dev/null || true
    box_start "$impl" lb2
    box_start "$impl" lb1
    if ! wait_for 20 only_master lb1 || ! wait_for 10 vip_answers; then
        warn "$impl pair: lb1 did not become the only MASTER answering on the VIP"
        FAILURES=$((FAILURES + 1))
        tail -n 5 "$WORK"/pair-*lb1.log >&2 || true
        box_down "$impl" lb1
        box_down "$impl" lb2
        return 0
    fi
    sleep 1
    if part idle && [ "$rep" = 1 ]; then idle_measure "$impl"; fi
    part failover || {
        box_down "$impl" lb1
        box_down "$impl" lb2
        return 0
    }

    # 1. hard: SIGKILL the master's processes and pull its cable
    out=$WORK/poll-$impl-hard-$rep.txt
    poll_start 15 1 "$out"
    sleep 1
    box_kill_hard "$impl" lb1
    link lb1 down
    poll_result "$out"
    record_failover "$impl" hard "$rep" "$OUTAGE"
    has_vip lb2 || warn "$impl: lb2 does not hold the VIP after the hard failover"

    # 2. failback: lb1 returns (cable back, the VIP its killed daemon left removed by hand,
    #    daemon restarted) and preempts with the higher priority
    drop_vip lb1
    link lb1 up
    sleep 1
    out=$WORK/poll-$impl-failback-$rep.txt
    poll_start 10 1 "$out"
    sleep 0.5
    box_start "$impl" lb1
    poll_result "$out"
    record_failover "$impl" failback "$rep" "$OUTAGE"
    wait_for 10 only_master lb1 || warn "$impl: lb1 is not the only MASTER after the failback"
    sleep 2

    # 3. graceful: SIGTERM the master
    out=$WORK/poll-$impl-graceful-$rep.txt
    poll_start 8 1 "$out"
    sleep 1
    box_stop "$impl" lb1
    poll_result "$out"
    record_failover "$impl" graceful "$rep" "$OUTAGE"
    has_vip lb2 || warn "$impl: lb2 does not hold the VIP after the graceful stop"
    box_down "$impl" lb1
    box_down "$impl" lb2
}

# --- results ----------------------------------------------------------------------------------
# agg KIND IMPL SHAPE FIELD: "median min max" of a RAW column (FIELD counts from 1 = kind)
agg() {
    awk -F'\t' -v k="$1" -v i="$2" -v s="$3" -v f="$4" '$1 == k && $2 == i && $3 == s {print $f}' "$RAW" |
        sort -g | awk '{v[NR] = $1} END {
            if (NR == 0) { print "- - -"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m, v[1], v[NR] }'
}

fmt() { # fmt VALUE DECIMALS: thousands separators for integers
    [ "$1" != - ] || {
        printf -- '-'
        return
    }
    if [ "$2" = 0 ]; then
        printf '%.0f' "$1" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta'
    else printf "%.${2}f" "$1"; fi
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else if (a + 0 == 0 && b + 0 == 0) print "= (both 0)"; else if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

# row LABEL GOAL DEC KIND SHAPE FIELD [range] [scale] [ceiling]
row() {
    local label=$1 goal=$2 dec=$3 kind=$4 shape=$5 field=$6 range=${7:-} scale=${8:-1} ceil=${9:-}
    local v a c cell_v cell_a cell_c=""
    read -r -a v <<<"$(agg "$kind" vrrplb "$shape" "$field")"
    read -r -a a <<<"$(agg "$kind" anchor "$shape" "$field")"
    scale_v() { awk -v x="$1" -v s="$scale" 'BEGIN { if (x == "-") print "-"; else print x / s }'; }
    local vm am
    vm=$(scale_v "${v[0]}")
    am=$(scale_v "${a[0]}")
    cell_v=$(fmt "$vm" "$dec")
    cell_a=$(fmt "$am" "$dec")
    if [ -n "$range" ] && [ "${v[0]}" != - ]; then
        cell_v+=" ($(fmt "$(scale_v "${v[1]}")" "$dec")–$(fmt "$(scale_v "${v[2]}")" "$dec"))"
    fi
    if [ -n "$range" ] && [ "${a[0]}" != - ]; then
        cell_a+=" ($(fmt "$(scale_v "${a[1]}")" "$dec")–$(fmt "$(scale_v "${a[2]}")" "$dec"))"
    fi
    if [ -n "$ceil" ]; then
        read -r -a c <<<"$(agg "$kind" nginx "$shape" "$field")"
        cell_c=$(fmt "$(scale_v "${c[0]}")" "$dec")
    fi
    printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$cell_v" "$cell_a" "$(ratio "$vm" "$am")" "$goal" "$cell_c"
}

# pair_change IMPL FIELD: "median min max" over the paired scrape rounds of the change, in %,
# of FIELD (5 requests/s, 6 CPU s per 1000) with the scraper against without in the same pair
pair_change() {
    awk -F'\t' -v i="$1" -v f="$2" '$1 == "scrapeab" && $2 == i { v[$4 "," $3] = $f; p[$4] = 1 }
        END { for (k in p) if ((k ",none") in v && (k ",scraped") in v && v[k ",none"] > 0)
                  printf "%.4f\n", (v[k ",scraped"] / v[k ",none"] - 1) * 100 }' "$RAW" |
        sort -g | awk '{v[NR] = $1} END {
            if (NR == 0) { print "- - -"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m, v[1], v[NR] }'
}

# scrape_rows: the scrape part's rows after the CPU-ms ones: instructions under callgrind (the
# steady figures), the share of one scrape a second in the balancer's instructions at the
# measured keep-alive rate, and the paired wall-clock rounds
scrape_rows() {
    local v a impl x req rps ir
    row "callgrind: instructions per scrape of /metrics (stats config, new connection each)" "" 0 scrapecg metrics 5
    row "callgrind: instructions per load of the stats page (HTML)" "" 0 scrapecg page 5
    row "callgrind: instructions per load of the stats CSV (;csv)" "" 0 scrapecg csv 5
    row "callgrind: instructions per keep-alive request, stats config (100 servers)" "" 0 scrapecg req 5
    row "callgrind: instructions per keep-alive request, $SCG_S_N scrapes of /metrics beside $CG_N2 requests, their own instructions taken out" "" 0 scrapecg reqscraped 5
    pct1() { awk -v x="$1" -v y="$2" 'BEGIN { if (x == "" || y == "" || x == "-" || y == "-" || y + 0 == 0) print "-"; else printf "%+.2f", (x / y - 1) * 100 }'; }
    v=() a=()
    for impl in vrrplb anchor; do
        req=$(agg scrapecg "$impl" req 5 | cut -d' ' -f1)
        x=$(agg scrapecg "$impl" reqscraped 5 | cut -d' ' -f1)
        if [ $impl = vrrplb ]; then v=("$(pct1 "$x" "$req")"); else a=("$(pct1 "$x" "$req")"); fi
    done
    printf '| %s | %s | %s |  | %s |  |\n' \
        "instructions per keep-alive request while /metrics is scraped (callgrind) against without, %" \
        "${v[0]}" "${a[0]}" "0 (no lock on the request path)"
    # share: Ir of one scrape / (keep-alive requests/s without a scraper x Ir per request)
    for impl in vrrplb anchor; do
        x=$(agg scrapecg "$impl" metrics 5 | cut -d' ' -f1)
        ir=$(agg scrapecg "$impl" req 5 | cut -d' ' -f1)
        rps=$(agg scrapeab "$impl" none 5 | cut -d' ' -f1)
        x=$(awk -v x="$x" -v ir="$ir" -v r="$rps" 'BEGIN { if (x == "-" || ir == "-" || r == "-" || ir * r == 0) print "-"; else printf "%.3f", x / (r * ir) * 100 }')
        if [ $impl = vrrplb ]; then v=("$x"); else a=("$x"); fi
    done
    printf '| %s | %s | %s | %s | %s |  |\n' \
        "one scrape of /metrics a second at the measured keep-alive rate (callgrind): share of the balancer's instructions, %" \
        "${v[0]}" "${a[0]}" "$(ratio "${v[0]}" "${a[0]}")" "< 2 %"
    row "stats config (100 servers), keep-alive, no scraper (paired rounds): requests/s" "≥ 1" 0 scrapeab none 5 range
    row "stats config (100 servers), keep-alive, /metrics scraped every 1 s (paired rounds): requests/s" "≥ 1" 0 scrapeab scraped 5 range
    row "stats config (100 servers), keep-alive, no scraper (paired rounds): CPU s per 1000 requests" "≤ 1" 4 scrapeab none 6 range
    row "stats config (100 servers), keep-alive, /metrics scraped every 1 s (paired rounds): CPU s per 1000 requests" "≤ 1" 4 scrapeab scraped 6 range
    local f label goal
    for f in 5 6; do
        label="keep-alive requests/s with a scrape of /metrics every 1 s against without, %"
        goal="vrrplb > -2 %"
        [ $f = 5 ] || label="keep-alive CPU s per 1000 requests with a scrape of /metrics every 1 s against without, %" goal="vrrplb < +2 %"
        read -r -a v <<<"$(pair_change vrrplb $f)"
        read -r -a a <<<"$(pair_change anchor $f)"
        cell() { [ "$1" = - ] && printf -- '-' || printf '%+.1f (%+.1f to %+.1f)' "$1" "$2" "$3"; }
        printf '| %s | %s | %s |  | %s |  |\n' "$label (median of $SCRAPE_PAIRS paired $SCRAPE_SECS s rounds, min to max)" \
            "$(cell "${v[@]}")" "$(cell "${a[@]}")" "$goal"
    done
}

# cg_table: instructions per request under callgrind, vrrplb and HAProxy, and vrrplb's plain
# figure against the one before the proxy crate was laid out in folders (commit 722c471:
# 21,263-21,272 on ef5cd58)
cg_table() {
    say "| figure | vrrplb | HAProxy 2.6 | vrrplb/HAProxy | goal |"
    say "|---|---|---|---|---|"
    local v a p
    local -A label=([plain]="plain HTTP/1.1 keep-alive" [tls]="TLS 1.3 keep-alive (HTTP/1.1)"
        [h2]="HTTP/2 over TLS (h2load -c8 -m32)")
    for p in plain tls h2; do
        read -r -a v <<<"$(agg callgrind vrrplb "$p" 5)"
        read -r -a a <<<"$(agg callgrind anchor "$p" 5)"
        printf '| callgrind: instructions per request, %s | %s (%s–%s) | %s (%s–%s) | %s | %s |\n' \
            "${label[$p]}" \
            "$(fmt "${v[0]}" 0)" "$(fmt "${v[1]}" 0)" "$(fmt "${v[2]}" 0)" \
            "$(fmt "${a[0]}" 0)" "$(fmt "${a[1]}" 0)" "$(fmt "${a[2]}" 0)" "$(ratio "${v[0]}" "${a[0]}")" \
            "$(case $p in plain) echo "vrrplb ≤ 21,272 x 1.03 = 21,910 (before the layers: $(ratio "${v[0]}" 21272)x)" ;; h2) echo "≤ 0.8" ;; esac)"
    done
}

table() {
    say "| figure | vrrplb | reference | vrrplb/reference | goal |"
    say "|---|---|---|---|---|"
    local v
    read -r -a v <<<"$(agg callgrind vrrplb plain 5)"
    printf '| callgrind: instructions per request, plain HTTP/1.1 keep-alive | %s (%s–%s) | 21,272 (before the layers) | %s | ≤ 1.03 |\n' \
        "$(fmt "${v[0]}" 0)" "$(fmt "${v[1]}" 0)" "$(fmt "${v[2]}" 0)" "$(ratio "${v[0]}" 21272)"
    read -r -a v <<<"$(agg callgrind vrrplb tls 5)"
    printf '| callgrind: instructions per request, TLS 1.3 keep-alive (HTTP/1.1) | %s (%s–%s) | plain: %s | %s | |\n' \
        "$(fmt "${v[0]}" 0)" "$(fmt "${v[1]}" 0)" "$(fmt "${v[2]}" 0)" \
        "$(fmt "$(agg callgrind vrrplb plain 5 | cut -d' ' -f1)" 0)" \
        "$(ratio "${v[0]}" "$(agg callgrind vrrplb plain 5 | cut -d' ' -f1)")"
}

table() {
    say "| figure | vrrplb | anchor: HAProxy 2.6 / keepalived + HAProxy | vrrplb/anchor | goal | nginx direct |"
    say "|---|---|---|---|---|---|"
    local s
    if part proxy; then
        for s in "${SHAPES[@]}"; do
            row "${SHAPE_NAME[$s]}: requests/s" "≥ 1" 0 proxy "$s" 5 range 1 ceil
            row "${SHAPE_NAME[$s]}: p50 latency, ms" "≤ 1" 3 proxy "$s" 6 "" 1 ceil
            row "${SHAPE_NAME[$s]}: p99 latency, ms" "≤ 1" 3 proxy "$s" 7 "" 1 ceil
            row "${SHAPE_NAME[$s]}: CPU s per 1000 requests" "≤ 1" 4 proxy "$s" 8
            [ "$s" != ka ] || row "${SHAPE_NAME[$s]}: of which user space, CPU s per 1000 requests" "" 4 proxy "$s" 13
            row "${SHAPE_NAME[$s]}: peak RSS (VmHWM), MB" "≤ 1" 1 proxy "$s" 9 "" 1024
        done
    fi
    if part tls; then
        for s in tka tresume; do
            row "${SHAPE_NAME[$s]}: requests/s" "≥ 1" 0 tls "$s" 5 range
            row "${SHAPE_NAME[$s]}: p50 latency, ms" "≤ 1" 3 tls "$s" 6
            row "${SHAPE_NAME[$s]}: p99 latency, ms" "≤ 1" 3 tls "$s" 7
            row "${SHAPE_NAME[$s]}: CPU s per 1000 requests" "≤ 0.8" 4 tls "$s" 8 range
            row "${SHAPE_NAME[$s]}: of which user space, CPU s per 1000 requests" "" 4 tls "$s" 13 range
            row "${SHAPE_NAME[$s]}: peak RSS (VmHWM), MB" "≤ 1" 1 tls "$s" 9 "" 1024
        done
        for s in tfull-ecdsa tfull-rsa; do
            row "${SHAPE_NAME[$s]}: handshakes/s (the client's pace)" "≥ 1" 0 tls "$s" 5 range
            row "${SHAPE_NAME[$s]}: CPU s per 1000 handshakes" "≤ 0.67" 4 tls "$s" 8 range
            row "${SHAPE_NAME[$s]}: of which user space, CPU s per 1000 handshakes" "" 4 tls "$s" 13 range
            row "${SHAPE_NAME[$s]}: peak RSS (VmHWM), MB" "≤ 1" 1 tls "$s" 9 "" 1024
        done
        row "${SHAPE_NAME[th2]}: requests/s" "≥ 1" 0 tls th2 5 range
        row "${SHAPE_NAME[th2]}: CPU s per 1000 requests" "≤ 0.8" 4 tls th2 8 range
        row "${SHAPE_NAME[th2]}: of which user space, CPU s per 1000 requests" "" 4 tls th2 13 range
        row "${SHAPE_NAME[th2]}: peak RSS (VmHWM), MB" "≤ 1" 1 tls th2 9 "" 1024
        fixed_rate_rows th2r
        fixed_rate_rows tkar
        row "$IDLE_TLS idle TLS connections: RSS of the balancer, MB" "≤ 1" 1 tlsidle - 6 range 1024
        row "$IDLE_TLS idle TLS connections: RSS before them, MB" "≤ 1" 1 tlsidle - 5 "" 1024
    fi
    if part tcp; then
        for s in cbig c1m; do
            row "${SHAPE_NAME[$s]}: requests/s" "≥ 1" 0 tcp "$s" 5 range
            row "${SHAPE_NAME[$s]}: p99 latency, ms" "≤ 1" 3 tcp "$s" 7
            row "${SHAPE_NAME[$s]}: CPU s per GB" "≤ 0.7" 2 tcp "$s" 12 range
        done
        row "${SHAPE_NAME[cclose]}: connections/s" "≥ 1.2" 0 tcp cclose 5 range
        row "${SHAPE_NAME[cclose]}: p99 latency, ms" "≤ 1" 3 tcp cclose 7
        row "${SHAPE_NAME[cclose]}: CPU s per 1000 connections" "≤ 1" 4 tcp cclose 8 range
        row "${SHAPE_NAME[cpass]}: handshakes/s" "≥ 1" 0 tcp cpass 5 range
        row "${SHAPE_NAME[cpass]}: CPU s per 1000 connections" "≤ 1" 4 tcp cpass 8 range
    fi
    if part scrape; then
        row "one scrape of /metrics (2 frontends, 4 backends, 100 servers): CPU ms" "< 1 ms" 3 scrape metrics 5 range
        row "one scrape of /metrics: response bytes" "" 0 scrape metrics 6
        row "one load of the stats page (HTML): CPU ms" "< 1 ms" 3 scrape page 5 range
        row "one load of the stats page: response bytes" "" 0 scrape page 6
        scrape_rows
    fi
    if part failover; then
        row "failover, SIGKILL + link down of the master: client outage, ms" "≤ 1" 0 failover hard 5 range
        row "failback, the master returns and preempts: client outage, ms" "≤ 1" 0 failover failback 5 range
        row "graceful stop (SIGTERM) of the master: client outage, ms" "≤ 1" 0 failover graceful 5 range
    fi
    if part idle; then
        row "idle master box: RSS, MB (sum over processes)" "≤ 1" 1 idle - 5 "" 1024
        row "idle master box: PSS, MB (sum over processes)" "≤ 1" 1 idle - 6 "" 1024
        row "idle master box: CPU ms over ${IDLE} s" "≤ 1" 1 idle - 7
    fi
}

# ---------------------------------------------------------------------------------------------
T_START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
say "== lab $NAME: namespaces $BRNS, $(printf "$NAME-%s " "${HOSTS[@]}")"
lab_up
make_certs
for w in web1 web2; do start_web "$w"; done
for w in web1 web2; do
    wait_for 10 ready "http://${ADDR[$w]}/" || die "nginx $w does not answer: $(cat "$WORK/$w/error.log" "$WORK/$w/nginx.out" 2>/dev/null)"
done
vrrplb_proxy_conf "$WORK/vrrplb-proxy.yaml"
haproxy_conf "$WORK/haproxy-proxy.cfg" "${ADDR[lb1]}"
for k in ecdsa rsa; do
    vrrplb_tls_conf "$WORK/vrrplb-tls-$k.yaml" "$k"
    haproxy_tls_conf "$WORK/haproxy-tls-$k.cfg" "$k"
done
vrrplb_tcp_conf "$WORK/vrrplb-tcp.yaml"
haproxy_tcp_conf "$WORK/haproxy-tcp.cfg"
vrrplb_stats_conf "$WORK/vrrplb-stats.yaml"
haproxy_stats_conf "$WORK/haproxy-stats.cfg"
vrrplb_cg_conf "$WORK/vrrplb-cg.yaml"
haproxy_cg_conf "$WORK/haproxy-cg.cfg"
for c in proxy tls-ecdsa tls-rsa tcp stats cg; do
    "$BIN" check -c "$WORK/vrrplb-$c.yaml" >/dev/null 2>"$WORK/check.err" ||
        die "vrrplb check failed on $WORK/vrrplb-$c.yaml: $(cat "$WORK/check.err")"
done
for c in proxy tls-ecdsa tls-rsa tcp stats cg; do
    haproxy -c -q -f "$WORK/haproxy-$c.cfg" || die "haproxy -c failed on $WORK/haproxy-$c.cfg"
done
say "== $PIN_NOTE; $DURATION s per load run after a $WARM s warm-up, $ROUNDS round(s)"

if part proxy; then
    say "== proxy throughput (wrk -t1 -c32 --latency)"
    rounds proxy "${SHAPES[@]}"
fi

if part tls; then
    say "== TLS termination (ECDSA P-256 unless named; wrk -c32, $HS_CLIENTS python3 ssl clients, h2load -c8 -m32)"
    rounds tls "${TLS_SHAPES[@]}"
    say "== $IDLE_TLS idle TLS connections (python3 ssl client, held 5 s)"
    for ((r = 1; r <= ROUNDS; r++)); do
        if [ $((r % 2)) = 1 ]; then order=(vrrplb haproxy); else order=(haproxy vrrplb); fi
        for impl in "${order[@]}"; do idle_tls_run "$impl" "$r"; done
    done
    sed -i 's/^tlsidle\thaproxy\t/tlsidle\tanchor\t/' "$RAW"
fi

if part tcp; then
    say "== tcp mode (wrk -t1 -c32; $HS_CLIENTS python3 ssl clients for the SNI pass-through)"
    rounds tcp "${TCP_SHAPES[@]}"
fi

if part scrape; then
    say "== stats scrapes (2 frontends, 4 backends, 100 servers) and keep-alive with a scraper"
    for ((r = 1; r <= ROUNDS; r++)); do
        if [ $((r % 2)) = 1 ]; then order=(vrrplb haproxy); else order=(haproxy vrrplb); fi
        for impl in "${order[@]}"; do scrape_run "$impl" "$r"; done
    done
    say "== keep-alive with and without a scraper: $SCRAPE_PAIRS pairs of $SCRAPE_SECS s rounds (AB BA ...), one balancer each"
    for impl in vrrplb haproxy; do scrape_pairs "$impl"; done
    say "== scrapes and requests under callgrind (stats config without checks; $SCG_K fetches a phase, $CG_N1 and $CG_N2 requests, $SCG_S_N scrapes beside $CG_N2)"
    scg_confs
    "$BIN" check -c "$WORK/vrrplb-scg.yaml" >/dev/null 2>"$WORK/check.err" ||
        die "vrrplb check failed on $WORK/vrrplb-scg.yaml: $(cat "$WORK/check.err")"
    haproxy -c -q -f "$WORK/haproxy-scg.cfg" || die "haproxy -c failed on $WORK/haproxy-scg.cfg"
    for impl in vrrplb haproxy; do scrape_cg "$impl"; done
    sed -i -E 's/^(scrape|scrapeab|scrapecg)\thaproxy\t/\1\tanchor\t/' "$RAW"
fi

if part callgrind; then
    say "== callgrind: instructions per request (phases of $CG_N1 and $CG_N2 requests, h2load --h1 -c1, HTTP/2 -c8 -m32, no health checks)"
    for ((r = 1; r <= (QUICK == 1 ? 1 : 2); r++)); do
        if [ $((r % 2)) = 1 ]; then order=(vrrplb haproxy); else order=(haproxy vrrplb); fi
        for impl in "${order[@]}"; do cg_session "$impl" "$r"; done
    done
    sed -i 's/^callgrind\thaproxy\t/callgrind\tanchor\t/' "$RAW"
fi

if part failover || part idle; then
    say "== failover drill (client polls http://$VIP/ every 20 ms, 200 ms timeouts$([ $HAVE_POLL = 1 ] && echo ", vrrplb poll" || echo ", curl loop"))"
    n=1
    ! part failover || n=$REPS
    for ((r = 1; r <= n; r++)); do
        if [ $((r % 2)) = 1 ]; then order=(vrrplb anchor); else order=(anchor vrrplb); fi
        for impl in "${order[@]}"; do drill "$impl" "$r"; done
    done
fi

# --- part vrrp3: VRRPv3 at 100 ms side by side (issue 13) ---------------------------------------
# Both pairs run with realtime scheduling for the VRRP engine (vrrplb `vrrp_realtime_priority:
# 50`, keepalived `vrrp_rt_priority 50`, as keepalived advises for sub-second timers), every
# process of a box pinned to BAL_CPU (the engine shares its CPU with the balancer under load).
# Durations: VRRP3_REPS rounds (default 3, --quick 1), VRRP3_LOAD seconds of load (60, --quick
# 3), VRRP3_IDLE seconds of idle (30, --quick 2); the environment variables override them.

# v3_conf_vrrplb FILE BOX PRIORITY 2|3: the pair's instance at 1 s (v2, PASS) or 100 ms (v3)
v3_conf_vrrplb() {
    local timers="    advert_int: 1
    authentication: { auth_type: PASS, auth_pass: \"bench51\" }"
    [ "$4" = 2 ] || timers="    version: 3
    advert_int: 100ms"
    {
        cat <<EOF
global:
  node: $2
  control_socket: $WORK/$2.sock
  vrrp_realtime_priority: 50
  log: { target: stderr, level: info, access_log: false }
vrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: $3
$timers
    state: BACKUP
    virtual_ipaddress: [$VIP/24]
EOF
        vrrplb_balancer "$VIP:80" VI_1
    } >"$1"
}

# v3_conf_keepalived FILE BOX PRIORITY 2|3: the same instance for keepalived
v3_conf_keepalived() {
    local timers="advert_int 1
    authentication {
        auth_type PASS
        auth_pass bench51
    }"
    [ "$4" = 2 ] || timers="version 3
    advert_int 0.1"
    cat >"$1" <<EOF
global_defs {
    router_id $2
    vrrp_rt_priority 50
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority $3
    $timers
    virtual_ipaddress {
        $VIP/24
    }
}
EOF
}

# v3_box_start IMPL BOX 2|3: like box_start, pinned to BAL_CPU; a running HAProxy is kept
# (after a graceful stop only keepalived went)
v3_box_start() {
    local impl=$1 b=$2 v=$3
    if [ "$impl" = vrrplb ]; then
        v3_conf_vrrplb "$WORK/v3-$b.yaml" "$b" "$(prio "$b")" "$v"
        spawn "vrrplb-$b" "$b" "$BAL_CPU" "$WORK/v3-vrrplb-$b.log" "$BIN" run -c "$WORK/v3-$b.yaml" --log stderr
    else
        if ! alive "haproxy-$b"; then
            haproxy_conf "$WORK/v3-haproxy-$b.cfg" "$VIP"
            spawn "haproxy-$b" "$b" "$BAL_CPU" "$WORK/v3-haproxy-$b.log" haproxy -db -f "$WORK/v3-haproxy-$b.cfg"
        fi
        v3_conf_keepalived "$WORK/v3-keepalived-$b.conf" "$b" "$(prio "$b")" "$v"
        rm -f "$WORK/ka-$b".*.pid
        spawn "keepalived-$b" "$b" "$BAL_CPU" "$WORK/v3-keepalived-$b.log" keepalived -P -n -l -D \
            -f "$WORK/v3-keepalived-$b.conf" -p "$WORK/ka-$b.main.pid" \
            -r "$WORK/ka-$b.vrrp.pid" -c "$WORK/ka-$b.checkers.pid"
        if wait_for 10 test -s "$WORK/ka-$b.vrrp.pid"; then
            KCHILD[$b]=$(tr -d ' \n' <"$WORK/ka-$b.vrrp.pid")
            KCHILD_START[$b]=$(starttime "${KCHILD[$b]}")
        else
            warn "keepalived on $b wrote no VRRP child PID file"
        fi
    fi
}

# v3_pair_up IMPL 2|3: lb2 then lb1; true once lb1 is the only MASTER answering on the VIP
v3_pair_up() {
    nsx cl ip neigh flush all 2>/dev/null || true
    v3_box_start "$1" lb2 "$2"
    v3_box_start "$1" lb1 "$2"
    if wait_for 20 only_master lb1 && wait_for 10 vip_answers; then
        sleep 0.5
        return 0
    fi
    warn "$1 v$2 pair: lb1 did not become the only MASTER answering on the VIP"
    FAILURES=$((FAILURES + 1))
    tail -n 5 "$WORK"/v3-*lb1.log >&2 || true
    return 1
}

v3_pair_down() {
    box_down "$1" lb1
    box_down "$1" lb2
    link lb1 up
}

# v3_record IMPL SCENARIO ROUND OUTFILE: the poller's outage and failed requests
v3_record() {
    local failed
    failed=$(sed -n 's/^RESULT.* failed=\([0-9]*\).*/\1/p' "$4")
    if [ -z "$OUTAGE" ] || [ -z "$failed" ]; then
        warn "no client result for $1 $2 #$3"
        FAILURES=$((FAILURES + 1))
        return 0
    fi
    printf 'vrrp3\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$OUTAGE" "$failed" >>"$RAW"
    printf '   %-7s %-10s round %s: outage %5s ms, %s failed requests\n' "$1" "$2" "$3" "$OUTAGE" "$failed"
}

# v3_poll_end OUTFILE: 0.7 s after the move, the poller is told to stop (SIGTERM: it prints
# its summary); without a failure it cannot tell the move, as the backends do not name the box
v3_poll_end() {
    sleep 0.7
    [ $HAVE_POLL = 0 ] || kill -TERM "${PIDOF[poll]}" 2>/dev/null || true
    poll_result "$1"
}

# v3_graceful_failback IMPL VERSION ROUND: SIGTERM the MASTER, then bring it back to preempt
v3_graceful_failback() {
    local impl=$1 v=$2 r=$3 out
    out=$WORK/v3-poll-$impl-graceful$v-$r.txt
    poll_start 10 1 "$out"
    sleep 0.5
    box_stop "$impl" lb1
    wait_for 10 only_master lb2 || warn "$impl v$v: lb2 is not the only MASTER after the graceful stop"
    v3_poll_end "$out"
    v3_record "$impl" "graceful$v" "$r" "$out"
    out=$WORK/v3-poll-$impl-failback$v-$r.txt
    poll_start 15 1 "$out"
    sleep 0.5
    v3_box_start "$impl" lb1 "$v"
    wait_for 10 only_master lb1 || warn "$impl v$v: lb1 is not the only MASTER after the failback"
    v3_poll_end "$out"
    v3_record "$impl" "failback$v" "$r" "$out"
}

# v3_hard IMPL ROUND: pull the MASTER's cable, then SIGKILL its processes. The cable first, so
# the clock starts at the same instant for both: killed first, vrrplb's one process refuses
# connections at once while keepalived's HAProxy, killed last, still answers for ~0.1 s, which
# shifted the first failed poll by that much.
v3_hard() {
    local impl=$1 r=$2 out=$WORK/v3-poll-$1-hard-$2.txt
    poll_start 5 1 "$out"
    sleep 0.5
    link lb1 down
    box_kill_hard "$impl" lb1
    poll_result "$out"
    v3_record "$impl" hard "$r" "$out"
    has_vip lb2 || warn "$impl: lb2 does not hold the VIP after the hard failover"
}

# box_wakes IMPL BOX: voluntary context switches of all the box's threads (each one a wake-up
# after a sleep)
box_wakes() {
    local p n=0
    for p in $(box_pids "$1" "$2"); do
        n=$((n + $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }')))
    done
    echo $n
}

# v3_idle IMPL: CPU (on-CPU time, all threads) and wake-ups per second of the MASTER box
v3_idle() {
    local impl=$1 p t0=0 t1=0 w0 w1 cpu wakes
    w0=$(box_wakes "$impl" lb1)
    for p in $(box_pids "$impl" lb1); do t0=$((t0 + $(oncpu_ns "$p"))); done
    sleep "$VRRP3_IDLE"
    for p in $(box_pids "$impl" lb1); do t1=$((t1 + $(oncpu_ns "$p"))); done
    w1=$(box_wakes "$impl" lb1)
    cpu=$(awk -v d=$((t1 - t0)) -v s="$VRRP3_IDLE" 'BEGIN { printf "%.1f", d / 1e6 * 30 / s }')
    wakes=$(awk -v d=$((w1 - w0)) -v s="$VRRP3_IDLE" 'BEGIN { printf "%.2f", d / s }')
    printf 'vrrp3idle\t%s\t-\t1\t%s\t%s\n' "$impl" "$cpu" "$wakes" >>"$RAW"
    printf '   %-7s idle MASTER box at 100 ms, %s s: CPU %s ms per 30 s, %s wake-ups/s\n' "$impl" "$VRRP3_IDLE" "$cpu" "$wakes"
}

# v3_states IMPL: "Entering ... STATE" lines in both boxes' logs so far
v3_states() {
    local d=vrrplb
    [ "$1" = vrrplb ] || d=keepalived
    cat "$WORK/v3-$d-lb1.log" "$WORK/v3-$d-lb2.log" 2>/dev/null | grep -c 'Entering [A-Z]* STATE' || true
}

# v3_load IMPL: VRRP3_LOAD s of wrk keep-alive through the MASTER while tshark on the bridge
# records the adverts: the MASTER's advert gaps (p50, p99, max), state changes on either box,
# requests/s
v3_load() {
    local impl=$1 cap=$WORK/v3-adverts-$1.pcap s0 s1 res gaps others
    s0=$(v3_states "$impl")
    rm -f "$cap"
    spawn tshark br - "$WORK/v3-tshark-$impl.log" tshark -q -i br0 -f "ip proto 112" -w "$cap"
    wait_for 10 test -s "$cap" || warn "tshark wrote no capture file"
    sleep 0.5
    res=$(client_run wrk "http://$VIP/" "$VRRP3_LOAD" "$WORK/v3-wrk-$impl.txt") || res=
    sleep 0.5
    stop tshark INT
    s1=$(v3_states "$impl")
    tshark -r "$cap" -T fields -e frame.time_epoch -e ip.src -Y vrrp >"$cap.txt" 2>/dev/null || true
    others=$(awk -v m="${ADDR[lb1]}" '$2 != m' "$cap.txt" | wc -l)
    gaps=$(awk -v m="${ADDR[lb1]}" '$2 == m { if (n++) printf "%.3f\n", ($1 - last) * 1000; last = $1 }' "$cap.txt" |
        sort -g | awk -v o="$others" '{ v[NR] = $1 } END {
            k = NR
            if (k < 2) { print "- - - 0 " o; exit }
            i = int(k * 0.99) + 1; if (i > k) i = k
            printf "%.1f %.1f %.1f %d %d\n", v[int(k * 0.5) + 1], v[i], v[k], k + 1, o }')
    read -r -a gaps <<<"$gaps"
    read -r -a res <<<"${res:-- -}"
    if [ "${gaps[0]:--}" = - ] || [ "${res[1]:--}" = - ]; then
        warn "$impl: no advert gaps or no wrk result under load: $(tail -n 3 "$WORK/v3-wrk-$impl.txt" | tr '\n' ' ')"
        FAILURES=$((FAILURES + 1))
        return 0
    fi
    printf 'vrrp3load\t%s\t-\t1\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$impl" "${gaps[0]}" "${gaps[1]}" \
        "${gaps[2]}" "$((s1 - s0))" "${res[1]}" "${gaps[3]}" "${gaps[4]}" >>"$RAW"
    printf '   %-7s %s s keep-alive load (%s requests/s): %s adverts from the MASTER, gaps p50 %s ms, p99 %s ms, max %s ms; %s from the BACKUP; %s state changes\n' \
        "$impl" "$VRRP3_LOAD" "${res[1]}" "${gaps[3]}" "${gaps[0]}" "${gaps[1]}" "${gaps[2]}" "${gaps[4]}" "$((s1 - s0))"
}

# vrrp3_run IMPL ROUND: v3 at 100 ms (round 1: idle and load first), then v2 at 1 s
vrrp3_run() {
    local impl=$1 r=$2
    if v3_pair_up "$impl" 3; then
        if [ "$r" = 1 ]; then
            v3_idle "$impl"
            v3_load "$impl"
        fi
        v3_graceful_failback "$impl" 3 "$r"
        v3_hard "$impl" "$r"
    fi
    v3_pair_down "$impl"
    if v3_pair_up "$impl" 2; then
        v3_graceful_failback "$impl" 2 "$r"
    fi
    v3_pair_down "$impl"
}

# vrrp3_table: the part's rows
vrrp3_table() {
    say "| figure (VRRP engine at realtime priority 50, each box pinned to CPU $BAL_CPU) | vrrplb | keepalived 2.2 + HAProxy 2.6 | vrrplb/anchor | goal | |"
    say "|---|---|---|---|---|---|"
    row "v3 100 ms, link down + SIGKILL of the MASTER: client outage, ms" "≤ 1" 0 vrrp3 hard 5 range
    row "v3 100 ms, link down + SIGKILL of the MASTER: failed 20 ms polls" "≤ 1" 0 vrrp3 hard 6 range
    row "v3 100 ms, graceful stop (SIGTERM) of the MASTER: failed requests" "0" 0 vrrp3 graceful3 6 range
    row "v3 100 ms, failback (the MASTER returns and preempts): failed requests" "0" 0 vrrp3 failback3 6 range
    row "v2 1 s, graceful stop (SIGTERM) of the MASTER: failed requests" "0" 0 vrrp3 graceful2 6 range
    row "v2 1 s, failback (the MASTER returns and preempts): failed requests" "0" 0 vrrp3 failback2 6 range
    row "v3 100 ms, ${VRRP3_LOAD} s keep-alive load through the MASTER: advert gap p50, ms" "" 1 vrrp3load - 5
    row "v3 100 ms, ${VRRP3_LOAD} s keep-alive load through the MASTER: advert gap p99, ms" "≤ 105 ms" 1 vrrp3load - 6
    row "v3 100 ms, ${VRRP3_LOAD} s keep-alive load through the MASTER: advert gap max, ms" "≤ 115 ms" 1 vrrp3load - 7
    row "v3 100 ms, ${VRRP3_LOAD} s keep-alive load through the MASTER: state changes on either box" "0" 0 vrrp3load - 8
    row "v3 100 ms, ${VRRP3_LOAD} s keep-alive load through the MASTER: requests/s (wrk -c32)" "" 0 vrrp3load - 9
    row "v3 100 ms, idle MASTER box: CPU ms per 30 s (measured over ${VRRP3_IDLE} s)" "≤ 1" 1 vrrp3idle - 5
    row "v3 100 ms, idle MASTER box: wake-ups per second (all threads)" "≤ 1" 2 vrrp3idle - 6
}

if part vrrp3; then
    if [ $QUICK = 1 ]; then d_reps=1 d_load=3 d_idle=2; else d_reps=3 d_load=60 d_idle=30; fi
    VRRP3_REPS=${VRRP3_REPS:-$d_reps} VRRP3_LOAD=${VRRP3_LOAD:-$d_load} VRRP3_IDLE=${VRRP3_IDLE:-$d_idle}
    say "== vrrp3: vrrplb and keepalived + HAProxy in VRRPv3 at 100 ms (and v2 at 1 s), $VRRP3_REPS round(s); client polls http://$VIP/ every 20 ms"
    for ((r = 1; r <= VRRP3_REPS; r++)); do
        if [ $((r % 2)) = 1 ]; then order=(vrrplb anchor); else order=(anchor vrrplb); fi
        for impl in "${order[@]}"; do vrrp3_run "$impl" "$r"; done
    done
fi

# profile IMPL: one unscored keep-alive run under `perf stat` (syscalls, context switches per
# request) and one under `perf record -g`; reports in PERF_DIR
profile() {
    local impl=$1 d=$PERF_DIR/$1 url=http://${ADDR[lb1]}/ pid perf_pid reqs
    mkdir -p "$d"
    if [ "$impl" = vrrplb ]; then
        spawn bal lb1 "$BAL_CPU" "$d/balancer.log" "$BIN" run -c "$WORK/vrrplb-proxy.yaml" --log stderr
    else
        spawn bal lb1 "$BAL_CPU" "$d/balancer.log" haproxy -db -f "$WORK/haproxy-proxy.cfg"
    fi
    pid=${PIDOF[bal]}
    wait_for 15 ready "$url" || die "$impl does not answer for the profile"
    client_run wrk "$url" "$WARM" "$d/wrk-warm.txt" >/dev/null || true
    perf stat -e raw_syscalls:sys_enter,context-switches,task-clock -p "$pid" -o "$d/perf-stat.txt" \
        -- sleep "$DURATION" >/dev/null 2>&1 &
    perf_pid=$!
    ip -n "$(ns lb1)" -s -s link show dev eth0 >"$d/link-before.txt"
    client_run wrk "$url" "$DURATION" "$d/wrk-stat.txt" >/dev/null || true
    ip -n "$(ns lb1)" -s -s link show dev eth0 >"$d/link-after.txt"
    wait "$perf_pid" || true
    perf trace -s -p "$pid" -o "$d/perf-trace.txt" -- sleep 3 >/dev/null 2>&1 &
    perf_pid=$!
    client_run wrk "$url" 3 "$d/wrk-trace.txt" >/dev/null || true
    wait "$perf_pid" || true
    perf record -q -g -F 999 -p "$pid" -o "$d/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
    perf_pid=$!
    client_run wrk "$url" "$DURATION" "$d/wrk-record.txt" >/dev/null || true
    wait "$perf_pid" || true
    stop bal
    reqs=$(awk '/ requests in /{print $1}' "$d/wrk-stat.txt")
    local pk
    pk=$(paste "$d/link-before.txt" "$d/link-after.txt" >/dev/null 2>&1
        awk 'FNR == 1 {f++} /RX:/ {getline; rx[f] = $2} /TX:/ {getline; tx[f] = $2}
             END {print rx[2] - rx[1] + tx[2] - tx[1]}' "$d/link-before.txt" "$d/link-after.txt")
    awk -v n="${reqs:-0}" -v impl="$impl" -v pk="${pk:-0}" '
        { gsub(",", "", $1) }
        $2 == "raw_syscalls:sys_enter" { sc = $1 }
        $2 == "context-switches" { cs = $1 }
        $3 == "task-clock" { tc = $1 }
        END { if (n > 0) printf "%s: %d requests; per request: %.1f us CPU, %.2f syscalls, %.3f context switches, %.2f packets on eth0\n", impl, n, tc * 1000 / n, sc / n, cs / n, pk / n }' \
        "$d/perf-stat.txt" | tee -a "$PERF_DIR/summary.txt"
    awk -v n="$(awk '/ requests in /{print $1}' "$d/wrk-trace.txt")" -v impl="$impl" '
        $2 ~ /^[0-9]+$/ && $1 ~ /^[a-z_0-9]+$/ { c[$1] += $2 }
        END { printf "   %s syscalls per request (perf trace, slowed):", impl
              for (k in c) if (c[k] / n >= 0.01) printf " %s %.2f", k, c[k] / n; print "" }' \
        "$d/perf-trace.txt" | tee -a "$PERF_DIR/summary.txt"
    perf report -i "$d/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 15 >"$d/report-dso.txt" || true
    perf report -i "$d/perf.data" --no-children --sort symbol -g none --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 80 >"$d/report-symbols.txt" || true
    perf report -i "$d/perf.data" --children --sort symbol -g none --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 80 >"$d/report-children.txt" || true
}

if [ -n "$PERF_DIR" ]; then
    if command -v perf >/dev/null 2>&1; then
        mkdir -p "$PERF_DIR"
        : >"$PERF_DIR/summary.txt"
        say "== profiles (perf stat + perf record -g), keep-alive shape, $DURATION s each (not scored)"
        profile vrrplb
        profile haproxy
        say "   $PERF_DIR/summary.txt, $PERF_DIR/{vrrplb,haproxy}/report-*.txt"
    else
        warn "--perf: perf is not installed (apt-get install linux-perf); no profile"
    fi
fi

# --- the report -------------------------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
HAPROXY_V=$(haproxy -v 2>/dev/null | awk 'NR == 1 {print $3}')
KEEPALIVED_V=$(keepalived -v 2>&1 | awk 'NR == 1 {print $2}')
NGINX_V=$(nginx -v 2>&1 | sed 's/.*nginx\///')
VRRPLB_V=$("$BIN" --version 2>/dev/null | awk '{print $2}')
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ] || GIT_REV+=+dirty
THREADS_V=$(awk -F'\t' '$1 == "proxy" && $2 == "vrrplb" {print $11; exit}' "$RAW")
THREADS_A=$(awk -F'\t' '$1 == "proxy" && $2 == "anchor" {print $11; exit}' "$RAW")
ERRORS=$(awk -F'\t' '$1 ~ /^(proxy|tls|tcp)$/ && $10 > 0 {printf "%s %s round %s: %s; ", $2, $3, $4, $10}
    $1 == "scrapeab" && $7 > 0 {printf "%s %s pair %s: %s; ", $2, $3, $4, $7}' "$RAW")

report() {
    say "## Results"
    say ""
    say "$(date -u '+%Y-%m-%d %H:%M UTC'), \`deploy/bench.sh$([ $QUICK = 1 ] && echo " --quick")\`, $(($(date +%s) - T_START)) s."
    say "Machine: $(nproc) CPU(s), $CPU_MODEL, Linux $(uname -r), load average $LOAD_BEFORE before, $LOAD_AFTER after."
    say "vrrplb $VRRPLB_V ($GIT_REV; $BUILD_NOTE), HAProxy $HAPROXY_V, keepalived $KEEPALIVED_V, nginx $NGINX_V, wrk -t1 -c32."
    say "Proxy: $PIN_NOTE; $DURATION s per run after a $WARM s warm-up, $ROUNDS round(s), order swapped each round; threads in the balancer process: vrrplb ${THREADS_V:-?}, HAProxy ${THREADS_A:-?}."
    say "Failover: $REPS repetition(s) per implementation; idle: ${IDLE} s on the master box."
    say "Anchor: HAProxy for the proxy, TLS, tcp and stats rows, keepalived + HAProxy for the failover and idle rows."
    ! part tls || say "TLS: self-signed ECDSA P-256 and RSA 2048 certificates, each one PEM file (chain + key) given to both balancers; HAProxy \`bind ssl crt ... alpn h2,http/1.1 ssl-min-ver TLSv1.2\`, \`nbthread 1\`, \`tune.ssl.default-dh-param 2048\`, \`ssl-default-bind-ciphersuites\` and \`-ciphers\` in vrrplb's default order (AES-128-GCM first), defaults otherwise; the clients (wrk, h2load, python3 ssl) use OpenSSL 3.0 and negotiate TLS 1.3 with TLS_AES_128_GCM_SHA256 on both. Full handshakes: $HS_CLIENTS python3 ssl clients in parallel on CPU $LOAD_CPU, each a new connection per request that never offers a session; resumed: wrk with Connection: close (wrk offers its last session: resumption confirmed with HAProxy's SslFrontendSessionReuse_pct = 100). Idle: $IDLE_TLS TLS connections (handshake done, ALPN http/1.1, no request) held 5 s."
    ! part tcp || say "tcp mode: vrrplb \`mode: tcp\` against HAProxy \`mode tcp\` (tcp checks every 2 s); the pass-through frontend routes by the ClientHello's SNI (HAProxy: \`tcp-request inspect-delay 5s\` + \`req_ssl_sni\`) to nginx serving TLS on :443; CPU per GB counts response bytes."
    ! part scrape || say "Stats: vrrplb's /metrics and stats page against HAProxy's Prometheus exporter (\`use-service prometheus-exporter\`) and stats page, 2 frontends, 4 backends, 100 servers (HTTP checks every 2 s); CPU per scrape = the balancer's on-CPU time over 300 scrapes on one keep-alive connection (50 in --quick) less its background rate measured just before. Under callgrind (the stats config without health checks, one process): $SCG_K fetches per phase, each on a new connection; per request (Ir($CG_N2) - Ir($CG_N1)) / ($CG_N2 - $CG_N1) over one h2load --h1 -c1 connection, and the same with $SCG_S_N scrapes of /metrics beside the $CG_N2 requests, their own instructions taken out; the share = Ir of one scrape / (requests/s without a scraper x Ir per request): the steady figures. Paired rounds: one balancer per implementation, $SCRAPE_PAIRS pairs of $SCRAPE_SECS s wrk keep-alive rounds without and with a curl fetching /metrics every second (order AB BA ...), CPU from the balancer's on-CPU time (schedstat); the change is the median of the pairs' own changes."
    say "Cells: median, (min–max) where shown. Goal: the ratio vrrplb/anchor against the row's bound (≥ or ≤), or an absolute bound where it has a unit."
    say "CPU figures come from /proc/PID/stat (utime + stime, all threads; the \"of which user space\" rows utime alone, the rest being the kernel's work for the balancer) in ticks of $((1000 / HZ)) ms, the idle CPU from /proc/PID/task/*/schedstat (ns); RSS and PSS are summed over the box's processes (vrrplb: 1; keepalived parent + VRRP child + HAProxy: 3)."
    [ -z "$ERRORS" ] || say "wrk errors (socket errors + non-2xx): $ERRORS"
    [ "$FAILURES" = 0 ] || say "**$FAILURES measurement(s) failed; see the script's output.**"
    say ""
    table
    if part vrrp3; then
        say ""
        say "VRRPv3 at 100 ms (and v2 at 1 s), vrrplb against keepalived + HAProxy: $VRRP3_REPS round(s), load $VRRP3_LOAD s, idle $VRRP3_IDLE s:"
        say ""
        vrrp3_table
    fi
    if part callgrind; then
        say ""
        say "Instructions per proxied request under callgrind: the balancer in the lab (veth), a phase of $CG_N1 and one of $CG_N2 requests on one new keep-alive connection each (h2load --h1 -c1; HTTP/2: h2load -c8 -m32, 8 new connections each), counters zeroed before and dumped after each phase (callgrind_control), no health checks; (Ir(N2) - Ir(N1)) / (N2 - N1):"
        say ""
        cg_table
    fi
    say ""
    say "<details><summary>Raw measurements</summary>"
    say ""
    say '```'
    say "# proxy|tls|tcp impl shape round req/s p50_ms p99_ms cpu_s_per_1000 vmhwm_kB errors threads cpu_s_per_GB user_cpu_s_per_1000"
    say "# tlsidle  impl - round rss_before_kB rss_held_kB connections"
    say "# scrape   impl metrics|page round cpu_ms_per_scrape bytes"
    say "# scrapeab impl none|scraped pair req/s cpu_s_per_1000 errors"
    say "# scrapecg impl metrics|page|csv 1 Ir_per_fetch bytes fetches"
    say "# scrapecg impl req 1 Ir_per_request Ir(N1) Ir(N2)"
    say "# scrapecg impl reqscraped 1 Ir_per_request Ir(N2_requests+scrapes) scrapes"
    say "# callgrind impl plain|tls|h2 round instructions_per_request Ir(N1) Ir(N2)"
    say "# failover impl scenario rep outage_ms"
    say "# idle     impl - 1 rss_kB pss_kB cpu_ms processes"
    say "# vrrp3    impl hard|graceful3|failback3|graceful2|failback2 round outage_ms failed"
    say "# vrrp3load impl - 1 gap_p50_ms gap_p99_ms gap_max_ms state_changes req_per_s adverts backup_adverts"
    say "# vrrp3idle impl - 1 cpu_ms_per_30s wakeups_per_s"
    cat "$RAW"
    say '```'
    say ""
    say "</details>"
}
say ""
report | tee "$WORK/report.md"
if [ -n "$OUT" ]; then
    {
        say "# vrrplb benchmark: vrrplb vs HAProxy 2.6 and keepalived"
        say ""
        say "Written by \`deploy/bench.sh\` (see the README, section Benchmarks). Figures from a shared"
        say "or busy machine are noisy: compare the two columns of one run, not runs with each other."
        say ""
        cat "$WORK/report.md"
    } >"$OUT"
    say ""
    say "== written to $OUT"
fi
[ "$FAILURES" = 0 ] || die "$FAILURES measurement(s) failed"
