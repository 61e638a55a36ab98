#!/usr/bin/env bash
# Builds the release binary with profile-guided optimisation (PGO), the build that is shipped
# (deploy/deb/build.sh) and benchmarked (deploy/bench.sh):
#
#   deploy/pgo.sh                  instrumented build, training run, optimised build, both
#                                  with Cargo's `dist` profile (release with fat LTO in one
#                                  unit): target/pgo/dist/vrrplb (profile: target/pgo/vrrplb.profdata)
#   deploy/pgo.sh --train BIN      only the training run, against any vrrplb binary; fails
#                                  if a workload did not fully succeed (tests/pgo_training.rs)
#   --quick                        smaller training counts (about a third)
#   --no-install                   do not apt-get install the clients (fail if one is missing)
#
# Why: most of vrrplb's time per request is spent in a long chain of small functions across
# crates (tokio, hyper, h2, rustls, the proxy). With the profile of a real run LLVM lays the
# hot code out together and inlines along the paths taken, which cuts the user-space CPU per
# request (figures in the README's benchmark section); the instructions per request barely
# move. The profile is made from this tree at build time, never committed, so it cannot go
# stale.
#
# The training run is all on loopback (127.0.0.1, ports picked free at random): one nginx
# (HTTP and HTTPS), the binary with a plain HTTP frontend (h2c on), a TLS frontend (ECDSA and
# RSA certificates, ALPN h2 + http/1.1), a frontend whose backend is TLS, a tcp-mode frontend,
# health checks of all three kinds and the stats listener; then, each bounded in count or
# time: keep-alive, new connection per request and 100 KB responses over HTTP/1.1, h2c, TLS
# keep-alive, HTTP/2 over TLS, resumed and full handshakes (ECDSA, RSA), re-encryption, tcp
# mode (keep-alive, 100 KB, new connections), and scrapes of /metrics, the stats page and CSV.
# Everything started is stopped by PID and the scratch directory removed on exit.
#
# Needs Rust from rustup (llvm-profdata comes from its llvm-tools component, added when
# missing), nginx, h2load (nghttp2-client), wrk, curl, openssl and python3 (apt-get installed
# unless --no-install).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"

say() { printf '%s\n' "$*" >&2; }
die() {
    say "pgo.sh: $*"
    exit 1
}

TRAIN_BIN=""
QUICK=0
INSTALL=1
while [ $# -gt 0 ]; do
    case "$1" in
        --train)
            [ $# -ge 2 ] || die "--train needs a binary"
            TRAIN_BIN=$2
            shift 2
            ;;
        --quick) QUICK=1 && shift ;;
        --no-install) INSTALL=0 && shift ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

# --- clients ------------------------------------------------------------------------------
export PATH=$PATH:/usr/sbin:/sbin
need=(nginx h2load wrk curl openssl python3 timeout ss)
missing=()
for t in "${need[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$INSTALL" = 1 ] || die "missing: ${missing[*]} (run without --no-install, or install them)"
    [ "$(id -u)" = 0 ] || die "missing: ${missing[*]}; run as root to apt-get install them"
    say "== apt-get install nginx-light nghttp2-client wrk curl openssl python3"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends nginx-light nghttp2-client wrk curl openssl \
        python3 iproute2 coreutils >/dev/null
    systemctl disable --now nginx >/dev/null 2>&1 || true
fi

# --- the training run ---------------------------------------------------------------------
WORK=""
NGINX_PID=""
VRRPLB_PID=""
cleanup() {
    local p
    for p in "$VRRPLB_PID" "$NGINX_PID"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    [ -z "$WORK" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_base: a port P with P..P+7 all free on 127.0.0.1
free_base() {
    local p i used
    used=$(ss -Htan | awk '{print $4}' | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p; s/^\*:\([0-9]*\)$/\1/p; s/^0\.0\.0\.0:\([0-9]*\)$/\1/p')
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        for ((i = 0; i < 8; i++)); do grep -qx "$((p + i))" <<<"$used" && continue 2; done
        echo "$p"
        return
    done
    die "no 8 free ports on 127.0.0.1"
}

# cert NAME CN SAN TYPE: $WORK/NAME.crt/.key signed by $WORK/ca.pem (TYPE ec or rsa)
cert() {
    local key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    [ "$4" = ec ] || key=(-newkey rsa:2048)
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$3" >"$WORK/$1.ext"
    openssl req -nodes "${key[@]}" -keyout "$WORK/$1.key" -out "$WORK/$1.csr" -subj "/CN=$2" \
        >/dev/null 2>&1 &&
        openssl x509 -req -in "$WORK/$1.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
            -CAcreateserial -days 400 -extfile "$WORK/$1.ext" -out "$WORK/$1.crt" >/dev/null 2>&1 ||
        die "openssl: cannot make the certificate $1"
    cat "$WORK/$1.crt" "$WORK/$1.key" >"$WORK/$1.pem"
}

FAILED=0
# check WHAT OK: count a workload that did not fully succeed
check() {
    if [ "$2" = 1 ]; then
        say "   ok   $1"
    else
        say "   FAIL $1"
        FAILED=$((FAILED + 1))
    fi
}

# h2l WHAT N ARGS...: h2load run; every one of N requests must succeed
h2l() {
    local what=$1 n=$2 out
    shift 2
    out=$(timeout 120 h2load -t1 -n "$n" "$@" 2>&1 || true)
    check "$what ($n requests: $(awk '/^requests:/{print $8}' <<<"$out") succeeded)" \
        "$(awk -v n="$n" '/^requests:/{print ($8 == n && $10 == 0) ? 1 : 0}' <<<"$out")"
}

# wrkr WHAT SECS ARGS...: wrk run; no error and no non-2xx response
wrkr() {
    local what=$1 secs=$2 out n
    shift 2
    out=$(timeout $((secs + 20)) wrk -t1 -d"${secs}s" "$@" 2>&1 || true)
    n=$(awk '/ requests in /{print $1}' <<<"$out")
    check "$what (${n:-no} requests in ${secs}s)" \
        "$(grep -qE 'Non-2xx|Socket errors' <<<"$out" || [ -z "$n" ] || [ "$n" = 0 ] || echo 1)"
}

train() {
    local bin=$1 b n secs i body
    [ -x "$bin" ] || die "$bin is not an executable"
    WORK=$(mktemp -d /tmp/vrrplb-pgo.XXXXXX)
    chmod 755 "$WORK" # nginx's workers read the document root below it
    n=30000 secs=3
    [ "$QUICK" = 0 ] || n=8000 secs=1
    b=$(free_base)
    local web=$b webs=$((b + 1)) http=$((b + 2)) tls=$((b + 3)) re=$((b + 4)) tcp=$((b + 5))
    local stats=$((b + 6))

    openssl req -x509 -nodes -days 400 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -subj "/CN=vrrplb pgo CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        >/dev/null 2>&1 || die "openssl: cannot make the CA"
    cert ec localhost "DNS:localhost,IP:127.0.0.1" ec
    cert rsa rsa.localhost "DNS:rsa.localhost" rsa

    mkdir -p "$WORK/www" "$WORK/nginx"
    printf 'hello\n' >"$WORK/www/index.html"
    head -c 102400 /dev/zero | tr '\0' 'x' >"$WORK/www/100k"
    chmod 755 "$WORK/www" && chmod 644 "$WORK/www/"*
    cat >"$WORK/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server { listen 127.0.0.1:$web; root $WORK/www; }
  server {
    listen 127.0.0.1:$webs ssl;
    ssl_certificate $WORK/ec.crt;
    ssl_certificate_key $WORK/ec.key;
    root $WORK/www;
  }
}
EOF
    nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" </dev/null >"$WORK/nginx/out.log" 2>&1 &
    NGINX_PID=$!

    cat >"$WORK/vrrplb.yaml" <<EOF
global:
  node: pgo
  control_socket: $WORK/vrrplb.sock
  log: { target: stderr, level: warn, access_log: false }
  stats: { bind: "127.0.0.1:$stats", uri: /stats }
frontends:
  - name: plain
    bind: ["127.0.0.1:$http"]
    h2c: true
    forwarded_for: true
    default_backend: web
  - name: tls
    bind: ["127.0.0.1:$tls"]
    tls:
      certificates: ["$WORK/ec.pem", "$WORK/rsa.pem"]
      alpn: [h2, "http/1.1"]
    forwarded_for: true
    default_backend: web
  - name: reencrypt
    bind: ["127.0.0.1:$re"]
    default_backend: webtls
  - name: tunnel
    mode: tcp
    bind: ["127.0.0.1:$tcp"]
    default_backend: webtcp
backends:
  - name: web
    servers: [{ name: web1, address: "127.0.0.1:$web" }]
    health_check: { kind: http, path: /, interval: 1s }
  - name: webtls
    tls: { ca_file: "$WORK/ca.pem", sni: localhost }
    servers: [{ name: webs1, address: "127.0.0.1:$webs" }]
    health_check: { kind: http, path: /, interval: 1s }
  - name: webtcp
    mode: tcp
    servers: [{ name: webt1, address: "127.0.0.1:$web" }]
    health_check: { kind: tcp, interval: 1s }
EOF
    "$bin" check -c "$WORK/vrrplb.yaml" >/dev/null || die "the training config does not check"
    # Each training process writes its own profile (the instrumented build reads this).
    LLVM_PROFILE_FILE="$WORK/profiles/vrrplb-%p.profraw" \
        "$bin" run -c "$WORK/vrrplb.yaml" </dev/null >"$WORK/vrrplb.log" 2>&1 &
    VRRPLB_PID=$!
    for i in $(seq 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$http/" 2>/dev/null &&
            curl -fsS -o /dev/null "http://127.0.0.1:$re/" 2>/dev/null; then
            break
        fi
        kill -0 "$VRRPLB_PID" 2>/dev/null || die "vrrplb exited: $(tail -n 5 "$WORK/vrrplb.log")"
        [ "$i" -lt 100 ] || die "vrrplb did not serve within 20 s: $(tail -n 5 "$WORK/vrrplb.log")"
        sleep 0.2
    done

    say "== training $bin (ports $b-$((b + 6)), scratch $WORK)"
    h2l "HTTP/1.1 keep-alive" "$n" --h1 -c32 "http://127.0.0.1:$http/"
    wrkr "HTTP/1.1 new connection per request" "$secs" -c16 -H "Connection: close" "http://127.0.0.1:$http/"
    wrkr "HTTP/1.1 100 KB responses" "$secs" -c32 "http://127.0.0.1:$http/100k"
    h2l "h2c" "$n" -c8 -m32 "http://127.0.0.1:$http/"
    h2l "TLS keep-alive" "$n" --h1 -c32 "https://127.0.0.1:$tls/"
    h2l "HTTP/2 over TLS" "$n" -c8 -m32 "https://127.0.0.1:$tls/"
    wrkr "TLS resumed handshakes" "$secs" -c16 -H "Connection: close" "https://127.0.0.1:$tls/"
    for name in localhost rsa.localhost; do
        read -r i body < <(timeout $((secs + 30)) python3 "$REPO/deploy/tls-handshakes.py" \
            127.0.0.1 "$tls" "$secs" "$name" | awk '$1 == "RESULT" {print $2, $3}') || true
        # No RESULT line (the client died): no handshake counted, one error.
        i=${i:-0} body=${body:-1}
        check "full handshakes, SNI $name ($i, $body errors)" "$([ "$i" -gt 0 ] && [ "$body" = 0 ] && echo 1)"
    done
    h2l "TLS to the server" "$((n / 2))" --h1 -c16 "http://127.0.0.1:$re/"
    h2l "tcp mode keep-alive" "$n" --h1 -c32 "http://127.0.0.1:$tcp/"
    wrkr "tcp mode 100 KB responses" "$secs" -c32 "http://127.0.0.1:$tcp/100k"
    wrkr "tcp mode new connection per request" "$secs" -c16 -H "Connection: close" "http://127.0.0.1:$tcp/"
    local scraped=0
    for i in $(seq 30); do
        for u in metrics "stats" "stats;csv"; do
            curl -fsS -o /dev/null "http://127.0.0.1:$stats/$u" && scraped=$((scraped + 1))
        done
    done
    check "stats scrapes ($scraped of 90)" "$([ "$scraped" = 90 ] && echo 1)"
    kill -0 "$VRRPLB_PID" 2>/dev/null || die "vrrplb died during the training: $(tail -n 5 "$WORK/vrrplb.log")"
    kill -TERM "$VRRPLB_PID"
    wait "$VRRPLB_PID" || die "vrrplb exited with $? after SIGTERM: $(tail -n 5 "$WORK/vrrplb.log")"
    VRRPLB_PID=""
    [ "$FAILED" = 0 ] || die "$FAILED training workload(s) failed; vrrplb's log: $(tail -n 5 "$WORK/vrrplb.log")"
}

if [ -n "$TRAIN_BIN" ]; then
    train "$TRAIN_BIN"
    say "== training run complete"
    exit 0
fi

# --- the build ----------------------------------------------------------------------------
cargo=$(command -v cargo || true)
[ -n "$cargo" ] || [ ! -x "$HOME/.cargo/bin/cargo" ] || cargo=$HOME/.cargo/bin/cargo
[ -n "$cargo" ] || die "cargo not found; install Rust with rustup (https://rustup.rs) first"
rustc=$(dirname "$cargo")/rustc
[ -x "$rustc" ] || rustc=rustc
host=$("$rustc" -vV | sed -n 's/^host: //p')
profdata="$("$rustc" --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
    rustup=$(command -v rustup || echo "$(dirname "$cargo")/rustup")
    [ -x "$rustup" ] || command -v "$rustup" >/dev/null ||
        die "llvm-profdata of this Rust toolchain is missing and rustup is not there to add it"
    say "== rustup component add llvm-tools"
    (cd "$REPO" && "$rustup" component add llvm-tools) >&2
fi
[ -x "$profdata" ] || die "$profdata is missing (rustup component add llvm-tools)"

out=${CARGO_TARGET_DIR:-$REPO/target}/pgo
say "== instrumented build ($out/gen)"
(cd "$REPO" && CARGO_TARGET_DIR=$out/gen RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$out/gen/profiles" \
    "$cargo" build --profile dist --locked --bin vrrplb)
train "$out/gen/dist/vrrplb"
"$profdata" merge -o "$out/vrrplb.profdata" "$WORK"/profiles/*.profraw ||
    die "llvm-profdata could not merge the training profile"
say "== optimised build ($out/dist/vrrplb)"
(cd "$REPO" && CARGO_TARGET_DIR=$out RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$out/vrrplb.profdata" \
    "$cargo" build --profile dist --locked --bin vrrplb)
say "== built $out/dist/vrrplb"
