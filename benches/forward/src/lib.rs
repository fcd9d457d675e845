//! `xvpc-bench-forward`: the side-by-side forwarding benchmark behind `scripts/bench.sh`.
//!
//! The pure parts (options, run time estimate, zero-loss search, CSV rows, the correctness
//! check's verdict, xvpc's drop counters) are unit-tested modules; [`harness`] drives the
//! namespaces and processes, all of them behind guards that clean up on drop (on error, panic
//! or Ctrl-C alike). The generator and the sink are `xvpc-pktgen` processes (pinned to their
//! CPU, in their namespace) whose `RESULT` lines are read with [`xvpc_pktgen::result`].
//! See docs/BENCHMARKING.md.
#![forbid(unsafe_code)]

pub mod check;
pub mod csv;
pub mod drops;
pub mod estimate;
pub mod harness;
pub mod isolate;
pub mod losses;
pub mod options;
pub mod search;
pub mod tier;
pub mod topo;

use std::process::ExitStatus;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Building or tearing down the namespaces failed.
    #[error(transparent)]
    Testbed(#[from] xvpc_testbed::TestbedError),
    /// A command could not be started (missing binary, fork failure).
    #[error("could not run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command that must succeed exited unsuccessfully.
    #[error("`{cmd}` failed ({status}){}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// No XDP program appeared on a device within 10 s.
    #[error("no XDP program on {dev} in {ns} after 10 s")]
    NoXdp {
        /// The device.
        dev: String,
        /// Its namespace.
        ns: String,
    },
    /// A system under test did not come up.
    #[error("{0} did not start")]
    DutStart(&'static str),
    /// A process did not stop within its bound.
    #[error("{0} did not stop in time")]
    Hung(&'static str),
    /// Reading or writing a file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The daemon's configuration cannot be built (the message says why).
    #[error("{0}")]
    Config(String),
    /// SIGINT or SIGTERM arrived.
    #[error("interrupted")]
    Interrupted,
}
