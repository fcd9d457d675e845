# The demo's topology, sourced by demo.sh and systemd-test.sh (bash; root):
#
#   guest ns G          dataplane ns D                  remote host ns F
#   g0 198.18.10.2 ── xg0 [xvpc] xf0 198.18.0.2 ── f0 198.18.0.1 + vx100 (kernel VXLAN, VNI 100)
#                                                        └ remote guest 198.18.10.3
#
# It matches docs/example-config.toml and the packaged /etc/xvpc/xvpc.toml. Addresses: RFC 2544
# ranges only. The caller deletes the namespaces.

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# demo_topology G D F: creates the three namespaces and wires them up.
demo_topology() {
  local G=$1 D=$2 F=$3 ns
  for ns in "$G" "$D" "$F"; do ip netns add "$ns"; nsx "$ns" ip link set lo up; done
  ip link add g0 netns "$G" type veth peer name xg0 netns "$D"
  ip link add xf0 netns "$D" type veth peer name f0 netns "$F"
  nsx "$G" ip link set g0 address 02:00:00:00:01:01
  nsx "$G" ip addr add 198.18.10.2/24 dev g0
  nsx "$G" ip addr add 2001:2:0:10::2/64 dev g0 nodad
  nsx "$D" ip link set xf0 address 02:00:00:00:0f:02
  nsx "$D" ip addr add 198.18.0.2/24 dev xf0
  nsx "$D" ip addr add 2001:2::2/64 dev xf0 nodad
  nsx "$F" ip link set f0 address 02:00:00:00:0f:01
  nsx "$F" ip addr add 198.18.0.1/24 dev f0
  nsx "$F" ip addr add 2001:2::1/64 dev f0 nodad
  nsx "$F" ip link add vx100 type vxlan id 100 local 198.18.0.1 remote 198.18.0.2 dstport 4789 dev f0
  nsx "$F" ip link set vx100 address 02:00:00:00:02:02
  nsx "$F" ip addr add 198.18.10.3/24 dev vx100
  nsx "$F" ip addr add 2001:2:0:10::3/64 dev vx100 nodad
  # The remote host knows our guest from its own mappings (no ARP flooding across the fabric).
  nsx "$F" ip neigh add 198.18.10.2 lladdr 02:00:00:00:01:01 dev vx100 nud permanent
  nsx "$F" ip neigh add 2001:2:0:10::2 lladdr 02:00:00:00:01:01 dev vx100 nud permanent
  # veth would leave checksums to an offload that never happens on the forwarded copy; a real
  # NIC finishes them on the wire, so the senders here do it in software.
  nsx "$G" ethtool -K g0 tx off >/dev/null
  nsx "$F" ethtool -K f0 tx off >/dev/null
  nsx "$F" ethtool -K vx100 tx off >/dev/null
  local ns_dev
  for ns_dev in "$G g0" "$D xg0" "$D xf0" "$F f0" "$F vx100"; do
    set -- $ns_dev; nsx "$1" ip link set "$2" up
  done
}

# demo_mappings: the remote guest's two overlay addresses behind the remote host's VTEP
# 198.18.0.1, as a mappings file.
demo_mappings() {
  local ip
  for ip in 198.18.10.3 2001:2:0:10::3; do
    printf '[[mapping]]\nvni = 100\noverlay_ip = "%s"\nunderlay_ip = "198.18.0.1"\noverlay_mac = "02:00:00:00:02:02"\n\n' "$ip"
  done
}
