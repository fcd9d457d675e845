#!/usr/bin/env bash
# Linux kernel pktgen driver for real hosts: sends a bounded burst of UDP frames out of one
# device (normally the port facing xvpc's guest side). Only the benchmarking ranges
# 198.18.0.0/15 and 2001:2::/48 are accepted. Hosts without the pktgen module: exit 2.
#
# See docs/BENCHMARKING.md. On machines without pktgen use xvpc-pktgen (XDP live frames).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/pktgen.sh --dev DEV --dst-ip IP --dst-mac MAC --count N [options]

Sends N UDP frames with the kernel pktgen module, then prints the result.

required:
  --dev DEV          egress device (e.g. the port facing the dataplane's guest side)
  --dst-ip IP        destination (198.18.0.0/15 or 2001:2::/48 only)
  --dst-mac MAC      destination MAC (the guest port's peer)
  --count N          frames to send (1..1000000000; pktgen's 0 = forever is refused)
options:
  --src-ip IP        source address (same ranges; default 198.18.0.1 or 2001:2::1)
  --size BYTES       frame size without FCS, 64..1500 (default 64; pktgen pkt_size + 4 = wire)
  --flows N          UDP source ports udp_src_min .. udp_src_min+N-1 (default 1)
  --rate PPS         0 = full speed (default); otherwise pktgen's "ratep"
  --threads N        pktgen kernel threads (kpktgend_0..N-1), default 1
  --clone-skb N      reuse each skb N times (default 1000; 0 for a fresh skb per frame)
  --timeout SEC      give up after SEC seconds (default 120)
  -h, --help         this text

exit status: 0 done, 1 error, 2 no pktgen module on this host, 64 bad arguments
EOF
}

die() { echo "pktgen.sh: $*" >&2; exit 1; }
bad() { echo "pktgen.sh: $*" >&2; echo "try --help" >&2; exit 64; }

# --- address guard (same rule as xvpc-pktgen) -------------------------------------------
in_bench_range() {
    local ip=$1
    if [[ $ip =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]]; then
        local a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]} c=${BASH_REMATCH[3]} d=${BASH_REMATCH[4]}
        ((a <= 255 && b <= 255 && c <= 255 && d <= 255)) || return 1
        ((a == 198 && (b == 18 || b == 19)))
        return
    fi
    # IPv6: let python expand it; the first three groups must be 2001:0002:0000.
    /usr/bin/python3 - "$ip" <<'EOF' 2>/dev/null
import ipaddress, sys
ip = ipaddress.ip_address(sys.argv[1])
sys.exit(0 if ip.version == 6 and ip in ipaddress.ip_network("2001:2::/48") else 1)
EOF
}

is_v6() { [[ $1 == *:* ]]; }

DEV="" DST="" SRC="" DMAC="" COUNT="" SIZE=64 FLOWS=1 RATE=0 THREADS=1 CLONE=1000 TIMEOUT=120
while (($#)); do
    case $1 in
        --dev) DEV=${2:-}; shift 2 ;;
        --dst-ip) DST=${2:-}; shift 2 ;;
        --src-ip) SRC=${2:-}; shift 2 ;;
        --dst-mac) DMAC=${2:-}; shift 2 ;;
        --count) COUNT=${2:-}; shift 2 ;;
        --size) SIZE=${2:-}; shift 2 ;;
        --flows) FLOWS=${2:-}; shift 2 ;;
        --rate) RATE=${2:-}; shift 2 ;;
        --threads) THREADS=${2:-}; shift 2 ;;
        --clone-skb) CLONE=${2:-}; shift 2 ;;
        --timeout) TIMEOUT=${2:-}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) bad "unknown option $1" ;;
    esac
done

[[ -n $DEV ]] || bad "--dev is required"
[[ -n $DST ]] || bad "--dst-ip is required"
[[ -n $DMAC ]] || bad "--dst-mac is required"
[[ -n $COUNT ]] || bad "--count is required (a bound; pktgen's 0 would send forever)"
[[ $DEV =~ ^[A-Za-z0-9_.@-]{1,15}$ ]] || bad "invalid device name $DEV"
[[ $DMAC =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || bad "invalid MAC $DMAC"
for n in COUNT SIZE FLOWS RATE THREADS CLONE TIMEOUT; do
    [[ ${!n} =~ ^[0-9]+$ ]] || bad "--${n,,} must be a non-negative integer"
done
((COUNT >= 1 && COUNT <= 1000000000)) || bad "--count must be 1..1000000000"
((SIZE >= 64 && SIZE <= 1500)) || bad "--size must be 64..1500"
((FLOWS >= 1 && FLOWS <= 60000)) || bad "--flows must be 1..60000"
((THREADS >= 1)) || bad "--threads must be at least 1"
((TIMEOUT >= 1)) || bad "--timeout must be at least 1"
if [[ -z $SRC ]]; then
    if is_v6 "$DST"; then SRC=2001:2::1; else SRC=198.18.0.1; fi
fi
for ip in "$SRC" "$DST"; do
    in_bench_range "$ip" || bad "$ip is outside the benchmarking ranges 198.18.0.0/15 and 2001:2::/48: refusing"
done
if is_v6 "$SRC"; then v6s=1; else v6s=0; fi
if is_v6 "$DST"; then v6d=1; else v6d=0; fi
((v6s == v6d)) || bad "--src-ip and --dst-ip must be the same IP version"
((EUID == 0)) || die "must run as root (loads a kernel module and writes /proc/net/pktgen)"

# --- the module -------------------------------------------------------------------------
if [[ ! -d /proc/net/pktgen ]]; then
    if ! modprobe pktgen 2>/dev/null || [[ ! -d /proc/net/pktgen ]]; then
        echo "pktgen.sh: the kernel pktgen module is not available on this host ($(uname -r))." >&2
        echo "pktgen.sh: use xvpc-pktgen (XDP live frames, benches/pktgen) instead." >&2
        exit 2
    fi
fi
[[ -e /sys/class/net/$DEV ]] || die "no device $DEV in this network namespace"
NCPU=$(nproc)
((THREADS <= NCPU)) || bad "--threads $THREADS exceeds the $NCPU CPUs"

pgset() { # file command
    echo "$2" >"$1"
    if ! grep -q "^Result: OK" "$1" 2>/dev/null; then
        # Control files report the outcome of the last command on a "Result:" line.
        grep "^Result:" "$1" >&2 || true
        die "pktgen rejected '$2' in $1"
    fi
}

cleanup() {
    if [[ -w /proc/net/pktgen/pgctrl ]]; then
        echo stop >/proc/net/pktgen/pgctrl 2>/dev/null || true
        for ((t = 0; t < THREADS; t++)); do
            echo rem_device_all >/proc/net/pktgen/kpktgend_$t 2>/dev/null || true
        done
    fi
}
trap cleanup EXIT INT TERM

PER=$(( (COUNT + THREADS - 1) / THREADS ))
for ((t = 0; t < THREADS; t++)); do
    pgset /proc/net/pktgen/kpktgend_$t rem_device_all
    # One pktgen device per thread: dev@t (pktgen's multi-queue naming).
    name="$DEV@$t"
    pgset /proc/net/pktgen/kpktgend_$t "add_device $name"
    f=/proc/net/pktgen/$name
    pgset "$f" "count $PER"
    pgset "$f" "clone_skb $CLONE"
    pgset "$f" "pkt_size $((SIZE - 4 < 60 ? 60 : SIZE - 4))"
    pgset "$f" "burst 32" 2>/dev/null || true
    if ((RATE > 0)); then
        pgset "$f" "ratep $(( (RATE + THREADS - 1) / THREADS ))"
    else
        pgset "$f" "delay 0"
    fi
    pgset "$f" "dst_mac $DMAC"
    if is_v6 "$DST"; then
        pgset "$f" "dst6 $DST"
        pgset "$f" "src6 $SRC"
    else
        pgset "$f" "dst_min $DST"
        pgset "$f" "dst_max $DST"
        pgset "$f" "src_min $SRC"
        pgset "$f" "src_max $SRC"
    fi
    pgset "$f" "udp_src_min 1024"
    pgset "$f" "udp_src_max $((1024 + FLOWS - 1))"
    pgset "$f" "udp_dst_min 9"
    pgset "$f" "udp_dst_max 9"
    pgset "$f" "flows $FLOWS"
    pgset "$f" "flowlen 32"
    pgset "$f" "flag UDPSRC_RND"
    pgset "$f" "queue_map_min $t"
    pgset "$f" "queue_map_max $t"
done

echo "pktgen.sh: sending $COUNT frames of $SIZE bytes on $DEV ($SRC -> $DST) with $THREADS thread(s)" >&2
# "start" blocks until every device is done; bound it with a timer.
( sleep "$TIMEOUT"; echo stop >/proc/net/pktgen/pgctrl 2>/dev/null ) &
TIMER=$!
echo start >/proc/net/pktgen/pgctrl || true
kill "$TIMER" 2>/dev/null || true
wait "$TIMER" 2>/dev/null || true

TOTAL=0
for ((t = 0; t < THREADS; t++)); do
    f=/proc/net/pktgen/$DEV@$t
    # "Result: OK: 1234(c1200+d34) usec, 1000000 (60byte,0frags)" and "  1000000pps ..."
    sent=$(sed -n 's/.*sofar: \([0-9]*\).*/\1/p' "$f" | head -1)
    grep -A2 "^Result:" "$f" >&2 || true
    TOTAL=$((TOTAL + ${sent:-0}))
done
echo "RESULT sent=$TOTAL"
