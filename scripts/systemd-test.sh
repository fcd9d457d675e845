#!/usr/bin/env bash
# The packaged systemd units under a real systemd (root). Boots ROOT, a Debian root with systemd
# and the xvpc packages installed (package-test.sh makes one), with systemd-nspawn as the
# dataplane host of the demo topology (scripts/topology.sh): the container's network namespace
# is the dataplane namespace, and its /sys/fs/bpf a bpffs of this test. Then:
#   - start xvpc-agent.service: Wants=/After= start xvpc.service first, which is active only
#     after READY=1 (both ports held, xvpc status passes at once); the agent starts after that,
#     runs in /run/netns/mgmt (NetworkNamespacePath=) and syncs the mappings file; the guest
#     pings the remote guest through xvpc; under journald neither stamps its own lines;
#   - WatchdogSec=: no restart over more than WatchdogSec while the workers run; one worker
#     thread frozen (scripts/freeze-thread.py) makes the daemon withhold its pings, systemd's
#     watchdog aborts it, Restart= brings it back, and traffic flows again;
#   - kill -9: Restart=always brings it back; the pinned programs are reused (pins unchanged);
#   - systemctl stop: the ports stay closed (XDP attached, the guest's frames dropped and counted,
#     xvpc status passes); xvpc detach opens them.
# Any failure exits non-zero. The container, namespaces and bpffs go on exit.
#
#   scripts/systemd-test.sh ROOT
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:?usage: scripts/systemd-test.sh ROOT}
[ "$(id -u)" -eq 0 ] || { echo "systemd-test.sh: run as root (namespaces, nspawn, XDP)" >&2; exit 1; }
command -v systemd-nspawn >/dev/null ||
  { echo "systemd-test.sh: systemd-nspawn is missing (apt-get install systemd-container)" >&2; exit 1; }
[ -x "$root/lib/systemd/systemd" ] && [ -x "$root/usr/bin/xvpc" ] ||
  { echo "systemd-test.sh: $root has no systemd or no installed xvpc" >&2; exit 1; }
. scripts/topology.sh

tag=$$
G="xvpc-sd-g-$tag"; D="xvpc-sd-d-$tag"; F="xvpc-sd-f-$tag"
work=$(mktemp -d /tmp/xvpc-systemd.XXXXXX)
nspawn_pid=""; leader=""
cleanup() {
  set +e
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid"   # nspawn asks the container's systemd to power off
    for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null
    wait "$nspawn_pid" 2>/dev/null
  fi
  for ns in "$G" "$D" "$F"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid"; done
    ip netns del "$ns" 2>/dev/null
  done
  umount "$work/bpf" 2>/dev/null
  rm -f "$root/etc/xvpc/mappings.toml"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ct() { nsenter -t "$leader" -a "$@"; }
show() { in_ct systemctl show -p "$2" --value "$1"; }
fail() {
  echo "systemd-test.sh: $*" >&2
  [ -n "$leader" ] && in_ct journalctl -b --no-pager -n 40 -u xvpc -u xvpc-agent >&2
  exit 1
}
step() { printf '== %s\n' "$*"; }
# within SECONDS CMD...: retries CMD every 0.1 s until it passes or SECONDS have gone.
within() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  until "$@"; do [ "$(date +%s%N)" -lt "$deadline" ] || return 1; sleep 0.1; done
}
# The host's pid of a process the container knows as $1.
host_pid() {
  local p ns
  for p in /proc/[0-9]*; do
    ns=$(awk '/^NSpid:/ { print $2, $3 }' "$p/status" 2>/dev/null) || continue
    set -- "$1" $ns
    if [ "${3:-}" = "$1" ] && [ "$(readlink "$p/ns/pid")" = "$(readlink "/proc/$leader/ns/pid")" ]; then
      echo "$2"; return 0
    fi
  done
  return 1
}
synced() {
  in_ct xvpc stats --json 2>/dev/null | /usr/bin/python3 -c \
    'import json,sys; c=json.load(sys.stdin)["control"]; sys.exit(0 if c["full_syncs"] >= 1 and c["mappings"] == 2 else 1)'
}
guest_reaches_remote() { nsx "$G" ping -c 2 -i 0.2 -W 1 198.18.10.3 >/dev/null; }
serving() { [ "$(show xvpc ActiveState)" = active ] && [ "$(show xvpc MainPID)" != "$1" ] && synced; }
dropped_no_socket() { in_ct xvpc status --config /etc/xvpc/xvpc.toml | sed -n 's/^guest .*dropped_no_socket \([0-9]*\).*/\1/p'; }

step "topology, a bpffs, the mappings file the packaged agent.toml names"
demo_topology "$G" "$D" "$F"
mkdir "$work/bpf" && mount -t bpf bpf "$work/bpf"
demo_mappings > "$root/etc/xvpc/mappings.toml"

step "boot systemd in $root (systemd-nspawn, network namespace $D)"
systemd-nspawn -D "$root" --boot --register=no --keep-unit --console=passive \
  --network-namespace-path="/run/netns/$D" --capability=all \
  --system-call-filter='bpf perf_event_open' --bind="$work/bpf:/sys/fs/bpf" \
  >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
booted() { leader=$(pgrep -P "$nspawn_pid" | head -1) && [ -n "$leader" ] &&
  case "$(in_ct systemctl is-system-running 2>/dev/null)" in running|degraded) true ;; *) false ;; esac; }
within 60 booted || { cat "$work/nspawn.log" >&2; fail "the container's systemd did not boot"; }
echo "systemd is PID 1 of the container (host pid $leader): $(in_ct systemctl is-system-running)"

step "systemctl start xvpc-agent (pulls in xvpc.service, Type=notify)"
in_ct ip netns add mgmt
in_ct systemctl start xvpc-agent.service || fail "systemctl start xvpc-agent failed"
[ "$(show xvpc ActiveState)" = active ] || fail "xvpc.service is $(show xvpc ActiveState)"
# READY=1 comes only once the ports are held and the socket is registered.
in_ct xvpc status --config /etc/xvpc/xvpc.toml || fail "xvpc status failed right after start"
ready=$(show xvpc ActiveEnterTimestampMonotonic)
agent_start=$(show xvpc-agent ExecMainStartTimestampMonotonic)
[ "$agent_start" -ge "$ready" ] || fail "the agent started ($agent_start) before xvpc was ready ($ready)"
agent=$(show xvpc-agent MainPID)
[ "$(in_ct readlink "/proc/$agent/ns/net")" = "net:[$(in_ct stat -L -c %i /run/netns/mgmt)]" ] ||
  fail "xvpc-agent does not run in /run/netns/mgmt"
within 10 synced || fail "the agent did not sync the dataplane"
# Under journald the daemons' lines carry no timestamp of their own (the journal stamps them).
for unit in xvpc xvpc-agent; do
  line=$(in_ct journalctl -b --no-pager -o cat _PID="$(show "$unit" MainPID)" | head -1)
  [[ -n $line && $line != 20[0-9][0-9]-* ]] || fail "$unit logs its own timestamp to the journal: $line"
done
guest_reaches_remote || fail "the guest cannot reach the remote guest"
echo "ok: ready after attach, agent after xvpc and in the management namespace, traffic flows"

step "WatchdogSec: pings reach systemd; a frozen worker gets xvpc restarted"
pid=$(show xvpc MainPID)
sleep 6   # > WatchdogSec=5s
[ "$(show xvpc NRestarts)" = 0 ] && [ "$(show xvpc MainPID)" = "$pid" ] ||
  fail "xvpc was restarted without a reason (NRestarts $(show xvpc NRestarts)): are the pings lost?"
hpid=$(host_pid "$pid") || fail "no host pid for the container's pid $pid"
# Frozen past the watchdog's limit; systemd's SIGABRT is delivered when the thread thaws.
scripts/freeze-thread.py "$hpid" xvpc-worker-0 7
within 15 serving "$pid" || fail "xvpc was not restarted after its worker froze"
[ "$(show xvpc NRestarts)" = 1 ] || fail "NRestarts is $(show xvpc NRestarts), not 1"
[[ $(in_ct journalctl -b --no-pager -u xvpc) == *"Watchdog timeout"* ]] || fail "no watchdog timeout in the journal"
[ "$(in_ct journalctl -b --no-pager _PID="$pid" | grep -c "heartbeat stalled")" = 1 ] ||
  fail "the stalled heartbeat was not logged exactly once"
within 5 guest_reaches_remote || fail "no traffic after the watchdog restart"
echo "ok: no restart while the workers run; a frozen worker: watchdog timeout, restart, traffic again"

step "kill -9: Restart=always, the pinned programs reused"
pins=$(cd "$work/bpf" && find . | sort)
pid=$(show xvpc MainPID)
kill -9 "$(host_pid "$pid")"
within 10 serving "$pid" || fail "xvpc was not restarted after kill -9"
new=$(show xvpc MainPID)
[[ $(in_ct journalctl -b --no-pager _PID="$new") == *guest=Reused*fabric=Reused* ]] ||
  fail "the restarted xvpc did not reuse both pinned programs"
[ "$(cd "$work/bpf" && find . | sort)" = "$pins" ] || fail "the pins changed across the restart"
within 5 guest_reaches_remote || fail "no traffic after the restart"
echo "ok: restarted (NRestarts $(show xvpc NRestarts)), both programs reused, pins unchanged"

step "systemctl stop: the ports stay closed; xvpc detach opens them"
in_ct systemctl stop xvpc-agent.service xvpc.service
[ "$(show xvpc ActiveState)" = inactive ] || fail "xvpc.service is $(show xvpc ActiveState) after stop"
[[ $(nsx "$D" ip link show xg0) == *xdp* ]] || fail "the guest port has no XDP program after stop"
before=$(dropped_no_socket)
if nsx "$G" ping -c 3 -i 0.2 -W 1 198.18.10.3 >/dev/null; then fail "the guest reached the remote with xvpc stopped"; fi
after=$(dropped_no_socket)
[ $(( after - before )) -ge 3 ] || fail "dropped_no_socket moved by $(( after - before )), not >= 3"
in_ct xvpc status --config /etc/xvpc/xvpc.toml >/dev/null || fail "xvpc status: a port is not held closed"
in_ct xvpc detach --config /etc/xvpc/xvpc.toml
[[ $(nsx "$D" ip link show xg0) != *xdp* ]] || fail "XDP still attached after xvpc detach"
if in_ct xvpc status --config /etc/xvpc/xvpc.toml >/dev/null 2>&1; then fail "xvpc status passed with the ports open"; fi
echo "ok: stopped and closed (guest frames dropped: $(( after - before ))), detached and open"
echo "systemd-test.sh: the units work under systemd"
