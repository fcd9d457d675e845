//! The command line of `scripts/bench.sh` (which execs this harness with its arguments), parsed
//! and validated into typed values with bench.sh's messages and exit status 64.
//!
//! Hand-rolled rather than clap: options apply in order (`--smoke` sets several values, a
//! later option overrides them), lists are single space-separated arguments, and every message
//! users and CI logs know stays the same.
use std::fmt;
use std::path::PathBuf;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Linux routes guest traffic into a vxlan device (the reference).
    KernelVxlan,
    /// The xvpc daemon.
    Xvpc,
    /// The xvpc daemon with `dataplane.fast_path = "xdp"`: the common case in XDP.
    XvpcXdp,
    /// Open vSwitch userspace datapath with AF_XDP ports and a VXLAN tunnel port.
    Ovs,
    /// dpdk-testpmd io forwarding between two net_af_xdp ports (no encapsulation).
    Testpmd,
    /// XDP redirect d0 -> d1 (no encapsulation): the machine's ceiling.
    XdpRedirect,
}

impl System {
    /// The name on the command line and in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            System::KernelVxlan => "kernel-vxlan",
            System::Xvpc => "xvpc",
            System::XvpcXdp => "xvpc-xdp",
            System::Ovs => "ovs",
            System::Testpmd => "testpmd",
            System::XdpRedirect => "xdp-redirect",
        }
    }

    fn parse(s: &str) -> Option<System> {
        Some(match s {
            "kernel-vxlan" => System::KernelVxlan,
            "xvpc" => System::Xvpc,
            "xvpc-xdp" => System::XvpcXdp,
            "ovs" => System::Ovs,
            "testpmd" => System::Testpmd,
            "xdp-redirect" => System::XdpRedirect,
            _ => return None,
        })
    }

    /// Forwards without encapsulation (runs egress only, frames leave as sent).
    pub fn is_plain(self) -> bool {
        matches!(self, System::Testpmd | System::XdpRedirect)
    }

    /// Is this the xvpc daemon (under either tier)?
    pub fn is_xvpc(self) -> bool {
        matches!(self, System::Xvpc | System::XvpcXdp)
    }

    /// Does this system run in `dir`? The plain forwarders run egress only.
    pub fn runs(self, dir: Dir) -> bool {
        !(dir == Dir::Ingress && self.is_plain())
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Direction of the traffic through the DUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Guest -> fabric: plain UDP in, VXLAN out.
    Egress,
    /// Fabric -> guest: VXLAN in, plain UDP out.
    Ingress,
}

impl Dir {
    /// The name on the command line and in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::Egress => "egress",
            Dir::Ingress => "ingress",
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--tx`: how the generator transmits (passed through to xvpc-pktgen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tx {
    /// XDP live frames, AF_XDP where the kernel refuses them.
    Auto,
    /// XDP live frames only.
    Live,
    /// AF_XDP only.
    Afxdp,
}

impl Tx {
    /// The value of xvpc-pktgen's `--tx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tx::Auto => "auto",
            Tx::Live => "live",
            Tx::Afxdp => "afxdp",
        }
    }
}

/// Every option, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Repetitions (1..=100), systems interleaved within each.
    pub reps: u32,
    /// Guest frame sizes (64..=1400).
    pub sizes: Vec<u16>,
    /// Length of the max-rate and latency runs, seconds (1..=600).
    pub seconds: u32,
    /// Systems, in the order given.
    pub systems: Vec<System>,
    /// Directions, in the order given.
    pub dirs: Vec<Dir>,
    /// CSV and Markdown results.
    pub out: PathBuf,
    /// Plots.
    pub img: PathBuf,
    /// Threaded NAPI pinned to the DUT core.
    pub steer: bool,
    /// Latency runs.
    pub latency: bool,
    /// Latency runs only in repetitions 1..=lat_reps.
    pub lat_reps: u64,
    /// The zero-loss search.
    pub zero_loss: bool,
    /// Length of each search trial, seconds (1..=600).
    pub trial_seconds: u32,
    /// Bisections after the first trial (0..=20).
    pub search_steps: u32,
    /// Start no repetition that would end after this many minutes.
    pub time_limit_min: Option<u64>,
    /// Generator transmit mode.
    pub tx: Tx,
    /// perf record the xvpc daemon in its first full-speed run per direction and size.
    pub perf: bool,
    /// The "full-speed" runs offer this many frames a second instead (None: as fast as the
    /// generator can).
    pub rate: Option<u64>,
    /// Move every other task that may run elsewhere off the DUT core for the run.
    pub isolate: bool,
    /// Print the estimate and exit.
    pub estimate: bool,
    /// CI smoke run (plots go to `out`).
    pub smoke: bool,
    /// The sink stops this long after the last marked frame, in tenths of a second.
    pub sink_idle_ds: u32,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// `--help`: print [`USAGE`] and exit 0.
    Help,
    /// Run (or estimate) with these options.
    Run(Box<Options>),
}

/// A usage error: bench.sh printed `bench.sh: <message>` and exited 64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bench.sh: {0}")]
pub struct UsageError(pub String);

/// Exit status of a usage error (EX_USAGE), as bench.sh's.
pub const EXIT_USAGE: u8 = 64;

/// The help text (bench.sh's, word for word, plus the harness's own environment variable).
pub const USAGE: &str = r#"usage: scripts/bench.sh [--reps N] [--sizes "64 1400"] [--seconds S] [--systems "..."]
                        [--dirs "egress ingress"] [--out DIR] [--no-steer] [--no-latency]
                        [--no-zero-loss] [--trial-seconds S] [--search-steps N]
                        [--time-limit MIN] [--tx auto|live|afxdp] [--rate PPS] [--perf]
                        [--isolate] [--estimate] [--smoke]

  --reps N        repetitions, systems interleaved within each (default 5)
  --sizes LIST    guest frame sizes in bytes, 64..1400 (default "64 128 256 512 1024 1400")
  --seconds S     generator run time of the max-rate and latency runs (default 5)
  --systems LIST  any of: kernel-vxlan xvpc xvpc-xdp ovs testpmd xdp-redirect (default all;
                  xvpc-xdp is xvpc with dataplane.fast_path = "xdp")
  --dirs LIST     egress and/or ingress (default both; plain forwarders run egress only)
  --out DIR       CSV and Markdown results (default target/bench)
  --no-steer      leave the DUT's receive work in the sender's softirq (veth default)
                  instead of a threaded NAPI pinned to the DUT core
  --no-zero-loss  skip the RFC 2544 zero-loss search (binary search on the generator's
                  rate for the highest rate at which every frame sent reaches the sink)
  --trial-seconds S  generator run time of each search trial (default 2)
  --search-steps N   bisection steps after the first trial at the max forwarding rate
                  (default 6: resolution = that rate / 2^N, at best 1 kpps; 0 = that
                  one trial only)
  --no-latency    skip the latency run at 50% of the zero-loss rate (of the max rate when
                  the zero-loss rate is 0 or not searched)
  --lat-reps N    latency runs only in the first N repetitions (default: all)
  --time-limit MIN  start no repetition that would end after MIN minutes, judged by the
                  estimate and then by the measured length of the repetitions so far (the
                  first always runs); the report covers the repetitions that ran
  --perf          perf record the DUT core (-C, call graphs) during each system's first
                  full-speed run per direction and size ($OUT/perf-*.data; perf-*.txt:
                  samples by thread, the top symbols, the core's context switches)
  --rate PPS      the max-rate runs offer PPS frames a second instead of as many as the
                  generator can: with --perf and --no-zero-loss, profiles systems at the
                  same load (e.g. another system's zero-loss rate)
  --isolate       move every task that may run elsewhere off the DUT core for the run (as a
                  cpuset shield would on a real host), putting each back at the end
  --tx MODE       how the generator transmits: auto (default: XDP live frames, or AF_XDP
                  where the kernel refuses them), live (fail if refused) or afxdp; the
                  mode of every measurement is in the gen_mode column and the table
  --estimate      print the run time estimate for these options and exit
  --smoke         64 B, one repetition, 1 s runs, a 2-step search of 1 s trials, the sink
                  stopping 0.3 s after the last frame, no latency run: a CI check that it
                  all works (plots go to --out, not docs/img)
  env PKTGEN      path to xvpc-pktgen (default: build it in release mode)
  env XVPC        path to the xvpc daemon (default: build it in release mode)
  env XVPC_DATAPLANE_EXTRA  extra lines for xvpc's [dataplane] config (e.g. "batch_size = 256";
                  not fast_path: the systems xvpc and xvpc-xdp choose the tier)
  env BENCH_FORWARD  path to this harness, xvpc-bench-forward (default: build it in release
                  mode)

Every system must forward something and (in the first repetition) pass the correctness
check, or the script exits 1 after writing what it measured.
Writes $OUT/results.csv, $OUT/results.md, $OUT/latency-*.hist and the gnuplot PNGs into
docs/img (the published plots), or into --img DIR for experiments.
"#;

/// Options that take a value (checked before the value is used, as bench.sh did).
const WITH_VALUE: &[&str] = &[
    "--reps",
    "--sizes",
    "--seconds",
    "--systems",
    "--dirs",
    "--out",
    "--img",
    "--lat-reps",
    "--trial-seconds",
    "--search-steps",
    "--time-limit",
    "--tx",
    "--rate",
];

/// `^[0-9]+$` as a number; `None` for anything else (or too large to matter).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Parses bench.sh's arguments. `root` is the repository (for the default `--out` and `--img`).
pub fn parse(args: &[String], root: &std::path::Path) -> Result<Parsed, UsageError> {
    // Raw values first, checked after the whole line is read (a later option wins).
    let mut reps = "5".to_string();
    let mut sizes = "64 128 256 512 1024 1400".to_string();
    let mut seconds = "5".to_string();
    let mut systems = "kernel-vxlan xvpc xvpc-xdp ovs testpmd xdp-redirect".to_string();
    let mut dirs = "egress ingress".to_string();
    let mut out = root.join("target/bench");
    let mut img = root.join("docs/img");
    let mut steer = true;
    let mut latency = true;
    let mut lat_reps = "100".to_string();
    let mut zero_loss = true;
    let mut trial_seconds = "2".to_string();
    let mut search_steps = "6".to_string();
    let mut time_limit = String::new();
    let mut perf = false;
    let mut isolate = false;
    let mut smoke = false;
    let mut estimate = false;
    let mut tx = "auto".to_string();
    let mut rate = String::new();
    let mut sink_idle_ds = 10;

    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let value = if WITH_VALUE.contains(&a) {
            match args.get(i + 1) {
                Some(v) => v.clone(),
                None => return Err(usage(format!("{a} needs a value (try --help)"))),
            }
        } else {
            String::new()
        };
        match a {
            "--reps" => reps = value,
            "--sizes" => sizes = value,
            "--seconds" => seconds = value,
            "--systems" => systems = value,
            "--dirs" => dirs = value,
            "--out" => out = PathBuf::from(value),
            "--img" => img = PathBuf::from(value),
            "--lat-reps" => lat_reps = value,
            "--trial-seconds" => trial_seconds = value,
            "--search-steps" => search_steps = value,
            "--time-limit" => time_limit = value,
            "--tx" => tx = value,
            "--rate" => rate = value,
            "--no-steer" => steer = false,
            "--no-latency" => latency = false,
            "--no-zero-loss" => zero_loss = false,
            "--perf" => perf = true,
            "--isolate" => isolate = true,
            "--estimate" => estimate = true,
            "--smoke" => {
                reps = "1".into();
                sizes = "64".into();
                seconds = "1".into();
                latency = false;
                trial_seconds = "1".into();
                search_steps = "2".into();
                sink_idle_ds = 3;
                smoke = true;
            }
            "-h" | "--help" => return Ok(Parsed::Help),
            _ => return Err(usage(format!("unknown option {a} (try --help)"))),
        }
        i += if WITH_VALUE.contains(&a) { 2 } else { 1 };
    }

    let tx = match tx.as_str() {
        "auto" => Tx::Auto,
        "live" => Tx::Live,
        "afxdp" => Tx::Afxdp,
        _ => return Err(usage("--tx auto|live|afxdp")),
    };
    let reps = match digits(&reps) {
        Some(n @ 1..=100) => n as u32,
        _ => return Err(usage("--reps 1..100")),
    };
    let seconds = match digits(&seconds) {
        Some(n @ 1..=600) => n as u32,
        _ => return Err(usage("--seconds 1..600")),
    };
    let trial_seconds = match digits(&trial_seconds) {
        Some(n @ 1..=600) => n as u32,
        _ => return Err(usage("--trial-seconds 1..600 (whole seconds)")),
    };
    let search_steps = match digits(&search_steps) {
        Some(n @ 0..=20) => n as u32,
        _ => return Err(usage("--search-steps 0..20")),
    };
    let lat_reps = digits(&lat_reps).ok_or_else(|| usage("--lat-reps takes a number"))?;
    let time_limit_min = if time_limit.is_empty() {
        None
    } else {
        match digits(&time_limit) {
            Some(n @ 1..) => Some(n),
            _ => return Err(usage("--time-limit takes whole minutes (>= 1)")),
        }
    };
    let rate = if rate.is_empty() {
        None
    } else {
        match digits(&rate) {
            Some(n @ 1000..=100_000_000) => Some(n),
            _ => return Err(usage("--rate 1000..100000000 (frames a second)")),
        }
    };
    if sizes.split_whitespace().next().is_none() {
        return Err(usage("--sizes is empty"));
    }
    if systems.split_whitespace().next().is_none() {
        return Err(usage("--systems is empty"));
    }
    if dirs.split_whitespace().next().is_none() {
        return Err(usage("--dirs is empty"));
    }
    let sizes = sizes
        .split_whitespace()
        .map(|s| match digits(s) {
            Some(n @ 64..=1400) => Ok(n as u16),
            _ => Err(usage(format!("size {s} not in 64..1400"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let systems = systems
        .split_whitespace()
        .map(|s| System::parse(s).ok_or_else(|| usage(format!("unknown system {s}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let dirs = dirs
        .split_whitespace()
        .map(|d| match d {
            "egress" => Ok(Dir::Egress),
            "ingress" => Ok(Dir::Ingress),
            _ => Err(usage(format!("unknown direction {d}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let o = Options {
        reps,
        sizes,
        seconds,
        systems,
        dirs,
        // Smoke runs (CI) keep their plots out of the published docs/img.
        img: if smoke { out.clone() } else { img },
        out,
        steer,
        latency,
        lat_reps,
        zero_loss,
        trial_seconds,
        search_steps,
        time_limit_min,
        tx,
        perf,
        rate,
        isolate,
        estimate,
        smoke,
        sink_idle_ds,
    };
    if o.measurements().next().is_none() {
        return Err(usage(
            "no measurement: the plain forwarders run egress only",
        ));
    }
    Ok(Parsed::Run(Box::new(o)))
}

impl Options {
    /// The measurements of one repetition, in run order: sizes, then directions, then systems.
    pub fn measurements(&self) -> impl Iterator<Item = (u16, Dir, System)> + '_ {
        self.sizes.iter().flat_map(move |&size| {
            self.dirs.iter().flat_map(move |&dir| {
                self.systems
                    .iter()
                    .filter(move |s| s.runs(dir))
                    .map(move |&sys| (size, dir, sys))
            })
        })
    }

    /// Is `sys` among the systems?
    pub fn has(&self, sys: System) -> bool {
        self.systems.contains(&sys)
    }

    /// The sink's `--idle-exit` value as bench.sh wrote it ("1", "0.3").
    pub fn sink_idle_arg(&self) -> String {
        let ds = self.sink_idle_ds;
        if ds.is_multiple_of(10) {
            (ds / 10).to_string()
        } else {
            format!("{}.{}", ds / 10, ds % 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn run(args: &[&str]) -> Result<Options, UsageError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args, Path::new("/repo"))? {
            Parsed::Run(o) => Ok(*o),
            Parsed::Help => panic!("help"),
        }
    }

    fn err(args: &[&str]) -> String {
        run(args).expect_err("must be rejected").0
    }

    #[test]
    fn defaults_are_bench_sh_defaults() {
        let o = run(&[]).expect("valid options");
        assert_eq!(o.reps, 5);
        assert_eq!(o.sizes, vec![64, 128, 256, 512, 1024, 1400]);
        assert_eq!((o.seconds, o.trial_seconds, o.search_steps), (5, 2, 6));
        assert_eq!(
            o.systems,
            vec![
                System::KernelVxlan,
                System::Xvpc,
                System::XvpcXdp,
                System::Ovs,
                System::Testpmd,
                System::XdpRedirect
            ]
        );
        assert_eq!(o.dirs, vec![Dir::Egress, Dir::Ingress]);
        assert_eq!(o.out, Path::new("/repo/target/bench"));
        assert_eq!(o.img, Path::new("/repo/docs/img"));
        assert!(o.steer && o.latency && o.zero_loss && !o.perf && !o.smoke && !o.isolate);
        assert_eq!(o.sink_idle_arg(), "1");
        assert_eq!((o.tx, o.rate), (Tx::Auto, None));
        // 6 systems egress + 4 ingress, per size.
        assert_eq!(o.measurements().count(), 10 * 6);
    }

    #[test]
    fn smoke_sets_its_values_and_later_options_override() {
        let o = run(&["--smoke", "--img", "/elsewhere"]).expect("valid options");
        assert_eq!(
            (o.reps, o.seconds, o.trial_seconds, o.search_steps),
            (1, 1, 1, 2)
        );
        assert_eq!(o.sizes, vec![64]);
        assert!(!o.latency && o.smoke);
        assert_eq!(o.sink_idle_arg(), "0.3");
        // Smoke plots always go to --out, as bench.sh did.
        assert_eq!(o.img, o.out);
        assert_eq!(
            run(&["--smoke", "--reps", "3"])
                .expect("valid options")
                .reps,
            3
        );
        assert_eq!(
            run(&["--reps", "3", "--smoke"])
                .expect("valid options")
                .reps,
            1
        );
    }

    #[test]
    fn rate_is_frames_a_second_within_bounds() {
        assert_eq!(
            run(&["--rate", "800000"]).expect("valid options").rate,
            Some(800_000)
        );
        for bad in ["999", "0", "8e5", "-1", "100000001"] {
            assert!(
                err(&["--rate", bad]).contains("--rate 1000..100000000"),
                "{bad}"
            );
        }
        assert!(err(&["--rate"]).contains("needs a value"));
        assert!(run(&["--isolate"]).expect("valid options").isolate);
    }

    #[test]
    fn lists_keep_their_order_and_plain_forwarders_skip_ingress() {
        let o = run(&[
            "--systems",
            "xdp-redirect xvpc",
            "--dirs",
            "ingress egress",
            "--sizes",
            "128 64",
        ])
        .expect("valid options");
        let m: Vec<_> = o.measurements().collect();
        assert_eq!(
            m,
            vec![
                (128, Dir::Ingress, System::Xvpc),
                (128, Dir::Egress, System::XdpRedirect),
                (128, Dir::Egress, System::Xvpc),
                (64, Dir::Ingress, System::Xvpc),
                (64, Dir::Egress, System::XdpRedirect),
                (64, Dir::Egress, System::Xvpc),
            ]
        );
    }

    #[test]
    fn xvpc_xdp_is_an_xvpc_system_that_runs_both_ways() {
        let o = run(&[
            "--systems",
            "xvpc-xdp xdp-redirect kernel-vxlan",
            "--sizes",
            "64",
        ])
        .expect("valid options");
        assert_eq!(
            o.systems,
            vec![System::XvpcXdp, System::XdpRedirect, System::KernelVxlan]
        );
        assert_eq!(System::XvpcXdp.as_str(), "xvpc-xdp");
        assert_eq!(System::XvpcXdp.to_string(), "xvpc-xdp");
        assert!(System::XvpcXdp.is_xvpc() && System::Xvpc.is_xvpc());
        assert!(!System::KernelVxlan.is_xvpc() && !System::XdpRedirect.is_xvpc());
        assert!(!System::XvpcXdp.is_plain());
        assert!(System::XvpcXdp.runs(Dir::Ingress) && System::XvpcXdp.runs(Dir::Egress));
        let m: Vec<_> = o.measurements().collect();
        assert_eq!(
            m,
            vec![
                (64, Dir::Egress, System::XvpcXdp),
                (64, Dir::Egress, System::XdpRedirect),
                (64, Dir::Egress, System::KernelVxlan),
                (64, Dir::Ingress, System::XvpcXdp),
                (64, Dir::Ingress, System::KernelVxlan),
            ]
        );
        // A near miss is not taken for another system.
        assert_eq!(err(&["--systems", "xvpc-XDP"]), "unknown system xvpc-XDP");
        assert_eq!(err(&["--systems", "xvpcxdp"]), "unknown system xvpcxdp");
    }

    #[test]
    fn bad_values_get_bench_sh_messages() {
        assert_eq!(err(&["--reps"]), "--reps needs a value (try --help)");
        assert_eq!(
            err(&["--frobnicate"]),
            "unknown option --frobnicate (try --help)"
        );
        assert_eq!(err(&["--reps", "0"]), "--reps 1..100");
        assert_eq!(err(&["--reps", "101"]), "--reps 1..100");
        assert_eq!(err(&["--reps", "+5"]), "--reps 1..100");
        assert_eq!(err(&["--seconds", "0"]), "--seconds 1..600");
        assert_eq!(
            err(&["--trial-seconds", "0.5"]),
            "--trial-seconds 1..600 (whole seconds)"
        );
        assert_eq!(err(&["--search-steps", "21"]), "--search-steps 0..20");
        assert_eq!(
            run(&["--search-steps", "0"])
                .expect("valid options")
                .search_steps,
            0
        );
        assert_eq!(err(&["--lat-reps", "x"]), "--lat-reps takes a number");
        assert_eq!(
            err(&["--time-limit", "0"]),
            "--time-limit takes whole minutes (>= 1)"
        );
        assert_eq!(
            run(&["--time-limit", "30"])
                .expect("valid options")
                .time_limit_min,
            Some(30)
        );
        assert_eq!(err(&["--tx", "fast"]), "--tx auto|live|afxdp");
        assert_eq!(err(&["--sizes", " "]), "--sizes is empty");
        assert_eq!(err(&["--systems", ""]), "--systems is empty");
        assert_eq!(err(&["--dirs", ""]), "--dirs is empty");
        assert_eq!(err(&["--sizes", "64 63"]), "size 63 not in 64..1400");
        assert_eq!(err(&["--sizes", "1401"]), "size 1401 not in 64..1400");
        assert_eq!(err(&["--systems", "vpp"]), "unknown system vpp");
        assert_eq!(err(&["--dirs", "up"]), "unknown direction up");
        assert_eq!(
            err(&["--systems", "testpmd", "--dirs", "ingress"]),
            "no measurement: the plain forwarders run egress only"
        );
        // Checked in bench.sh's order: --tx before --reps.
        assert_eq!(err(&["--reps", "0", "--tx", "x"]), "--tx auto|live|afxdp");
    }

    #[test]
    fn help_wins_wherever_it_comes() {
        let args: Vec<String> = ["--reps", "0", "--help"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(parse(&args, Path::new("/r")), Ok(Parsed::Help));
        let args = vec!["-h".to_string()];
        assert_eq!(parse(&args, Path::new("/r")), Ok(Parsed::Help));
    }
}
