//! `xvpc-pktgen`: a traffic generator (the kernel's XDP live-frames mode of
//! `BPF_PROG_TEST_RUN` where the kernel allows it, an AF_XDP socket otherwise), a
//! counting/latency sink, and an XDP redirect loader for the forwarding ceiling. See
//! docs/BENCHMARKING.md.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use xvpc_pktgen::afxdp;
use xvpc_pktgen::args::{GenArgs, TxMode};
use xvpc_pktgen::bpf::{self, BenchError, SinkOpts};
use xvpc_pktgen::result::{GenResult, SinkResult, TxPath};
use xvpc_pktgen::{frame, hist};

/// Exit status when `--tx live` was asked for and the kernel refused live frames (distinct
/// from errors and usage mistakes).
const EXIT_NO_LIVE_FRAMES: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "xvpc-pktgen",
    about = "Traffic generator (XDP live frames or AF_XDP) and sink (198.18.0.0/15 and 2001:2::/48 only)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    gen: GenArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate traffic (the default when no subcommand is given).
    Gen(GenArgs),
    /// Count received frames and their latency, then drop them.
    Sink {
        /// Interface to attach to.
        #[arg(long)]
        dev: String,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: f64,
        /// Stop once traffic was seen and nothing arrived for this many seconds.
        #[arg(long)]
        idle_exit: Option<f64>,
        /// Byte offset of the marker to look for (repeatable, at most 8). Default: plain
        /// UDP over IPv4/IPv6 and the same inside VXLAN over an IPv4 or IPv6 underlay.
        #[arg(long = "offset")]
        offsets: Vec<u32>,
        /// Attach in generic (skb) mode instead of driver mode.
        #[arg(long)]
        skb: bool,
        /// Also write the latency histogram here: one line per non-empty bucket,
        /// `lower_us upper_us count` (for CDF plots).
        #[arg(long)]
        hist: Option<std::path::PathBuf>,
    },
    /// Redirect every frame from one interface to another in XDP (the forwarding ceiling).
    Redirect {
        /// Interface frames arrive on.
        #[arg(long = "in")]
        in_dev: String,
        /// Interface frames leave on.
        #[arg(long = "out")]
        out_dev: String,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: f64,
    },
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    match Duration::try_from_secs_f64(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => bail!("--{name} must be a positive number of seconds, got {s}"),
    }
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed))
        .context("installing the SIGINT/SIGTERM handler")?;
    Ok(stop)
}

fn gen(a: &GenArgs) -> anyhow::Result<ExitCode> {
    let spec = a.validate()?;
    let fspec = frame::FrameSpec {
        src_mac: spec.src_mac,
        dst_mac: spec.dst_mac,
        src_ip: spec.src_ip,
        dst_ip: spec.dst_ip,
        src_port: spec.src_port,
        dst_port: spec.dst_port,
        size: spec.size,
        flows: spec.flows,
        ts_every: spec.ts_every,
        vxlan: spec.vxlan.clone(),
    };
    let stop = stop_flag()?;
    let mut g = bpf::Generator::new(&fspec)?;
    let afxdp = |g: &bpf::Generator| {
        afxdp::run(g.template(), &spec, &stop)
            .with_context(|| format!("generating on {} through AF_XDP", spec.dev))
    };
    // One line on stderr says which transmit path runs and why; RESULT names it too.
    let (r, mode) = match spec.tx {
        TxMode::Afxdp => {
            eprintln!("xvpc-pktgen: tx mode afxdp (requested with --tx afxdp)");
            (afxdp(&g)?, TxPath::Afxdp)
        }
        TxMode::Live | TxMode::Auto => match g.run(&spec, &stop) {
            Ok(r) => {
                eprintln!("xvpc-pktgen: tx mode live (the kernel accepted XDP live frames)");
                (r, TxPath::Live)
            }
            Err(e @ BenchError::LiveFramesUnavailable { .. }) if spec.tx == TxMode::Auto => {
                eprintln!("xvpc-pktgen: tx mode afxdp (fallback: {e})");
                (afxdp(&g)?, TxPath::Afxdp)
            }
            Err(e @ BenchError::LiveFramesUnavailable { .. }) => {
                eprintln!("xvpc-pktgen: {e}");
                return Ok(ExitCode::from(EXIT_NO_LIVE_FRAMES));
            }
            Err(e) => return Err(e).context(format!("generating on {}", spec.dev)),
        },
    };
    let pps = r.pps();
    let bits = pps * f64::from(spec.size + 24) * 8.0; // + FCS, preamble, inter-frame gap
    println!(
        "sent {} frames of {} bytes on {} in {:.3} s: {:.3} Mpps ({:.2} Gbit/s on the wire), stopped by {:?}",
        r.sent,
        spec.size,
        spec.dev,
        r.elapsed.as_secs_f64(),
        pps / 1e6,
        bits / 1e9,
        r.reason
    );
    let line = GenResult {
        sent: r.sent,
        elapsed_ns: u64::try_from(r.elapsed.as_nanos()).unwrap_or(u64::MAX),
        pps,
        size: spec.size.into(),
        flows: spec.flows,
        mode,
    };
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

fn sink(opts: SinkOpts, hist_file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let stop = stop_flag()?;
    let r = bpf::run_sink(&opts, &stop, |n, pps| {
        eprintln!("sink {}: {n} frames, {:.3} Mpps", opts.dev, pps / 1e6);
    })
    .with_context(|| format!("sink on {}", opts.dev))?;
    let p = |q| hist::percentile_us(&r.hist, q).map_or(0, |us| us * 1000);
    println!(
        "received {} frames ({} with marker, {} bytes) at {:.3} Mpps over {:.3} s; latency p50 < {} us, p99 < {} us, p99.9 < {} us",
        r.packets,
        r.marked,
        r.bytes,
        r.pps / 1e6,
        r.active.as_secs_f64(),
        p(0.5) / 1000,
        p(0.99) / 1000,
        p(0.999) / 1000
    );
    if let Some(path) = hist_file {
        std::fs::write(path, hist::to_text(&r.hist))
            .with_context(|| format!("writing the histogram to {}", path.display()))?;
    }
    if r.future > 0 {
        eprintln!(
            "warning: {} marked frames carried a timestamp from the future",
            r.future
        );
    }
    let line = SinkResult {
        received: r.packets,
        marked: r.marked,
        sampled: r.sampled,
        bytes: r.bytes,
        future: r.future,
        active_ns: u64::try_from(r.active.as_nanos()).unwrap_or(u64::MAX),
        pps: r.pps,
        p50_ns: p(0.5),
        p99_ns: p(0.99),
        p999_ns: p(0.999),
    };
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.cmd {
        None => gen(&cli.gen),
        Some(Cmd::Gen(a)) => gen(&a),
        Some(Cmd::Sink {
            dev,
            duration,
            idle_exit,
            offsets,
            skb,
            hist,
        }) => {
            if offsets.len() > 8 {
                bail!("at most 8 --offset values");
            }
            let opts = SinkOpts {
                dev,
                duration: seconds("duration", duration)?,
                idle_exit: idle_exit.map(|s| seconds("idle-exit", s)).transpose()?,
                offsets: if offsets.is_empty() {
                    frame::MARKER_OFFSETS.to_vec()
                } else {
                    offsets
                },
                skb_mode: skb,
            };
            sink(opts, hist.as_deref())
        }
        Some(Cmd::Redirect {
            in_dev,
            out_dev,
            duration,
        }) => {
            let d = seconds("duration", duration)?;
            let stop = stop_flag()?;
            eprintln!("redirecting {in_dev} -> {out_dev} for up to {d:?}");
            bpf::run_redirect(&in_dev, &out_dev, d, &stop)
                .with_context(|| format!("redirect {in_dev} -> {out_dev}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xvpc-pktgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
