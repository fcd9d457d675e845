//! Per-packet cost of the egress and ingress pipelines.
//!
//! Each iteration restores a frame a few slots ahead into its buffer (the pipelines rewrite in
//! place; see `Ring::restore_ahead`) and runs the current one; `copy` measures the restore
//! alone, so pipeline cost = pipeline − copy.

mod common;

use std::hint::black_box;

use common::ThreadCpuTime;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xvpc_benches::{
    destinations, fabric_frame, guest_frame, mapping, table, Ring, Setup, FRAMES, HEADROOM,
};
use xvpc_core::counters::Counters;
use xvpc_core::egress::egress;
use xvpc_core::frame::Frame;
use xvpc_core::ingress::ingress;
use xvpc_core::pipeline::{Context, Verdict};
use xvpc_core::table::MappingTable;

const SIZES: [usize; 2] = [64, 1400];

#[derive(Clone, Copy, PartialEq)]
enum Pipeline {
    Copy,
    Egress,
    Ingress,
}

/// Cycle through the ring: restore a frame, run the pipeline, check the verdict.
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
    let mut i = 0usize;
    let mut wrong = 0u64;
    c.iter(|| {
        ring.restore_ahead(i);
        let len = ring.inputs[i].len();
        let buf = &mut ring.buffers[i];
        i = (i + 1) % FRAMES;
        if pipeline == Pipeline::Copy {
            return black_box(Verdict::ToGuest);
        }
        let Ok(mut frame) = Frame::new(buf, HEADROOM, len) else {
            panic!("frame does not fit its buffer");
        };
        let verdict = match pipeline {
            Pipeline::Egress => egress(&ctx, table, 0, &mut frame, &mut counters),
            _ => ingress(&ctx, table, 0, &mut frame, &mut counters),
        };
        wrong += u64::from(verdict != want);
        black_box(verdict)
    });
    assert_eq!(
        counters.total_drops(),
        0,
        "benchmark frames were dropped: {counters:?}"
    );
    assert_eq!(wrong, 0, "unexpected verdicts: {counters:?}");
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
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let mut ring = egress_frames(&setup, 1000, size);
        let empty = MappingTable::new(0);
        group.bench_function(BenchmarkId::new("copy", size), |b| {
            run(b, Pipeline::Copy, &setup, &empty, &mut ring)
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
    let v6 = table(&setup, 1_000, true);
    for size in SIZES {
        let mut ring = egress_frames(&setup, 1_000, size);
        let id = BenchmarkId::new("egress_v6u_1000", size);
        group.bench_function(id, |b| run(b, Pipeline::Egress, &setup, &v6, &mut ring));
        let mut ring = ingress_frames(&setup, 1_000, size, true);
        let id = BenchmarkId::new("ingress_v6u_1000", size);
        group.bench_function(id, |b| run(b, Pipeline::Ingress, &setup, &v6, &mut ring));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = pipelines
}
criterion_main!(benches);
