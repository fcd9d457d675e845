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

for smoke in scripts/bench.sh scripts/bench-control.sh; do
  if [ -x "$smoke" ]; then
    echo "== benchmark smoke: $smoke --smoke"
    "$smoke" --smoke
  fi
done
echo "test.sh: all tests passed"
