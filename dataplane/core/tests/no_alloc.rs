//! Proof that the pipelines allocate nothing per packet: a counting global allocator, every
//! fixture kind run 10,000 times through its pipeline after a warm-up.
// Test-only code outside the shipped crates: `GlobalAlloc` can only be implemented unsafely.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use xvpc_core::counters::Counters;
use xvpc_core::frame::Frame;

/// The system allocator, counting allocations and reallocations of each thread (so the test
/// harness's own threads do not count).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.with(|c| c.set(c.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract `System` upholds is upheld here; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: our caller upholds `alloc`'s contract (non-zero size layout) for us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by this allocator (i.e. by `System`) with `layout`, as
        // our caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as our caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
