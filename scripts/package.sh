#!/usr/bin/env bash
# Builds the Debian packages into target/debian/:
#   xvpc_<version>_amd64.deb        xvpc, xvpc-agent, the systemd units, /etc/xvpc/{xvpc,agent}.toml
#                                   (conffiles), the docs and the Grafana dashboard
#   xvpc-tools_<version>_amd64.deb  xvpc-pktgen (the AF_XDP traffic generator of the benchmarks)
#
#   scripts/package.sh                 release build, then package
#   scripts/package.sh --bin-dir DIR   package binaries built already (test.sh: its debug build)
#
# dpkg-deb with a small control directory (packaging/debian/), not cargo-deb: it needs no tool
# compiled from crates.io, and the control files, conffiles and maintainer scripts stay plain
# Debian files that lintian and dpkg check as they are. Depends comes from dpkg-shlibdeps on the
# binaries, plus iproute2 (xvpc runs `ip` to read the neighbour table and the XDP state).
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=""
case "${1:-}" in
  "") ;;
  --bin-dir) bin_dir="${2:?--bin-dir DIR}" ;;
  *) echo "usage: $0 [--bin-dir DIR]" >&2; exit 2 ;;
esac
target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "$bin_dir" ]; then
  cargo build --release --locked -p xvpc-dataplane -p xvpc-mapping-agent -p xvpc-pktgen
  bin_dir="$target/release"
fi
version=$(cargo metadata --format-version 1 --no-deps |
  /usr/bin/python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "xvpc-dataplane"))')
out="$target/debian"
# Who the package names as its maintainer (MAINTAINER="Name <mail>" to set it).
maintainer="${MAINTAINER:-xvpc maintainers <xvpc@example.org>}"
work="$out/build"
rm -rf "$work"
mkdir -p "$work"

# One package tree: $1 name, then its binaries.
stage() {
  local name=$1; shift
  local root="$work/$name"
  install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/doc/$name"
  for b in "$@"; do
    install -m 755 "$bin_dir/$b" "$root/usr/bin/$b"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/$b"
  done
  install -m 644 packaging/debian/copyright "$root/usr/share/doc/$name/copyright"
  printf '%s (%s) unstable; urgency=medium\n\n  * Packaged by scripts/package.sh.\n\n%s  %s\n' \
    "$name" "$version" " -- $maintainer" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
    gzip -9n >"$root/usr/share/doc/$name/changelog.gz"
  chmod 644 "$root/usr/share/doc/$name/changelog.gz"
}

# Runtime library dependencies of the binaries, as dpkg-shlibdeps computes them.
shlibs() {
  local tmp; tmp=$(mktemp -d)
  mkdir "$tmp/debian"
  printf 'Source: xvpc\n\nPackage: xvpc\nArchitecture: amd64\n' >"$tmp/debian/control"
  (cd "$tmp" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
  rm -rf "$tmp"
}

control() { # name, depends, description (first line), long description
  local root="$work/$1"
  local size; size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  cat >"$root/DEBIAN/control" <<CONTROL
Package: $1
Version: $version
Architecture: amd64
Maintainer: $maintainer
Installed-Size: $size
Depends: $2
Section: net
Priority: optional
Description: $3
$4
CONTROL
}

stage xvpc xvpc xvpc-agent
root="$work/xvpc"
install -d "$root/lib/systemd/system" "$root/etc/xvpc" "$root/usr/share/doc/xvpc/grafana"
install -m 644 dataplane/daemon/systemd/xvpc.service "$root/lib/systemd/system/xvpc.service"
install -m 644 mapping-agent/xvpc-agent.service "$root/lib/systemd/system/xvpc-agent.service"
install -m 644 packaging/etc/xvpc.toml "$root/etc/xvpc/xvpc.toml"
install -m 644 packaging/etc/agent.toml "$root/etc/xvpc/agent.toml"
for doc in README.md docs/*.md docs/example-config.toml; do
  install -m 644 "$doc" "$root/usr/share/doc/xvpc/$(basename "$doc")"
done
install -m 644 docs/grafana/xvpc-dashboard.json "$root/usr/share/doc/xvpc/grafana/"
printf '/etc/xvpc/xvpc.toml\n/etc/xvpc/agent.toml\n' >"$root/DEBIAN/conffiles"
install -m 755 packaging/debian/postinst "$root/DEBIAN/postinst"
control xvpc "$(shlibs "$root/usr/bin/xvpc" "$root/usr/bin/xvpc-agent"), iproute2" \
  "kernel-bypass VPC dataplane (AF_XDP + VXLAN) and its mapping agent" \
" xvpc forwards a guest's traffic between a guest port and a VXLAN fabric
 with poll-mode AF_XDP workers; pinned XDP programs keep the guest port
 closed to the host while the daemon is down. xvpc-agent feeds it mappings
 from a file or etcd. Both serve Prometheus metrics on a management address
 when configured."

stage xvpc-tools xvpc-pktgen
control xvpc-tools "$(shlibs "$work/xvpc-tools/usr/bin/xvpc-pktgen")" \
  "traffic generator of the xvpc benchmarks" \
" xvpc-pktgen sends and counts frames over AF_XDP sockets (copy or
 zero-copy mode), for the xvpc benchmarks (scripts/bench.sh)."

for name in xvpc xvpc-tools; do
  dpkg-deb --root-owner-group -Zxz --build "$work/$name" "$out/${name}_${version}_amd64.deb" >/dev/null
  echo "$out/${name}_${version}_amd64.deb"
done
