//! In-process full sync (the control thread's work without the socket and the workers).

use std::time::Duration;

use anyhow::Context;
use xvpc_control_bench::inproc::{full_sync, testbed_fabric, Phases};
use xvpc_control_bench::mappings::generate;
use xvpc_control_bench::procfs;
use xvpc_control_bench::summary::median;
use xvpc_core::model::Vni;
use xvpc_core::table::Compiler;

use super::ms;

/// Medians over the repetitions, and the memory one table set costs.
#[derive(Clone, Copy, Debug)]
pub struct Inproc {
    /// Median phases.
    pub compile_ms: f64,
    /// Median clones (all workers).
    pub clone_ms: f64,
    /// Median free of the old tables.
    pub free_ms: f64,
    /// Median total.
    pub total_ms: f64,
    /// Resident bytes per mapping per table (the workers' and the shadow) once built
    /// (steady state).
    pub bytes_per_mapping_per_table: f64,
}

/// Measure `reps` full syncs of `n` mappings into `workers` tables.
pub fn measure(n: usize, workers: usize, reps: usize) -> anyhow::Result<Inproc> {
    let compiler = Compiler::new(testbed_fabric());
    let vni = Vni::new(100).context("VNI 100")?;
    let mappings = generate(100, n)?;
    let before = procfs::memory(std::process::id())?;
    let mut old = Vec::new();
    let mut runs: Vec<Phases> = Vec::new();
    let mut table_bytes = 0.0;
    for rep in 0..reps.max(1) {
        let (phases, tables) = full_sync(&compiler, vni, &mappings, workers, old);
        anyhow::ensure!(
            phases.mapped == n,
            "only {} of {n} mappings compiled",
            phases.mapped
        );
        if rep == 0 {
            let after = procfs::memory(std::process::id())?;
            table_bytes =
                after.rss.saturating_sub(before.rss) as f64 / (n.max(1) * tables.len()) as f64;
        }
        old = tables;
        runs.push(phases);
    }
    let med = |f: fn(&Phases) -> Duration| {
        median(&runs.iter().map(|p| ms(f(p))).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    Ok(Inproc {
        compile_ms: med(|p| p.compile),
        clone_ms: med(|p| p.clone),
        free_ms: med(|p| p.free),
        total_ms: med(|p| p.total()),
        bytes_per_mapping_per_table: table_bytes,
    })
}

/// `xvpc-control-bench inproc`.
pub fn run(n: usize, workers: usize, reps: usize) -> anyhow::Result<()> {
    let r = measure(n, workers, reps)?;
    println!(
        "in-process full sync of {n} mappings into {workers} worker tables and a shadow (median of {reps}): compile {:.1} ms, clone {:.1} ms, free {:.1} ms, total {:.1} ms; {:.0} B resident per mapping per table",
        r.compile_ms, r.clone_ms, r.free_ms, r.total_ms, r.bytes_per_mapping_per_table
    );
    println!(
        "RESULT inproc mappings={n} workers={workers} reps={reps} compile_ms={:.1} clone_ms={:.1} free_ms={:.1} total_ms={:.1} bytes_per_mapping_per_table={:.0}",
        r.compile_ms, r.clone_ms, r.free_ms, r.total_ms, r.bytes_per_mapping_per_table
    );
    Ok(())
}
