//! The measurements, driven from the binary's edge (errors are `anyhow` here).

pub mod convergence;
pub mod full_sync;
pub mod inproc;
pub mod update_rate;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use xvpc_control_bench::stats::{self, Snapshot};

use crate::Bins;

/// Fail (never skip) without root: namespaces, XDP and AF_XDP need it.
pub fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "this benchmark needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW) for network \
             namespaces, XDP and AF_XDP; run it as root"
        );
    }
    Ok(())
}

/// A binary given on the command line, or found next to this executable.
pub fn bin(given: &Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidate = dir.join(name);
    if candidate.is_file() {
        return Ok(candidate);
    }
    bail!(
        "`{name}` not found next to {} (build it: cargo build --release -p <its crate>, or pass --{})",
        exe.display(),
        match name {
            "xvpc" => "xvpc",
            "xvpc-agent" => "agent",
            _ => "pktgen",
        }
    )
}

impl Bins {
    /// The daemon binary.
    pub fn xvpc(&self) -> anyhow::Result<PathBuf> {
        bin(&self.xvpc, "xvpc")
    }
    /// The agent binary.
    pub fn agent(&self) -> anyhow::Result<PathBuf> {
        bin(&self.agent, "xvpc-agent")
    }
    /// The generator binary.
    pub fn pktgen(&self) -> anyhow::Result<PathBuf> {
        bin(&self.pktgen, "xvpc-pktgen")
    }
}

/// Poll the daemon's stats until `done` holds or `timeout` passes; returns the snapshot and
/// when it was taken.
pub fn wait_stats(
    socket: &Path,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&Snapshot) -> bool,
) -> anyhow::Result<(Snapshot, Instant)> {
    let deadline = Instant::now() + timeout;
    loop {
        let snap = stats::fetch(socket)?;
        let at = Instant::now();
        if done(&snap) {
            return Ok((snap, at));
        }
        if at >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}; last stats: {}",
                snap.0
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
