//! A fixed number of frames (64 bytes unless told) through egress or ingress, in batches as the worker runs
//! them, printing the wall time per packet; also for instruction counting under
//! `valgrind --tool=callgrind` (repeatable on a shared, noisy machine, unlike time):
//!
//! ```sh
//! cargo build --release -p xvpc-benches --example pipeline_loop
//! target/release/examples/pipeline_loop egress 1000 20000000
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/examples/pipeline_loop egress 1000 100000
//! ```
//! Instructions per packet = (total − the same run with 0 packets) / packets.
//! `single` as a fourth argument runs each frame through the whole pipeline before the next
//! one (no overlap of lookups), for comparison; `loop` runs no pipeline (the harness alone).
//! `egress-v6u`/`ingress-v6u` give the mappings IPv6 underlay addresses, `-v6u-zero-csum` the
//! same with RFC 6935 zero UDP checksums (`udp6_zero_checksum_tx`/`_rx`). A fifth argument sets
//! the frame length (egress: the guest frame; ingress: the inner frame), a sixth the distance
//! between frame buffers (`Ring::with_stride`; 2048 lays them out like aligned 2 KiB UMEM
//! chunks), or `coloured` the daemon's coloured UMEM layout (`Ring::coloured`).

use std::hint::black_box;

use xvpc_benches::{destinations, fabric_frame, guest_frame, mapping, table, Ring, Setup};
use xvpc_benches::{BATCH, FRAMES};
use xvpc_core::counters::Counters;
use xvpc_core::egress::{egress, egress_prepare, egress_prepared};
use xvpc_core::ingress::{ingress, ingress_prepare, ingress_prepared};
use xvpc_core::pipeline::{Context, Verdict};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: pipeline_loop egress|ingress[-v6u|-v6u-zero-csum] MAPPINGS PACKETS [batch|single|loop] [FRAME_LEN] [STRIDE|coloured]";
    let direction = args.get(1).expect(usage).clone();
    let mappings: usize = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let packets: usize = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
    let mode = args.get(4).map_or("batch", String::as_str);
    let frame_len: usize = args
        .get(5)
        .map_or(Some(64), |s| s.parse().ok())
        .expect(usage);
    let (single, idle) = (mode == "single", mode == "loop");
    // `-v6u`: the mappings' underlay addresses are IPv6.
    let v6_underlay = direction.contains("-v6u");
    let setup = match direction.ends_with("-zero-csum") {
        true => Setup::with_udp6_zero_checksum(),
        false => Setup::new(),
    };
    let table = table(&setup, mappings, v6_underlay);
    let dsts = destinations(&setup, mappings, FRAMES, 0x5eed);
    let egress_dir = direction.starts_with("egress");
    let inputs: Vec<Vec<u8>> = dsts
        .iter()
        .map(|&i| {
            if egress_dir {
                let std::net::IpAddr::V4(dst) = mapping(i, v6_underlay).overlay_ip else {
                    unreachable!("benchmark overlays are IPv4")
                };
                guest_frame(dst, frame_len, i as u16)
            } else {
                fabric_frame(&setup, i, frame_len, v6_underlay)
            }
        })
        .collect();
    let mut ring = match args.get(6).map(String::as_str) {
        Some("coloured") => Ring::coloured(inputs),
        Some(stride) => Ring::with_stride(inputs, stride.parse().expect(usage)),
        None => Ring::new(inputs),
    };
    let ctx = Context {
        guest: &setup.guest,
        gateway: &setup.gateway,
        fabric: &setup.fabric,
    };
    let want = if egress_dir {
        Verdict::ToFabric
    } else {
        Verdict::ToGuest
    };
    let mut counters = Counters::default();
    let mut wrong = 0;
    let started = std::time::Instant::now();
    for batch in 0..packets / BATCH {
        let c = &mut counters;
        if idle {
            wrong += ring.run_batch(batch, |_| (), |(), _| want, want);
            continue;
        }
        wrong += match (egress_dir, single) {
            (true, false) => ring.run_batch(
                batch,
                |f| egress_prepare(&ctx, &table, 0, f),
                |p, f| egress_prepared(&ctx, &table, 0, p, f, c),
                want,
            ),
            (false, false) => ring.run_batch(
                batch,
                |f| ingress_prepare(&ctx, &table, 0, f),
                |p, f| ingress_prepared(&ctx, &table, 0, p, f, c),
                want,
            ),
            (true, true) => {
                ring.run_batch(batch, |_| (), |(), f| egress(&ctx, &table, 0, f, c), want)
            }
            (false, true) => {
                ring.run_batch(batch, |_| (), |(), f| ingress(&ctx, &table, 0, f, c), want)
            }
        };
    }
    let elapsed = started.elapsed();
    let done = packets / BATCH * BATCH;
    assert_eq!((counters.total_drops(), wrong), (0, 0), "{counters:?}");
    assert!(ring.payloads_intact(), "a pipeline wrote into a payload");
    black_box(&ring);
    println!(
        "{done} packets, {:.1} ns/packet",
        elapsed.as_nanos() as f64 / done.max(1) as f64
    );
}
