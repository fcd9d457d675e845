//! The privileged part: systems under test, generator and sink runs, the correctness capture,
//! one measurement. Every process is a [`ChildGuard`] and every namespace a [`Netns`] (via
//! [`Topology`]), so an error, a panic or an interrupt tears everything down on the way out;
//! a reaped child is never signalled again, so a recycled pid is never hit.
use std::fs::{self, File};
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use xvpc_pktgen::result::{GenResult, SinkResult};
use xvpc_testbed::{ChildGuard, Netns};

use crate::check::{self, TSHARK_FIELDS};
use crate::csv::{Check, LatBase, Row};
use crate::drops::drop_counters;
use crate::losses;
use crate::options::{Dir, Options, System};
use crate::search::{zero_loss_search, Trial};
use crate::tier::{self, account};
use crate::topo::{
    gen_args, gen_size, Topology, DUT_CPU, DUT_FAB_MAC, GEN_CPU, GUEST_MAC, GW_MAC, PEER_FAB_MAC,
    REMOTE_OVL_MAC, VNI,
};
use crate::HarnessError;

/// Flows of the rate runs.
const FLOWS: u32 = 64;
/// Polling interval of every bounded wait.
const POLL: Duration = Duration::from_millis(50);

/// A temporary directory (configs, sockets, captures, raw outputs), removed on drop.
pub struct WorkDir(PathBuf);

impl WorkDir {
    /// Creates `/tmp/xvpc-bench.<pid>.<n>`.
    pub fn new() -> Result<WorkDir, HarnessError> {
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let p = base.join(format!("xvpc-bench.{}.{n}", std::process::id()));
            match fs::create_dir(&p) {
                Ok(()) => return Ok(WorkDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(HarnessError::Io {
                        what: "creating",
                        path: p.display().to_string(),
                        source,
                    })
                }
            }
        }
        Err(HarnessError::Io {
            what: "creating a work directory in",
            path: base.display().to_string(),
            source: std::io::ErrorKind::AlreadyExists.into(),
        })
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Everything a run needs besides the options.
pub struct Ctx {
    /// The validated options.
    pub o: Options,
    /// The repository (for benches/pktgen/*.py).
    pub root: PathBuf,
    /// xvpc-pktgen.
    pub pktgen: PathBuf,
    /// The xvpc daemon (when xvpc is among the systems).
    pub xvpc: Option<PathBuf>,
    /// Extra lines for xvpc's `[dataplane]` section.
    pub dataplane_extra: String,
    /// Scratch files.
    pub work: WorkDir,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<AtomicBool>,
    /// Clock ticks per second of /proc/stat.
    pub clk_tck: u64,
}

impl Ctx {
    fn check_stop(&self) -> Result<(), HarnessError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(HarnessError::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Sleeps, waking up for an interrupt.
    fn sleep(&self, d: Duration) -> Result<(), HarnessError> {
        let end = Instant::now() + d;
        loop {
            self.check_stop()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep(POLL.min(end - now));
        }
    }

    /// Waits up to `bound` for `child` to exit (`false`: still running).
    fn wait_child(&self, child: &mut ChildGuard, bound: Duration) -> Result<bool, HarnessError> {
        let end = Instant::now() + bound;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(true);
            }
            self.check_stop()?;
            if Instant::now() >= end {
                return Ok(false);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls `cond` every 50 ms, `tries` times at most.
    fn poll_until(
        &self,
        tries: u32,
        mut cond: impl FnMut() -> Result<bool, HarnessError>,
    ) -> Result<bool, HarnessError> {
        for _ in 0..tries {
            if cond()? {
                return Ok(true);
            }
            self.sleep(POLL)?;
        }
        Ok(false)
    }
}

fn cmdline(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command to completion (stdin null); a non-zero exit is an error. Returns stdout.
fn run(c: &mut Command) -> Result<String, HarnessError> {
    let cmd = cmdline(c);
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|source| HarnessError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(HarnessError::Command {
            cmd,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip netns exec <ns> args...`.
fn in_ns(ns: &Netns, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns.name()]).args(args);
    c
}

/// Starts `c` under a guard (stdin null; `ip netns exec` execs, so the pid is the program's).
fn spawn(mut c: Command) -> Result<ChildGuard, HarnessError> {
    let cmd = cmdline(&c);
    c.stdin(Stdio::null())
        .spawn()
        .map(ChildGuard::new)
        .map_err(|source| HarnessError::Spawn { cmd, source })
}

fn create(path: &Path) -> Result<File, HarnessError> {
    File::create(path).map_err(|source| HarnessError::Io {
        what: "creating",
        path: path.display().to_string(),
        source,
    })
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Our stderr, for a child's stdout that belongs in the log.
fn stderr_stdio() -> Stdio {
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::inherit(),
    }
}

/// Until an XDP program is attached to `dev` (bounded: 10 s).
fn wait_xdp(ctx: &Ctx, ns: &Netns, dev: &str) -> Result<(), HarnessError> {
    let attached = ctx.poll_until(200, || Ok(ns.ip(&["link", "show", dev])?.contains("xdp")))?;
    if attached {
        Ok(())
    } else {
        Err(HarnessError::NoXdp {
            dev: dev.into(),
            ns: ns.name().into(),
        })
    }
}

/// Pins the threaded-NAPI kernel threads of `dev` (`napi/<dev>-<id>`) to `cpu`. Re-run after
/// an XDP attach, which recreates them. Like bench.sh's `pgrep -f ^napi/<dev>-`, this matches
/// the thread name in any namespace.
fn pin_napi(dev: &str, cpu: usize) -> Result<(), HarnessError> {
    let prefix = format!("napi/{dev}-");
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| HarnessError::Io {
        what: "building a CPU set for",
        path: format!("cpu {cpu}"),
        source: e.into(),
    })?;
    let Ok(procs) = fs::read_dir("/proc") else {
        return Ok(());
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let comm = read(&e.path().join("comm"));
        if !comm.starts_with(&prefix) {
            continue;
        }
        match nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set) {
            // The thread went away since the directory was read.
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(e) => {
                return Err(HarnessError::Io {
                    what: "pinning",
                    path: format!("{} (pid {pid}) to cpu {cpu}", comm.trim()),
                    source: e.into(),
                })
            }
        }
    }
    Ok(())
}

/// Busy jiffies of `cpu` (user, nice, system, irq, softirq, steal: all but idle and iowait).
fn cpu_busy_jiffies(cpu: usize) -> u64 {
    let stat = read(Path::new("/proc/stat"));
    let name = format!("cpu{cpu}");
    stat.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name.as_str())).then(|| {
                let v: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
                [0, 1, 2, 5, 6, 7]
                    .iter()
                    .map(|&i| v.get(i).copied().unwrap_or(0))
                    .sum()
            })
        })
        .unwrap_or(0)
}

/// A running system under test. Dropping it stops every process (the namespaces, dropped
/// after it, take its XDP programs, pinned ones included).
pub struct Dut {
    /// The xvpc daemon, stopped explicitly to collect its final counters.
    xvpc: Option<ChildGuard>,
    /// Everything else (OVS's two daemons, testpmd, the redirect loader).
    others: Vec<ChildGuard>,
}

fn setup_kernel_vxlan(t: &Topology) -> Result<Dut, HarnessError> {
    let d = &t.dut;
    d.ip(&["addr", "add", "198.18.1.1/24", "dev", "d0"])?;
    d.ip(&["addr", "add", "198.19.0.1/24", "dev", "d1"])?;
    d.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")?;
    let vni = VNI.to_string();
    d.ip(&[
        "link",
        "add",
        "vx100",
        "type",
        "vxlan",
        "id",
        &vni,
        "local",
        "198.19.0.1",
        "remote",
        "198.19.0.2",
        "dstport",
        "4789",
        "dev",
        "d1",
        "nolearning",
    ])?;
    // Inner frames from the fabric are addressed to the guest's gateway MAC, as for xvpc.
    d.ip(&["link", "set", "vx100", "address", GW_MAC, "up"])?;
    d.ip(&["route", "add", "198.18.2.0/24", "dev", "vx100"])?;
    d.ip(&[
        "neigh",
        "add",
        "198.18.2.2",
        "lladdr",
        REMOTE_OVL_MAC,
        "dev",
        "vx100",
    ])?;
    d.ip(&[
        "neigh",
        "add",
        "198.19.0.2",
        "lladdr",
        PEER_FAB_MAC,
        "dev",
        "d1",
    ])?;
    d.ip(&[
        "neigh",
        "add",
        "198.18.1.2",
        "lladdr",
        GUEST_MAC,
        "dev",
        "d0",
    ])?;
    Ok(Dut {
        xvpc: None,
        others: vec![],
    })
}

fn setup_xdp_redirect(ctx: &Ctx, t: &Topology) -> Result<Dut, HarnessError> {
    let secs = (ctx.o.seconds * 2 + 60).to_string();
    let pktgen = ctx.pktgen.to_string_lossy();
    let mut c = in_ns(
        &t.dut,
        &[
            &pktgen,
            "redirect",
            "--in",
            "d0",
            "--out",
            "d1",
            "--duration",
            &secs,
        ],
    );
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let dut = Dut {
        xvpc: None,
        others: vec![spawn(c)?],
    };
    wait_xdp(ctx, &t.dut, "d0")?;
    Ok(dut)
}

/// The `[dataplane]` lines that choose `sys`'s tier. `extra` (`XVPC_DATAPLANE_EXTRA`) may
/// not choose one itself: `xvpc` and `xvpc-xdp` are the two choices. A capacity of its own
/// replaces ours.
pub fn tier_lines(sys: System, extra: &str) -> Result<String, String> {
    let sets = |key: &str| {
        extra.lines().any(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    if sets("fast_path") {
        return Err(
            "XVPC_DATAPLANE_EXTRA sets dataplane.fast_path: the systems xvpc (afxdp) and xvpc-xdp (xdp) choose the tier".into(),
        );
    }
    Ok(match sys {
        // Room for far more than the one mapping, without preallocating the default 1 M
        // entries at every DUT start (a hash lookup costs the same in either).
        System::XvpcXdp if sets("fast_path_capacity") => "fast_path = \"xdp\"\n".into(),
        System::XvpcXdp => "fast_path = \"xdp\"\nfast_path_capacity = 4096\n".into(),
        _ => String::new(),
    })
}

/// xvpc's config: guest port d0, fabric port d1, one static mapping, the worker on the DUT
/// core; `xvpc-xdp` adds `fast_path = "xdp"` (see [`tier_lines`]). Its XDP redirects from d0
/// into d1 need NAPI on s0 (veth), which the topology's GRO gives every port.
pub fn xvpc_config(
    sys: System,
    extra: &str,
    control: &Path,
    stats: &Path,
) -> Result<String, String> {
    let tier = tier_lines(sys, extra)?;
    Ok(format!(
        r#"[guest]
interface = "d0"
vni = {VNI}
mac = "{GUEST_MAC}"
ipv4 = ["198.18.1.2"]

[gateway]
mac = "{GW_MAC}"
ipv4 = "198.18.1.1"

[fabric]
interface = "d1"
underlay_ipv4 = "198.19.0.1"
next_hop_mac = "{PEER_FAB_MAC}"
vxlan_port = 4789

[dataplane]
cores = [{DUT_CPU}]
control_socket = "{}"
stats_socket = "{}"
{tier}{extra}

[[mappings]]
vni = {VNI}
overlay_ip = "198.18.2.2"
underlay_ip = "198.19.0.2"
overlay_mac = "{REMOTE_OVL_MAC}"
"#,
        control.display(),
        stats.display(),
    ))
}

/// A snapshot from the daemon's stats socket (what `xvpc stats --json` prints).
fn xvpc_stats(ctx: &Ctx) -> Result<serde_json::Value, HarnessError> {
    use std::io::Read as _;
    let path = ctx.work.path("stats.sock");
    let io = |source| HarnessError::Io {
        what: "reading xvpc's stats from",
        path: path.display().to_string(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    let mut body = String::new();
    stream.read_to_string(&mut body).map_err(io)?;
    serde_json::from_str(&body)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// The kernel's `tx_dropped` of `dev` in `ns` (a veth counts frames its peer had no room for
/// there, XDP redirects included).
fn tx_dropped(ns: &Netns, dev: &str) -> Result<u64, HarnessError> {
    let text = ns.sh(&format!("cat /sys/class/net/{dev}/statistics/tx_dropped"))?;
    text.trim().parse().map_err(|_| HarnessError::Io {
        what: "reading",
        path: format!(
            "/sys/class/net/{dev}/statistics/tx_dropped in {}",
            ns.name()
        ),
        source: std::io::ErrorKind::InvalidData.into(),
    })
}

fn setup_xvpc(ctx: &Ctx, t: &Topology, sys: System) -> Result<Dut, HarnessError> {
    let Some(xvpc) = &ctx.xvpc else {
        return Err(HarnessError::DutStart("xvpc (no binary)"));
    };
    let cfg = ctx.work.path("xvpc.toml");
    let text = xvpc_config(
        sys,
        &ctx.dataplane_extra,
        &ctx.work.path("control.sock"),
        &ctx.work.path("stats.sock"),
    )
    .map_err(HarnessError::Config)?;
    create(&cfg)?
        .write_all(text.as_bytes())
        .map_err(|source| HarnessError::Io {
            what: "writing",
            path: cfg.display().to_string(),
            source,
        })?;
    let stats = ctx.work.path("stats.sock");
    let _ = fs::remove_file(&stats);
    let _ = fs::remove_file(ctx.work.path("control.sock"));
    let log = ctx.work.path("xvpc.log");
    // `ip netns exec` gives the daemon its own /sys, so its self-mounted bpffs (and its pins)
    // go away with it; the namespace's deletion removes the attached programs.
    let mut c = in_ns(
        &t.dut,
        &[
            &xvpc.to_string_lossy(),
            "run",
            "--config",
            &cfg.to_string_lossy(),
        ],
    );
    c.stdout(create(&ctx.work.path("xvpc-final.json"))?)
        .stderr(create(&log)?);
    let mut child = spawn(c)?;
    let is_sock = || {
        fs::metadata(&stats)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false)
    };
    ctx.poll_until(200, || Ok(is_sock() || child.try_wait()?.is_some()))?;
    if !is_sock() {
        eprint!("{}", read(&log));
        return Err(HarnessError::DutStart(sys.as_str()));
    }
    let dut = Dut {
        xvpc: Some(child),
        others: vec![],
    };
    wait_xdp(ctx, &t.dut, "d0")?;
    wait_xdp(ctx, &t.dut, "d1")?;
    Ok(dut)
}

/// OVS's database and control sockets, logs and environment, all under the work directory.
struct Ovs {
    dir: PathBuf,
}

impl Ovs {
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        for v in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(v, &self.dir);
        }
        c
    }

    fn in_dut(&self, t: &Topology, args: &[&str]) -> Command {
        let mut c = in_ns(&t.dut, args);
        for v in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(v, &self.dir);
        }
        c
    }

    fn p(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn vsctl(&self, args: &[&str]) -> Result<String, HarnessError> {
        let db = format!("--db=unix:{}", self.p("db.sock"));
        run(self.cmd("ovs-vsctl").arg("--timeout=10").arg(db).args(args))
    }

    fn appctl(&self, args: &[&str]) -> Result<String, HarnessError> {
        run(self
            .cmd("ovs-appctl")
            .args(["--timeout=10", "-t", &self.p("vswitchd.ctl")])
            .args(args))
    }

    fn ofctl(&self, args: &[&str]) -> Result<String, HarnessError> {
        run(self.cmd("ovs-ofctl").args(args))
    }
}

fn setup_ovs(ctx: &Ctx, t: &Topology) -> Result<Dut, HarnessError> {
    let ovs = Ovs {
        dir: ctx.work.path("ovs"),
    };
    let _ = fs::remove_dir_all(&ovs.dir);
    fs::create_dir_all(&ovs.dir).map_err(|source| HarnessError::Io {
        what: "creating",
        path: ovs.dir.display().to_string(),
        source,
    })?;
    let mut dut = Dut {
        xvpc: None,
        others: vec![],
    };
    run(ovs.cmd("ovsdb-tool").args([
        "create",
        &ovs.p("conf.db"),
        "/usr/share/openvswitch/vswitch.ovsschema",
    ]))?;
    let mut c = ovs.in_dut(
        t,
        &[
            "ovsdb-server",
            &ovs.p("conf.db"),
            &format!("--remote=punix:{}", ovs.p("db.sock")),
            &format!("--unixctl={}", ovs.p("ovsdb.ctl")),
            &format!("--log-file={}", ovs.p("ovsdb.log")),
        ],
    );
    c.stderr(Stdio::null());
    dut.others.push(spawn(c)?);
    let exists = |name: &str| ovs.dir.join(name).exists();
    ctx.poll_until(100, || Ok(exists("db.sock")))?;
    ovs.vsctl(&["--no-wait", "init"])?;
    // The PMD thread on the DUT core; the main thread may run anywhere.
    let mask = format!("other_config:pmd-cpu-mask={:#x}", 1u64 << DUT_CPU);
    ovs.vsctl(&["--no-wait", "set", "Open_vSwitch", ".", &mask])?;
    let mut c = ovs.in_dut(
        t,
        &[
            "ovs-vswitchd",
            &format!("unix:{}", ovs.p("db.sock")),
            "--disable-system",
            &format!("--unixctl={}", ovs.p("vswitchd.ctl")),
            &format!("--log-file={}", ovs.p("vswitchd.log")),
        ],
    );
    c.stderr(Stdio::null());
    dut.others.push(spawn(c)?);
    ctx.poll_until(100, || Ok(exists("vswitchd.ctl")))?;
    let key = format!("options:key={VNI}");
    ovs.vsctl(&[
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
        "fail_mode=secure",
        "--",
        "add-port",
        "br-int",
        "d0",
        "--",
        "set",
        "interface",
        "d0",
        "type=afxdp",
        "options:xdp-mode=native",
        "ofport_request=1",
        "--",
        "add-port",
        "br-int",
        "vx0",
        "--",
        "set",
        "interface",
        "vx0",
        "type=vxlan",
        "ofport_request=2",
        "options:remote_ip=198.19.0.2",
        "options:local_ip=198.19.0.1",
        &key,
    ])?;
    let hwaddr = format!("other_config:hwaddr={DUT_FAB_MAC}");
    ovs.vsctl(&[
        "add-br",
        "br-phy",
        "--",
        "set",
        "bridge",
        "br-phy",
        "datapath_type=netdev",
        "fail_mode=secure",
        &hwaddr,
        "--",
        "add-port",
        "br-phy",
        "d1",
        "--",
        "set",
        "interface",
        "d1",
        "type=afxdp",
        "options:xdp-mode=native",
        "ofport_request=1",
    ])?;
    t.dut
        .ip(&["addr", "add", "198.19.0.1/24", "dev", "br-phy"])?;
    t.dut.ip(&["link", "set", "br-phy", "up"])?;
    // OVS learns br-phy's new address from netlink on its own time, and refuses the route
    // until it has ("Error while inserting route"; seen once in 40 setups): retry for 2 s.
    let mut tries = 0;
    while let Err(e) = ovs.appctl(&["ovs/route/add", "198.19.0.2/24", "br-phy"]) {
        tries += 1;
        if tries == 20 {
            return Err(e);
        }
        ctx.sleep(Duration::from_millis(100))?;
    }
    ovs.appctl(&["tnl/arp/set", "br-phy", "198.19.0.2", PEER_FAB_MAC])?;
    // Explicit flows (no learning, no flooding): guest <-> tunnel, tunnel endpoint <-> d1.
    // Like xvpc and the kernel, decapsulated frames leave with the gateway as source.
    ovs.ofctl(&[
        "add-flow",
        "br-int",
        &format!("in_port=1,actions=mod_dl_src:{GW_MAC},mod_dl_dst:{REMOTE_OVL_MAC},output:2"),
    ])?;
    ovs.ofctl(&[
        "add-flow",
        "br-int",
        &format!("in_port=2,actions=mod_dl_src:{GW_MAC},mod_dl_dst:{GUEST_MAC},output:1"),
    ])?;
    ovs.ofctl(&["add-flow", "br-phy", "in_port=LOCAL,actions=output:1"])?;
    ovs.ofctl(&["add-flow", "br-phy", "in_port=1,actions=LOCAL"])?;
    wait_xdp(ctx, &t.dut, "d0")?;
    wait_xdp(ctx, &t.dut, "d1")?;
    Ok(dut)
}

fn setup_testpmd(ctx: &Ctx, t: &Topology) -> Result<Dut, HarnessError> {
    // io forwarding between two AF_XDP ports; the forwarding lcore is the DUT core, the main
    // lcore (idle) shares the generator's.
    let log = ctx.work.path("testpmd.log");
    let lcores = format!("{GEN_CPU},{DUT_CPU}");
    let main = GEN_CPU.to_string();
    let prefix = format!("xb{}", std::process::id());
    let stats = format!("--stats-period={}", ctx.o.seconds * 4 + 60);
    let mut c = in_ns(
        &t.dut,
        &[
            "dpdk-testpmd",
            "-l",
            &lcores,
            "--main-lcore",
            &main,
            "--no-huge",
            "--no-pci",
            "-m",
            "1024",
            "--file-prefix",
            &prefix,
            "--log-level=*:warning",
            "--vdev",
            "net_af_xdp0,iface=d0,start_queue=0,queue_count=1",
            "--vdev",
            "net_af_xdp1,iface=d1,start_queue=0,queue_count=1",
            "--",
            "--forward-mode=io",
            "--auto-start",
            &stats,
            "--nb-cores=1",
            "--total-num-mbufs=16384",
        ],
    );
    let f = create(&log)?;
    let f2 = f.try_clone().map_err(|source| HarnessError::Io {
        what: "duplicating",
        path: log.display().to_string(),
        source,
    })?;
    c.stdout(f).stderr(f2);
    let dut = Dut {
        xvpc: None,
        others: vec![spawn(c)?],
    };
    let tail = || {
        let text = read(&log);
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("{l}");
        }
    };
    for dev in ["d0", "d1"] {
        if let Err(e) = wait_xdp(ctx, &t.dut, dev) {
            tail();
            return Err(e);
        }
    }
    ctx.poll_until(50, || {
        let text = read(&log);
        Ok(["Press enter", "Port statistics", "io packet forwarding"]
            .iter()
            .any(|s| text.contains(s)))
    })?;
    Ok(dut)
}

/// What one generator run against a fresh sink measured.
struct RunResult {
    gen: Option<GenResult>,
    /// The generator's RESULT line as printed (for the search's log).
    gen_line: Option<String>,
    sink: Option<SinkResult>,
    /// DUT core busy time during the generator run.
    busy_ns: u64,
}

/// One measurement in progress: its topology, its DUT and the generator modes seen so far.
struct Measurement<'a> {
    ctx: &'a Ctx,
    // Field order is drop order: the DUT's processes stop before the namespaces go.
    dut: Dut,
    topo: Topology,
    sys: System,
    dir: Dir,
    size: u16,
    gen_modes: Vec<&'static str>,
    /// Marked frames the sink counted over every run so far (the accounting check's).
    marked: u64,
}

impl Measurement<'_> {
    fn gen_command(&self, extra: &[String]) -> Command {
        let r = self.topo.roles(self.dir);
        let cpu = GEN_CPU.to_string();
        let pktgen = self.ctx.pktgen.to_string_lossy();
        let mut c = in_ns(
            r.tx_ns,
            &[
                "taskset",
                "-c",
                &cpu,
                &pktgen,
                "--dev",
                r.tx_dev,
                "--tx",
                self.ctx.o.tx.as_str(),
            ],
        );
        c.args(gen_args(self.sys, self.dir))
            .args(["--size", &gen_size(self.dir, self.size).to_string()])
            .args(extra);
        c
    }

    /// One generator run against a running sink (bench.sh's run_once).
    fn run_once(
        &mut self,
        rate: u64,
        secs: u32,
        hist: Option<&Path>,
        perf_out: Option<&Path>,
    ) -> Result<RunResult, HarnessError> {
        let ctx = self.ctx;
        let r = self.topo.roles(self.dir);
        let sink_out = ctx.work.path("sink.txt");
        let pktgen = ctx.pktgen.to_string_lossy();
        let duration = (secs + 30).to_string();
        let idle = ctx.o.sink_idle_arg();
        // Pinned beside the generator: unpinned, the scheduler moves the sink onto the DUT's
        // core whenever the dataplane there sleeps (measured: xvpc's worker then shared CPU 1
        // with the sink, while OVS and testpmd, which spin, kept it off), and the DUT core's
        // time and the dataplane's wakeups would carry the sink's work.
        let cpu = GEN_CPU.to_string();
        let mut c = in_ns(
            r.rx_ns,
            &[
                "taskset",
                "-c",
                &cpu,
                &pktgen,
                "sink",
                "--dev",
                r.rx_dev,
                "--duration",
                &duration,
                "--idle-exit",
                &idle,
            ],
        );
        if let Some(h) = hist {
            c.arg("--hist").arg(h);
        }
        c.stdout(create(&sink_out)?).stderr(Stdio::null());
        let mut sink = spawn(c)?;
        wait_xdp(ctx, r.rx_ns, r.rx_dev)?;
        if ctx.o.steer {
            // The DUT's receive on its own core; the sink's next to the generator.
            pin_napi(r.dut_in, DUT_CPU)?;
            pin_napi(r.rx_dev, GEN_CPU)?;
        }
        // The whole DUT core (dataplane, the NAPI thread steered there, softirqs, idle): that
        // is what the systems are compared on.
        let mut perf = match perf_out {
            Some(out) => {
                let mut c = Command::new("perf");
                c.args(["record", "-q", "-g", "-C", &DUT_CPU.to_string(), "-o"])
                    .arg(out.with_extension("data"))
                    .args(["--", "sleep", &secs.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                Some(spawn(c)?)
            }
            None => None,
        };
        let mut perf_stat = match perf_out {
            Some(out) => {
                let mut c = Command::new("perf");
                c.args(["stat", "-x", ",", "-e", "context-switches,cpu-migrations"])
                    .args(["-C", &DUT_CPU.to_string(), "-o"])
                    .arg(out.with_extension("stat"))
                    .args(["--", "sleep", &secs.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                Some(spawn(c)?)
            }
            None => None,
        };
        let b0 = cpu_busy_jiffies(DUT_CPU);
        let gen_out = ctx.work.path("gen.txt");
        let mut c = self.gen_command(&[
            "--flows".into(),
            FLOWS.to_string(),
            "--count".into(),
            "1000000000".into(),
            "--duration".into(),
            secs.to_string(),
            "--rate".into(),
            rate.to_string(),
            "--ts-every".into(),
            "16".into(),
        ]);
        c.stdout(create(&gen_out)?);
        let mut gen = spawn(c)?;
        // Its exit status does not matter: a missing RESULT line is what counts.
        if !ctx.wait_child(&mut gen, Duration::from_secs(u64::from(secs) + 60))? {
            return Err(HarnessError::Hung("xvpc-pktgen (generator)"));
        }
        let b1 = cpu_busy_jiffies(DUT_CPU);
        let gen_stdout = read(&gen_out);
        let gen_res = GenResult::from_stdout(&gen_stdout).ok();
        let gen_line = gen_stdout
            .lines()
            .find(|l| l.starts_with("RESULT"))
            .map(String::from);
        // Every mode a measurement's runs used (one, unless the kernel changed its mind).
        if let Some(g) = &gen_res {
            let m = g.mode.as_str();
            if !self.gen_modes.contains(&m) {
                self.gen_modes.push(m);
            }
        }
        if let (Some(p), Some(out)) = (perf.as_mut(), perf_out) {
            ctx.wait_child(p, Duration::from_secs(30))?;
            perf_report(&out.with_extension("data"), &out.with_extension("txt"));
        }
        // The sink keeps counting until no marked frame came for the idle time, so frames
        // still queued in the DUT when the generator stops are counted. Bound that wait: a
        // sink that saw nothing would sit out its whole --duration. On SIGTERM it still
        // prints its counts.
        if !ctx.wait_child(&mut sink, Duration::from_secs(5))? {
            sink.signal(Signal::SIGTERM)?;
            if !ctx.wait_child(&mut sink, Duration::from_secs(10))? {
                sink.kill_hard()?;
            }
        }
        let sink_res = SinkResult::from_stdout(&read(&sink_out)).ok();
        if let (Some(p), Some(out)) = (perf_stat.as_mut(), perf_out) {
            ctx.wait_child(p, Duration::from_secs(30))?;
            let marked = sink_res.as_ref().map_or(0, |s| s.marked);
            append_switches(
                &out.with_extension("stat"),
                &out.with_extension("txt"),
                marked,
            );
        }
        self.marked += sink_res.as_ref().map_or(0, |s| s.marked);
        Ok(RunResult {
            gen: gen_res,
            gen_line,
            sink: sink_res,
            busy_ns: b1.saturating_sub(b0) * 1_000_000_000 / ctx.clk_tck.max(1),
        })
    }

    /// Correctness: capture a few forwarded frames at a low rate and dissect them with tshark.
    fn check_output(&mut self) -> Result<Check, HarnessError> {
        let ctx = self.ctx;
        let label = format!("{}/{}/{}", self.sys, self.dir, self.size);
        let r = self.topo.roles(self.dir);
        let pcap = ctx.work.path("check.pcap");
        let _ = fs::remove_file(&pcap);
        let mut c = in_ns(
            r.rx_ns,
            &[
                "timeout",
                "10",
                "tcpdump",
                "-Q",
                "in",
                "-i",
                r.rx_dev,
                "-c",
                "20",
                "-w",
                &pcap.to_string_lossy(),
                "-U",
                "udp",
            ],
        );
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut cap = spawn(c)?;
        ctx.sleep(Duration::from_secs(1))?;
        let mut c = self.gen_command(
            &[
                "--flows",
                "4",
                "--count",
                "100",
                "--duration",
                "3",
                "--rate",
                "1000",
                "--ts-every",
                "1",
            ]
            .map(String::from),
        );
        c.stdout(Stdio::null());
        let cmd = cmdline(&c);
        let mut gen = spawn(c)?;
        if !ctx.wait_child(&mut gen, Duration::from_secs(60))? {
            return Err(HarnessError::Hung("xvpc-pktgen (check)"));
        }
        if let Some(status) = gen.try_wait()?.filter(|s| !s.success()) {
            return Err(HarnessError::Command {
                cmd,
                status,
                stderr: String::new(),
            });
        }
        // tcpdump runs under `timeout 10`.
        ctx.wait_child(&mut cap, Duration::from_secs(15))?;
        let mut c = Command::new("tshark");
        c.arg("-r").arg(&pcap).args([
            "-o",
            "udp.check_checksum:TRUE",
            "-d",
            "udp.port==4789,vxlan",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ]);
        for f in TSHARK_FIELDS {
            c.args(["-e", f]);
        }
        let rows = c
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let want = check::expected(self.sys, self.dir, self.size);
        let verdict = check::judge(&label, &rows, &want, |l| eprintln!("{l}"));
        if verdict == Check::NothingCaptured {
            return Ok(verdict);
        }
        // The marker "XVPG" right after the innermost UDP header, in every captured frame.
        let marker_ok = Command::new("/usr/bin/python3")
            .arg(ctx.root.join("benches/pktgen/pcap_marker.py"))
            .arg(&pcap)
            .arg(check::marker_offset(self.sys, self.dir).to_string())
            .stdin(Stdio::null())
            .stdout(stderr_stdio())
            .status()
            .is_ok_and(|s| s.success());
        Ok(if marker_ok { verdict } else { Check::Fail })
    }

    /// Stops xvpc (SIGTERM: it prints its final counters as JSON) and lists its drop counters.
    fn stop_xvpc(&mut self, rep: u32) -> Result<String, HarnessError> {
        let ctx = self.ctx;
        let Some(mut x) = self.dut.xvpc.take() else {
            return Ok(String::new());
        };
        x.signal(Signal::SIGTERM)?;
        if !ctx.wait_child(&mut x, Duration::from_secs(30))? {
            x.kill_hard()?;
        }
        let json = ctx.work.path("xvpc-final.json");
        let keep = ctx.o.out.join(format!(
            "{}-final-{}-{}-{rep}.json",
            self.sys, self.dir, self.size
        ));
        let _ = fs::copy(&json, keep);
        Ok(drop_counters(&read(&json)))
    }
}

/// Appends to `txt` the DUT core's context switches and migrations (`perf stat -x ,` output
/// in `stat`), also per 1,000 frames the sink counted.
fn append_switches(stat: &Path, txt: &Path, frames: u64) {
    let mut line = String::from("# DUT core:");
    for row in read(stat).lines() {
        let fields: Vec<&str> = row.split(',').collect();
        if let (Some(n), Some(event)) = (fields.first(), fields.get(2)) {
            if let Ok(n) = n.parse::<u64>() {
                let per_k = n as f64 * 1000.0 / frames.max(1) as f64;
                line.push_str(&format!(" {event} {n} ({per_k:.1} per 1000 frames);"));
            }
        }
    }
    let mut text = read(txt);
    text.push_str(&format!("{line} {frames} frames at the sink\n"));
    let _ = fs::write(txt, text);
}

/// Into `txt`: the DUT core's samples by thread, then its top 40 symbols (nothing if perf
/// fails).
fn perf_report(data: &Path, txt: &Path) {
    let mut report = String::new();
    for (sort, take) in [("comm", 10), ("symbol", 40)] {
        let Ok(out) = Command::new("perf")
            .arg("report")
            .arg("-i")
            .arg(data)
            .args(["--stdio", "--no-children", "-g", "none", "--sort", sort])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        report.push_str(&format!("# by {sort}\n"));
        for line in text
            .lines()
            .filter(|l| {
                let rest = l.trim_start_matches(' ');
                rest.len() < l.len() && rest.starts_with(|c: char| c.is_ascii_digit())
            })
            .take(take)
        {
            // perf pads every row to the terminal width and ends it with empty columns.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let used = fields.iter().rposition(|f| *f != "-").map_or(0, |i| i + 1);
            report.push_str(&fields[..used].join(" "));
            report.push('\n');
        }
    }
    let _ = fs::write(txt, report);
}

/// One measurement: fresh topology, the system, the full-speed run, the zero-loss search, the
/// latency run, the check (first repetition), the row. Everything is torn down on return.
pub fn measure(ctx: &Ctx, sys: System, dir: Dir, size: u16, rep: u32) -> Result<Row, HarnessError> {
    let o = &ctx.o;
    let topo = Topology::new(o.steer)?;
    let dut = match sys {
        System::KernelVxlan => setup_kernel_vxlan(&topo)?,
        System::XdpRedirect => setup_xdp_redirect(ctx, &topo)?,
        System::Xvpc | System::XvpcXdp => setup_xvpc(ctx, &topo, sys)?,
        System::Ovs => setup_ovs(ctx, &topo)?,
        System::Testpmd => setup_testpmd(ctx, &topo)?,
    };
    let mut m = Measurement {
        ctx,
        dut,
        topo,
        sys,
        dir,
        size,
        gen_modes: vec![],
        marked: 0,
    };
    // Counters before any traffic: the accounting check's first half (xvpc), and the loss
    // counters' first reading, which shares its stats snapshot and outgoing `tx_dropped`.
    let out_dev = m.topo.roles(dir).dut_out;
    let stats0 = if sys.is_xvpc() {
        Some(xvpc_stats(ctx)?)
    } else {
        None
    };
    let losses0 = losses_reading(&m.topo, dir, stats0.as_ref())?;
    let before = stats0.map(|s| (s, losses0.dut_out_tx_dropped));
    let perf_out = (o.perf && rep == 1).then(|| {
        o.out.join(format!(
            "perf-{sys}-{dir}-{size}-{}",
            if o.steer { "steered" } else { "unsteered" }
        ))
    });
    let full = m.run_once(o.rate.unwrap_or(0), o.seconds, None, perf_out.as_deref())?;
    let stats_full = if sys.is_xvpc() {
        Some(xvpc_stats(ctx)?)
    } else {
        None
    };
    let losses = losses::column(
        &losses0,
        &losses_reading(&m.topo, dir, stats_full.as_ref())?,
    );
    eprintln!(
        "losses {sys} {dir} {size} B, full speed: sent {}, sink {}; kernel drops around the \
         DUT: {}",
        full.gen.as_ref().map_or(0, |g| g.sent),
        full.sink.as_ref().map_or(0, |s| s.marked),
        if losses.is_empty() {
            "none counted"
        } else {
            &losses
        }
    );
    let sink_pps = full.sink.as_ref().map(|s| s.pps);
    let marked = full.sink.as_ref().map(|s| s.marked);
    let per_pkt = marked.filter(|&n| n > 0).map(|n| full.busy_ns / n);

    let zero_loss = if o.zero_loss {
        let label = format!("{sys} {dir} {size} B");
        Some(zero_loss_search(
            &label,
            sink_pps.unwrap_or(0.0),
            o.search_steps,
            |rate| {
                let r = m.run_once(rate, o.trial_seconds, None, None)?;
                Ok::<_, HarnessError>(Trial {
                    sent: r.gen.as_ref().map_or(0, |g| g.sent),
                    received: r.sink.as_ref().map_or(0, |s| s.marked),
                    offered: r.gen.as_ref().map(|g| g.pps as u64),
                    gen_line: r.gen_line,
                })
            },
            |l| eprintln!("{l}"),
        )?)
    } else {
        None
    };

    // Latency at half the zero-loss rate (at the max rate it is mostly queueing, and above the
    // zero-loss rate the DUT's queues fill); at half the max forwarding rate only when there is
    // no zero-loss rate.
    let (base, base_kind) = match zero_loss {
        Some(z) if z.pps > 0 => (Some(z.pps), LatBase::ZeroLoss),
        _ => (sink_pps.map(|p| p as u64), LatBase::Max),
    };
    let (mut p50, mut p99, mut lat_base) = (None, None, None);
    if o.latency && u64::from(rep) <= o.lat_reps {
        if let Some(base) = base.filter(|&b| b > 1000) {
            let hist = o.out.join(format!("latency-{sys}-{dir}-{size}-{rep}.hist"));
            eprintln!(
                "latency {sys} {dir} {size} B: at {} pps (50 % of the {} rate)",
                base / 2,
                if base_kind == LatBase::ZeroLoss {
                    "zero-loss"
                } else {
                    "max"
                }
            );
            let r = m.run_once(base / 2, o.seconds, Some(&hist), None)?;
            p50 = r.sink.as_ref().map(|s| s.p50_ns);
            p99 = r.sink.as_ref().map(|s| s.p99_ns);
            lat_base = Some(base_kind);
        }
    }
    // The second half, before the check's frames (which no sink counts).
    let accounting = match before {
        Some((stats0, dropped0)) => {
            let stats1 = xvpc_stats(ctx)?;
            let dropped = tx_dropped(&m.topo.dut, out_dev)?.saturating_sub(dropped0);
            let verdict = account(sys, dir, &stats0, &stats1, m.marked, dropped);
            match tier::spin_ends(&stats0, &stats1) {
                Ok((0, 0)) => {}
                Ok((window, preempted)) => eprintln!(
                    "spins {sys} {dir} {size} B: {window} ran their window, {preempted} ended \
                     by a preemption"
                ),
                Err(why) => eprintln!("spins {sys} {dir} {size} B: not counted: {why}"),
            }
            match &verdict {
                Ok(split) => eprintln!(
                    "accounting {sys} {dir} {size} B: {} (sink: {} frames)",
                    split.to_column(),
                    m.marked
                ),
                Err(why) => eprintln!("accounting {sys} {dir} {size} B: FAIL: {why}"),
            }
            Some(verdict)
        }
        None => None,
    };
    let check = if rep == 1 {
        m.check_output()?
    } else {
        Check::NotRun
    };
    // Frames the counters do not account for fail the measurement whatever the capture saw.
    let check = match &accounting {
        Some(Err(_)) => Check::Accounting,
        _ => check,
    };
    let dut_tier = match &accounting {
        Some(Ok(split)) => split.to_column(),
        _ => String::new(),
    };
    let dut_drops = if sys.is_xvpc() {
        m.stop_xvpc(rep)?
    } else {
        String::new()
    };
    Ok(Row {
        rep,
        size,
        system: sys,
        dir,
        gen_pps: full.gen.as_ref().map(|g| g.pps),
        sink_pps,
        sink_frames: marked,
        zero_loss,
        dut_ns_per_pkt: per_pkt,
        p50_ns: p50,
        p99_ns: p99,
        lat_base,
        steered: o.steer,
        check,
        dut_drops,
        gen_modes: m.gen_modes,
        dut_tier,
        losses,
    })
}

/// The counters [`losses::column`] compares: the veths around the DUT, and xvpc's sockets
/// from `stats`, its stats snapshot taken at the same point (`None` for other systems).
fn losses_reading(
    t: &Topology,
    dir: Dir,
    stats: Option<&serde_json::Value>,
) -> Result<losses::Reading, HarnessError> {
    let r = t.roles(dir);
    Ok(losses::Reading {
        gen_tx_dropped: tx_dropped(r.tx_ns, r.tx_dev)?,
        dut_in: losses::ethtool_drops(&t.dut.sh(&format!("ethtool -S {}", r.dut_in))?),
        xsk: stats.and_then(|s| losses::xsk_counters(s, dir)),
        dut_out_tx_dropped: tx_dropped(&t.dut, r.dut_out)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sys: System, extra: &str) -> Result<String, String> {
        xvpc_config(
            sys,
            extra,
            Path::new("/w/control.sock"),
            Path::new("/w/stats.sock"),
        )
    }

    #[test]
    fn xvpc_xdp_is_xvpc_with_the_xdp_tier() {
        let afxdp = config(System::Xvpc, "batch_size = 64").expect("a config");
        let xdp = config(System::XvpcXdp, "batch_size = 64").expect("a config");
        assert!(!afxdp.contains("fast_path"), "{afxdp}");
        assert!(
            xdp.contains("cores = [1]\ncontrol_socket = \"/w/control.sock\"\nstats_socket = \"/w/stats.sock\"\nfast_path = \"xdp\"\nfast_path_capacity = 4096\nbatch_size = 64\n"),
            "{xdp}"
        );
        // Otherwise the same file.
        assert_eq!(
            xdp.replace("fast_path = \"xdp\"\nfast_path_capacity = 4096\n", ""),
            afxdp
        );
        // The operator's capacity wins (TOML refuses a key twice).
        let own = config(System::XvpcXdp, "fast_path_capacity = 65536").expect("a config");
        assert_eq!(own.matches("fast_path_capacity").count(), 1, "{own}");
        assert!(
            own.contains("fast_path = \"xdp\"\nfast_path_capacity = 65536"),
            "{own}"
        );
    }

    #[test]
    fn the_extra_lines_may_not_choose_the_tier() {
        for extra in [
            "fast_path = \"xdp\"",
            "  fast_path=\"afxdp\"",
            "a = 1\nfast_path = \"xdp\"",
        ] {
            for sys in [System::Xvpc, System::XvpcXdp] {
                let e = config(sys, extra).expect_err("the tier is the system's");
                assert!(e.contains("sets dataplane.fast_path"), "{e}");
            }
        }
        // Neither a capacity nor a comment is a choice of tier.
        assert!(tier_lines(System::Xvpc, "fast_path_capacity = 8").is_ok());
        assert!(tier_lines(System::XvpcXdp, "# fast_path = \"xdp\"").is_ok());
    }
}
