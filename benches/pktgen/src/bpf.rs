//! Loading the benchmark XDP programs and running them: the generator (live frames), the sink
//! and the redirect ceiling.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aya::maps::{Array, DevMap, PerCpuArray};
use aya::programs::{Xdp, XdpMode};
use aya::{include_bytes_aligned, Ebpf};
use xvpc_xsk::testrun::{self, TestRunError};

use crate::args::GenSpec;
use crate::frame::{self, FrameSpec, GEN_CONFIG_LEN};
use crate::hist;
use crate::pace::Pacer;

/// gen.bpf.c, compiled by build.rs.
pub static GEN_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gen.bpf.o"));
/// sink.bpf.c, compiled by build.rs.
pub static SINK_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sink.bpf.o"));
/// redirect.bpf.c, compiled by build.rs.
pub static REDIRECT_OBJ: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/redirect.bpf.o"));

/// `struct sink_config`: n_offsets + 8 offsets.
const SINK_CONFIG_LEN: usize = 36;
/// Sink statistic indexes (`enum sink_stat`).
const STAT_PACKETS: u32 = 0;
const STAT_BYTES: u32 = 1;
const STAT_MARKED: u32 = 2;
const STAT_FUTURE: u32 = 3;
const STAT_SAMPLED: u32 = 4;

/// Errors from loading or running the benchmark programs.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The interface name is not a plausible Linux interface name.
    #[error("invalid interface name {0:?}")]
    BadDevName(String),
    /// The interface does not exist in this network namespace.
    #[error("interface {0} not found in this network namespace (/sys/class/net/{0}/ifindex)")]
    NoSuchDev(String),
    /// Loading an object or program into the kernel failed (usually: not root, or no BPF).
    #[error("loading the {what} XDP program failed (are you root?): {source}")]
    Load {
        /// Which program.
        what: &'static str,
        /// The loader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A map the program should have is missing or has the wrong shape.
    #[error("map {name} of the {what} program: {source}")]
    Map {
        /// Which program.
        what: &'static str,
        /// Map name.
        name: &'static str,
        /// The loader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Attaching to an interface failed.
    #[error("attaching the {what} XDP program to {dev} failed: {source}")]
    Attach {
        /// Which program.
        what: &'static str,
        /// Interface.
        dev: String,
        /// The loader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The kernel refused XDP live frames: too old (EINVAL before 5.18), or forbidden by a
    /// lockdown or BPF LSM policy (EPERM even for root), or not offered for the device.
    #[error("live frames refused by this kernel: {errno_name} ({detail}); BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on {dev}, kernel {kernel}. Use --tx afxdp (or auto), or scripts/pktgen.sh on hosts with the pktgen module")]
    LiveFramesUnavailable {
        /// Interface.
        dev: String,
        /// `uname -r`.
        kernel: String,
        /// The errno's symbolic name (`EPERM`, `EINVAL`, ...).
        errno_name: String,
        /// The errno's text.
        detail: String,
    },
    /// The AF_XDP socket of the fallback generator could not be set up.
    #[error("AF_XDP transmit on {dev}: {source}")]
    AfXdp {
        /// Interface.
        dev: String,
        /// The socket layer's error.
        #[source]
        source: xvpc_xsk::XskError,
    },
    /// The template could not be built.
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    /// A test run failed for another reason.
    #[error(transparent)]
    TestRun(#[from] TestRunError),
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

/// The interface index of `dev` in the current network namespace.
pub fn ifindex(dev: &str) -> Result<u32, BenchError> {
    if dev.is_empty() || dev.len() > 15 || dev.contains('/') || dev == "." || dev == ".." {
        return Err(BenchError::BadDevName(dev.to_string()));
    }
    std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| BenchError::NoSuchDev(dev.to_string()))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn load(obj: &[u8], what: &'static str, prog: &str) -> Result<Ebpf, BenchError> {
    let mut ebpf = Ebpf::load(obj).map_err(|e| BenchError::Load {
        what,
        source: boxed(e),
    })?;
    let p: &mut Xdp = ebpf
        .program_mut(prog)
        .ok_or_else(|| BenchError::Load {
            what,
            source: format!("program {prog} missing from the object").into(),
        })?
        .try_into()
        .map_err(|e| BenchError::Load {
            what,
            source: boxed(e),
        })?;
    p.load().map_err(|e| BenchError::Load {
        what,
        source: boxed(e),
    })?;
    Ok(ebpf)
}

fn xdp<'a>(ebpf: &'a mut Ebpf, prog: &str, what: &'static str) -> Result<&'a mut Xdp, BenchError> {
    ebpf.program_mut(prog)
        .ok_or_else(|| BenchError::Load {
            what,
            source: format!("program {prog} missing").into(),
        })?
        .try_into()
        .map_err(|e| BenchError::Load {
            what,
            source: boxed(e),
        })
}

/// The loaded generator program with its configuration written.
pub struct Generator {
    ebpf: Ebpf,
    template: frame::Template,
}

impl Generator {
    /// Loads gen.bpf.c and writes the template for `spec` into its config map.
    pub fn new(spec: &FrameSpec) -> Result<Self, BenchError> {
        let template = frame::build(spec)?;
        let mut ebpf = load(GEN_OBJ, "generator", "xvpc_gen")?;
        let mut cfg = config_array::<GEN_CONFIG_LEN>(&mut ebpf, "generator", "gen_config")?;
        cfg.set(0, template.config, 0)
            .map_err(|e| BenchError::Map {
                what: "generator",
                name: "gen_config",
                source: boxed(e),
            })?;
        Ok(Generator { ebpf, template })
    }

    /// The template frame handed to the kernel.
    pub fn template(&self) -> &frame::Template {
        &self.template
    }

    /// Frames the program has built so far (sum over CPUs): exactly the frames handed to
    /// `XDP_TX`.
    pub fn built(&self) -> Result<u64, BenchError> {
        let arr = counter_array(&self.ebpf, "generator", "gen_count")?;
        let v = arr.get(&0, 0).map_err(|e| BenchError::Map {
            what: "generator",
            name: "gen_count",
            source: boxed(e),
        })?;
        Ok(v.iter().sum())
    }

    /// Runs the program once on the template without transmitting (plain test run) and
    /// returns the verdict and the rewritten frame: used to check the program's output.
    pub fn dry_run(&mut self) -> Result<(u32, Vec<u8>), BenchError> {
        let frame = self.template.frame.clone();
        let prog = xdp(&mut self.ebpf, "xvpc_gen", "generator")?;
        let fd = prog.fd().map_err(|e| BenchError::Load {
            what: "generator",
            source: boxed(e),
        })?;
        let mut out = vec![0u8; frame.len() + 64];
        let (verdict, n) = testrun::xdp_test_run(fd.as_fd(), &frame, 0, &mut out)?;
        out.truncate(n);
        Ok((verdict, out))
    }

    /// Transmits frames on `spec.dev` until `spec.count` frames, `spec.duration` or `stop`.
    pub fn run(&mut self, spec: &GenSpec, stop: &AtomicBool) -> Result<GenReport, BenchError> {
        let ifindex = ifindex(&spec.dev)?;
        let before = self.built()?;
        let frame = self.template.frame.clone();
        let prog = xdp(&mut self.ebpf, "xvpc_gen", "generator")?;
        // Keep the program in the kernel's XDP dispatcher for the whole run. A live-frames
        // test run of a program attached nowhere adds it to the dispatcher and removes it
        // afterwards, and each change waits for an RCU grace period (~24 ms per call on a
        // 2-CPU VM, whatever the repeat count): paced runs offered ~4 % of --rate and full
        // speed stalled between chunks. Attached to lo (generic mode; nothing the generator
        // sends arrives there) it stays, and a call costs microseconds. Detached on drop.
        let hold = prog
            .attach("lo", XdpMode::Skb)
            .map_err(|e| BenchError::Attach {
                what: "generator",
                dev: "lo".into(),
                source: boxed(e),
            })?;
        let prog = xdp(&mut self.ebpf, "xvpc_gen", "generator")?;
        let fd = prog.fd().map_err(|e| BenchError::Load {
            what: "generator",
            source: boxed(e),
        })?;
        let fd = fd.as_fd();
        let start = Instant::now();
        // One frame first, alone: a kernel that refuses live frames does so on the first call,
        // before anything is sent, and says why in its errno. The frame counts toward --count.
        if let Err(e) = testrun::xdp_live_frames(fd, &frame, ifindex, 0, 1, 1) {
            let _ = xdp(&mut self.ebpf, "xvpc_gen", "generator").map(|p| p.detach(hold));
            return Err(match e.errno() {
                Some(errno) if errno != libc::EINTR => BenchError::LiveFramesUnavailable {
                    dev: spec.dev.clone(),
                    kernel: kernel_release(),
                    errno_name: testrun::errno_name(errno),
                    detail: std::io::Error::from_raw_os_error(errno).to_string(),
                },
                _ => e.into(),
            });
        }
        let remaining = AtomicU64::new(spec.count - 1);
        let deadline = start + spec.duration;
        let per_thread_rate = spec.rate / u64::from(spec.threads);
        let results: Vec<Result<(), BenchError>> = thread::scope(|s| {
            let handles: Vec<_> = (0..spec.threads)
                .map(|_| {
                    let (frame, remaining) = (&frame, &remaining);
                    s.spawn(move || {
                        tx_loop(TxLoop {
                            fd,
                            frame,
                            ifindex,
                            batch: spec.batch,
                            remaining,
                            deadline,
                            stop,
                            rate: if spec.rate > 0 {
                                per_thread_rate.max(1)
                            } else {
                                0
                            },
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Ok(())))
                .collect()
        });
        let elapsed = start.elapsed();
        // Best effort: the link also goes when the program's fd closes at exit.
        let _ = xdp(&mut self.ebpf, "xvpc_gen", "generator").map(|p| p.detach(hold));
        for r in results {
            r?;
        }
        let sent = self.built()? - before;
        let reason = if stop.load(Ordering::Relaxed) {
            StopReason::Signal
        } else if remaining.load(Ordering::Relaxed) == 0 {
            StopReason::Count
        } else {
            StopReason::Duration
        };
        Ok(GenReport {
            sent,
            elapsed,
            reason,
        })
    }
}

/// Why the generator stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `--count` frames were sent.
    Count,
    /// `--duration` elapsed.
    Duration,
    /// Ctrl-C or SIGTERM.
    Signal,
}

/// What the generator did.
#[derive(Debug, Clone)]
pub struct GenReport {
    /// Frames the program built and returned `XDP_TX` for (from its per-CPU counter).
    pub sent: u64,
    /// Wall time from the first to the end of the last test run.
    pub elapsed: Duration,
    /// Why it stopped.
    pub reason: StopReason,
}

impl GenReport {
    /// Frames per second.
    pub fn pps(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct TxLoop<'a> {
    fd: std::os::fd::BorrowedFd<'a>,
    frame: &'a [u8],
    ifindex: u32,
    batch: u32,
    remaining: &'a AtomicU64,
    deadline: Instant,
    stop: &'a AtomicBool,
    rate: u64,
}

/// Frames per test-run call at full speed: a few milliseconds, so the bounds and Ctrl-C are
/// checked often while the syscall cost stays negligible.
const FULL_SPEED_CHUNK: u64 = 16_384;

fn tx_loop(l: TxLoop<'_>) -> Result<(), BenchError> {
    let mut pacer = Pacer::new(l.rate, FULL_SPEED_CHUNK);
    let chunk = pacer.per_round();
    loop {
        if l.stop.load(Ordering::Relaxed) || Instant::now() >= l.deadline {
            return Ok(());
        }
        // Reserve up to `chunk` frames of the global count.
        let got = l
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                (r > 0).then(|| r - r.min(chunk))
            })
            .map(|r| r.min(chunk))
            .unwrap_or(0);
        if got == 0 {
            return Ok(());
        }
        let repeat = u32::try_from(got).unwrap_or(u32::MAX);
        match testrun::xdp_live_frames(l.fd, l.frame, l.ifindex, 0, repeat, l.batch) {
            Ok(()) => {}
            // A signal cut the run short; the per-CPU counter knows what was sent.
            Err(TestRunError::Interrupted) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        pacer.wait();
    }
}

/// Sink options.
#[derive(Debug, Clone)]
pub struct SinkOpts {
    /// Interface to attach to.
    pub dev: String,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop once packets have arrived and none came for this long.
    pub idle_exit: Option<Duration>,
    /// Marker offsets to try (at most 8).
    pub offsets: Vec<u32>,
    /// Attach in generic (skb) mode instead of driver mode.
    pub skb_mode: bool,
}

/// What the sink saw.
#[derive(Debug, Clone)]
pub struct SinkReport {
    /// Frames received.
    pub packets: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Frames carrying the generator's marker.
    pub marked: u64,
    /// Marked frames with a timestamp in the future (should be 0).
    pub future: u64,
    /// Marked frames with a timestamp: the latency histogram's population.
    pub sampled: u64,
    /// Receive rate over the time packets were arriving.
    pub pps: f64,
    /// Time packets were arriving (between the first and last sample that saw new ones).
    pub active: Duration,
    /// Latency histogram (see [`hist`]).
    pub hist: Vec<u64>,
}

/// The one-entry byte-array map `name` of a loaded program, where its configuration goes.
fn config_array<'a, const N: usize>(
    ebpf: &'a mut Ebpf,
    what: &'static str,
    name: &'static str,
) -> Result<Array<&'a mut aya::maps::MapData, [u8; N]>, BenchError> {
    let map = ebpf.map_mut(name).ok_or_else(|| BenchError::Map {
        what,
        name,
        source: "missing".into(),
    })?;
    Array::try_from(map).map_err(|e| BenchError::Map {
        what,
        name,
        source: boxed(e),
    })
}

/// The per-CPU `u64` counter map `name` of a loaded program.
fn counter_array<'a>(
    ebpf: &'a Ebpf,
    what: &'static str,
    name: &'static str,
) -> Result<PerCpuArray<&'a aya::maps::MapData, u64>, BenchError> {
    let map = ebpf.map(name).ok_or_else(|| BenchError::Map {
        what,
        name,
        source: "missing".into(),
    })?;
    PerCpuArray::try_from(map).map_err(|e| BenchError::Map {
        what,
        name,
        source: boxed(e),
    })
}

fn per_cpu_sum(map: &PerCpuArray<&aya::maps::MapData, u64>, i: u32) -> Result<u64, BenchError> {
    map.get(&i, 0)
        .map(|v| v.iter().sum())
        .map_err(|e| BenchError::Map {
            what: "sink",
            name: "sink_stats",
            source: boxed(e),
        })
}

/// Attaches the sink to `opts.dev` and counts until the duration, idle timeout or `stop`.
/// `progress` is called about once a second with (marked frames so far, their rate in the last
/// second).
pub fn run_sink(
    opts: &SinkOpts,
    stop: &AtomicBool,
    mut progress: impl FnMut(u64, f64),
) -> Result<SinkReport, BenchError> {
    let mut ebpf = load(SINK_OBJ, "sink", "xvpc_sink")?;
    {
        let mut cfg = config_array::<SINK_CONFIG_LEN>(&mut ebpf, "sink", "sink_config")?;
        let mut bytes = [0u8; SINK_CONFIG_LEN];
        let n = opts.offsets.len().min(8);
        bytes[..4].copy_from_slice(&(n as u32).to_ne_bytes());
        for (i, off) in opts.offsets.iter().take(8).enumerate() {
            bytes[4 + 4 * i..8 + 4 * i].copy_from_slice(&off.to_ne_bytes());
        }
        cfg.set(0, bytes, 0).map_err(|e| BenchError::Map {
            what: "sink",
            name: "sink_config",
            source: boxed(e),
        })?;
    }
    let mode = if opts.skb_mode {
        XdpMode::Skb
    } else {
        XdpMode::Driver
    };
    ifindex(&opts.dev)?;
    xdp(&mut ebpf, "xvpc_sink", "sink")?
        .attach(&opts.dev, mode)
        .map_err(|e| BenchError::Attach {
            what: "sink",
            dev: opts.dev.clone(),
            source: boxed(e),
        })?;
    let stats = counter_array(&ebpf, "sink", "sink_stats")?;

    let start = Instant::now();
    let tick = Duration::from_millis(20);
    let mut last = 0u64;
    // (time, packets) of the first and last samples that saw new packets.
    let mut first_seen: Option<(Instant, u64)> = None;
    let mut last_change: Option<(Instant, u64)> = None;
    let (mut report_t, mut report_n) = (start, 0u64);
    while !stop.load(Ordering::Relaxed) && start.elapsed() < opts.duration {
        thread::sleep(tick);
        let now = Instant::now();
        // Activity is judged on marked frames so that stray traffic (neighbour discovery,
        // router solicitations) does not stretch the measurement window.
        let n = per_cpu_sum(&stats, STAT_MARKED)?;
        if n != last {
            if first_seen.is_none() {
                first_seen = Some((now, n));
            }
            last_change = Some((now, n));
            last = n;
        }
        if now - report_t >= Duration::from_secs(1) {
            progress(n, (n - report_n) as f64 / (now - report_t).as_secs_f64());
            (report_t, report_n) = (now, n);
        }
        if let (Some(idle), Some((t, _))) = (opts.idle_exit, last_change) {
            if now - t >= idle {
                break;
            }
        }
    }
    let packets = per_cpu_sum(&stats, STAT_PACKETS)?;
    let bytes = per_cpu_sum(&stats, STAT_BYTES)?;
    let marked = per_cpu_sum(&stats, STAT_MARKED)?;
    let future = per_cpu_sum(&stats, STAT_FUTURE)?;
    let sampled = per_cpu_sum(&stats, STAT_SAMPLED)?;
    let (pps, active) = match (first_seen, last_change) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 && n1 > n0 => {
            let d = t1 - t0;
            ((n1 - n0) as f64 / d.as_secs_f64(), d)
        }
        _ => (0.0, Duration::ZERO),
    };
    let hist_arr = counter_array(&ebpf, "sink", "sink_hist")?;
    let mut h = vec![0u64; hist::BUCKETS];
    for (i, slot) in h.iter_mut().enumerate() {
        *slot = hist_arr
            .get(&(i as u32), 0)
            .map(|v| v.iter().sum())
            .map_err(|e| BenchError::Map {
                what: "sink",
                name: "sink_hist",
                source: boxed(e),
            })?;
    }
    Ok(SinkReport {
        packets,
        bytes,
        marked,
        future,
        sampled,
        pps,
        active,
        hist: h,
    })
}

/// Redirects every frame arriving on `in_dev` to `out_dev` in XDP until `duration` or `stop`.
pub fn run_redirect(
    in_dev: &str,
    out_dev: &str,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<(), BenchError> {
    let out_index = ifindex(out_dev)?;
    ifindex(in_dev)?;
    let mut ebpf = load(REDIRECT_OBJ, "redirect", "xvpc_redirect")?;
    {
        let map = ebpf.map_mut("tx_port").ok_or_else(|| BenchError::Map {
            what: "redirect",
            name: "tx_port",
            source: "missing".into(),
        })?;
        let mut dm = DevMap::try_from(map).map_err(|e| BenchError::Map {
            what: "redirect",
            name: "tx_port",
            source: boxed(e),
        })?;
        dm.set(0, out_index, None, 0).map_err(|e| BenchError::Map {
            what: "redirect",
            name: "tx_port",
            source: boxed(e),
        })?;
    }
    xdp(&mut ebpf, "xvpc_redirect", "redirect")?
        .attach(in_dev, XdpMode::Driver)
        .map_err(|e| BenchError::Attach {
            what: "redirect",
            dev: in_dev.to_string(),
            source: boxed(e),
        })?;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < duration {
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
