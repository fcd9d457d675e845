//! Proof that the pipelines allocate nothing per packet: a counting global allocator, every
//! fixture kind run 10,000 times through its pipeline after a warm-up.

mod common;

use xvpc_core::counters::Counters;
use xvpc_core::frame::Frame;
use xvpc_xsk::test_utils::{allocations, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PACKETS: usize = 10_000;

/// The counter sees allocations: otherwise the test below proves nothing.
#[test]
fn the_counting_allocator_counts() {
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert!(
        allocations() > before,
        "allocation of {} bytes not counted",
        v.len()
    );
}

#[test]
fn pipelines_do_not_allocate_per_packet() {
    let (env, cases) = common::load();
    // Everything that allocates is prepared before counting: inputs and one buffer per case.
    let prepared: Vec<_> = cases
        .iter()
        .map(|case| {
            let input = case.input_bytes();
            let headroom = case.headroom.unwrap_or(common::HEADROOM);
            let tailroom = case.tailroom.unwrap_or(common::TAILROOM);
            let buf = common::buffer_with(&input, headroom, tailroom);
            (case, input, headroom, buf)
        })
        .collect();
    let mut prepared = prepared;
    let mut counters = Counters::default();
    let mut run_all = |rounds: usize, counters: &mut Counters| {
        let mut verdicts = 0u64;
        for (case, input, headroom, buf) in prepared.iter_mut() {
            for _ in 0..rounds {
                // Restore the frame (pipelines rewrite in place) and run it.
                buf[*headroom..*headroom + input.len()].copy_from_slice(input);
                let Ok(mut frame) = Frame::new(buf, *headroom, input.len()) else {
                    panic!("{}: frame does not fit its buffer", case.name);
                };
                let verdict = env.run(case.direction, &mut frame, counters);
                verdicts += u64::from(
                    std::hint::black_box(verdict) != xvpc_core::pipeline::Verdict::ToFabric,
                );
            }
        }
        verdicts
    };
    run_all(10, &mut counters);
    let before = allocations();
    let processed = run_all(PACKETS, &mut counters);
    let after = allocations();
    std::hint::black_box(processed);
    assert_eq!(
        after - before,
        0,
        "{} allocations while running {} fixtures x {PACKETS} packets",
        after - before,
        cases.len()
    );
    let total = counters.guest_rx_packets + counters.fabric_rx_packets;
    assert_eq!(
        total,
        (cases.len() * (PACKETS + 10)) as u64,
        "every packet went through a pipeline"
    );
}
