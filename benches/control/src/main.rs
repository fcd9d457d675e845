//! `xvpc-control-bench`: measures the xvpc control path on this machine (issue 4).
//!
//! ```text
//! xvpc-control-bench inproc      --mappings 1000000 --workers 2
//! xvpc-control-bench full-sync   --mappings 1000000 --workers 2
//! xvpc-control-bench convergence --changes 1000
//! xvpc-control-bench update-rate --rate 100000 --seconds 5 --reps 3
//! ```
//!
//! Each prints what it measured and ends with one `RESULT <name> key=value ...` line that
//! `scripts/bench-control.sh` collects. Everything privileged runs in namespaces built with
//! `xvpc-testbed` (198.18.0.0/15 and 2001:2::/48 only) and every process it starts is
//! stopped by pid when the run ends, fails or is interrupted (guards with `Drop`).
#![forbid(unsafe_code)]

mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xvpc-control-bench",
    about = "Benchmarks of the xvpc control path"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the workspace binaries are (default: next to this executable).
#[derive(clap::Args, Clone, Debug)]
pub struct Bins {
    /// The dataplane daemon.
    #[arg(long)]
    xvpc: Option<PathBuf>,
    /// The mapping agent.
    #[arg(long)]
    agent: Option<PathBuf>,
    /// The traffic generator.
    #[arg(long)]
    pktgen: Option<PathBuf>,
}

/// Who sends a full sync.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// `xvpc-agent --source file` through the timestamping proxy.
    Agent,
    /// Our own control client, sending the agent's frames.
    Client,
}

#[derive(Subcommand)]
enum Command {
    /// The control thread's full-sync work in-process: compile N mappings into a table, collect
    /// the key set, clone the table per worker, free the old tables.
    Inproc {
        /// Mappings in the sync.
        #[arg(long, default_value_t = 1_000_000)]
        mappings: usize,
        /// Workers (table clones).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// Full sync of N mappings by the real agent (file source) into a daemon with W workers:
    /// time from the agent's SyncBegin to every worker having swapped, and peak memory.
    FullSync {
        /// Mappings in the sync.
        #[arg(long, default_value_t = 1_000_000)]
        mappings: usize,
        /// Workers (queues of the dataplane's ports).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Seconds to wait for the agent to load its file and start the sync.
        #[arg(long, default_value_t = 300)]
        load_timeout: u64,
        /// Who sends the sync: the real agent (file source), or our own control client
        /// writing the same frames (measures the daemon without the agent's file parse).
        #[arg(long, value_enum, default_value = "agent")]
        driver: Driver,
        #[command(flatten)]
        bins: Bins,
    },
    /// Convergence: etcd put → first packet forwarded to the new remote, over N changes.
    Convergence {
        /// Mapping changes (each flips the underlay between two remote hosts).
        #[arg(long, default_value_t = 1000)]
        changes: usize,
        /// Interval between the guest's probe packets, in microseconds.
        #[arg(long, default_value_t = 100)]
        probe_interval_us: u64,
        /// The etcd server binary.
        #[arg(long, default_value = "etcd")]
        etcd: String,
        #[command(flatten)]
        bins: Bins,
    },
    /// Update rate while forwarding: forwarding rate with and without a stream of upserts,
    /// interleaved.
    UpdateRate {
        /// Upserts per second offered by the load client.
        #[arg(long, default_value_t = 100_000)]
        rate: u64,
        /// Distinct keys the upserts cycle through.
        #[arg(long, default_value_t = 65_536)]
        keys: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Repetitions of the (without, with) pair.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Frame size of the forwarded stream.
        #[arg(long, default_value_t = 64)]
        size: u16,
        #[command(flatten)]
        bins: Bins,
    },
}

fn main() -> ExitCode {
    if let Err(e) = cleanup_on_signal() {
        eprintln!("xvpc-control-bench: error: cannot install the signal cleanup: {e}");
        return ExitCode::FAILURE;
    }
    let result = match Cli::parse().command {
        Command::Inproc {
            mappings,
            workers,
            reps,
        } => scenario::inproc::run(mappings, workers, reps),
        Command::FullSync {
            mappings,
            workers,
            load_timeout,
            driver,
            bins,
        } => scenario::full_sync::run(mappings, workers, load_timeout, driver, &bins),
        Command::Convergence {
            changes,
            probe_interval_us,
            etcd,
            bins,
        } => scenario::convergence::run(changes, probe_interval_us, &etcd, &bins),
        Command::UpdateRate {
            rate,
            keys,
            seconds,
            reps,
            size,
            bins,
        } => scenario::update_rate::run(rate, keys, seconds, reps, size, &bins),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvpc-control-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM/SIGINT (e.g. `timeout`, Ctrl-C) would end the process without running the
/// guards' `Drop`: one thread waits for them, removes this process's namespaces (killing
/// what runs inside, by pid) and exits. Children get default dispositions back at exec.
fn cleanup_on_signal() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("ctlbench-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                eprintln!("xvpc-control-bench: signal {signal}: removing this run's namespaces");
                remove_own_namespaces();
                std::process::exit(130);
            }
        })?;
    Ok(())
}

/// Namespaces made by `xvpc-testbed` in this process are named `xvpc-<tag>-<pid>-<n>`.
fn remove_own_namespaces() {
    let marker = format!("-{}-", std::process::id());
    let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if !(name.starts_with("xvpc-") && name.contains(&marker)) {
            continue;
        }
        if let Ok(pids) = std::process::Command::new("ip")
            .args(["netns", "pids", name])
            .output()
        {
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", name])
            .status();
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{name}-work")));
    }
}
