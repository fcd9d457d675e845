#!/usr/bin/env bash
# Tests the Debian packages (root): builds them (scripts/package.sh, with --bin-dir DIR to
# package binaries built already), lintian with no error, installs them into a fresh Debian 12
# root (debootstrap --variant=minbase, plus systemd, from deb.debian.org, cached as a tarball in
# target/debian/) with dpkg -i + apt-get install -f, checks the installed config passes
# `xvpc check-config`, runs scripts/demo.sh --installed against the installed binaries, boots
# the root's systemd (scripts/systemd-test.sh: the units under a real systemd), then removes
# and purges the packages and checks nothing is left. Any failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "package-test.sh: run as root (chroot, namespaces)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target/debian"
mapfile -t debs < <(scripts/package.sh "$@")
[ "${#debs[@]}" -eq 2 ] || { echo "package-test.sh: expected two packages, got: ${debs[*]}" >&2; exit 1; }

echo "== lintian (errors fail; accepted warning: no-manual-page, the binaries have complete --help)"
lint=$(lintian --tag-display-limit 0 "${debs[@]}" 2>&1 | grep -v 'root privileges is not recommended' || true)
echo "$lint"
if grep -q '^E: ' <<<"$lint"; then echo "package-test.sh: lintian errors" >&2; exit 1; fi
unexpected=$(grep '^W: ' <<<"$lint" | grep -v ' no-manual-page ' || true)
if [ -n "$unexpected" ]; then echo "package-test.sh: unexpected lintian warnings" >&2; exit 1; fi

echo "== a fresh Debian 12 root"
# minbase plus systemd, the init of any fleet image: the units are tested under it.
cache="$out/bookworm-minbase-systemd.tar"
if [ ! -s "$cache" ]; then
  start=$(date +%s)
  rm -rf "$out/bootstrap"
  debootstrap --variant=minbase --include=systemd,systemd-sysv bookworm "$out/bootstrap" http://deb.debian.org/debian >"$out/debootstrap.log" 2>&1 ||
    { tail -20 "$out/debootstrap.log"; exit 1; }
  tar -C "$out/bootstrap" -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
  rm -rf "$out/bootstrap"
  echo "debootstrap: $(( $(date +%s) - start )) s (cached in $cache)"
fi
root=$(mktemp -d "$out/root.XXXXXX")
cleanup() {
  set +e
  for m in proc dev/pts dev sys; do umount "$root/$m" 2>/dev/null; done
  rm -rf "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$cache"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
before=$(in_root dpkg-query -W -f='${Package}\n' | sort)

echo "== dpkg -i, then apt-get install -f for the dependencies"
cp "${debs[@]}" "$root/tmp/"
names=()
for d in "${debs[@]}"; do names+=("/tmp/$(basename "$d")"); done
in_root dpkg -i "${names[@]}" || true   # missing dependencies leave them unconfigured
in_root apt-get update -qq
in_root apt-get install -f -y -qq >/dev/null
for p in xvpc xvpc-tools; do
  status=$(in_root dpkg-query -W -f='${Status}' "$p")
  [ "$status" = "install ok installed" ] || { echo "package-test.sh: $p is '$status'" >&2; exit 1; }
done
in_root dpkg-query -W -f='${Conffiles}\n' xvpc | grep -q '/etc/xvpc/xvpc.toml' ||
  { echo "package-test.sh: /etc/xvpc/xvpc.toml is not a conffile" >&2; exit 1; }
in_root xvpc check-config /etc/xvpc/xvpc.toml
in_root xvpc --help | grep -q check-config
in_root xvpc-agent --help | grep -q -- --metrics-listen
printf '[[mapping]]\nvni = 100\noverlay_ip = "198.18.10.2"\nunderlay_ip = "198.18.0.3"\noverlay_mac = "02:00:00:00:0a:02"\n' \
  >"$root/tmp/check-mappings.toml"
in_root xvpc-agent --config /etc/xvpc/agent.toml --file /tmp/check-mappings.toml --check | grep -q "1 mappings"
in_root xvpc-pktgen --help >/dev/null
for f in /lib/systemd/system/xvpc.service /lib/systemd/system/xvpc-agent.service \
         /etc/xvpc/agent.toml /usr/share/doc/xvpc/CONFIGURATION.md /usr/share/doc/xvpc/grafana/xvpc-dashboard.json; do
  [ -f "$root$f" ] || { echo "package-test.sh: $f is not installed" >&2; exit 1; }
done
# A broken config makes the postinst fail: the check really runs.
echo 'garbage = [' >>"$root/etc/xvpc/xvpc.toml"
if in_root sh -c '/var/lib/dpkg/info/xvpc.postinst configure' >/dev/null 2>&1; then
  echo "package-test.sh: the postinst accepted a broken /etc/xvpc/xvpc.toml" >&2; exit 1
fi
sed -i '$d' "$root/etc/xvpc/xvpc.toml"
in_root sh -c '/var/lib/dpkg/info/xvpc.postinst configure'

echo "== the demo against the installed binaries"
scripts/demo.sh --installed "$root"

echo "== the units under systemd (systemd-nspawn --boot of this root)"
umount "$root/proc"   # nspawn mounts the container's own
scripts/systemd-test.sh "$root"
mount -t proc proc "$root/proc"

echo "== remove and purge"
in_root dpkg -r xvpc xvpc-tools >/dev/null
[ ! -e "$root/usr/bin/xvpc" ] && [ ! -e "$root/lib/systemd/system/xvpc.service" ] ||
  { echo "package-test.sh: dpkg -r left files" >&2; exit 1; }
[ -f "$root/etc/xvpc/xvpc.toml" ] || { echo "package-test.sh: dpkg -r removed a conffile" >&2; exit 1; }
in_root dpkg -P xvpc xvpc-tools >/dev/null
# What apt-get install -f pulled in (iproute2 and its libraries) was marked automatic.
in_root apt-get autoremove --purge -y -qq >/dev/null
[ ! -e "$root/etc/xvpc" ] && [ ! -e "$root/usr/share/doc/xvpc" ] ||
  { echo "package-test.sh: dpkg -P left /etc/xvpc or the docs" >&2; exit 1; }
after=$(in_root dpkg-query -W -f='${Package}\n' | sort)
[ "$before" = "$after" ] || { echo "package-test.sh: packages differ after purge:"; diff <(echo "$before") <(echo "$after"); exit 1; }
echo "package-test.sh: packages build, lint, install, run the demo and remove cleanly"
