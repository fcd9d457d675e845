#!/usr/bin/env bash
# xvpc demo: a guest and a remote guest talk through the dataplane, in the topology of
# scripts/topology.sh (guest ns — dataplane ns [xvpc] — remote host ns with a kernel VXLAN).
#
# Builds xvpc and xvpc-agent, sets the topology up, runs the daemon (no static mappings)
# and the mapping agent, which feeds it the mappings, pings both ways (IPv4 and IPv6),
# moves 20 MB over TCP and checks it, prints the daemon's counters, and tears everything
# down on exit, Ctrl-C or failure. Root only. Addresses: RFC 2544 ranges only.
#
#   scripts/demo.sh          the agent reads a mappings file written by the demo
#   scripts/demo.sh --etcd   the agent watches a local etcd (loopback of its own management
#                            namespace, temp data dir); the demo puts the mappings with etcdctl
#   scripts/demo.sh --installed [ROOT]  no build: run the packaged binaries, ROOT/usr/bin/xvpc
#                            and ROOT/usr/bin/xvpc-agent (ROOT defaults to /: the installed .deb)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (it creates network namespaces)" >&2; exit 1; }
mode=file
installed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --etcd) mode=etcd ;;
    --installed)
      installed=/
      if [ -n "${2:-}" ] && [ "${2#--}" = "$2" ]; then installed=$2; shift; fi ;;
    *) echo "usage: $0 [--etcd] [--installed [ROOT]]" >&2; exit 2 ;;
  esac
  shift
done

if [ -n "$installed" ]; then
  bin="${installed%/}/usr/bin"
  [ -x "$bin/xvpc" ] && [ -x "$bin/xvpc-agent" ] ||
    { echo "demo.sh: no installed xvpc in $bin (dpkg -i xvpc_*.deb)" >&2; exit 1; }
else
  scripts/install-deps.sh
  cargo build --release -q -p xvpc-dataplane -p xvpc-mapping-agent
  bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
fi
XVPC="$bin/xvpc"
AGENT="$bin/xvpc-agent"
echo "demo.sh: running $XVPC and $AGENT"

tag=$$
G="xvpc-demo-g-$tag"; D="xvpc-demo-d-$tag"; F="xvpc-demo-f-$tag"; M="xvpc-demo-m-$tag"
work=$(mktemp -d /tmp/xvpc-demo.XXXXXX)
daemon_pid=""; agent_pid=""; etcd_pid=""
cleanup() {
  set +e
  for pid in "$agent_pid" "$etcd_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid"; fi
  done
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"; wait "$daemon_pid"
  fi
  for ns in "$G" "$D" "$F" "$M"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid"; done
    ip netns del "$ns" 2>/dev/null
  done
  # The pins go with their bpffs (the programs went with the namespaces' devices already).
  umount "$work/bpf" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. scripts/topology.sh
step() { printf '\n== %s\n' "$*"; }

step "topology"
demo_topology "$G" "$D" "$F"

step "xvpc run (config: docs/example-config.toml without its static mappings)"
# The XDP programs are pinned so that they outlive the daemon (fail closed). `ip netns exec`
# hides the host's /sys/fs/bpf, so the demo pins into a bpffs of its own, mounted here.
mkdir -p "$work/bpf" && mount -t bpf bpf "$work/bpf"
sed -e "s#/run/xvpc/#$work/#" -e 's/^cores = .*/cores = []/' -e '/^# Static mappings/,$d' \
  -e "s#^\[dataplane\]#[dataplane]\npin_dir = \"$work/bpf/xvpc\"#" \
  docs/example-config.toml > "$work/config.toml"
ip netns exec "$D" "$XVPC" run --config "$work/config.toml" > "$work/final.json" 2> "$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$work/stats.sock" ] && break; sleep 0.1; done
[ -S "$work/stats.sock" ] || { cat "$work/daemon.log"; echo "daemon did not start" >&2; exit 1; }
sed 's/\x1b\[[0-9;]*m//g' "$work/daemon.log"

# The remote guest's two overlay addresses, behind the remote host's VTEP 198.18.0.1.
overlays=(198.18.10.3 2001:2:0:10::3)
if [ "$mode" = file ]; then
  step "xvpc-agent (source: file $work/mappings.toml)"
  demo_mappings > "$work/mappings.toml"
  cat "$work/mappings.toml"
  RUST_LOG=info NO_COLOR=1 "$AGENT" --source file --file "$work/mappings.toml" \
    --control "$work/control.sock" 2> "$work/agent.log" &
  agent_pid=$!
else
  step "etcd (management namespace $M, 127.0.0.1:2379, data in $work/etcd)"
  ip netns add "$M"; nsx "$M" ip link set lo up
  ip netns exec "$M" etcd --name demo --data-dir "$work/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster demo=http://127.0.0.1:2380 > /dev/null 2> "$work/etcd.log" &
  etcd_pid=$!
  ctl() { ETCDCTL_API=3 ip netns exec "$M" etcdctl --endpoints=http://127.0.0.1:2379 "$@"; }
  for _ in $(seq 100); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
  ctl endpoint health || { tail -20 "$work/etcd.log"; echo "etcd did not start" >&2; exit 1; }
  for ip in "${overlays[@]}"; do
    ctl put "/xvpc/mappings/100/$ip" '{"underlay_ip":"198.18.0.1","overlay_mac":"02:00:00:00:02:02"}'
  done
  ctl get --prefix /xvpc/mappings
  step "xvpc-agent (source: etcd, in the management namespace)"
  RUST_LOG=info NO_COLOR=1 "$AGENT" --source etcd --etcd-endpoints http://127.0.0.1:2379 \
    --management-netns "$M" --control "$work/control.sock" 2> "$work/agent.log" &
  agent_pid=$!
fi
synced() {
  nsx "$D" "$XVPC" stats --json --socket "$work/stats.sock" | /usr/bin/python3 -c \
    'import json,sys; c=json.load(sys.stdin)["control"]; sys.exit(0 if c["full_syncs"] >= 1 and c["mappings"] == 2 else 1)'
}
for _ in $(seq 100); do synced && break; kill -0 "$agent_pid" || break; sleep 0.1; done
synced || { cat "$work/agent.log"; echo "the agent did not sync the dataplane" >&2; exit 1; }
sed 's/\x1b\[[0-9;]*m//g' "$work/agent.log"
echo "the dataplane has the agent's 2 mappings"

step "guest → remote guest: ping (IPv4, IPv6)"
nsx "$G" ping -c 3 -i 0.2 -W 2 198.18.10.3
nsx "$G" ping -6 -c 3 -i 0.2 -W 2 2001:2:0:10::3
step "guest → gateway: ping"
nsx "$G" ping -c 2 -i 0.2 -W 2 198.18.10.1
step "remote guest → guest: ping"
nsx "$F" ping -c 3 -i 0.2 -W 2 198.18.10.2

step "TCP: 20 MB guest → remote guest, checked"
head -c 20000000 /dev/urandom > "$work/payload"
ip netns exec "$F" timeout 60 nc -l -N 198.18.10.3 5001 > "$work/received" &
nc_pid=$!
sleep 0.5
start=$(date +%s.%N)
nsx "$G" timeout 60 nc -N 198.18.10.3 5001 < "$work/payload"
wait "$nc_pid"
end=$(date +%s.%N)
if cmp -s "$work/payload" "$work/received"; then
  awk -v s="$start" -v e="$end" 'BEGIN { printf "20 MB received intact in %.2f s (%.0f Mbit/s)\n", e - s, 160 / (e - s) }' 
else
  echo "TCP payload mismatch" >&2; exit 1
fi

step "xvpc stats"
nsx "$D" "$XVPC" stats --socket "$work/stats.sock"

step "shutdown"
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=""
kill -TERM "$daemon_pid"; wait "$daemon_pid"; daemon_pid=""
tail -3 "$work/daemon.log" | sed 's/\x1b\[[0-9;]*m//g' 
echo "final counters:"; cat "$work/final.json"
step "stopped: the ports stay closed (xvpc status), until xvpc detach opens them"
nsx "$D" "$XVPC" status --config "$work/config.toml"
nsx "$D" ip link show xg0 | grep -q xdp || { echo "the guest port opened when xvpc stopped" >&2; exit 1; }
nsx "$D" "$XVPC" detach --config "$work/config.toml"
nsx "$D" ip link show xg0 | grep -q xdp && { echo "XDP still attached after xvpc detach" >&2; exit 1; }
echo "XDP programs detached. Demo OK."
