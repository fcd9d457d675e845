//! Per-packet cost of the egress and ingress pipelines.
//!
//! Each iteration runs one batch of `BATCH` frames the way a worker does (every frame of a
//! group prepared, then finished; see `Ring::run_batch`), after restoring the Ethernet headers
//! of frames further ahead (egress rewrites them in place). `loop` measures the harness alone
//! (restore, frame bounds, verdict check), so pipeline cost = pipeline − loop.

mod common;

use common::ThreadCpuTime;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xvpc_benches::{
    destinations, fabric_frame, guest_frame, mapping, table, Ring, Setup, BATCH, FRAMES,
};
use xvpc_core::counters::Counters;
use xvpc_core::egress::{egress_prepare, egress_prepared};
use xvpc_core::ingress::{ingress_prepare, ingress_prepared};
use xvpc_core::pipeline::{Context, Verdict};
use xvpc_core::table::MappingTable;

const SIZES: [usize; 2] = [64, 1400];

#[derive(Clone, Copy, PartialEq)]
enum Pipeline {
    Loop,
    Egress,
    Ingress,
}

/// Cycle through the ring a batch at a time, checking every verdict.
fn run(
    c: &mut criterion::Bencher<'_, ThreadCpuTime>,
    pipeline: Pipeline,
    setup: &Setup,
    table: &MappingTable,
    ring: &mut Ring,
) {
    let ctx = Context {
        guest: &setup.guest,
        gateway: &setup.gateway,
        fabric: &setup.fabric,
    };
    let want = match pipeline {
        Pipeline::Egress => Verdict::ToFabric,
        _ => Verdict::ToGuest,
    };
    let mut counters = Counters::default();
    let mut batch = 0usize;
    let mut wrong = 0u64;
    c.iter(|| {
        let c = &mut counters;
        wrong += match pipeline {
            Pipeline::Loop => ring.run_batch(batch, |_| (), |(), _| want, want),
            Pipeline::Egress => ring.run_batch(
                batch,
                |f| egress_prepare(&ctx, table, 0, f),
                |p, f| egress_prepared(&ctx, table, 0, p, f, c),
                want,
            ),
            Pipeline::Ingress => ring.run_batch(
                batch,
                |f| ingress_prepare(&ctx, table, 0, f),
                |p, f| ingress_prepared(&ctx, table, 0, p, f, c),
                want,
            ),
        };
        batch = batch.wrapping_add(1);
    });
    assert_eq!(
        counters.total_drops(),
        0,
        "benchmark frames were dropped: {counters:?}"
    );
    assert_eq!(wrong, 0, "unexpected verdicts: {counters:?}");
    assert!(ring.payloads_intact(), "a pipeline wrote into a payload");
}

fn egress_frames(setup: &Setup, n: usize, size: usize) -> Ring {
    let dsts = destinations(setup, n, FRAMES, 0x5eed ^ n as u64);
    let frames = dsts
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let std::net::IpAddr::V4(dst) = mapping(i, false).overlay_ip else {
                unreachable!("IPv4 overlays")
            };
            guest_frame(dst, size, 1024 + k as u16)
        })
        .collect();
    Ring::new(frames)
}

fn ingress_frames(setup: &Setup, n: usize, size: usize, v6_underlay: bool) -> Ring {
    let srcs = destinations(setup, n, FRAMES, 0xfeed ^ n as u64);
    Ring::new(
        srcs.iter()
            .map(|&i| fabric_frame(setup, i, size, v6_underlay))
            .collect(),
    )
}

fn pipelines(c: &mut Criterion<ThreadCpuTime>) {
    let setup = Setup::new();
    let mut group = c.benchmark_group("packet");
    group.throughput(Throughput::Elements(BATCH as u64));
    for size in SIZES {
        let mut ring = egress_frames(&setup, 1000, size);
        let empty = MappingTable::new(0);
        group.bench_function(BenchmarkId::new("loop", size), |b| {
            run(b, Pipeline::Loop, &setup, &empty, &mut ring)
        });
    }
    for n in [1_000usize, 1_000_000] {
        let v4 = table(&setup, n, false);
        for size in SIZES {
            let mut ring = egress_frames(&setup, n, size);
            let id = BenchmarkId::new(format!("egress_v4u_{n}"), size);
            group.bench_function(id, |b| run(b, Pipeline::Egress, &setup, &v4, &mut ring));
            let mut ring = ingress_frames(&setup, n, size, false);
            let id = BenchmarkId::new(format!("ingress_v4u_{n}"), size);
            group.bench_function(id, |b| run(b, Pipeline::Ingress, &setup, &v4, &mut ring));
        }
    }
    // IPv6 underlay: with the UDP checksum RFC 8200 asks for, and with the RFC 6935 opt-in.
    let zero_csum = Setup::with_udp6_zero_checksum();
    let v6 = table(&setup, 1_000, true);
    for (setup, name) in [(&setup, "v6u"), (&zero_csum, "v6u_zero_csum")] {
        for size in SIZES {
            let mut ring = egress_frames(setup, 1_000, size);
            let id = BenchmarkId::new(format!("egress_{name}_1000"), size);
            group.bench_function(id, |b| run(b, Pipeline::Egress, setup, &v6, &mut ring));
            let mut ring = ingress_frames(setup, 1_000, size, true);
            let id = BenchmarkId::new(format!("ingress_{name}_1000"), size);
            group.bench_function(id, |b| run(b, Pipeline::Ingress, setup, &v6, &mut ring));
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = pipelines
}
criterion_main!(benches);
