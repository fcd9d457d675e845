#!/usr/bin/env bash
# Installs the Debian 12 packages xvpc needs to build, test and demo (idempotent; root).
set -euo pipefail
packages=(
  clang llvm libbpf-dev gcc-multilib # eBPF programs (clang -target bpf), bpf_helpers.h
  iproute2 ethtool iputils-ping netcat-openbsd procps  # namespaces, veth, vxlan, ping, nc
  tcpdump tshark python3-scapy     # independent packet dissection and building
  etcd-server etcd-client          # the fleet-scale mapping service
  protobuf-compiler                # etcd-client crate
  gnuplot-nox                      # benchmark plots
  systemd                          # systemd-analyze verify of the units
  systemd-container                # systemd-nspawn: the units under a real systemd
  prometheus                       # promtool check metrics; the scrape test runs a real server
  lintian debootstrap dpkg-dev     # the .deb: lint, install into a fresh Debian root
  curl                             # HTTP checks of /metrics and the Prometheus API
  openvswitch-switch dpdk-dev librte-net-af-xdp23  # side-by-side benchmark peers (OVS AF_XDP, testpmd)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (stable) first" >&2
  exit 1
fi
