//! Network-namespace topologies and process guards for xvpc's privileged tests and benchmarks.
//!
//! Everything here cleans up after itself on `Drop`, including while a test panics:
//! [`Netns`] deletes its namespace (killing whatever still runs inside it) and
//! [`ChildGuard`] terminates and reaps its process. Names carry the test process's pid and a
//! counter, so tests can run in parallel.
//!
//! Privileged tests call [`require_root`] first: without root they must fail, never skip.
#![forbid(unsafe_code)]

pub mod etcd;
mod netns;
mod process;
pub mod vpc;

use std::process::{Command, ExitStatus};

pub use netns::{veth_pair, veth_pair_with_queues, Netns};
pub use process::ChildGuard;

/// Errors from building or tearing down a test topology.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// A command could not be started at all (missing binary, fork failure).
    #[error("could not run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The namespace handle under /run/netns could not be opened.
    #[error("cannot open network namespace {path}: {source}")]
    OpenNetns {
        /// Path of the namespace handle.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `setns(CLONE_NEWNET)` into a namespace failed (needs CAP_SYS_ADMIN).
    #[error("setns into network namespace {ns} failed: {source}")]
    Setns {
        /// The namespace name.
        ns: String,
        /// The OS error.
        source: nix::Error,
    },
    /// Sending a signal to a process failed.
    #[error("cannot signal pid {pid}: {source}")]
    Signal {
        /// The target process.
        pid: i32,
        /// The OS error.
        source: nix::Error,
    },
    /// Waiting for a child process failed.
    #[error("waiting for pid {pid} failed: {source}")]
    Wait {
        /// The child process.
        pid: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// A name given to the testbed is unusable (bad characters, or an interface name over
    /// 15 bytes).
    #[error("invalid name {name:?}: {why}")]
    BadName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// A directory a test mounts something on (a bpffs of its own): on drop, even when the test
/// fails, it is unmounted and removed, so no mount outlives the test.
#[derive(Debug)]
pub struct MountDir(std::path::PathBuf);

impl MountDir {
    /// `<temp dir>/xvpc-<tag>-<pid>`, not created: the caller mounts on it.
    pub fn new(tag: &str) -> MountDir {
        MountDir(std::env::temp_dir().join(format!("xvpc-{tag}-{}", std::process::id())))
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for MountDir {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Panics with a clear message unless the effective uid is 0.
///
/// Privileged tests (namespaces, XDP, AF_XDP) call this first so that, run without
/// privileges, they fail loudly instead of silently passing or skipping.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "privileged test: run as root (CI does); this test needs CAP_SYS_ADMIN and \
             CAP_NET_ADMIN for network namespaces, XDP and AF_XDP"
        );
    }
}

/// Renders a command line for error messages.
pub(crate) fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion; a non-zero exit becomes [`TestbedError::Command`] carrying
/// its stderr. Returns stdout.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<String, TestbedError> {
    let line = cmdline(cmd);
    let out = cmd.output().map_err(|source| TestbedError::Spawn {
        cmd: line.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(TestbedError::Command {
            cmd: line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip <args>` in the current (host) namespace, checking its exit status.
pub fn ip(args: &[&str]) -> Result<String, TestbedError> {
    run_checked(Command::new("ip").args(args))
}
