#!/usr/bin/env python3
"""What held the DUT core when the DUT's socket lost frames (docs/PERFORMANCE.md).

usage: core-visits.py PERF_DATA [DUT_CPU]

PERF_DATA is a `perf record -a -e sched:sched_switch -e xdp:xdp_redirect_err` taken around
one `scripts/bench.sh --rate PPS --no-zero-loss` measurement. Every frame an XDP program
failed to redirect into a socket (fill ring empty: xsk_fill_empty) is one xdp_redirect_err.
Prints the drops, how often tasks at nice < 0 were switched in on each CPU (and
which, on the DUT core), and the drops by what the DUT core last switched to before each one.

perf on this VM records no event in the context of the VM's own agent (PID 1's threads), so
the switch *out* of such a task is missing: "held by" counts the drops after the DUT core
last switched to it, an upper bound, and switch-ins (recorded by the task switched out) are
the robust count.
"""
import collections
import re
import subprocess
import sys

SWITCH = re.compile(r"prev_comm=(.*?) prev_pid=\d+ prev_prio=\d+ prev_state=\S+ ==> "
                    r"next_comm=(.*?) next_pid=\d+ next_prio=(\d+)")
LINE = re.compile(r"\s*\[(\d+)\]\s+[\d.]+:\s+(\S+):\s*(.*)")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[2])
    data, dut = sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 1
    out = subprocess.run(["perf", "script", "-i", data, "-F", "cpu,time,event,trace"],
                         capture_output=True, text=True, check=True).stdout
    drops, raised_in, raised_names = 0, collections.Counter(), collections.Counter()
    held_by, holder = collections.Counter(), "?"
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        cpu, event, trace = int(m.group(1)), m.group(2), m.group(3)
        if event == "xdp:xdp_redirect_err":
            drops += 1
            held_by[holder] += 1
            continue
        s = SWITCH.search(trace)
        if event != "sched:sched_switch" or not s:
            continue
        # Kernel priorities: 100..119 is nice -20..-1 (below 100: real-time kernel threads).
        name = re.sub(r"[/-]\d+$", "", s.group(2))
        if 100 <= int(s.group(3)) < 120:
            raised_in[cpu] += 1
            if cpu == dut:
                raised_names[f"{name} (nice {int(s.group(3)) - 120})"] += 1
        if cpu == dut:
            holder = f"{name} (nice {int(s.group(3)) - 120})"
    print(f"drops {drops}")
    print("switch-ins at nice < 0: " +
          ", ".join(f"CPU {c}: {n}" for c, n in sorted(raised_in.items())) +
          f"; on CPU {dut}: " + ", ".join(f"{k} {v}" for k, v in raised_names.most_common(6)))
    print(f"drops by what CPU {dut} last switched to: " +
          ", ".join(f"{k} {v}" for k, v in held_by.most_common(6)))


if __name__ == "__main__":
    main()
