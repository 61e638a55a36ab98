#!/usr/bin/env bash
# Builds vrrplb_<version>_<arch>.deb with dpkg-deb (no other tool needed):
#
#   deploy/deb/build.sh [OUTDIR]          # default OUTDIR: target/deb
#
# It builds the binary with deploy/pgo.sh (a release build with profile-guided optimisation,
# the build the benchmarks measure; it needs nginx, h2load, wrk, curl, openssl and python3,
# apt-get installed when missing) unless VRRPLB_BIN names a binary already built;
# VRRPLB_PGO=0 builds with plain `cargo build --release --locked` instead.
# Install on each box with `apt install ./vrrplb_<version>_amd64.deb`. The package holds the
# binary (/usr/bin/vrrplb), the systemd unit, the rsyslog and logrotate snippets and an
# example config (/etc/vrrplb/vrrplb.yaml, a conffile); postinst creates the system user
# vrrplb; the service is neither enabled nor started (edit the config first); purge removes
# the config directory, the log files and the user.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$repo/target/deb}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")"
[ -n "$version" ] || { echo "build.sh: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
arch="$(dpkg --print-architecture)"

bin="${VRRPLB_BIN:-}"
if [ -z "$bin" ] && [ "${VRRPLB_PGO:-1}" = 0 ]; then
    (cd "$repo" && cargo build --release --locked --bin vrrplb)
    bin="${CARGO_TARGET_DIR:-$repo/target}/release/vrrplb"
elif [ -z "$bin" ]; then
    "$repo/deploy/pgo.sh"
    bin="${CARGO_TARGET_DIR:-$repo/target}/pgo/dist/vrrplb"
fi
[ -x "$bin" ] || { echo "build.sh: $bin is not an executable" >&2; exit 1; }

stage="$(mktemp -d "${TMPDIR:-/tmp}/vrrplb-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
root="$stage/vrrplb_${version}_${arch}"

install -D -m 0755 "$bin" "$root/usr/bin/vrrplb"
strip --strip-unneeded "$root/usr/bin/vrrplb" 2>/dev/null || true
# The unit as in deploy/, with the package's paths.
install -d "$root/lib/systemd/system"
sed -e 's|/usr/local/bin/vrrplb|/usr/bin/vrrplb|g' \
    -e 's|/usr/local/share/doc/vrrplb|/usr/share/doc/vrrplb|g' \
    "$repo/deploy/vrrplb.service" > "$root/lib/systemd/system/vrrplb.service"
chmod 0644 "$root/lib/systemd/system/vrrplb.service"
install -D -m 0644 "$repo/deploy/rsyslog/30-vrrplb.conf" "$root/etc/rsyslog.d/30-vrrplb.conf"
install -D -m 0644 "$repo/deploy/logrotate/vrrplb" "$root/etc/logrotate.d/vrrplb"
# 0640 root:vrrplb is set in postinst, once the group exists.
install -D -m 0640 "$repo/deploy/examples/lb1.yaml" "$root/etc/vrrplb/vrrplb.yaml"
doc="$root/usr/share/doc/vrrplb"
install -D -m 0644 "$repo/README.md" "$doc/README.md"
install -m 0644 "$repo"/docs/*.md "$doc/"
install -D -m 0644 "$repo/deploy/examples/lb1.yaml" "$doc/examples/lb1.yaml"
install -m 0644 "$repo/deploy/examples/lb2.yaml" "$doc/examples/lb2.yaml"
printf 'vrrplb %s\nLicense: Apache-2.0\n' "$version" > "$doc/copyright"

install -d "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: vrrplb
Version: $version
Architecture: $arch
Maintainer: vrrplb developers <vrrplb@example.invalid>
Section: net
Priority: optional
Depends: libc6, passwd
Recommends: rsyslog, logrotate, nftables
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: keepalived + HAProxy in one binary
 VRRPv2 failover (keepalived-compatible on the wire and in its logs) and an
 HTTP load balancer (HAProxy-style routing, balancing and health checks) in
 one daemon, configured by one YAML file per box.
CONTROL
cat > "$root/DEBIAN/conffiles" <<'CONFFILES'
/etc/vrrplb/vrrplb.yaml
/etc/rsyslog.d/30-vrrplb.conf
/etc/logrotate.d/vrrplb
CONFFILES
install -m 0755 "$repo/deploy/deb/postinst" "$repo/deploy/deb/prerm" "$repo/deploy/deb/postrm" "$root/DEBIAN/"

deb="$out/vrrplb_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
