#!/usr/bin/env bash
# Side-by-side forwarding benchmark: gen ns —veth— DUT ns —veth— sink ns.
#
#   egress:  gen (g0) ─── (d0) DUT (d1) ─── (s0) sink     plain UDP in, VXLAN out
#   ingress: sink (g0) ─── (d0) DUT (d1) ─── (s0) gen     VXLAN in, plain UDP out
#
# The generator is xvpc-pktgen on CPU 0 (--tx auto: XDP live frames where the kernel allows
# them, else an AF_XDP socket; every row records the mode, and figures taken in different
# modes are not comparable); the sink is xvpc-pktgen sink (counts marked frames, latency). Systems (interleaved per repetition: A B C A B C ...):
#   kernel-vxlan  Linux routes guest traffic into a vxlan device (the reference: ratio 1.0)
#   xvpc          the xvpc daemon (guest port d0, fabric port d1, worker on the DUT core)
#   ovs           Open vSwitch userspace datapath, AF_XDP ports and a VXLAN tunnel port
#   testpmd       dpdk-testpmd io forwarding between two net_af_xdp ports (no encapsulation)
#   xdp-redirect  XDP redirect d0 -> d1 without encapsulation (the machine's ceiling)
# kernel-vxlan, xvpc and ovs run egress and ingress; the two plain forwarders egress only.
#
# Frame size = the guest's (inner) frame; on the fabric it is 50 bytes longer.
# Only 198.18.0.0/15 is used. Everything is torn down on exit, Ctrl-C or failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=5
SIZES="64 128 256 512 1024 1400"
SECONDS_PER_RUN=5
SYSTEMS="kernel-vxlan xvpc ovs testpmd xdp-redirect"
DIRS="egress ingress"
OUT="$ROOT/target/bench"
IMG="$ROOT/docs/img"
STEER=1
FLOWS=64
LAT=1
LAT_REPS=100
ZL=1
TRIAL_SECONDS=2
SEARCH_STEPS=6
TIME_LIMIT=
PERF=0
SMOKE=0
ESTIMATE=0
TX=auto
SINK_IDLE=1 # the sink stops this long after the last frame (stragglers are counted until then)
PKTGEN="${PKTGEN:-}"
XVPC="${XVPC:-}"
GEN_CPU=0
DUT_CPU=1

usage() {
    cat <<'EOF'
usage: scripts/bench.sh [--reps N] [--sizes "64 1400"] [--seconds S] [--systems "..."]
                        [--dirs "egress ingress"] [--out DIR] [--no-steer] [--no-latency]
                        [--no-zero-loss] [--trial-seconds S] [--search-steps N]
                        [--time-limit MIN] [--tx auto|live|afxdp] [--estimate] [--smoke]

  --reps N        repetitions, systems interleaved within each (default 5)
  --sizes LIST    guest frame sizes in bytes, 64..1400 (default "64 128 256 512 1024 1400")
  --seconds S     generator run time of the max-rate and latency runs (default 5)
  --systems LIST  any of: kernel-vxlan xvpc ovs testpmd xdp-redirect (default all)
  --dirs LIST     egress and/or ingress (default both; plain forwarders run egress only)
  --out DIR       CSV and Markdown results (default target/bench)
  --no-steer      leave the DUT's receive work in the sender's softirq (veth default)
                  instead of a threaded NAPI pinned to the DUT core
  --no-zero-loss  skip the RFC 2544 zero-loss search (binary search on the generator's
                  rate for the highest rate at which every frame sent reaches the sink)
  --trial-seconds S  generator run time of each search trial (default 2)
  --search-steps N   bisection steps after the first trial at the max forwarding rate
                  (default 6: resolution = that rate / 2^N, at best 1 kpps; 0 = that
                  one trial only)
  --no-latency    skip the latency run at 50% of the zero-loss rate (of the max rate when
                  the zero-loss rate is 0 or not searched)
  --lat-reps N    latency runs only in the first N repetitions (default: all)
  --time-limit MIN  start no repetition that would end after MIN minutes, judged by the
                  estimate and then by the measured length of the repetitions so far (the
                  first always runs); the report covers the repetitions that ran
  --perf          perf record the xvpc daemon during its first full-speed run per
                  direction and size ($OUT/perf-*.data and perf-*.txt, top symbols)
  --tx MODE       how the generator transmits: auto (default: XDP live frames, or AF_XDP
                  where the kernel refuses them), live (fail if refused) or afxdp; the
                  mode of every measurement is in the gen_mode column and the table
  --estimate      print the run time estimate for these options and exit
  --smoke         64 B, one repetition, 1 s runs, a 2-step search of 1 s trials, the sink
                  stopping 0.3 s after the last frame, no latency run: a CI check that it
                  all works (plots go to --out, not docs/img)
  env PKTGEN      path to xvpc-pktgen (default: build it in release mode)
  env XVPC        path to the xvpc daemon (default: build it in release mode)
  env XVPC_DATAPLANE_EXTRA  extra lines for xvpc's [dataplane] config (e.g. "batch_size = 256")

Every system must forward something and (in the first repetition) pass the correctness
check, or the script exits 1 after writing what it measured.
Writes $OUT/results.csv, $OUT/results.md, $OUT/latency-*.hist and the gnuplot PNGs into
docs/img (the published plots), or into --img DIR for experiments.
EOF
}

while (($#)); do
    case $1 in
        --reps|--sizes|--seconds|--systems|--dirs|--out|--img|--lat-reps|--trial-seconds|\
        --search-steps|--time-limit|--tx)
            (($# >= 2)) || { echo "bench.sh: $1 needs a value (try --help)" >&2; exit 64; } ;;
    esac
    case $1 in
        --reps) REPS=$2; shift 2 ;;
        --sizes) SIZES=$2; shift 2 ;;
        --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
        --systems) SYSTEMS=$2; shift 2 ;;
        --dirs) DIRS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --img) IMG=$2; shift 2 ;;
        --no-steer) STEER=0; shift ;;
        --no-latency) LAT=0; shift ;;
        --lat-reps) LAT_REPS=$2; shift 2 ;;
        --no-zero-loss) ZL=0; shift ;;
        --trial-seconds) TRIAL_SECONDS=$2; shift 2 ;;
        --search-steps) SEARCH_STEPS=$2; shift 2 ;;
        --time-limit) TIME_LIMIT=$2; shift 2 ;;
        --tx) TX=$2; shift 2 ;;
        --perf) PERF=1; shift ;;
        --estimate) ESTIMATE=1; shift ;;
        --smoke) REPS=1; SIZES=64; SECONDS_PER_RUN=1; LAT=0; TRIAL_SECONDS=1; SEARCH_STEPS=2
            SINK_IDLE=0.3 SMOKE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 64 ;;
    esac
done
[[ $TX == auto || $TX == live || $TX == afxdp ]] || { echo "bench.sh: --tx auto|live|afxdp" >&2; exit 64; }
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 && $REPS -le 100 ]] || { echo "bench.sh: --reps 1..100" >&2; exit 64; }
[[ $SECONDS_PER_RUN =~ ^[0-9]+$ && $SECONDS_PER_RUN -ge 1 && $SECONDS_PER_RUN -le 600 ]] \
    || { echo "bench.sh: --seconds 1..600" >&2; exit 64; }
[[ $TRIAL_SECONDS =~ ^[0-9]+$ && $TRIAL_SECONDS -ge 1 && $TRIAL_SECONDS -le 600 ]] \
    || { echo "bench.sh: --trial-seconds 1..600 (whole seconds)" >&2; exit 64; }
[[ $SEARCH_STEPS =~ ^[0-9]+$ && $SEARCH_STEPS -le 20 ]] \
    || { echo "bench.sh: --search-steps 0..20" >&2; exit 64; }
[[ $LAT_REPS =~ ^[0-9]+$ ]] || { echo "bench.sh: --lat-reps takes a number" >&2; exit 64; }
[[ -z $TIME_LIMIT || ($TIME_LIMIT =~ ^[0-9]+$ && $TIME_LIMIT -ge 1) ]] \
    || { echo "bench.sh: --time-limit takes whole minutes (>= 1)" >&2; exit 64; }
[[ -n ${SIZES// /} ]] || { echo "bench.sh: --sizes is empty" >&2; exit 64; }
[[ -n ${SYSTEMS// /} ]] || { echo "bench.sh: --systems is empty" >&2; exit 64; }
[[ -n ${DIRS// /} ]] || { echo "bench.sh: --dirs is empty" >&2; exit 64; }
for s in $SIZES; do
    [[ $s =~ ^[0-9]+$ && $s -ge 64 && $s -le 1400 ]] || { echo "bench.sh: size $s not in 64..1400" >&2; exit 64; }
done
for s in $SYSTEMS; do
    case $s in
        kernel-vxlan|xdp-redirect|xvpc|ovs|testpmd) ;;
        *) echo "bench.sh: unknown system $s" >&2; exit 64 ;;
    esac
done
for d in $DIRS; do
    case $d in egress|ingress) ;; *) echo "bench.sh: unknown direction $d" >&2; exit 64 ;; esac
done
skipped() { [[ $2 == ingress && ($1 == xdp-redirect || $1 == testpmd) ]]; } # sys dir

# Run time estimate (seconds), from the options and overheads measured on the 2-CPU
# development VM: each generator run costs its duration plus RUN_OVH_DS tenths of a second
# (sink attach, the sink's idle exit, process start), each measurement a fresh topology
# and DUT start, the first repetition a correctness check. The search is counted in full;
# it stops after one trial where the max forwarding rate is already lossless.
RUN_OVH_DS=$(awk -v i=$SINK_IDLE 'BEGIN { printf "%d", 3 + 10 * i }') CHECK_DS=25
setup_ds() { case $1 in ovs|testpmd) echo 30 ;; xvpc) echo 15 ;; *) echo 10 ;; esac; }
est_rep() { # rep -> seconds
    local r=$1 t=0 size dir sys
    for size in $SIZES; do
        for dir in $DIRS; do
            for sys in $SYSTEMS; do
                skipped "$sys" "$dir" && continue
                t=$((t + $(setup_ds "$sys") + SECONDS_PER_RUN * 10 + RUN_OVH_DS))
                ((ZL)) && t=$((t + (SEARCH_STEPS + 1) * (TRIAL_SECONDS * 10 + RUN_OVH_DS)))
                ((LAT && r <= LAT_REPS)) && t=$((t + SECONDS_PER_RUN * 10 + RUN_OVH_DS))
                ((r == 1)) && t=$((t + CHECK_DS))
            done
        done
    done
    echo $((t / 10))
}
n_meas=0
for size in $SIZES; do for dir in $DIRS; do for sys in $SYSTEMS; do
    skipped "$sys" "$dir" || n_meas=$((n_meas + 1))
done; done; done
((n_meas > 0)) || { echo "bench.sh: no measurement: the plain forwarders run egress only" >&2; exit 64; }
est_total=0
for ((r = 1; r <= REPS; r++)); do est_total=$((est_total + $(est_rep $r))); done
if ((est_total >= 3600)); then
    est_str="$((est_total / 3600)) h $((est_total % 3600 / 60)) min"
else
    est_str="$((est_total / 60)) min $((est_total % 60)) s"
fi
echo "bench.sh: $n_meas measurements per repetition, $REPS repetition(s): estimated $est_str in all," \
    "$((est_total / (n_meas * REPS))) s per measurement" >&2
if ((ZL)); then
    echo "bench.sh: (of which up to $((SEARCH_STEPS + 1)) zero-loss trials of ${TRIAL_SECONDS} s per measurement;" \
        "--search-steps, --trial-seconds, --no-zero-loss and --time-limit trade that)" >&2
fi
if [[ -n $TIME_LIMIT ]] && ((est_total > TIME_LIMIT * 60)); then
    echo "bench.sh: that exceeds --time-limit $TIME_LIMIT min: repetitions that would end later are not started" >&2
fi

((ESTIMATE)) && exit 0

((EUID == 0)) || { echo "bench.sh: must run as root (namespaces, XDP)" >&2; exit 1; }
(($(nproc) >= 2)) || { echo "bench.sh: needs 2 CPUs (generator and DUT on separate cores)" >&2; exit 1; }
has() { [[ " $SYSTEMS " == *" $1 "* ]]; }
if has ovs; then
    for t in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-appctl ovs-ofctl; do
        command -v $t >/dev/null || { echo "bench.sh: $t missing: apt-get install openvswitch-switch (or drop ovs from --systems)" >&2; exit 1; }
    done
fi
if has testpmd; then
    command -v dpdk-testpmd >/dev/null || { echo "bench.sh: dpdk-testpmd missing: apt-get install dpdk-dev librte-net-af-xdp23 (or drop testpmd from --systems)" >&2; exit 1; }
fi
command -v tshark >/dev/null || { echo "bench.sh: tshark missing (correctness check): apt-get install tshark" >&2; exit 1; }

CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR
if [[ -z $PKTGEN ]]; then
    (cd "$ROOT" && cargo build --release -q -p xvpc-pktgen)
    PKTGEN=$CARGO_TARGET_DIR/release/xvpc-pktgen
fi
if [[ -z $XVPC ]] && has xvpc; then
    (cd "$ROOT" && cargo build --release -q -p xvpc-dataplane)
    XVPC=$CARGO_TARGET_DIR/release/xvpc
fi
[[ -x $PKTGEN ]] || { echo "bench.sh: $PKTGEN is not executable" >&2; exit 1; }
has xvpc && { [[ -x $XVPC ]] || { echo "bench.sh: $XVPC is not executable" >&2; exit 1; }; }

TAG=xb$$
GEN=$TAG-gen DUT=$TAG-dut SNK=$TAG-snk
WORK=$(mktemp -d /tmp/xvpc-bench.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        [[ -n $p ]] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [[ -n $p ]] && wait "$p" 2>/dev/null || true
    done
    PIDS=()
    for ns in $GEN $DUT $SNK; do
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

# Addresses: guest 198.18.1.2 (behind d0, gateway 198.18.1.1), remote overlay 198.18.2.2;
# underlay 198.19.0.1 (DUT, d1) <-> 198.19.0.2 (s0). VNI 100, UDP 4789.
GUEST_MAC=02:00:00:00:01:02
GW_MAC=02:00:00:00:01:01
REMOTE_OVL_MAC=02:00:00:00:02:02
DUT_FAB_MAC=02:00:00:00:0f:01
PEER_FAB_MAC=02:00:00:00:0f:02
VNI=100

topology() {
    cleanup
    for ns in $GEN $DUT $SNK; do
        ip netns add "$ns"
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip -n $GEN link add g0 type veth peer name d0 netns $DUT
    ip -n $DUT link add d1 type veth peer name s0 netns $SNK
    ip -n $GEN link set g0 address $GUEST_MAC up
    ip -n $DUT link set d0 address $GW_MAC up
    ip -n $DUT link set d1 address $DUT_FAB_MAC up
    ip -n $SNK link set s0 address $PEER_FAB_MAC up
    # GRO gives a veth a NAPI instance, so XDP frames can be sent to it without an XDP
    # program there, and its receive work can be moved to a thread on a chosen core.
    local nd
    for nd in "$GEN g0" "$DUT d0" "$DUT d1" "$SNK s0"; do
        set -- $nd
        ip netns exec "$1" ethtool -K "$2" gro on >/dev/null
        # Kernel-built packets (vxlan) must carry complete checksums on veth.
        ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
        if ((STEER)); then
            ip netns exec "$1" sh -c "echo 1 > /sys/class/net/$2/threaded"
        fi
    done
}

setup_kernel_vxlan() {
    ip -n $DUT addr add 198.18.1.1/24 dev d0
    ip -n $DUT addr add 198.19.0.1/24 dev d1
    ip netns exec $DUT sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0
    ip -n $DUT link add vx100 type vxlan id $VNI local 198.19.0.1 remote 198.19.0.2 \
        dstport 4789 dev d1 nolearning
    # Inner frames from the fabric are addressed to the guest's gateway MAC, as for xvpc.
    ip -n $DUT link set vx100 address $GW_MAC up
    ip -n $DUT route add 198.18.2.0/24 dev vx100
    ip -n $DUT neigh add 198.18.2.2 lladdr $REMOTE_OVL_MAC dev vx100
    ip -n $DUT neigh add 198.19.0.2 lladdr $PEER_FAB_MAC dev d1
    ip -n $DUT neigh add 198.18.1.2 lladdr $GUEST_MAC dev d0
}

setup_xdp_redirect() {
    ip netns exec $DUT "$PKTGEN" redirect --in d0 --out d1 --duration $((SECONDS_PER_RUN * 2 + 60)) \
        >/dev/null 2>&1 &
    PIDS+=($!)
    wait_xdp $DUT d0
}

XVPC_PID=
setup_xvpc() {
    cat >"$WORK/xvpc.toml" <<EOF
[guest]
interface = "d0"
vni = $VNI
mac = "$GUEST_MAC"
ipv4 = ["198.18.1.2"]

[gateway]
mac = "$GW_MAC"
ipv4 = "198.18.1.1"

[fabric]
interface = "d1"
underlay_ipv4 = "198.19.0.1"
next_hop_mac = "$PEER_FAB_MAC"
vxlan_port = 4789

[dataplane]
cores = [$DUT_CPU]
control_socket = "$WORK/control.sock"
stats_socket = "$WORK/stats.sock"
${XVPC_DATAPLANE_EXTRA:-}

[[mappings]]
vni = $VNI
overlay_ip = "198.18.2.2"
underlay_ip = "198.19.0.2"
overlay_mac = "$REMOTE_OVL_MAC"
EOF
    rm -f "$WORK/stats.sock" "$WORK/control.sock"
    ip netns exec $DUT "$XVPC" run --config "$WORK/xvpc.toml" >"$WORK/xvpc-final.json" \
        2>"$WORK/xvpc.log" &
    XVPC_PID=$!
    PIDS+=($XVPC_PID)
    local i
    for ((i = 0; i < 200; i++)); do
        [[ -S $WORK/stats.sock ]] && break
        kill -0 $XVPC_PID 2>/dev/null || break
        sleep 0.05
    done
    [[ -S $WORK/stats.sock ]] || { cat "$WORK/xvpc.log" >&2; echo "bench.sh: xvpc did not start" >&2; return 1; }
    wait_xdp $DUT d0
    wait_xdp $DUT d1
}

stop_xvpc() { # SIGTERM; the daemon prints its final counters as JSON on stdout
    [[ -n $XVPC_PID ]] || return 0
    kill -TERM $XVPC_PID 2>/dev/null || true
    wait $XVPC_PID 2>/dev/null || true
    forget_pid $XVPC_PID
    XVPC_PID=
}

OVS_DIR=
ovs_vsctl() { ovs-vsctl --timeout=10 --db="unix:$OVS_DIR/db.sock" "$@"; }
ovs_appctl() { ovs-appctl --timeout=10 -t "$OVS_DIR/vswitchd.ctl" "$@"; }
setup_ovs() {
    OVS_DIR=$WORK/ovs
    rm -rf "$OVS_DIR"
    mkdir -p "$OVS_DIR"
    export OVS_RUNDIR=$OVS_DIR OVS_DBDIR=$OVS_DIR OVS_LOGDIR=$OVS_DIR OVS_SYSCONFDIR=$OVS_DIR
    ovsdb-tool create "$OVS_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ip netns exec $DUT ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" \
        --unixctl="$OVS_DIR/ovsdb.ctl" --log-file="$OVS_DIR/ovsdb.log" 2>/dev/null &
    PIDS+=($!)
    local i
    for ((i = 0; i < 100; i++)); do [[ -S $OVS_DIR/db.sock ]] && break; sleep 0.05; done
    ovs_vsctl --no-wait init
    # The PMD thread on the DUT core; the main thread may run anywhere.
    ovs_vsctl --no-wait set Open_vSwitch . other_config:pmd-cpu-mask=$(printf '0x%x' $((1 << DUT_CPU)))
    ip netns exec $DUT ovs-vswitchd "unix:$OVS_DIR/db.sock" --disable-system \
        --unixctl="$OVS_DIR/vswitchd.ctl" --log-file="$OVS_DIR/vswitchd.log" 2>/dev/null &
    PIDS+=($!)
    for ((i = 0; i < 100; i++)); do [[ -S $OVS_DIR/vswitchd.ctl ]] && break; sleep 0.05; done
    ovs_vsctl add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure \
        -- add-port br-int d0 -- set interface d0 type=afxdp options:xdp-mode=native ofport_request=1 \
        -- add-port br-int vx0 -- set interface vx0 type=vxlan ofport_request=2 \
            options:remote_ip=198.19.0.2 options:local_ip=198.19.0.1 options:key=$VNI
    ovs_vsctl add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=secure \
            other_config:hwaddr=$DUT_FAB_MAC \
        -- add-port br-phy d1 -- set interface d1 type=afxdp options:xdp-mode=native ofport_request=1
    ip -n $DUT addr add 198.19.0.1/24 dev br-phy
    ip -n $DUT link set br-phy up
    ovs_appctl ovs/route/add 198.19.0.2/24 br-phy >/dev/null
    ovs_appctl tnl/arp/set br-phy 198.19.0.2 $PEER_FAB_MAC >/dev/null
    # Explicit flows (no learning, no flooding): guest <-> tunnel, tunnel endpoint <-> d1.
    # Like xvpc and the kernel, decapsulated frames leave with the gateway as source.
    ovs-ofctl add-flow br-int "in_port=1,actions=mod_dl_src:$GW_MAC,mod_dl_dst:$REMOTE_OVL_MAC,output:2"
    ovs-ofctl add-flow br-int "in_port=2,actions=mod_dl_src:$GW_MAC,mod_dl_dst:$GUEST_MAC,output:1"
    ovs-ofctl add-flow br-phy "in_port=LOCAL,actions=output:1"
    ovs-ofctl add-flow br-phy "in_port=1,actions=LOCAL"
    wait_xdp $DUT d0
    wait_xdp $DUT d1
}

setup_testpmd() {
    # io forwarding between two AF_XDP ports; the forwarding lcore is the DUT core, the
    # main lcore (idle) shares the generator's.
    ip netns exec $DUT dpdk-testpmd -l $GEN_CPU,$DUT_CPU --main-lcore $GEN_CPU --no-huge --no-pci \
        -m 1024 --file-prefix "$TAG" --log-level=*:warning \
        --vdev "net_af_xdp0,iface=d0,start_queue=0,queue_count=1" \
        --vdev "net_af_xdp1,iface=d1,start_queue=0,queue_count=1" \
        -- --forward-mode=io --auto-start --stats-period=$((SECONDS_PER_RUN * 4 + 60)) \
        --nb-cores=1 --total-num-mbufs=16384 >"$WORK/testpmd.log" 2>&1 &
    PIDS+=($!)
    wait_xdp $DUT d0 || { tail -20 "$WORK/testpmd.log" >&2; return 1; }
    wait_xdp $DUT d1 || { tail -20 "$WORK/testpmd.log" >&2; return 1; }
    local i
    for ((i = 0; i < 100; i++)); do grep -q 'Press enter\|Port statistics\|io packet forwarding' "$WORK/testpmd.log" && break; sleep 0.1; done
}

wait_xdp() { # ns dev: until an XDP program is attached (bounded)
    local i
    for ((i = 0; i < 200; i++)); do
        ip -n "$1" link show "$2" | grep -q xdp && return 0
        sleep 0.05
    done
    echo "bench.sh: no XDP program on $2 in $1 after 10 s" >&2
    return 1
}

pin_napi() { # dev cpu: pin the threaded-NAPI kthreads of dev (re-run after XDP attach)
    local pid
    for pid in $(pgrep -f "^napi/$1-" || true); do
        taskset -pc "$2" "$pid" >/dev/null
    done
}

cpu_busy_jiffies() { # cpu -> busy jiffies (everything but idle and iowait)
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

field() { sed -n "s/.*\b$2=\([0-9.]*\).*/\1/p" <<<"$1" | head -1; }

forget_pid() { # drop a reaped pid so cleanup never signals a recycled one
    local p keep=()
    for p in "${PIDS[@]:-}"; do [[ -n $p && $p != "$1" ]] && keep+=("$p"); done
    PIDS=("${keep[@]:-}")
}

# Direction-dependent roles: who sends, who receives, what.
roles() { # dir -> sets TX_NS TX_DEV RX_NS RX_DEV RX_CORE_DEV GEN_ARGS
    if [[ $1 == egress ]]; then
        TX_NS=$GEN TX_DEV=g0 RX_NS=$SNK RX_DEV=s0 DUT_IN=d0
        GEN_ARGS=(--src-mac $GUEST_MAC --dst-mac $GW_MAC --src-ip 198.18.1.2 --dst-ip 198.18.2.2)
    else
        TX_NS=$SNK TX_DEV=s0 RX_NS=$GEN RX_DEV=g0 DUT_IN=d1
        GEN_ARGS=(--vxlan-vni $VNI --outer-src-mac $PEER_FAB_MAC --outer-dst-mac $DUT_FAB_MAC
            --outer-src-ip 198.19.0.2 --outer-dst-ip 198.19.0.1
            --src-mac $REMOTE_OVL_MAC --dst-mac $GW_MAC --src-ip 198.18.2.2 --dst-ip 198.18.1.2)
        # The inner frame is addressed to the guest for xvpc (it checks), to vx100's MAC for
        # the kernel, and OVS rewrites it: the guest's MAC everywhere except the kernel.
        [[ $2 == kernel-vxlan ]] || GEN_ARGS[13]=$GUEST_MAC
    fi
}

gen_size() { [[ $1 == ingress ]] && echo $(($2 + 50)) || echo "$2"; }

# One generator run against a running sink; sets SINK_RES GEN_RES BUSY_NS.
run_once() { # dir size rate seconds histfile
    local dir=$1 size=$2 rate=$3 secs=$4 hist=$5
    local sink_out=$WORK/sink.txt
    ip netns exec $RX_NS "$PKTGEN" sink --dev $RX_DEV --duration $((secs + 30)) --idle-exit $SINK_IDLE \
        ${hist:+--hist "$hist"} >"$sink_out" 2>/dev/null &
    local sink_pid=$!
    PIDS+=($sink_pid)
    wait_xdp $RX_NS $RX_DEV
    if ((STEER)); then
        # The DUT's receive on its own core; the sink's next to the generator.
        pin_napi $DUT_IN $DUT_CPU
        pin_napi $RX_DEV $GEN_CPU
    fi
    local b0 b1 perf_pid=
    if [[ -n ${PERF_OUT:-} && -n $XVPC_PID ]]; then
        perf record -q -g -p "$XVPC_PID" -o "$PERF_OUT.data" -- sleep "$secs" >/dev/null 2>&1 &
        perf_pid=$!
        PIDS+=($perf_pid)
    fi
    b0=$(cpu_busy_jiffies $DUT_CPU)
    local gen_out=$WORK/gen.txt gen_pid
    ip netns exec $TX_NS taskset -c $GEN_CPU "$PKTGEN" --dev $TX_DEV --tx $TX "${GEN_ARGS[@]}" \
        --size "$(gen_size "$dir" "$size")" --flows $FLOWS --count 1000000000 --duration "$secs" \
        --rate "$rate" --ts-every 16 >"$gen_out" &
    gen_pid=$!
    PIDS+=($gen_pid)
    wait $gen_pid || true
    forget_pid $gen_pid
    b1=$(cpu_busy_jiffies $DUT_CPU)
    GEN_RES=$(grep '^RESULT' "$gen_out" || true)
    # Every mode a measurement's runs used (one, unless the kernel changed its mind mid-run).
    local mode
    mode=$(sed -n 's/.*\bmode=\([a-z]*\).*/\1/p' <<<"$GEN_RES" | head -1)
    [[ -n $mode && " $GEN_MODES " != *" $mode "* ]] && GEN_MODES="${GEN_MODES:+$GEN_MODES }$mode"
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid" || true
        forget_pid "$perf_pid"
        perf report -i "$PERF_OUT.data" --stdio --no-children --sort symbol 2>/dev/null \
            | grep -E '^ +[0-9]' | head -25 >"$PERF_OUT.txt" || true
    fi
    # The sink keeps counting until no marked frame came for SINK_IDLE s (1 s), so frames
    # still queued in the DUT when the generator stops are counted. Bound that wait: a sink
    # that saw nothing at all would otherwise sit out its whole --duration. On SIGTERM it
    # still prints its counts.
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$sink_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -TERM "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" || true
    forget_pid "$sink_pid"
    SINK_RES=$(grep '^RESULT' "$sink_out" || true)
    BUSY_NS=$(((b1 - b0) * 1000000000 / $(getconf CLK_TCK)))
}

# RFC 2544 §26.1 throughput, "zero-loss rate": the highest offered rate at which the sink
# counts every frame the generator sent. The first trial runs at the max forwarding rate the
# sink measured (lossless: done); otherwise SEARCH_STEPS bisections of [0, that rate). Every
# trial has a fresh sink (run_once), which waits for stragglers. Recorded: the generator's
# own measured rate in the best lossless trial (what was really offered; the pacing may fall
# short of --rate), and in the lowest lossy one.
zero_loss_search() { # label dir size start_pps -> sets ZL_PPS ZL_LOSSY_PPS
    local label=$1 dir=$2 size=$3 rate=${4%.*} lo=0 hi= n=0 sent got offered ok verdict
    ZL_PPS=0 ZL_LOSSY_PPS=
    if [[ -z $rate ]] || ((rate < 1)); then
        echo "zero-loss $label: nothing forwarded at full speed, no search; zero-loss rate 0" >&2
        return
    fi
    while :; do
        n=$((n + 1))
        run_once "$dir" "$size" "$rate" "$TRIAL_SECONDS" ""
        sent=$(field "$GEN_RES" sent) got=$(field "$SINK_RES" marked) offered=$(field "$GEN_RES" pps)
        sent=${sent:-0} got=${got:-0} offered=${offered%.*}
        ok=0
        ((sent > 0 && got >= sent)) && ok=1
        if ((ok)); then
            lo=$rate ZL_PPS=${offered:-$rate} verdict=lossless
        else
            hi=$rate ZL_LOSSY_PPS=${offered:-$rate} verdict=LOSS
        fi
        ((sent == 0)) && verdict="LOSS (the generator sent nothing: ${GEN_RES:-no RESULT line})"
        ((got > sent && sent > 0)) && verdict="lossless, but $((got - sent)) more frames arrived than were sent"
        [[ -n $offered ]] && ((offered * 10 < rate * 9)) && verdict="$verdict; the generator fell short of --rate"
        awk -v l="$label" -v n=$n -v t=$((SEARCH_STEPS + 1)) -v r=$rate -v o="${offered:-?}" \
            -v s=$sent -v g=$got -v v="$verdict" -v lo=$lo -v hi="${hi:-}" 'BEGIN {
            lost = s - g; if (lost < 0) lost = 0
            printf "zero-loss %s: trial %d/%d at %d pps (offered %s): sent %d, received %d, lost %d (%.4f %%): %s; zero-loss rate in [%d, %s)\n",
                l, n, t, r, o, s, g, lost, s ? 100 * lost / s : 0, v, lo, hi == "" ? "?" : hi
        }' >&2
        ((n == 1 && ok)) && break # lossless at the max forwarding rate
        ((n > SEARCH_STEPS)) && break
        # The generator sends rate/1000 frames (integer) per 1 ms tick from 1000 pps up, so
        # it can only offer whole kpps there: bisect on those, stop when no new one is left.
        rate=$(((lo + hi) / 2))
        ((rate >= 1000)) && rate=$((rate / 1000 * 1000))
        ((rate > lo && rate < hi)) || break
    done
    if ((ZL_PPS == 0)); then
        echo "zero-loss $label: no lossless rate found (the lowest trial, $hi pps, lost frames): zero-loss rate 0" >&2
    else
        echo "zero-loss $label: $ZL_PPS pps" >&2
    fi
}

# Correctness: capture a few forwarded frames at a low rate and dissect them with tshark.
# Egress: outer 198.19.0.1 -> 198.19.0.2 port 4789, VNI 100, inner 198.18.1.2 -> 198.18.2.2
# to the remote overlay MAC, inner UDP checksum right, marker, inner frame length = size.
# Plain forwarders: the frame exactly as sent. Ingress: inner frame to the guest's MAC.
check_output() { # sys dir size -> sets CHECK (ok / FAIL:reason)
    local sys=$1 dir=$2 size=$3 pcap=$WORK/check.pcap
    rm -f "$pcap"
    ip netns exec $RX_NS timeout 10 tcpdump -Q in -i $RX_DEV -c 20 -w "$pcap" -U 'udp' \
        >/dev/null 2>&1 &
    local cap_pid=$!
    PIDS+=($cap_pid)
    sleep 1
    ip netns exec $TX_NS taskset -c $GEN_CPU "$PKTGEN" --dev $TX_DEV --tx $TX "${GEN_ARGS[@]}" \
        --size "$(gen_size "$dir" "$size")" --flows 4 --count 100 --duration 3 --rate 1000 \
        --ts-every 1 >/dev/null
    wait $cap_pid || true
    forget_pid $cap_pid
    local enc=0
    [[ $dir == egress && $sys != xdp-redirect && $sys != testpmd ]] && enc=1
    local want
    if ((enc)); then
        want="$((size + 50))|$PEER_FAB_MAC,$REMOTE_OVL_MAC|198.19.0.1,198.18.1.2|198.19.0.2,198.18.2.2|4789,9|$VNI"
    elif [[ $dir == egress ]]; then
        want="$size|$GW_MAC|198.18.1.2|198.18.2.2|9|"
    else
        want="$size|$GUEST_MAC|198.18.2.2|198.18.1.2|9|"
    fi
    local rows n bad=0 line
    rows=$(tshark -r "$pcap" -o udp.check_checksum:TRUE -d udp.port==4789,vxlan -T fields \
        -E separator='|' -e frame.len -e eth.dst -e ip.src -e ip.dst -e udp.dstport \
        -e vxlan.vni -e udp.checksum.status 2>/dev/null || true)
    n=$(grep -c . <<<"$rows" || true)
    if ((n == 0)); then CHECK="FAIL:nothing-captured"; echo "check $sys/$dir/$size: nothing captured" >&2; return; fi
    while IFS= read -r line; do
        # Headers as expected; every UDP checksum tshark verified is good (status 0 = bad;
        # the zero outer VXLAN checksum is "not present").
        if [[ ${line%|*} != "$want" ]]; then
            bad=1; echo "check $sys/$dir/$size: got  $line / want $want|..." >&2; break
        fi
        if [[ ,${line##*|}, == *,0,* ]]; then
            bad=1; echo "check $sys/$dir/$size: bad UDP checksum: $line" >&2; break
        fi
    done <<<"$rows"
    # The marker "XVPG" right after the innermost UDP header, in every captured frame.
    local off=42
    ((enc)) && off=92
    /usr/bin/python3 "$ROOT/benches/pktgen/pcap_marker.py" "$pcap" $off >&2 || bad=1
    if ((bad)); then CHECK="FAIL"; else CHECK="ok($n)"; fi
}

measure() { # system dir size rep -> sets ROW (runs in this shell so cleanup knows every pid)
    local sys=$1 dir=$2 size=$3 rep=$4
    topology
    case $sys in
        kernel-vxlan) setup_kernel_vxlan ;;
        xdp-redirect) setup_xdp_redirect ;;
        xvpc) setup_xvpc ;;
        ovs) setup_ovs ;;
        testpmd) setup_testpmd ;;
    esac
    roles "$dir" "$sys"
    PERF_OUT=
    ((PERF && rep == 1)) && [[ $sys == xvpc ]] && PERF_OUT=$OUT/perf-xvpc-$dir-$size-$([[ $STEER == 1 ]] && echo steered || echo unsteered)
    GEN_MODES=
    run_once "$dir" "$size" 0 "$SECONDS_PER_RUN" ""
    PERF_OUT=
    local gen_pps sink_pps marked per_pkt p50 p99
    gen_pps=$(field "$GEN_RES" pps)
    sink_pps=$(field "$SINK_RES" pps)
    marked=$(field "$SINK_RES" marked)
    if [[ -n $marked && $marked -gt 0 ]]; then per_pkt=$((BUSY_NS / marked)); else per_pkt=; fi
    local zl= zl_lossy=
    if ((ZL)); then
        zero_loss_search "$sys $dir $size B" "$dir" "$size" "${sink_pps:-0}"
        zl=$ZL_PPS zl_lossy=$ZL_LOSSY_PPS
    fi
    # Latency at half the zero-loss rate (at the max rate it is mostly queueing, and above
    # the zero-loss rate the DUT's queues fill); at half the max forwarding rate only when
    # there is no zero-loss rate.
    p50= p99=
    local lat_base= base
    if [[ -n $zl ]] && ((zl > 0)); then
        base=$zl lat_base=zero-loss
    else
        base=${sink_pps%.*} lat_base=max
    fi
    if ((LAT && rep <= LAT_REPS)) && [[ -n $base ]] && ((base > 1000)); then
        local hist=$OUT/latency-$sys-$dir-$size-$rep.hist
        echo "latency $sys $dir $size B: at $((base / 2)) pps (50 % of the $lat_base rate)" >&2
        run_once "$dir" "$size" $((base / 2)) "$SECONDS_PER_RUN" "$hist"
        p50=$(field "$SINK_RES" p50_ns)
        p99=$(field "$SINK_RES" p99_ns)
    else
        lat_base=
    fi
    CHECK=-
    if ((rep == 1)); then
        check_output "$sys" "$dir" "$size"
    fi
    local drops=
    if [[ $sys == xvpc ]]; then
        stop_xvpc
        cp "$WORK/xvpc-final.json" "$OUT/xvpc-final-$dir-$size-$rep.json" 2>/dev/null || true
        drops=$(/usr/bin/python3 - "$WORK/xvpc-final.json" <<'PYEOF' || true
import json, sys
def walk(v, path, out):
    if isinstance(v, dict):
        for k, x in v.items():
            walk(x, path + [k], out)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            walk(x, path + [str(i)], out)
    elif isinstance(v, (int, float)) and ("drop" in ".".join(path).lower() or "ring_full" in ".".join(path).lower()) and v:
        out.append(f"{'.'.join(path)}={v}")
try:
    out = []
    walk(json.load(open(sys.argv[1])), [], out)
    print(";".join(out))
except Exception as e:
    print(f"unreadable:{e}")
PYEOF
)
    fi
    ROW="$rep,$size,$sys,$dir,${gen_pps:-0},${sink_pps:-0},${marked:-0},$zl,$zl_lossy,${per_pkt},${p50},${p99},$lat_base,$STEER,$CHECK,\"${drops}\",${GEN_MODES// /+}"
    cleanup
}

# Smoke runs (CI) keep their plots out of the published docs/img.
((SMOKE)) && IMG=$OUT
mkdir -p "$OUT" "$IMG"
CSV=$OUT/results.csv
echo "rep,size,system,dir,gen_pps,sink_pps,sink_frames,zero_loss_pps,zl_lossy_pps,dut_ns_per_pkt,p50_ns,p99_ns,lat_base,steered,check,dut_drops,gen_mode" >"$CSV"
T_START=$(date +%s)
EST_DONE=0
for ((rep = 1; rep <= REPS; rep++)); do
    est=$(est_rep $rep)
    if [[ -n $TIME_LIMIT ]] && ((rep > 1)); then
        # Predict this repetition from the estimate, scaled by how the finished ones went.
        elapsed=$(($(date +%s) - T_START))
        predicted=$((est * elapsed / EST_DONE))
        if ((elapsed + predicted > TIME_LIMIT * 60)); then
            echo "bench.sh: --time-limit $TIME_LIMIT min: stopping after $((rep - 1)) of $REPS repetitions" \
                "(${elapsed} s so far, the next would take about ${predicted} s)" >&2
            break
        fi
    fi
    t_rep=$(date +%s)
    for size in $SIZES; do
        for dir in $DIRS; do
            for sys in $SYSTEMS; do
                skipped "$sys" "$dir" && continue
                t0=$(date +%s)
                measure "$sys" "$dir" "$size" "$rep"
                echo "$ROW" | tee -a "$CSV" >&2
                echo "bench.sh: $sys $dir $size B rep $rep took $(($(date +%s) - t0)) s" >&2
            done
        done
    done
    EST_DONE=$((EST_DONE + est))
    echo "bench.sh: repetition $rep took $(($(date +%s) - t_rep)) s (estimated $est s)" >&2
done

status=0
/usr/bin/python3 "$ROOT/benches/pktgen/report.py" "$CSV" "$OUT" "$IMG" || status=$?
echo "bench.sh: results in $CSV and $OUT/results.md" >&2
exit $status
