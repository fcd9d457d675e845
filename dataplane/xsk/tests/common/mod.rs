//! Shared pieces of the privileged AF_XDP tests: the gen —veth— fwd —veth— sink topology,
//! the forwarding loop under test, and a frame builder.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xvpc_testbed::{require_root, veth_pair, Netns};
use xvpc_xdp::{AttachMode, GuestSteering};
use xvpc_xsk::{
    BindMode, Desc, FrameAccounting, QueuePair, Side, SocketOptions, UmemConfig, XskCounters,
    XskStats,
};

/// Interface names: gen `g0` — `fg0` fwd `ff0` — `s0` sink.
pub const GEN_IF: &str = "g0";
pub const FWD_GUEST_IF: &str = "fg0";
pub const FWD_FABRIC_IF: &str = "ff0";
pub const SINK_IF: &str = "s0";

/// Three namespaces joined by two veth pairs. Dropping it deletes them.
pub struct Topology {
    pub gen: Netns,
    pub fwd: Netns,
    pub sink: Netns,
}

impl Topology {
    /// Builds the topology; fails loudly when not root.
    pub fn new(tag: &str) -> Topology {
        require_root();
        let gen = Netns::new(&format!("{tag}-gen")).expect("create gen namespace");
        let fwd = Netns::new(&format!("{tag}-fwd")).expect("create fwd namespace");
        let sink = Netns::new(&format!("{tag}-sink")).expect("create sink namespace");
        for ns in [&gen, &fwd, &sink] {
            // No IPv6 router solicitations or DAD: the only frames on the wire are ours,
            // so the sink's counters can be compared exactly.
            ns.sh(
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
            )
            .expect("disable IPv6 in the test namespace");
        }
        veth_pair((&gen, GEN_IF), (&fwd, FWD_GUEST_IF)).expect("veth gen<->fwd");
        veth_pair((&fwd, FWD_FABRIC_IF), (&sink, SINK_IF)).expect("veth fwd<->sink");
        Topology { gen, fwd, sink }
    }
}

/// Reads an interface counter from sysfs inside `ns`.
pub fn if_counter(ns: &Netns, dev: &str, name: &str) -> u64 {
    let out = ns
        .sh(&format!("cat /sys/class/net/{dev}/statistics/{name}"))
        .expect("read interface statistics");
    out.trim().parse().expect("counter is a number")
}

/// What the forwarding loop saw.
#[derive(Debug, Default)]
pub struct FwdReport {
    pub mode: Option<BindMode>,
    /// Frames received per side (`[guest, fabric]`).
    pub rx: [u64; 2],
    /// Frames queued for TX per side.
    pub tx: [u64; 2],
    /// Frames dropped because the TX ring of that side was full.
    pub drop_tx_full: [u64; 2],
    pub accounting: FrameAccounting,
    pub audit: bool,
    pub counters: XskCounters,
    pub stats: [XskStats; 2],
    /// Frames redirected by the XDP program per port.
    pub redirected: [u64; 2],
    /// Time from the first received frame to the last.
    pub busy: Duration,
    pub loops: u64,
}

/// Steering on both forwarder ports, a QueuePair, and the loop: recv guest → send fabric,
/// recv fabric → send guest, service, wait when idle. Runs until `stop` is set and the
/// pair has been idle for a while (bounded by `limit`).
pub fn run_forwarder(
    fwd: &Netns,
    cfg: UmemConfig,
    ready: &AtomicBool,
    stop: &AtomicBool,
    progress: &AtomicU64,
    limit: Duration,
    tx_budget: Option<u32>,
) -> FwdReport {
    fwd.run_in(|| {
        let mut gs = GuestSteering::attach(FWD_GUEST_IF, AttachMode::Driver, None)
            .expect("attach steering to the forwarder's guest port");
        let mut fs = GuestSteering::attach(FWD_FABRIC_IF, AttachMode::Driver, None)
            .expect("attach steering to the forwarder's fabric port");
        let mut qp = QueuePair::new(
            FWD_GUEST_IF,
            FWD_FABRIC_IF,
            0,
            cfg,
            BindMode::Auto,
            &SocketOptions::default(),
        )
        .expect("open the QueuePair");
        if let Some(b) = tx_budget {
            for side in Side::ALL {
                qp.set_tx_budget(side, b)
                    .expect("set the copy-mode TX budget");
            }
        }
        gs.register_socket(0, qp.fd(Side::Guest))
            .expect("register guest socket");
        fs.register_socket(0, qp.fd(Side::Fabric))
            .expect("register fabric socket");
        ready.store(true, Ordering::Release);

        let mut r = FwdReport {
            mode: Some(qp.bind_mode()),
            ..FwdReport::default()
        };
        let mut batch = [Desc::default(); 64];
        let deadline = Instant::now() + limit;
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        let mut idle = 0u32;
        while Instant::now() < deadline {
            r.loops += 1;
            let mut work = false;
            for side in Side::ALL {
                let n = qp.recv(side, &mut batch);
                if n == 0 {
                    continue;
                }
                work = true;
                r.rx[side.index()] += n as u64;
                let out = side.other();
                let sent = qp.send(out, &batch[..n]);
                r.tx[out.index()] += sent as u64;
                for d in &batch[sent..n] {
                    qp.release(d.addr);
                    r.drop_tx_full[out.index()] += 1;
                }
            }
            qp.service();
            if work {
                idle = 0;
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                progress.store(r.rx[0], Ordering::Release);
                continue;
            }
            let acc = qp.accounting();
            if stop.load(Ordering::Acquire) && idle >= 10 && acc.in_tx == [0, 0] {
                break;
            }
            match qp.wait(Duration::from_millis(10)) {
                Ok(true) => {}
                Ok(false) => idle += 1,
                Err(e) => panic!("wait failed: {e}"),
            }
        }
        r.busy = first.map_or(Duration::ZERO, |f| last - f);
        r.accounting = qp.accounting();
        r.audit = qp.audit();
        r.counters = qp.counters();
        r.stats = [
            qp.stats(Side::Guest).expect("guest XDP_STATISTICS"),
            qp.stats(Side::Fabric).expect("fabric XDP_STATISTICS"),
        ];
        r.redirected = [
            gs.counters().expect("guest counters").redirected,
            fs.counters().expect("fabric counters").redirected,
        ];
        r
    })
}

/// Writes an Ethernet/IPv4/UDP frame of `len` bytes (≥ 42) from 198.18.0.1 to 198.19.0.1
/// whose UDP source port and payload depend on `seq`. Returns `len`.
pub fn build_frame(buf: &mut [u8], seq: u64, len: usize) -> usize {
    let len = len.clamp(42, buf.len());
    let f = &mut buf[..len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 1,
    ]);
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    let mut sum = 0u32;
    for w in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(1024 + (seq % 60000) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&4789u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    len
}
