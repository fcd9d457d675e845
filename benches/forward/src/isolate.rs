//! `--isolate`: every task that may run elsewhere leaves the DUT core for the whole run, as a
//! cpuset shield (`isolcpus`, `cset shield`) keeps a real host's dataplane cores to
//! themselves, and goes back to its own CPUs afterwards (on error, panic or Ctrl-C alike: on
//! drop). Why: measured here, the VM's own agent (PID 1, nice -10) wakes about once a second
//! and, when it lands on the DUT core, holds it for milliseconds, longer than a 2048-frame
//! fill ring lasts at 450 kpps; the dataplanes that sleep when idle (xvpc) make that core
//! look idle and so draw it there more often. Threads bound to the DUT core alone (its
//! ksoftirqd, kworkers, migration thread) stay; the systems under test pin themselves there
//! after the move.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The tasks moved off the DUT core, with the CPUs each had.
#[derive(Debug)]
pub struct Isolation {
    moved: Vec<(Pid, CpuSet)>,
    /// Tasks that may run on the DUT core but refused to move (kernel threads that are not
    /// per-CPU but do not allow it).
    pub refused: usize,
}

/// `cpus` without `core`, or `None` when nothing is left (a task bound to that core alone)
/// or `core` was not in it.
pub fn without(cpus: &CpuSet, core: usize) -> Option<CpuSet> {
    if !cpus.is_set(core).unwrap_or(false) {
        return None;
    }
    let mut rest = *cpus;
    rest.unset(core).ok()?;
    (0..CpuSet::count())
        .any(|c| rest.is_set(c).unwrap_or(false))
        .then_some(rest)
}

/// Every thread of every process (`/proc/*/task/*`), as read now.
fn all_threads() -> Vec<Pid> {
    let numbers = |dir: &std::path::Path| -> Vec<i32> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    numbers(std::path::Path::new("/proc"))
        .into_iter()
        .flat_map(|pid| numbers(&std::path::Path::new("/proc").join(format!("{pid}/task"))))
        .map(Pid::from_raw)
        .collect()
}

impl Isolation {
    /// Moves every thread on the machine that may run elsewhere off `core`.
    pub fn apply(core: usize) -> Isolation {
        Self::apply_to(all_threads(), core)
    }

    /// Moves `threads` off `core`; those gone since, or not on it, are left alone.
    pub fn apply_to(threads: impl IntoIterator<Item = Pid>, core: usize) -> Isolation {
        let mut iso = Isolation {
            moved: Vec::new(),
            refused: 0,
        };
        for tid in threads {
            let Ok(cpus) = sched_getaffinity(tid) else {
                continue;
            };
            let Some(rest) = without(&cpus, core) else {
                continue;
            };
            match sched_setaffinity(tid, &rest) {
                Ok(()) => iso.moved.push((tid, cpus)),
                Err(nix::errno::Errno::ESRCH) => {}
                Err(_) => iso.refused += 1,
            }
        }
        iso
    }

    /// How many tasks left the DUT core.
    pub fn moved(&self) -> usize {
        self.moved.len()
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        for (tid, cpus) in &self.moved {
            // A task that exited meanwhile (ESRCH) has nothing to restore.
            let _ = sched_setaffinity(*tid, cpus);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn set(cpus: &[usize]) -> CpuSet {
        let mut s = CpuSet::new();
        for &c in cpus {
            s.set(c).expect("cpu in range");
        }
        s
    }

    #[test]
    fn without_drops_the_core_and_keeps_tasks_bound_to_it_alone() {
        assert_eq!(without(&set(&[0, 1, 3]), 1), Some(set(&[0, 3])));
        assert_eq!(without(&set(&[1]), 1), None);
        assert_eq!(without(&set(&[0, 2]), 1), None);
    }

    /// A real child process leaves the core and gets its CPUs back on drop.
    #[test]
    fn a_child_leaves_the_core_and_comes_back() {
        let ours = sched_getaffinity(Pid::from_raw(0)).expect("own affinity");
        let cpus: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| ours.is_set(c).unwrap_or(false))
            .collect();
        assert!(
            cpus.len() >= 2,
            "needs two CPUs to move a task between, has {cpus:?}"
        );
        let core = cpus[cpus.len() - 1];
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let tid = Pid::from_raw(child.id() as i32);
        let iso = Isolation::apply_to([tid, Pid::from_raw(i32::MAX)], core);
        let during = sched_getaffinity(tid).expect("child affinity");
        let moved = iso.moved();
        drop(iso);
        let after = sched_getaffinity(tid).expect("child affinity");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(moved, 1);
        assert!(
            !during.is_set(core).expect("in range"),
            "still on CPU {core}"
        );
        assert_eq!(after, ours, "affinity not restored");
    }
}
