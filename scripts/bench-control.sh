#!/usr/bin/env bash
# Control-path benchmarks (issue 4), all in network namespaces built by xvpc-testbed
# (198.18.0.0/15 and 2001:2::/48 only; every process stopped by pid on exit):
#
#   1. inproc       the control thread's full-sync work in-process (compile + clone per worker)
#   2. full-sync    1M mappings into 2 workers, sent by the real agent (file source, through a
#                   timestamping proxy) and by our own control client (same frames, no file
#                   parse): SyncBegin -> all workers swapped, daemon VmHWM per mapping per worker
#   3. convergence  etcd put -> first packet on the new remote, p50/p99 over 1000 changes
#   4. update-rate  forwarding rate with and without 100k upserts/s, interleaved
#
# Results: $OUT/results.txt (one RESULT line per measurement, with the date) and the full
# output in $OUT/<name>.log. See docs/PERFORMANCE.md, section "Control path".
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/target/bench-control"
SMOKE=0
ONLY="inproc full-sync convergence update-rate"
BIN_DIR="${BIN_DIR:-}"

usage() {
    cat <<'USAGE'
usage: scripts/bench-control.sh [--smoke] [--only "full-sync convergence ..."] [--out DIR]

  --smoke   small numbers (20k mappings, 50 changes, 1 s x 1 pair at 20k upserts/s):
            checks that everything works in well under a minute (CI)
  --only    a subset of: inproc full-sync convergence update-rate
  --out     where results go (default target/bench-control)
  env BIN_DIR  directory holding xvpc, xvpc-agent, xvpc-pktgen and xvpc-control-bench
               (default: build them in release mode)
USAGE
}

while (($#)); do
    case $1 in
        --smoke) SMOKE=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench-control.sh: unknown option $1 (try --help)" >&2; exit 64 ;;
    esac
done
for s in $ONLY; do
    case $s in
        inproc|full-sync|convergence|update-rate) ;;
        *) echo "bench-control.sh: unknown measurement $s" >&2; exit 64 ;;
    esac
done
((EUID == 0)) || { echo "bench-control.sh: must run as root (namespaces, XDP, AF_XDP)" >&2; exit 1; }
(($(nproc) >= 2)) || { echo "bench-control.sh: needs 2 CPUs" >&2; exit 1; }
command -v etcd >/dev/null || { echo "bench-control.sh: etcd not found (apt-get install etcd-server)" >&2; exit 1; }

if [[ -z $BIN_DIR ]]; then
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    export CARGO_TARGET_DIR
    (cd "$ROOT" && cargo build --release -q -p xvpc-dataplane -p xvpc-mapping-agent \
        -p xvpc-pktgen -p xvpc-control-bench)
    BIN_DIR=$CARGO_TARGET_DIR/release
fi
BENCH=$BIN_DIR/xvpc-control-bench
for b in xvpc xvpc-agent xvpc-pktgen xvpc-control-bench; do
    [[ -x $BIN_DIR/$b ]] || { echo "bench-control.sh: $BIN_DIR/$b missing" >&2; exit 1; }
done
BINS=(--xvpc "$BIN_DIR/xvpc" --agent "$BIN_DIR/xvpc-agent" --pktgen "$BIN_DIR/xvpc-pktgen")

if ((SMOKE)); then
    INPROC=(--mappings 20000 --workers 2 --reps 3)
    FULL=(--mappings 20000 --workers 2 --driver client)
    FULL_AGENT=(--mappings 20000 --workers 2 --driver agent --load-timeout 60)
    CONV=(--changes 50)
    RATE=(--rate 20000 --seconds 1 --reps 1 --keys 4096)
else
    INPROC=(--mappings 1000000 --workers 2 --reps 5)
    FULL=(--mappings 1000000 --workers 2 --driver client)
    FULL_AGENT=(--mappings 1000000 --workers 2 --driver agent --load-timeout 600)
    CONV=(--changes 1000)
    RATE=(--rate 100000 --seconds 5 --reps 3)
fi

mkdir -p "$OUT"
RESULTS=$OUT/results.txt
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -r) $(nproc) CPUs smoke=$SMOKE" >>"$RESULTS"
# Each measurement is bounded by `timeout`; the binary's guards clean up on SIGTERM too.
run() {
    local name=$1 limit=$2; shift 2
    local log=$OUT/$name-$((++RUN)).log
    echo "== $name $*"
    if ! timeout --signal=TERM --kill-after=10 "$limit" "$BENCH" "$name" "$@" 2>&1 | tee "$log"; then
        echo "bench-control.sh: $name failed (log: $log)" >&2
        return 1
    fi
    grep '^RESULT ' "$log" >>"$RESULTS"
}

RUN=0
status=0
for s in $ONLY; do
    case $s in
        inproc) run inproc 300 "${INPROC[@]}" || status=1 ;;
        full-sync)
            run full-sync 600 "${FULL[@]}" "${BINS[@]}" || status=1
            run full-sync 900 "${FULL_AGENT[@]}" "${BINS[@]}" || status=1
            ;;
        convergence) run convergence 600 "${CONV[@]}" "${BINS[@]}" || status=1 ;;
        update-rate) run update-rate 600 "${RATE[@]}" "${BINS[@]}" || status=1 ;;
    esac
done
echo "results appended to $RESULTS"
exit $status
