//! Privileged tests (root): a QueuePair forwarding between two veth ports of a namespace.
//! They fail, never skip, without root.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::*;
use xvpc_xdp::{AttachMode, GuestSteering};
use xvpc_xsk::{
    BindMode, BusyPoll, Desc, DescError, Port, QueuePair, Side, SocketOptions, UmemConfig,
    XskError, XDP_PACKET_HEADROOM,
};

const FRAMES: u64 = 1_000_000;
/// The generator stays at most this many frames ahead of what the forwarder received, so
/// the test measures the forwarder rather than the veth queue in front of it.
const WINDOW: u64 = 1536;
/// Frames per copy-mode TX kick (kernel default 32).
const TX_BUDGET: Option<u32> = None;

fn wait_ready(flag: &AtomicBool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !flag.load(Ordering::Acquire) {
        assert!(Instant::now() < deadline, "{what} did not become ready");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `count` 64-byte frames from an AF_XDP socket on `GEN_IF`, paced by `progress`.
/// Returns (frames sent, whether the generator's accounting balanced after draining, pacing
/// stalls).
fn generate(
    topo: &Topology,
    count: u64,
    progress: &AtomicU64,
    failed: &AtomicBool,
) -> (u64, bool, u64) {
    topo.gen.run_in(|| {
        let cfg = UmemConfig {
            frame_count: 4096,
            ..UmemConfig::default()
        };
        let mut port = Port::new(GEN_IF, 0, cfg, BindMode::Auto, &SocketOptions::default())
            .expect("open generator socket");
        if let Some(b) = TX_BUDGET {
            port.set_tx_budget(b)
                .expect("set the generator's TX budget");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut descs = [Desc::default(); 64];
        let mut sent = 0u64;
        let mut stalled_since: Option<Instant> = None;
        let mut stalls = 0u64;
        while sent < count && Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
            port.service();
            // Pace on the forwarder; if it stops making progress (frames lost before it),
            // go on after a short pause rather than hang.
            if sent > progress.load(Ordering::Acquire) + WINDOW {
                let since = *stalled_since.get_or_insert_with(|| {
                    stalls += 1;
                    Instant::now()
                });
                if since.elapsed() < Duration::from_millis(5) {
                    std::thread::yield_now();
                    continue;
                }
            }
            stalled_since = None;
            let mut k = 0;
            while k < descs.len() && sent + (k as u64) < count {
                let Some(base) = port.alloc() else { break };
                let mut f = port
                    .frame(Desc { addr: base, len: 0 })
                    .expect("allocated frame is ours");
                let start = 256;
                let len = build_frame(&mut f.buf()[start..], sent + k as u64, 64);
                descs[k] = Desc::from_chunk(base, start, len);
                k += 1;
            }
            let n = port.send(&descs[..k]);
            for d in &descs[n..k] {
                port.release(d.addr);
            }
            sent += n as u64;
            if n == 0 {
                let _ = port.wait(Duration::from_millis(1));
            }
        }
        let drain = Instant::now() + Duration::from_secs(5);
        while port.accounting().in_tx != [0, 0] && Instant::now() < drain {
            port.service();
            let _ = port.wait(Duration::from_millis(1));
        }
        let acc = port.accounting();
        (
            sent,
            port.audit() && acc.in_tx == [0, 0] && acc.in_app == 0,
            stalls,
        )
    })
}

#[test]
fn forwards_a_million_frames_and_loses_none() {
    let topo = Topology::new("xskfw");
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let sink_before = if_counter(&topo.sink, SINK_IF, "rx_packets");
    let cfg = UmemConfig::default();

    let (report, (sent, gen_ok, stalls)) = std::thread::scope(|s| {
        let fwd = s.spawn(|| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_forwarder(
                    &topo.fwd,
                    cfg,
                    &ready,
                    &stop,
                    &progress,
                    Duration::from_secs(180),
                    TX_BUDGET,
                )
            }));
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            r
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.load(Ordering::Acquire) && !failed.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "forwarder did not become ready");
            std::thread::sleep(Duration::from_millis(5));
        }
        let gen = generate(&topo, FRAMES, &progress, &failed);
        stop.store(true, Ordering::Release);
        let report = match fwd.join().expect("forwarder thread") {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        };
        (report, gen)
    });

    let sink_rx = if_counter(&topo.sink, SINK_IF, "rx_packets") - sink_before;
    let ff0_tx_dropped = if_counter(&topo.fwd, FWD_FABRIC_IF, "tx_dropped");
    let g0_tx_dropped = if_counter(&topo.gen, GEN_IF, "tx_dropped");
    let fg0_rx_dropped = if_counter(&topo.fwd, FWD_GUEST_IF, "rx_dropped");
    let busy = report.busy.as_secs_f64().max(1e-9);
    eprintln!(
        "generated {sent} ({stalls} pacing stalls), forwarder mode {:?}: rx {:?} tx {:?} tx-full drops {:?}, \
         sink rx {sink_rx}, ff0 tx_dropped {ff0_tx_dropped}, g0 tx_dropped {g0_tx_dropped}, \
         fg0 rx_dropped {fg0_rx_dropped}, xdp redirected {:?}, guest xsk stats {:?}, \
         {:.3} Mframes/s over {:.2}s ({} loops), counters {:?}",
        report.mode,
        report.rx,
        report.tx,
        report.drop_tx_full,
        report.redirected,
        report.stats[0],
        report.rx[0] as f64 / busy / 1e6,
        busy,
        report.loops,
        report.counters,
    );

    assert_eq!(sent, FRAMES, "generator did not send all frames in time");
    assert!(gen_ok, "generator leaked frames");
    assert!(
        report.rx[0] > 0,
        "the forwarder received nothing on its guest port"
    );
    // What the forwarder queued on the fabric port is what it received minus counted drops...
    assert_eq!(report.tx[1], report.rx[0] - report.drop_tx_full[1]);
    // ...and every queued frame left the port: reached the sink or was counted as dropped
    // by the veth.
    assert_eq!(sink_rx + ff0_tx_dropped, report.tx[1]);
    // Every frame the XDP program redirected reached the socket or is counted by it.
    let s = report.stats[0];
    assert_eq!(
        report.redirected[0],
        report.rx[0] + s.rx_dropped + s.rx_ring_full,
        "frames redirected to the guest socket but neither received nor counted"
    );
    // Drained: every frame is back, none in flight, none refused.
    assert!(report.accounting.is_balanced(), "{:?}", report.accounting);
    assert!(
        report.audit,
        "accounting disagrees with the ownership table"
    );
    assert_eq!(report.accounting.in_tx, [0, 0]);
    assert_eq!(report.accounting.in_app, 0);
    assert_eq!(report.counters.frames, Default::default());
}

/// What an endpoint received: the frames, their data offsets inside their chunks, and where
/// their chunks start inside a 4 KiB page.
type Received = (Vec<Vec<u8>>, Vec<usize>, BTreeSet<u64>);

/// Sends `frames` from a steered AF_XDP port on `ifname` in `ns` (UMEM frames of
/// `frame_size`), then collects `expect` frames.
fn endpoint(
    ns: &xvpc_testbed::Netns,
    ifname: &str,
    frame_size: u32,
    frames: &[Vec<u8>],
    expect: usize,
    start: &Barrier,
) -> Received {
    ns.run_in(|| {
        let cfg = UmemConfig {
            frame_count: 1024,
            frame_size,
            ring_size: 256,
            ..UmemConfig::default()
        };
        let mut steer =
            GuestSteering::attach(ifname, AttachMode::Driver, None).expect("attach steering");
        let mut port = Port::new(ifname, 0, cfg, BindMode::Auto, &SocketOptions::default())
            .expect("open endpoint socket");
        steer
            .register_socket(0, port.fd())
            .expect("register endpoint socket");
        start.wait();
        for (i, bytes) in frames.iter().enumerate() {
            let base = port.alloc().expect("free frame");
            let mut f = port
                .frame(Desc { addr: base, len: 0 })
                .expect("allocated frame is ours");
            // Vary the TX data offset: it may start anywhere in the chunk.
            let at = 64 * (i % 8);
            f.buf()[at..at + bytes.len()].copy_from_slice(bytes);
            let d = Desc::from_chunk(base, at, bytes.len());
            assert_eq!(port.send(&[d]), 1, "TX ring has room");
        }
        let mut got = Vec::new();
        let mut offsets = Vec::new();
        let mut page_offsets = BTreeSet::new();
        let mut batch = [Desc::default(); 16];
        let deadline = Instant::now() + Duration::from_secs(10);
        while (got.len() < expect || port.accounting().in_tx != [0, 0]) && Instant::now() < deadline
        {
            port.service();
            let n = port.recv(&mut batch);
            for d in &batch[..n] {
                let f = port.frame(*d).expect("received frame is ours");
                got.push(f.data().to_vec());
                offsets.push(f.start());
                page_offsets.insert(f.chunk_base() % 4096);
                port.release(d.addr);
            }
            if n == 0 {
                let _ = port.wait(Duration::from_millis(5));
            }
        }
        assert!(port.audit(), "endpoint accounting");
        (got, offsets, page_offsets)
    })
}

/// 2048-byte frames: coloured chunks in unaligned-chunk mode, one per page at 32 offsets.
#[test]
fn forwarded_frames_are_byte_identical_both_ways() {
    let page_offsets = forward_both_ways("xskid", 2048);
    assert!(
        page_offsets.len() > 2 && page_offsets.iter().all(|o| o % 64 == 0 && o + 2048 <= 4096),
        "coloured chunks start at several line offsets within their page: {page_offsets:?}"
    );
}

/// 4096-byte frames: aligned chunks, the kernel's default mode.
#[test]
fn forwarded_frames_are_byte_identical_with_aligned_chunks() {
    let page_offsets = forward_both_ways("xskal", 4096);
    assert_eq!(
        page_offsets,
        BTreeSet::from([0]),
        "aligned chunks start pages"
    );
}

/// Frames of every size from each endpoint through the forwarder and back unchanged, with
/// UMEMs of `frame_size` frames everywhere. Returns where the endpoints' chunks start in
/// their pages.
fn forward_both_ways(tag: &str, frame_size: u32) -> BTreeSet<u64> {
    let topo = Topology::new(tag);
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let cfg = UmemConfig {
        frame_size,
        ..UmemConfig::default()
    };
    let sizes = [42usize, 60, 64, 128, 333, 512, 1000, 1514];
    let to_sink: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut b = vec![0u8; n];
            build_frame(&mut b, i as u64, n);
            b
        })
        .collect();
    let to_gen: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut b = vec![0u8; n];
            build_frame(&mut b, 1000 + i as u64, n);
            b
        })
        .collect();
    let start = Barrier::new(2);

    let (report, (gen_got, gen_off, gen_pages), (sink_got, sink_off, sink_pages)) =
        std::thread::scope(|s| {
            let fwd = s.spawn(|| {
                run_forwarder(
                    &topo.fwd,
                    cfg,
                    &ready,
                    &stop,
                    &progress,
                    Duration::from_secs(60),
                    None,
                )
            });
            wait_ready(&ready, "forwarder");
            let sink = s.spawn(|| {
                endpoint(
                    &topo.sink,
                    SINK_IF,
                    frame_size,
                    &to_gen,
                    to_sink.len(),
                    &start,
                )
            });
            let gen = endpoint(
                &topo.gen,
                GEN_IF,
                frame_size,
                &to_sink,
                to_gen.len(),
                &start,
            );
            let sink = sink.join().expect("sink thread");
            stop.store(true, Ordering::Release);
            (fwd.join().expect("forwarder thread"), gen, sink)
        });
    eprintln!(
        "rx data offsets: gen {gen_off:?}, sink {sink_off:?} (UMEM headroom {}, XDP_PACKET_HEADROOM {XDP_PACKET_HEADROOM})",
        cfg.headroom
    );
    assert_eq!(sink_got, to_sink, "guest→fabric frames changed or lost");
    assert_eq!(gen_got, to_gen, "fabric→guest frames changed or lost");
    assert_eq!(report.rx, [sizes.len() as u64; 2]);
    for off in gen_off.iter().chain(&sink_off) {
        assert!(
            *off as u32 >= cfg.headroom,
            "received data at offset {off} leaves less than the configured headroom"
        );
    }
    assert!(report.accounting.is_balanced() && report.audit);
    assert_eq!(report.accounting.in_tx, [0, 0]);
    gen_pages.union(&sink_pages).copied().collect()
}

#[test]
fn zero_copy_is_refused_on_veth_and_auto_falls_back_to_copy() {
    let topo = Topology::new("xskzc");
    topo.fwd.run_in(|| {
        let err = QueuePair::new(
            FWD_GUEST_IF,
            FWD_FABRIC_IF,
            0,
            UmemConfig::default(),
            BindMode::ZeroCopy,
            &SocketOptions::default(),
        )
        .err()
        .expect("veth has no zero-copy AF_XDP");
        let msg = err.to_string();
        assert!(
            matches!(
                &err,
                XskError::Bind {
                    mode: "zero-copy",
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("fg0 queue 0"), "{msg}");
        let qp = QueuePair::new(
            FWD_GUEST_IF,
            FWD_FABRIC_IF,
            0,
            UmemConfig::default(),
            BindMode::Auto,
            &SocketOptions::default(),
        )
        .expect("auto falls back to copy mode");
        assert_eq!(qp.bind_mode(), BindMode::Copy);
        // Both fill rings were stocked at creation, split evenly.
        let acc = qp.accounting();
        assert_eq!(acc.in_fill, [2048, 2048]);
        assert!(acc.is_balanced() && qp.audit());

        // Descriptors the caller does not own are refused and counted, never sent.
        let mut qp = qp;
        let bogus = Desc { addr: 0, len: 64 };
        assert_eq!(qp.frame(bogus).err(), Some(DescError::NotOwned));
        assert_eq!(
            qp.frame(Desc {
                addr: 1 << 40,
                len: 1
            })
            .err(),
            Some(DescError::OutOfUmem)
        );
        assert_eq!(qp.send(Side::Fabric, &[bogus]), 0);
        qp.release(0);
        let base = qp.alloc().expect("free frame");
        assert_eq!(
            qp.frame(Desc {
                addr: base + 2000,
                len: 100
            })
            .err(),
            Some(DescError::CrossesChunk)
        );
        qp.release(base);
        let c = qp.counters().frames;
        assert_eq!((c.send_rejected, c.release_unowned), (1, 1));
        assert!(qp.audit());
        drop(qp);

        // Busy-poll options are accepted (as root) and the pair still works.
        let opts = SocketOptions {
            busy_poll: Some(BusyPoll {
                usecs: 20,
                budget: 64,
                prefer: true,
            }),
        };
        let mut qp = QueuePair::new(
            FWD_GUEST_IF,
            FWD_FABRIC_IF,
            0,
            UmemConfig::default(),
            BindMode::Copy,
            &opts,
        )
        .expect("busy-poll options on veth");
        // A busy-polling pair enters the kernel (recvfrom) on every service, fill ring full
        // or not: that call is what runs the NAPI in this thread.
        let before = qp.counters().fill_wakeups;
        for _ in 0..10 {
            qp.service();
        }
        assert!(
            qp.counters().fill_wakeups >= before + 20,
            "two sockets, ten services: {} recvfrom wakeups",
            qp.counters().fill_wakeups - before
        );
        qp.set_tx_budget(Side::Fabric, 256)
            .expect("XDP_MAX_TX_SKB_BUDGET (Linux >= 6.17)");
        let err = qp
            .set_tx_budget(Side::Guest, 1 << 20)
            .expect_err("budget above the ring size");
        assert!(
            err.to_string().contains("XDP_MAX_TX_SKB_BUDGET") && err.to_string().contains("fg0"),
            "{err}"
        );

        let missing = QueuePair::new(
            "nosuch0",
            FWD_FABRIC_IF,
            0,
            UmemConfig::default(),
            BindMode::Copy,
            &SocketOptions::default(),
        )
        .err()
        .expect("missing interface");
        assert!(
            matches!(missing, XskError::NoSuchInterface { .. }),
            "{missing}"
        );
    });
}
