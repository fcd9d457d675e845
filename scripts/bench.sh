#!/usr/bin/env bash
# Side-by-side forwarding benchmark: gen ns —veth— DUT ns —veth— sink ns.
#
#   gen  (xvpc-pktgen, XDP live frames, CPU 0)
#    g0 ─── d0  DUT  d1 ─── s0  sink (xvpc-pktgen sink: counts marked frames, latency)
#
# Systems (interleaved per repetition: A B C A B C ...):
#   kernel-vxlan  Linux routes guest traffic into a vxlan device (the reference: ratio 1.0)
#   xdp-redirect  XDP redirect d0 -> d1 without encapsulation (the machine's ceiling)
#   xvpc          TODO: the xvpc daemon (egress encapsulation, then ingress decapsulation)
#                 is added when `xvpc run --config` lands; see docs/BENCHMARKING.md.
#
# Only 198.18.0.0/15 is used. Everything is torn down on exit, Ctrl-C or failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=5
SIZES="64 512 1400"
SECONDS_PER_RUN=5
SYSTEMS="kernel-vxlan xdp-redirect"
OUT="$ROOT/target/bench"
IMG="$ROOT/docs/img"
STEER=1
FLOWS=64
PKTGEN="${PKTGEN:-}"
GEN_CPU=0
DUT_CPU=1

usage() {
    cat <<'EOF'
usage: scripts/bench.sh [--reps N] [--sizes "64 1400"] [--seconds S] [--systems "..."]
                        [--out DIR] [--no-steer] [--smoke]

  --reps N        repetitions, systems interleaved within each (default 5)
  --sizes LIST    frame sizes in bytes, 64..1450 (default "64 512 1400")
  --seconds S     generator run time per measurement (default 5)
  --systems LIST  any of: kernel-vxlan xdp-redirect (default both; xvpc: TODO)
  --out DIR       CSV and Markdown results (default target/bench)
  --no-steer      leave the DUT's receive work in the sender's softirq (veth default)
                  instead of a threaded NAPI pinned to the DUT core
  --smoke         one size (64), one repetition, 2 seconds: a CI check that it all works
  env PKTGEN      path to xvpc-pktgen (default: build it in release mode)

Writes $OUT/results.csv, $OUT/results.md and docs/img/throughput.png (with gnuplot).
EOF
}

while (($#)); do
    case $1 in
        --reps) REPS=$2; shift 2 ;;
        --sizes) SIZES=$2; shift 2 ;;
        --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
        --systems) SYSTEMS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-steer) STEER=0; shift ;;
        --smoke) REPS=1; SIZES=64; SECONDS_PER_RUN=2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 64 ;;
    esac
done
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 && $REPS -le 100 ]] || { echo "bench.sh: --reps 1..100" >&2; exit 64; }
[[ $SECONDS_PER_RUN =~ ^[0-9]+$ && $SECONDS_PER_RUN -ge 1 && $SECONDS_PER_RUN -le 600 ]] \
    || { echo "bench.sh: --seconds 1..600" >&2; exit 64; }
for s in $SIZES; do
    [[ $s =~ ^[0-9]+$ && $s -ge 64 && $s -le 1450 ]] || { echo "bench.sh: size $s not in 64..1450" >&2; exit 64; }
done
for s in $SYSTEMS; do
    case $s in
        kernel-vxlan|xdp-redirect) ;;
        xvpc) echo "bench.sh: xvpc is not wired in yet (TODO: daemon)" >&2; exit 64 ;;
        *) echo "bench.sh: unknown system $s" >&2; exit 64 ;;
    esac
done
((EUID == 0)) || { echo "bench.sh: must run as root (namespaces, XDP)" >&2; exit 1; }
(($(nproc) >= 2)) || { echo "bench.sh: needs 2 CPUs (generator and DUT on separate cores)" >&2; exit 1; }

if [[ -z $PKTGEN ]]; then
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    export CARGO_TARGET_DIR
    (cd "$ROOT" && cargo build --release -q -p xvpc-pktgen)
    PKTGEN=$CARGO_TARGET_DIR/release/xvpc-pktgen
fi
[[ -x $PKTGEN ]] || { echo "bench.sh: $PKTGEN is not executable" >&2; exit 1; }

TAG=xb$$
GEN=$TAG-gen DUT=$TAG-dut SNK=$TAG-snk
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
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

# Addresses: guest 198.18.1.2 behind d0 (198.18.1.1), remote overlay 198.18.2.2, underlay
# 198.19.0.1 (DUT) -> 198.19.0.2 (sink side).
GUEST_MAC=02:00:00:00:01:02
REMOTE_OVL_MAC=02:00:00:00:02:02

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
    ip -n $DUT link set d0 up
    ip -n $DUT link set d1 up
    ip -n $SNK link set s0 up
    # GRO gives the veth a NAPI instance, so XDP frames can be sent to it without an XDP
    # program there, and its receive work can be moved to a thread on the DUT core.
    ip netns exec $DUT ethtool -K d0 gro on >/dev/null
    ip netns exec $SNK ethtool -K s0 gro on >/dev/null
    if ((STEER)); then
        ip netns exec $DUT sh -c 'echo 1 > /sys/class/net/d0/threaded'
        ip netns exec $SNK sh -c 'echo 1 > /sys/class/net/s0/threaded'
    fi
}

mac_of() { ip netns exec "$1" cat "/sys/class/net/$2/address"; }

setup_kernel_vxlan() {
    ip -n $DUT addr add 198.18.1.1/24 dev d0
    ip -n $DUT addr add 198.19.0.1/24 dev d1
    ip netns exec $DUT sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0
    ip -n $DUT link add vx100 type vxlan id 100 local 198.19.0.1 remote 198.19.0.2 \
        dstport 4789 dev d1
    ip -n $DUT link set vx100 up
    ip -n $DUT route add 198.18.2.0/24 dev vx100
    ip -n $DUT neigh add 198.18.2.2 lladdr $REMOTE_OVL_MAC dev vx100
    ip -n $DUT neigh add 198.19.0.2 lladdr "$(mac_of $SNK s0)" dev d1
    ip -n $DUT neigh add 198.18.1.2 lladdr $GUEST_MAC dev d0
}

setup_xdp_redirect() {
    ip netns exec $DUT "$PKTGEN" redirect --in d0 --out d1 --duration $((SECONDS_PER_RUN + 60)) \
        >/dev/null 2>&1 &
    PIDS+=($!)
    wait_xdp $DUT d0
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

measure() { # system size rep -> sets ROW (runs in this shell so cleanup knows every pid)
    local sys=$1 size=$2 rep=$3
    topology
    case $sys in
        kernel-vxlan) setup_kernel_vxlan ;;
        xdp-redirect) setup_xdp_redirect ;;
    esac
    local sink_out=$OUT/sink-$sys-$size-$rep.txt
    ip netns exec $SNK "$PKTGEN" sink --dev s0 --duration $((SECONDS_PER_RUN + 30)) \
        --idle-exit 1 >"$sink_out" 2>/dev/null &
    local sink_pid=$!
    PIDS+=($sink_pid)
    wait_xdp $SNK s0
    if ((STEER)); then
        # The DUT's receive on its own core; the sink's next to the generator.
        pin_napi d0 $DUT_CPU
        pin_napi s0 $GEN_CPU
    fi
    local dmac
    dmac=$(mac_of $DUT d0)
    local b0 b1 gen_out
    b0=$(cpu_busy_jiffies $DUT_CPU)
    gen_out=$(ip netns exec $GEN taskset -c $GEN_CPU "$PKTGEN" --dev g0 --src-mac $GUEST_MAC \
        --dst-mac "$dmac" --src-ip 198.18.1.2 --dst-ip 198.18.2.2 --size "$size" \
        --flows $FLOWS --count 1000000000 --duration "$SECONDS_PER_RUN" --ts-every 16)
    b1=$(cpu_busy_jiffies $DUT_CPU)
    wait "$sink_pid" || true
    forget_pid "$sink_pid"
    local res
    res=$(grep '^RESULT' "$sink_out" || true)
    local gen_pps sink_pps marked p50 p99 hz busy_ns per_pkt
    gen_pps=$(field "$gen_out" pps)
    sink_pps=$(field "$res" pps)
    marked=$(field "$res" marked)
    p50=$(field "$res" p50_ns)
    p99=$(field "$res" p99_ns)
    hz=$(getconf CLK_TCK)
    busy_ns=$(( (b1 - b0) * 1000000000 / hz ))
    if [[ -n $marked && $marked -gt 0 ]]; then per_pkt=$((busy_ns / marked)); else per_pkt=; fi
    ROW="$rep,$size,$sys,${gen_pps:-0},${sink_pps:-0},${marked:-0},${per_pkt},${p50:-},${p99:-},$STEER"
    cleanup
}

mkdir -p "$OUT" "$IMG"
CSV=$OUT/results.csv
echo "rep,size,system,gen_pps,sink_pps,sink_frames,dut_ns_per_pkt,p50_ns,p99_ns,steered" >"$CSV"
for ((rep = 1; rep <= REPS; rep++)); do
    for size in $SIZES; do
        for sys in $SYSTEMS; do
            measure "$sys" "$size" "$rep"
            echo "$ROW" | tee -a "$CSV" >&2
        done
    done
done

/usr/bin/python3 - "$CSV" "$OUT/results.md" "$OUT/throughput.dat" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ref = {(r["rep"], r["size"]): float(r["sink_pps"]) for r in rows if r["system"] == "kernel-vxlan"}
out = ["| system | size (B) | sink Mpps min / median / max | vs kernel vxlan (median) | DUT ns/pkt (median) | p99 latency (median, us) |",
       "| --- | ---: | --- | ---: | ---: | ---: |"]
dat = {}
for sys_, size in sorted({(r["system"], int(r["size"])) for r in rows}, key=lambda k: (k[1], k[0])):
    rs = [r for r in rows if r["system"] == sys_ and int(r["size"]) == size]
    pps = [float(r["sink_pps"]) / 1e6 for r in rs]
    ratios = [float(r["sink_pps"]) / ref[(r["rep"], r["size"])] for r in rs
              if ref.get((r["rep"], r["size"]))]
    ns = [int(r["dut_ns_per_pkt"]) for r in rs if r["dut_ns_per_pkt"]]
    p99 = [int(r["p99_ns"]) / 1000 for r in rs if r["p99_ns"]]
    med = lambda v, f: f.format(statistics.median(v)) if v else "n/a"
    out.append(f"| {sys_} | {size} | {min(pps):.3f} / {statistics.median(pps):.3f} / {max(pps):.3f} | "
               f"{med(ratios, '{:.2f}')} | {med(ns, '{:.0f}')} | {med(p99, '{:.0f}')} |")
    dat.setdefault(sys_, []).append((size, statistics.median(pps)))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
with open(sys.argv[3], "w") as f:
    for sys_, pts in dat.items():
        f.write(f'"{sys_}"\n')
        for size, v in pts:
            f.write(f"{size} {v}\n")
        f.write("\n\n")
print("\n".join(out))
EOF

if command -v gnuplot >/dev/null; then
    gnuplot <<EOF
set terminal pngcairo size 900,540 noenhanced
set output "$IMG/throughput.png"
set title "Forwarding rate at the sink vs frame size (median of $REPS, DUT on one core)"
set xlabel "frame size (bytes)"
set ylabel "Mpps"
set key outside right
set grid
plot for [i=0:*] "$OUT/throughput.dat" index i using 1:2 with linespoints title columnheader(1)
EOF
    echo "bench.sh: plot in $IMG/throughput.png" >&2
fi
echo "bench.sh: results in $CSV and $OUT/results.md" >&2
