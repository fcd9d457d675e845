#!/usr/bin/env bash
# Side-by-side forwarding benchmark: gen ns —veth— DUT ns —veth— sink ns, for kernel-vxlan,
# xvpc, xvpc-xdp, ovs, testpmd and xdp-redirect (docs/BENCHMARKING.md).
#
# A thin wrapper: the harness is the Rust binary xvpc-bench-forward (benches/forward), which
# takes this script's options unchanged (`scripts/bench.sh --help` lists them) and honours
# PKTGEN, XVPC and XVPC_DATAPLANE_EXTRA. This script only finds or builds it and execs it, so
# signals reach the harness directly and its guards tear everything down on exit, Ctrl-C or
# failure.
#
#   env BENCH_FORWARD  path to xvpc-bench-forward (default: build it in release mode)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_FORWARD=${BENCH_FORWARD:-}
if [[ -z $BENCH_FORWARD ]]; then
    (cd "$ROOT" && cargo build --release -q -p xvpc-bench-forward)
    BENCH_FORWARD=$CARGO_TARGET_DIR/release/xvpc-bench-forward
fi
[[ -x $BENCH_FORWARD ]] || { echo "bench.sh: $BENCH_FORWARD is not executable" >&2; exit 1; }
exec "$BENCH_FORWARD" --root "$ROOT" "$@"
