#!/usr/bin/env bash
# Runs every xvpc test on a fresh Debian 12 machine, as root: installs what it needs, then
# format and lint checks, the scapy fixture oracle check, every cargo test (unit, property,
# fixture, and the privileged end-to-end tests in network namespaces), and smoke runs of the
# benchmark harnesses so they cannot rot. Privileged tests fail (never skip) without root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: run as root: the end-to-end tests create network namespaces, attach XDP programs and open AF_XDP sockets" >&2
  exit 1
fi

scripts/install-deps.sh

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

if [ -f dataplane/core/tests/oracle/gen_fixtures.py ]; then
  echo "== fixture oracle (scapy) matches the committed fixtures"
  /usr/bin/python3 dataplane/core/tests/oracle/gen_fixtures.py --check
fi

echo "== cargo test (unit, property, fixtures, privileged end-to-end)"
cargo build --workspace --bins --locked
cargo test --workspace --locked
echo "== the end-to-end suite again with the XDP fast-path tier (dataplane.fast_path = \"xdp\")"
XVPC_E2E_FAST_PATH=xdp cargo test --locked -p xvpc-dataplane --test e2e

echo "== systemd units (systemd-analyze verify: any warning fails)"
units=$(mktemp -d)
trap 'rm -rf "$units"' EXIT
debug_bins="$(cargo metadata --format-version 1 --no-deps | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
# The units name the installed binaries; point them at the ones just built.
for unit in dataplane/daemon/systemd/xvpc.service mapping-agent/xvpc-agent.service; do
  sed "s|/usr/bin/|$debug_bins/|g" "$unit" >"$units/$(basename "$unit")"
done
verify=$(systemd-analyze verify "$units"/*.service 2>&1) || { echo "$verify"; exit 1; }
if [ -n "$verify" ]; then echo "$verify"; echo "test.sh: systemd-analyze verify warned" >&2; exit 1; fi

echo "== Debian packages: build, lintian, install into a fresh Debian root, demo --installed, purge"
# Packages the debug binaries just built (the packaging is under test, not the optimiser);
# the minbase root is debootstrapped once (~2 min) and cached in target/debian/.
scripts/package-test.sh --bin-dir "$debug_bins"

echo "== micro-benchmark harness smoke (pipeline_loop: verdicts, drops and untouched payloads checked)"
for mode in batch single; do
  for direction in egress ingress egress-v6u ingress-v6u egress-v6u-zero-csum ingress-v6u-zero-csum; do
    cargo run -q --locked -p xvpc-benches --example pipeline_loop -- "$direction" 1000 8192 "$mode"
  done
done
# 1400-byte frames laid out like aligned 2 KiB UMEM chunks, and like the daemon's coloured ones.
for direction in egress ingress-v6u; do
  for layout in 2048 coloured; do
    cargo run -q --locked -p xvpc-benches --example pipeline_loop -- "$direction" 1000 8192 batch 1400 "$layout"
  done
done

# The smoke runs only prove the harnesses still work end to end (every system forwards and
# passes its correctness check), so they reuse the debug binaries built above instead of
# spending minutes on release builds.
bins="$(cargo metadata --format-version 1 --no-deps | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
# --isolate: every system must also start and pin itself onto a DUT core that its own
# process may not run on (as under isolcpus=), and every task moved off it goes back.
echo "== benchmark smoke: scripts/bench.sh --smoke --isolate"
cpus_before="$(grep Cpus_allowed_list /proc/1/status)"
BENCH_FORWARD="$bins/xvpc-bench-forward" XVPC="$bins/xvpc" PKTGEN="$bins/xvpc-pktgen" scripts/bench.sh --smoke --isolate
cpus_after="$(grep Cpus_allowed_list /proc/1/status)"
[[ $cpus_after == "$cpus_before" ]] || { echo "test.sh: --isolate left PID 1 on $cpus_after (was $cpus_before)" >&2; exit 1; }
echo "== benchmark smoke: scripts/bench-control.sh --smoke"
BIN_DIR="$bins" scripts/bench-control.sh --smoke
echo "test.sh: all tests passed"
