#!/usr/bin/env python3
"""Freezes one thread of a running process for a while: a wedged worker, for systemd-test.sh.

usage: freeze-thread.py PID THREAD-NAME SECONDS

ptrace(PTRACE_SEIZE) then PTRACE_INTERRUPT stop only the thread named THREAD-NAME (its
/proc/PID/task/*/comm); the process's other threads keep running. SIGSTOP could not do that: it
stops the whole thread group. The thread resumes when this program exits (the kernel detaches
the tracee), so a kill during the freeze waits for that.
"""
import ctypes
import os
import sys
import time

PTRACE_SEIZE, PTRACE_INTERRUPT, WALL = 0x4206, 0x4207, 0x40000000


def main() -> int:
    pid, name, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    tids = [t for t in os.listdir(f"/proc/{pid}/task")
            if open(f"/proc/{pid}/task/{t}/comm").read().strip() == name]
    if len(tids) != 1:
        print(f"freeze-thread.py: {len(tids)} threads named {name} in {pid}", file=sys.stderr)
        return 1
    tid = int(tids[0])
    libc = ctypes.CDLL(None, use_errno=True)
    for request in (PTRACE_SEIZE, PTRACE_INTERRUPT):
        if libc.ptrace(request, tid, None, None) != 0:
            errno = ctypes.get_errno()
            print(f"freeze-thread.py: ptrace({request:#x}, {tid}): {os.strerror(errno)}",
                  file=sys.stderr)
            return 1
    os.waitpid(tid, WALL)  # returns once the thread is in ptrace-stop
    print(f"freeze-thread.py: thread {name} ({tid}) of {pid} frozen for {seconds} s", flush=True)
    time.sleep(seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
