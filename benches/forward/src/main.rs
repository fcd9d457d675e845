//! `xvpc-bench-forward`: the forwarding benchmark. `scripts/bench.sh` execs it with its own
//! arguments (and `--root <repo>` first); `--help` lists them. See docs/BENCHMARKING.md.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use xvpc_bench_forward::csv::CsvFile;
use xvpc_bench_forward::harness::{measure, tier_lines, Ctx, WorkDir};
use xvpc_bench_forward::options::{self, Options, Parsed, System, EXIT_USAGE, USAGE};
use xvpc_bench_forward::{estimate, HarnessError};

/// Exit status after SIGINT/SIGTERM, as a shell reports it.
const EXIT_INTERRUPTED: u8 = 130;

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(tool))))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Machine and tool prerequisites, with bench.sh's advice.
fn prerequisites(o: &Options) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("must run as root (namespaces, XDP)");
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        bail!("needs 2 CPUs (generator and DUT on separate cores)");
    }
    if o.has(System::Ovs) {
        for t in [
            "ovsdb-tool",
            "ovsdb-server",
            "ovs-vswitchd",
            "ovs-vsctl",
            "ovs-appctl",
            "ovs-ofctl",
        ] {
            if !on_path(t) {
                bail!(
                    "{t} missing: apt-get install openvswitch-switch (or drop ovs from --systems)"
                );
            }
        }
    }
    if o.has(System::Testpmd) && !on_path("dpdk-testpmd") {
        bail!("dpdk-testpmd missing: apt-get install dpdk-dev librte-net-af-xdp23 (or drop testpmd from --systems)");
    }
    if !on_path("tshark") {
        bail!("tshark missing (correctness check): apt-get install tshark");
    }
    Ok(())
}

/// `$VAR` if set and non-empty, else `cargo build --release -p <package>` and its binary.
fn binary(var: &str, root: &Path, package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let p = match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let st = Command::new("cargo")
                .args(["build", "--release", "-q", "-p", package])
                .current_dir(root)
                .status()
                .with_context(|| format!("running cargo to build {package} (or set {var})"))?;
            if !st.success() {
                bail!("cargo build -p {package} failed ({st})");
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), PathBuf::from);
            target.join("release").join(bin)
        }
    };
    if !is_executable(&p) {
        bail!("{} is not executable", p.display());
    }
    Ok(p)
}

fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

fn run(o: Options, root: PathBuf, stop: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    prerequisites(&o)?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing a signal handler")?;
    }
    let pktgen = binary("PKTGEN", &root, "xvpc-pktgen", "xvpc-pktgen")?;
    let xvpc = if o.has(System::Xvpc) || o.has(System::XvpcXdp) {
        Some(binary("XVPC", &root, "xvpc-dataplane", "xvpc")?)
    } else {
        None
    };
    // Dropped at the end of the run (errors and Ctrl-C included): every task goes back.
    let _isolation = o.isolate.then(|| {
        let iso = xvpc_bench_forward::isolate::Isolation::apply(xvpc_bench_forward::topo::DUT_CPU);
        eprintln!(
            "bench.sh: --isolate: moved {} tasks off CPU {} ({} refused)",
            iso.moved(),
            xvpc_bench_forward::topo::DUT_CPU,
            iso.refused
        );
        iso
    });
    for d in [&o.out, &o.img] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let csv_path = o.out.join("results.csv");
    let mut csv = CsvFile::create(&csv_path)?;
    let dataplane_extra = std::env::var("XVPC_DATAPLANE_EXTRA").unwrap_or_default();
    if xvpc.is_some() {
        // Before the first measurement, not in the middle of the run.
        tier_lines(System::XvpcXdp, &dataplane_extra).map_err(anyhow::Error::msg)?;
    }
    let ctx = Ctx {
        root,
        pktgen,
        xvpc,
        dataplane_extra,
        work: WorkDir::new()?,
        stop,
        clk_tck: clk_tck(),
        o,
    };
    let o = &ctx.o;
    let t_start = Instant::now();
    let mut est_done = 0;
    for rep in 1..=o.reps {
        let est = estimate::rep_seconds(o, rep.into());
        if let Some(limit) = o.time_limit_min {
            let elapsed = t_start.elapsed().as_secs();
            if let Err(predicted) = estimate::next_rep_fits(limit, est, elapsed, est_done) {
                eprintln!(
                    "bench.sh: --time-limit {limit} min: stopping after {} of {} repetitions ({elapsed} s so far, the next would take about {predicted} s)",
                    rep - 1,
                    o.reps
                );
                break;
            }
        }
        let t_rep = Instant::now();
        for (size, dir, sys) in o.measurements() {
            let t0 = Instant::now();
            let row = measure(&ctx, sys, dir, size, rep)?;
            let line = row.to_csv();
            csv.append(&line)?;
            eprintln!("{line}");
            eprintln!(
                "bench.sh: {sys} {dir} {size} B rep {rep} took {} s",
                t0.elapsed().as_secs()
            );
        }
        est_done += est;
        eprintln!(
            "bench.sh: repetition {rep} took {} s (estimated {est} s)",
            t_rep.elapsed().as_secs()
        );
    }
    let status = Command::new("/usr/bin/python3")
        .arg(ctx.root.join("benches/pktgen/report.py"))
        .arg(&csv_path)
        .arg(&o.out)
        .arg(&o.img)
        .status()
        .context("running benches/pktgen/report.py")?;
    eprintln!(
        "bench.sh: results in {} and {}",
        csv_path.display(),
        o.out.join("results.md").display()
    );
    // report.py's status: 1 if some system forwarded nothing or failed its check.
    Ok(ExitCode::from(
        status.code().map_or(1, |c| c.clamp(0, 255) as u8),
    ))
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let root = if args.first().map(String::as_str) == Some("--root") && args.len() >= 2 {
        let r = PathBuf::from(args.remove(1));
        args.remove(0);
        r
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    };
    let o = match options::parse(&args, &root) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(o)) => *o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for line in estimate::report(&o) {
        eprintln!("{line}");
    }
    if o.estimate {
        return ExitCode::SUCCESS;
    }
    let stop = Arc::new(AtomicBool::new(false));
    match run(o, root, stop.clone()) {
        Ok(code) => code,
        // A command that died of the same Ctrl-C is an interrupt too.
        Err(e)
            if stop.load(Ordering::Relaxed)
                || matches!(
                    e.downcast_ref::<HarnessError>(),
                    Some(HarnessError::Interrupted)
                ) =>
        {
            eprintln!("bench.sh: interrupted");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("bench.sh: {e:#}");
            ExitCode::FAILURE
        }
    }
}
