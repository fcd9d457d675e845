//! `xvpc`: the dataplane daemon.
//!
//! - `xvpc run --config FILE`: attach (or adopt) the pinned XDP programs, open the AF_XDP
//!   queue pairs, run the workers until SIGINT/SIGTERM, then print the final counters. The
//!   programs stay attached after it exits, for any reason: the ports fail closed.
//! - `xvpc run --takeover --config FILE`: take the queues, frames and mappings of the `xvpc
//!   run` serving the same ports over, without losing a frame, and let it exit (an upgrade).
//! - `xvpc detach`: remove the programs and their pins: the only way to open the ports.
//! - `xvpc status`: what is attached and pinned, and whether a dataplane runs.
//! - `xvpc check-config FILE`: validate a config file and exit.
//! - `xvpc stats [--json] [--watch [SECONDS]]`: print a running daemon's counters as a
//!   table (or the JSON snapshot), once or refreshed with rates between samples.
//!
//! With `[metrics]` configured, `xvpc run` also serves Prometheus `/metrics` on a management
//! address. Logs go to stderr, one event per line (`--log-format json` for log shippers).
#![forbid(unsafe_code)]

mod config;
mod control;
mod host;
mod lifecycle;
mod metrics;
mod notify;
mod stats;
mod stats_table;
mod takeover;
mod tier;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use crossbeam_utils::CachePadded;
use xvpc_core::table::MappingTable;
use xvpc_xdp::{
    AttachMode, FabricFastPath, FabricFilter, FabricSteering, FastPathSpec, GuestFastPath,
    GuestSteering, PinDir,
};
use xvpc_xsk::{BindMode, BusyPoll, QueuePair, Side, SocketOptions, UmemConfig};

use crate::config::{AttachModeConfig, BindModeConfig, Config, FastPathConfig, NextHop};
use crate::worker::{WorkerSetup, WorkerStatus};

#[derive(Parser)]
#[command(
    name = "xvpc",
    version,
    about = "xvpc: a kernel-bypass VPC dataplane (AF_XDP + VXLAN)"
)]
struct Cli {
    /// Log format on stderr: `text` (colour only on a terminal) or `json` (one object per
    /// line, for journald and log shippers).
    #[arg(
        long,
        global = true,
        default_value = "text",
        value_name = "text|json",
        env = "XVPC_LOG_FORMAT"
    )]
    log_format: xvpc_control::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dataplane.
    Run {
        /// The TOML config file (see docs/CONFIGURATION.md).
        #[arg(long)]
        config: PathBuf,
        /// Take over from the daemon running on the same ports (`dataplane.takeover_socket`):
        /// its AF_XDP sockets, UMEM and mappings, with no frame lost; it exits once this one
        /// forwards.
        #[arg(long)]
        takeover: bool,
    },
    /// Validate a config file and exit.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Print a running daemon's counters: a table, or the JSON snapshot with `--json`.
    Stats {
        /// The daemon's stats socket.
        #[arg(long, default_value = "/run/xvpc/stats.sock")]
        socket: PathBuf,
        /// Print the JSON snapshot (stable keys, for scripts) instead of the table. With
        /// `--watch`, one compact snapshot per line.
        #[arg(long)]
        json: bool,
        /// Refresh every SECONDS (default 2), with rates computed between samples.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
        /// With `--watch`: stop after this many samples (default: until interrupted).
        #[arg(long, requires = "watch")]
        count: Option<u64>,
    },
    /// Remove the XDP programs and their pins from both ports. This opens the guest port to
    /// the host: it is the only thing that does.
    Detach(lifecycle::Ports),
    /// Say whether the programs are attached and pinned, their versions, and whether a
    /// dataplane is running.
    Status(lifecycle::Ports),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    xvpc_control::logging::init(cli.log_format);
    let result = match cli.command {
        Command::Run { config, takeover } => run(&config, takeover),
        Command::CheckConfig { file } => check_config(&file),
        Command::Stats {
            socket,
            json,
            watch,
            count,
        } => print_stats(&socket, json, watch, count),
        Command::Detach(ports) => lifecycle::detach(&ports),
        Command::Status(ports) => lifecycle::status(&ports),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvpc: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    println!(
        "config OK: guest {} (VNI {}, {} IPv4, {} IPv6), fabric {}, {} queue(s), {} static mapping(s)",
        config.guest_interface,
        config.guest.vni,
        config.guest.ipv4.len(),
        config.guest.ipv6.len(),
        config.fabric_interface,
        config.dataplane.queues.len(),
        config.mappings.len()
    );
    if let Some(m) = &config.metrics {
        println!(
            "metrics on http://{}/metrics{}",
            m.listen,
            m.netns
                .as_ref()
                .map(|ns| format!(" in network namespace {ns}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn print_stats(
    socket: &Path,
    json: bool,
    watch: Option<f64>,
    count: Option<u64>,
) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let fetch = || {
        stats::fetch(socket).with_context(|| {
            format!(
                "cannot read stats from {} (is `xvpc run` running?)",
                socket.display()
            )
        })
    };
    let Some(every) = watch else {
        let snapshot = fetch()?;
        if json {
            println!("{}", serde_json::to_string_pretty(&snapshot)?);
        } else {
            print!("{}", stats_table::render(&snapshot, None));
        }
        return Ok(());
    };
    if !(every.is_finite() && (0.1..=3600.0).contains(&every)) {
        bail!("--watch takes an interval of 0.1 to 3600 seconds, not {every}");
    }
    let every = Duration::from_secs_f64(every);
    let clear = std::io::stdout().is_terminal() && !json;
    let mut prev: Option<(serde_json::Value, Instant)> = None;
    let mut samples = 0u64;
    loop {
        let snapshot = fetch()?;
        let taken = Instant::now();
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{snapshot}")?;
        } else {
            let since = prev
                .as_ref()
                .map(|(p, at)| (p, taken.duration_since(*at).as_secs_f64()));
            if clear {
                // Home and clear, like top.
                write!(out, "\x1b[H\x1b[2J")?;
            } else if samples > 0 {
                writeln!(out)?;
            }
            write!(out, "{}", stats_table::render(&snapshot, since))?;
        }
        out.flush()?;
        drop(out);
        samples += 1;
        if count.is_some_and(|c| samples >= c) {
            return Ok(());
        }
        prev = Some((snapshot, taken));
        std::thread::sleep(every);
    }
}

/// Fill in what the config left to the host: MACs, MTU, next hop.
fn resolve_host(config: &mut Config) -> anyhow::Result<()> {
    host::check_interface(&config.guest_interface).context("guest.interface")?;
    host::check_interface(&config.fabric_interface).context("fabric.interface")?;
    if config.local_mac_from_interface {
        config.fabric.local_mac =
            host::interface_mac(&config.fabric_interface).context("fabric.local_mac")?;
    }
    if config.mtu_from_interface {
        config.fabric.mtu = host::interface_mtu(&config.fabric_interface).context("fabric.mtu")?;
        config::check_fabric_mtu(config.fabric.mtu, config.fabric.underlay_ipv6.is_some())?;
    }
    if let NextHop::Resolve(ip) = config.next_hop {
        config.fabric.next_hop_mac =
            host::resolve_next_hop(ip, &config.fabric_interface).context("fabric.next_hop_ip")?;
        tracing::info!(%ip, mac = %config.fabric.next_hop_mac, "fabric next hop resolved");
    }
    Ok(())
}

/// The guest port's program for `dataplane.fast_path`. Under `xdp` its mapping map starts as
/// the static mappings: a pinned map left by the previous run may hold the agent's mappings
/// of then, some of which may have moved since.
fn attach_guest(
    config: &Config,
    attach: AttachMode,
    pins: &PinDir,
    initial: &MappingTable,
) -> anyhow::Result<tier::GuestTier> {
    let guest = &config.guest_interface;
    let tier = match config.dataplane.fast_path {
        FastPathConfig::Afxdp => tier::GuestTier::Afxdp(Box::new(
            lifecycle::retry_busy("attaching XDP to the guest port", || {
                GuestSteering::attach(guest, attach, Some(pins))
            })
            .with_context(|| format!("attaching XDP to guest port {guest}"))?,
        )),
        FastPathConfig::Xdp => {
            let fabric_ifindex =
                host::interface_ifindex(&config.fabric_interface).context("fabric.interface")?;
            let spec = FastPathSpec {
                ctx: xvpc_core::pipeline::Context {
                    guest: &config.guest,
                    gateway: &config.gateway,
                    fabric: &config.fabric,
                },
                capacity: config.dataplane.fast_path_capacity,
            };
            let fast =
                lifecycle::retry_busy("attaching the XDP fast path to the guest port", || {
                    GuestFastPath::attach(guest, attach, &spec, fabric_ifindex, Some(pins))
                })
                .with_context(|| format!("attaching the XDP fast path to guest port {guest}"))?;
            tracing::info!(mode = ?fast.mode(), fabric_ifindex, "XDP fast path (egress) on the guest port");
            if host::is_veth(&config.fabric_interface) == Some(true) {
                // Measured: without NAPI on the peer, veth's ndo_xdp_xmit refuses the frame
                // after our program returned, so no counter of ours sees the loss.
                tracing::warn!(
                    fabric = %config.fabric_interface,
                    "the fabric port is a veth: frames the XDP tier redirects to it are dropped by \
                     the kernel unless its peer has GRO on (ethtool -K <peer> gro on) or an XDP \
                     program of its own"
                );
            }
            tier::GuestTier::xdp(fast).context("reading the XDP tier's counters")?
        }
    };
    if let Some(sync) = tier.replace_all(initial) {
        let sync = sync.context("writing the static mappings into the XDP map")?;
        tracing::info!(
            generation = sync.generation,
            written = sync.written,
            removed = sync.removed,
            no_room = sync.no_room,
            "XDP mapping map holds the static mappings"
        );
    }
    Ok(tier)
}

/// The fabric port's program for `dataplane.fast_path`. Under `xdp` it shares the guest
/// fast path's pinned maps, so the guest port's program must be attached first.
fn attach_fabric(
    config: &Config,
    attach: AttachMode,
    pins: &PinDir,
) -> anyhow::Result<tier::FabricTier> {
    let fabric = &config.fabric_interface;
    Ok(match config.dataplane.fast_path {
        FastPathConfig::Afxdp => {
            let filter = FabricFilter {
                underlay_ipv4: config.fabric.underlay_ipv4,
                underlay_ipv6: config.fabric.underlay_ipv6,
                vxlan_port: config.fabric.vxlan_port,
            };
            tier::FabricTier::Afxdp(Box::new(
                lifecycle::retry_busy("attaching XDP to the fabric port", || {
                    FabricSteering::attach(fabric, attach, &filter, Some(pins))
                })
                .with_context(|| format!("attaching XDP to fabric port {fabric}"))?,
            ))
        }
        FastPathConfig::Xdp => {
            let guest = &config.guest_interface;
            let guest_ifindex = host::interface_ifindex(guest).context("guest.interface")?;
            let spec = FastPathSpec {
                ctx: xvpc_core::pipeline::Context {
                    guest: &config.guest,
                    gateway: &config.gateway,
                    fabric: &config.fabric,
                },
                capacity: config.dataplane.fast_path_capacity,
            };
            let fast =
                lifecycle::retry_busy("attaching the XDP fast path to the fabric port", || {
                    FabricFastPath::attach(fabric, attach, &spec, guest, guest_ifindex, pins)
                })
                .with_context(|| format!("attaching the XDP fast path to fabric port {fabric}"))?;
            tracing::info!(mode = ?fast.mode(), guest_ifindex, "XDP fast path (ingress) on the fabric port");
            if host::is_veth(guest) == Some(true) {
                // As for the fabric port under the egress fast path (attach_guest).
                tracing::warn!(
                    guest = %guest,
                    "the guest port is a veth: frames the XDP tier redirects to it are dropped by \
                     the kernel unless its peer has GRO on (ethtool -K <peer> gro on) or an XDP \
                     program of its own"
                );
            }
            tier::FabricTier::xdp(fast).context("reading the XDP tier's ingress counters")?
        }
    })
}

fn run(path: &Path, takeover: bool) -> anyhow::Result<()> {
    let mut config = Config::load(path)?;
    resolve_host(&mut config)?;
    let settings = config.dataplane.clone();
    let attach = match settings.attach_mode {
        AttachModeConfig::Auto => AttachMode::Auto,
        AttachModeConfig::Driver => AttachMode::Driver,
        AttachModeConfig::Generic => AttachMode::Generic,
    };
    let notifier = notify::Notifier::from_env().context("NOTIFY_SOCKET")?;
    let pins = PinDir::prepare(&settings.pin_dir).context("dataplane.pin_dir")?;
    // Guest first: from here on nothing from the guest reaches the host stack (fail closed),
    // and it stays so after this process exits: the programs are pinned.
    let compiler = config.compiler();
    // Fixed: a worker never grows its table (the control path sends bigger ones).
    let mut initial = MappingTable::fixed(0, config.mappings.len());
    for mapping in &config.mappings {
        initial.upsert(mapping.key(), compiler.compile(mapping)?);
    }
    let mut guest_prog = attach_guest(&config, attach, &pins, &initial)?;
    let mut fabric_prog = attach_fabric(&config, attach, &pins)?;
    tracing::info!(
        guest = ?guest_prog.adoption(),
        fabric = ?fabric_prog.adoption(),
        pin_dir = %pins.root().display(),
        "XDP programs attached and pinned"
    );

    // Taking over: the running daemon quiesces its workers when we connect, so connect
    // only now that everything slow is done.
    let mut adopted = match takeover {
        true => Some(
            takeover::take_over(&settings.takeover_socket)
                .context("taking over from the running daemon")?,
        ),
        false => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let handover = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }

    if let Some(a) = &mut adopted {
        // Taking over, the old daemon's live mappings (static and the agent's) replace the
        // static ones, in the workers' tables and in the XDP tier's map.
        let mappings = std::mem::take(&mut a.mappings);
        initial = MappingTable::fixed(a.epoch, mappings.len());
        for mapping in &mappings {
            initial.upsert(mapping.key(), compiler.compile(mapping)?);
        }
        if let Some(sync) = guest_prog.replace_all(&initial) {
            sync.context("writing the adopted mappings into the XDP map")?;
        }
    }
    let (miss_tx, miss_rx) = crossbeam_channel::bounded(4096);
    let (garbage_tx, garbage_rx) = crossbeam_channel::unbounded::<Box<MappingTable>>();
    let garbage = std::thread::Builder::new()
        .name("xvpc-free".into())
        .spawn(move || garbage_rx.iter().for_each(drop))?;

    let umem = UmemConfig {
        frame_count: settings.frame_count,
        frame_size: settings.frame_size,
        ring_size: settings.ring_size,
        ..UmemConfig::default()
    };
    let bind_mode = match settings.bind_mode {
        BindModeConfig::Auto => BindMode::Auto,
        BindModeConfig::ZeroCopy => BindMode::ZeroCopy,
        BindModeConfig::Copy => BindMode::Copy,
    };
    let options = SocketOptions {
        busy_poll: (settings.busy_poll_usecs > 0).then_some(BusyPoll {
            usecs: settings.busy_poll_usecs,
            budget: settings.busy_poll_budget,
            prefer: true,
        }),
    };
    let mut update_senders = Vec::new();
    let mut statuses = Vec::new();
    let mut heartbeats = Vec::new();
    let mut workers = Vec::new();
    for (index, (queue, core)) in settings.queues.iter().copied().enumerate() {
        let handed = adopted.as_mut().and_then(|a| {
            let at = a.pairs.iter().position(|(i, _)| *i == index)?;
            Some(a.pairs.swap_remove(at).1)
        });
        let mut queue_pair = match (handed, &adopted) {
            (Some(qp), _) => qp,
            (None, Some(_)) => bail!(
                "the running daemon handed over no queue pair for queue {queue} (worker \
                 {index}): dataplane.queues must be the same as the running daemon's"
            ),
            // A restart right after a crash may find the kernel still releasing the old
            // sockets.
            (None, None) => lifecycle::retry_busy("binding AF_XDP sockets", || {
                QueuePair::new(
                    &config.guest_interface,
                    &config.fabric_interface,
                    queue,
                    umem,
                    bind_mode,
                    &options,
                )
            })
            .with_context(|| format!("opening AF_XDP sockets on queue {queue}"))?,
        };
        if settings.tx_budget > 0 {
            for side in [Side::Guest, Side::Fabric] {
                if let Err(e) = queue_pair.set_tx_budget(side, settings.tx_budget) {
                    // Older kernels (< 6.17) keep their default of 32 frames per kick.
                    tracing::warn!(queue, ?side, error = %e, "cannot raise the copy-mode TX budget");
                }
            }
        }
        guest_prog.register_socket(queue, queue_pair.fd(Side::Guest))?;
        fabric_prog.register_socket(queue, queue_pair.fd(Side::Fabric))?;
        tracing::info!(queue, mode = ?queue_pair.bind_mode(), "AF_XDP queue pair bound");
        let (update_tx, update_rx) = crossbeam_channel::bounded(65536);
        let status = Arc::new(CachePadded::new(Mutex::new(WorkerStatus::default())));
        let heartbeat = Arc::new(AtomicU64::new(0));
        let setup = WorkerSetup {
            index,
            core,
            rings: queue_pair,
            table: initial.clone(),
            guest: config.guest.clone(),
            gateway: config.gateway.clone(),
            fabric: config.fabric.clone(),
            batch_size: settings.batch_size,
            idle_spins: settings.idle_spins,
            spin_after_traffic: Duration::from_micros(settings.idle_spin_us.into()),
            updates: update_rx,
            garbage: garbage_tx.clone(),
            misses: miss_tx.clone(),
            miss_limit_per_sec: settings.miss_limit_per_sec,
            pending_timeout_ms: settings.pending_timeout_ms,
            hold_frames: settings.miss_hold_frames,
            status: status.clone(),
            heartbeat: heartbeat.clone(),
            stop: stop.clone(),
            handover: handover.clone(),
        };
        workers.push(
            std::thread::Builder::new()
                .name(format!("xvpc-worker-{index}"))
                .spawn(move || worker::run(setup))?,
        );
        update_senders.push(update_tx);
        statuses.push(status);
        heartbeats.push(heartbeat);
    }
    drop((miss_tx, garbage_tx));
    if let Some(a) = &adopted {
        if !a.pairs.is_empty() {
            stop.store(true, Ordering::Relaxed);
            bail!(
                "the running daemon handed over {} more queue pair(s) than dataplane.queues names",
                a.pairs.len()
            );
        }
    }

    let guest_prog = Arc::new(guest_prog);
    let fanout = Arc::new(
        control::Fanout::new(
            update_senders,
            statuses.clone(),
            compiler,
            config.guest.vni,
            initial,
        )
        .with_xdp(guest_prog.clone()),
    );
    let control_threads = control::spawn(
        &settings.control_socket,
        fanout.clone(),
        miss_rx,
        stop.clone(),
    )?;
    let stats_listener = control::bind(&settings.stats_socket)?;
    let takeover_listener = control::bind(&settings.takeover_socket)?;
    let takeover_fanout = fanout.clone();
    let fabric_prog = Arc::new(fabric_prog);
    let sources = stats::StatsSources {
        workers: statuses,
        fanout,
        guest: guest_prog.clone(),
        fabric: fabric_prog.clone(),
        started: Instant::now(),
    };
    let metrics_thread = match &config.metrics {
        Some(m) => {
            let listener = m.bind()?;
            tracing::info!(listen = %m.listen, netns = ?m.netns, "serving Prometheus metrics");
            let (sources, stop) = (sources.clone(), stop.clone());
            Some(
                std::thread::Builder::new()
                    .name("xvpc-metrics".into())
                    .spawn(move || {
                        xvpc_control::metrics::serve(listener, || metrics::render(&sources), stop)
                    })?,
            )
        }
        None => None,
    };
    let stats_thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("xvpc-stats".into())
            .spawn(move || stats::serve(stats_listener, sources, stop))?
    };
    tracing::info!(
        guest = %config.guest_interface,
        fabric = %config.fabric_interface,
        vni = %config.guest.vni,
        workers = workers.len(),
        control = %settings.control_socket.display(),
        "xvpc running"
    );
    if let Some(n) = &notifier {
        n.ready(&format!(
            "forwarding: guest {} fabric {}, {} worker(s)",
            config.guest_interface,
            config.fabric_interface,
            workers.len()
        ));
    }
    if let Some(a) = &adopted {
        takeover::confirm(&a.stream).context("telling the old daemon to exit")?;
        tracing::info!("took over from the running daemon: it exits now");
    }
    drop(adopted);
    // A new `xvpc run --takeover` connected: hand over to it once stopped.
    let mut successor: Option<std::os::unix::net::UnixStream> = None;
    let ping_every = notifier.as_ref().and_then(notify::Notifier::ping_every);
    let mut beats = notify::Heartbeats::default();
    let mut last_ping = Instant::now();
    let mut stalled = false;
    while !stop.load(Ordering::Relaxed) {
        if let Ok((stream, _)) = takeover_listener.accept() {
            if !takeover::is_request(&stream) {
                tracing::warn!("a peer on the takeover socket did not ask for a takeover: ignored");
                continue;
            }
            tracing::info!("a new xvpc takes over: stopping the workers at a batch boundary");
            handover.store(true, Ordering::Release);
            stop.store(true, Ordering::Relaxed);
            successor = Some(stream);
            break;
        }
        if workers.iter().any(|w| w.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            bail!("a worker thread exited unexpectedly");
        }
        if let (Some(n), Some(every)) = (&notifier, ping_every) {
            if last_ping.elapsed() >= every {
                let now: Vec<u64> = heartbeats
                    .iter()
                    .map(|h| h.load(Ordering::Relaxed))
                    .collect();
                if beats.all_moved(&now) {
                    if stalled {
                        stalled = false;
                        tracing::info!(
                            "every worker's heartbeat moves again: watchdog pings resume"
                        );
                    }
                    n.ping();
                    last_ping = Instant::now();
                } else if !stalled {
                    // Once per stall: the check runs every 50 ms.
                    stalled = true;
                    tracing::warn!(
                        workers = ?beats.stalled(&now),
                        "a worker's heartbeat stalled: withholding the watchdog pings until it \
                         moves (the service manager restarts xvpc after WatchdogSec)"
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("stopping");
    if let Some(n) = &notifier {
        n.stopping();
    }
    let mut total = xvpc_core::counters::Counters::default();
    // Every worker's frame book matches a full recount, and no worker kept a frame.
    let mut audited = true;
    let mut held_at_exit = 0u64;
    // Drops the kernel counted at our sockets' full RX rings (backpressure), per port.
    let mut kernel_rx_ring_full = [0u64; 2];
    let mut handed = Vec::new();
    for (index, worker) in workers.into_iter().enumerate() {
        let (status, queue_pair) = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
        if successor.is_some() {
            handed.push((index, settings.queues[index].0, queue_pair));
        }
        total.add(&status.counters);
        audited &= status.audit == Some(true);
        held_at_exit += status.accounting.map_or(0, |a| u64::from(a.in_app));
        for (sum, stats) in kernel_rx_ring_full.iter_mut().zip(&status.kernel) {
            *sum += stats.map_or(0, |k| k.rx_ring_full);
        }
    }
    for thread in control_threads {
        let _ = thread.join();
    }
    let _ = stats_thread.join();
    if let Some(t) = metrics_thread {
        let _ = t.join();
    }
    let _ = garbage.join();
    drop(takeover_listener);
    for path in [
        &settings.control_socket,
        &settings.stats_socket,
        &settings.takeover_socket,
    ] {
        let _ = std::fs::remove_file(path);
    }
    match guest_prog.fast_since_start() {
        Some(Ok(fast)) => stats::merge_fast(&mut total, &fast),
        Some(Err(e)) => tracing::warn!(error = %e, "the final counters lack the XDP tier's"),
        None => {}
    }
    match fabric_prog.ingress_since_start() {
        Some(Ok(ingress)) => stats::merge_ingress(&mut total, &ingress),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "the final counters lack the XDP tier's ingress")
        }
        None => {}
    }
    // The endpoints are free for the successor; our descriptors stay open until it has
    // adopted its copies and says it forwards.
    let handed_over = match &successor {
        Some(stream) => {
            let (epoch, mappings) = takeover_fanout.live_mappings();
            takeover::hand_over(stream, &handed, epoch, mappings)
                .context("handing the queues over to the new xvpc")?;
            tracing::info!(queues = handed.len(), "handed over: exiting");
            true
        }
        None => false,
    };
    drop(handed);
    drop(guest_prog);
    drop(fabric_prog);
    tracing::info!(
        pin_dir = %pins.root().display(),
        "XDP programs stay attached and pinned (fail closed): `xvpc detach` removes them"
    );
    let mut summary = stats::counters_json(&total);
    summary["frames_audit"] = serde_json::json!(audited);
    summary["frames_held_at_exit"] = serde_json::json!(held_at_exit);
    summary["handed_over"] = serde_json::json!(handed_over);
    summary["kernel_rx_ring_full"] = serde_json::json!({
        "guest": kernel_rx_ring_full[0],
        "fabric": kernel_rx_ring_full[1],
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
