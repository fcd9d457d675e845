//! A guard that owns a child process and never lets it outlive the test.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::TestbedError;

/// How long [`ChildGuard`]'s `Drop` waits after SIGTERM before it sends SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// Poll interval while waiting for a child to exit.
const POLL: Duration = Duration::from_millis(10);

/// Owns a [`Child`]; on drop sends SIGTERM, waits up to 2 s, then SIGKILL, and reaps it.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    /// Set once the child has been reaped, so drop does not signal a recycled pid.
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Takes ownership of an already started child.
    pub fn new(child: Child) -> Self {
        ChildGuard {
            child,
            status: None,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, e.g. to take its piped stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Has the child exited? Reaps it if so (non-blocking).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, TestbedError> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let pid = self.pid();
        let st = self
            .child
            .try_wait()
            .map_err(|source| TestbedError::Wait { pid, source })?;
        self.status = st;
        Ok(st)
    }

    /// Waits up to `timeout` for the child to exit on its own; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, TestbedError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `sig` to the child unless it has already been reaped.
    pub fn signal(&mut self, sig: Signal) -> Result<(), TestbedError> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = i32::try_from(self.pid()).map_err(|_| TestbedError::Signal {
            pid: -1,
            source: nix::Error::EINVAL,
        })?;
        kill(Pid::from_raw(pid), sig).map_err(|source| TestbedError::Signal { pid, source })
    }

    /// SIGKILLs the child (as a crash would) and reaps it.
    pub fn kill_hard(&mut self) -> Result<ExitStatus, TestbedError> {
        self.signal(Signal::SIGKILL)?;
        self.wait()
    }

    /// SIGTERMs the child, waits up to 2 s, then SIGKILLs it; returns how it ended.
    pub fn terminate(&mut self) -> Result<ExitStatus, TestbedError> {
        self.signal(Signal::SIGTERM)?;
        if let Some(s) = self.wait_timeout(TERM_GRACE)? {
            return Ok(s);
        }
        self.kill_hard()
    }

    /// Blocks until the child exits and reaps it.
    pub fn wait(&mut self) -> Result<ExitStatus, TestbedError> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let pid = self.pid();
        let s = self
            .child
            .wait()
            .map_err(|source| TestbedError::Wait { pid, source })?;
        self.status = Some(s);
        Ok(s)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            // Last resort: `Child::kill` is SIGKILL, then reap so no zombie stays behind.
            eprintln!("xvpc-testbed: stopping pid {}: {e}", self.pid());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
