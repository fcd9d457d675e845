//! Control-path cost: applying a million upserts to one table (growing from empty, and sized
//! up front as a full sync builds it), and compiling them first.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::ThreadCpuTime;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use xvpc_benches::{mapping, Setup};
use xvpc_core::table::{Compiler, MappingTable};

const N: usize = 1_000_000;

fn tables(c: &mut Criterion<ThreadCpuTime>) {
    let setup = Setup::new();
    let compiler = Compiler::new(setup.fabric.clone());
    let mappings: Vec<_> = (0..N).map(|i| mapping(i, false)).collect();
    let compiled: Vec<_> = mappings
        .iter()
        .map(|m| match compiler.compile(m) {
            Ok(e) => (m.key(), e),
            Err(e) => panic!("benchmark mapping: {e}"),
        })
        .collect();
    let mut group = c.benchmark_group("table");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(N as u64));
    // From an empty table that grows, and sized up front as a full sync builds it.
    for (name, capacity) in [("upsert_1M", 0), ("upsert_1M_presized", N)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || MappingTable::with_capacity(1, capacity),
                |mut table| {
                    for (key, entry) in &compiled {
                        table.upsert(*key, *entry);
                    }
                    black_box(table.mapped_len());
                    table
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.bench_function("compile_and_upsert_1M", |b| {
        b.iter_batched(
            || MappingTable::new(1),
            |mut table| {
                for m in &mappings {
                    match compiler.compile(m) {
                        Ok(entry) => table.upsert(m.key(), entry),
                        Err(e) => panic!("benchmark mapping: {e}"),
                    }
                }
                black_box(table.mapped_len());
                table
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = tables
}
criterion_main!(benches);
