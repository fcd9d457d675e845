//! The run time estimate and the `--time-limit` decision.
//!
//! Overheads measured on the 2-CPU development VM: each generator run costs its duration plus
//! `3 + 10 × idle` tenths of a second (sink attach, the sink's idle exit, process start), each
//! measurement a fresh topology and DUT start, the first repetition a correctness check. The
//! search is counted in full; it stops after one trial where the max forwarding rate is
//! already lossless. All arithmetic is in whole tenths of a second, as bench.sh's was.
use crate::options::{Options, System};

/// A correctness check (capture, dissect), tenths of a second.
const CHECK_DS: u64 = 25;

/// Topology plus DUT start, tenths of a second.
fn setup_ds(sys: System) -> u64 {
    match sys {
        System::Ovs | System::Testpmd => 30,
        System::Xvpc | System::XvpcXdp => 15,
        System::KernelVxlan | System::XdpRedirect => 10,
    }
}

/// Estimated length of repetition `rep` (1-based), whole seconds.
pub fn rep_seconds(o: &Options, rep: u64) -> u64 {
    let run_ovh = 3 + u64::from(o.sink_idle_ds);
    let mut t = 0u64;
    for (_, _, sys) in o.measurements() {
        t += setup_ds(sys) + u64::from(o.seconds) * 10 + run_ovh;
        if o.zero_loss {
            t += u64::from(o.search_steps + 1) * (u64::from(o.trial_seconds) * 10 + run_ovh);
        }
        if o.latency && rep <= o.lat_reps {
            t += u64::from(o.seconds) * 10 + run_ovh;
        }
        if rep == 1 {
            t += CHECK_DS;
        }
    }
    t / 10
}

/// Estimated length of the whole run, whole seconds.
pub fn total_seconds(o: &Options) -> u64 {
    (1..=u64::from(o.reps)).map(|r| rep_seconds(o, r)).sum()
}

/// `2 h 5 min` from an hour up, else `3 min 20 s`.
pub fn human(secs: u64) -> String {
    if secs >= 3600 {
        format!("{} h {} min", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

/// The lines bench.sh printed on stderr before it started (and all `--estimate` prints).
pub fn report(o: &Options) -> Vec<String> {
    let n_meas = o.measurements().count() as u64;
    let total = total_seconds(o);
    let runs = n_meas * u64::from(o.reps);
    let mut lines = vec![format!(
        "bench.sh: {n_meas} measurements per repetition, {} repetition(s): estimated {} in all, {} s per measurement",
        o.reps,
        human(total),
        total.checked_div(runs).unwrap_or(0)
    )];
    if o.zero_loss {
        lines.push(format!(
            "bench.sh: (of which up to {} zero-loss trials of {} s per measurement; --search-steps, --trial-seconds, --no-zero-loss and --time-limit trade that)",
            o.search_steps + 1,
            o.trial_seconds
        ));
    }
    if let Some(limit) = o.time_limit_min {
        if total > limit * 60 {
            lines.push(format!(
                "bench.sh: that exceeds --time-limit {limit} min: repetitions that would end later are not started"
            ));
        }
    }
    lines
}

/// Should the next repetition start under `--time-limit`? Its estimate `est` is scaled by
/// how the finished repetitions went (`elapsed` real seconds for `est_done` estimated ones).
/// `Err(predicted seconds)` means stop. The first repetition always runs (`est_done` 0).
pub fn next_rep_fits(limit_min: u64, est: u64, elapsed: u64, est_done: u64) -> Result<(), u64> {
    if est_done == 0 {
        return Ok(());
    }
    let predicted = est * elapsed / est_done;
    if elapsed + predicted > limit_min * 60 {
        Err(predicted)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{parse, Parsed};
    use std::path::Path;

    fn opts(args: &[&str]) -> Options {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args, Path::new("/r")).expect("valid") {
            Parsed::Run(o) => *o,
            Parsed::Help => unreachable!(),
        }
    }

    // Figures printed by the bash bench.sh for the same options (its --estimate), plus the
    // xvpc-xdp system (both directions, an xvpc start): 2 h 32 min and 48 measurements
    // without it, 12 measurements of 39.7 s in the first repetition and 37.2 s after.
    #[test]
    fn matches_the_bash_estimates() {
        let o = opts(&[]);
        assert_eq!(
            report(&o)[0],
            "bench.sh: 60 measurements per repetition, 5 repetition(s): estimated 3 h 10 min in all, 38 s per measurement"
        );
        let bash_systems = opts(&["--systems", "kernel-vxlan xvpc ovs testpmd xdp-redirect"]);
        assert_eq!(
            report(&bash_systems)[0],
            "bench.sh: 48 measurements per repetition, 5 repetition(s): estimated 2 h 32 min in all, 38 s per measurement"
        );
        let s = opts(&["--smoke"]);
        assert_eq!(total_seconds(&s), 107);
        let bash_smoke = opts(&[
            "--smoke",
            "--systems",
            "kernel-vxlan xvpc ovs testpmd xdp-redirect",
        ]);
        assert_eq!(total_seconds(&bash_smoke), 86);
        assert_eq!(
            report(&s),
            vec![
                "bench.sh: 10 measurements per repetition, 1 repetition(s): estimated 1 min 47 s in all, 10 s per measurement".to_string(),
                "bench.sh: (of which up to 3 zero-loss trials of 1 s per measurement; --search-steps, --trial-seconds, --no-zero-loss and --time-limit trade that)".to_string(),
            ]
        );
    }

    #[test]
    fn options_change_the_estimate_as_documented() {
        let base = opts(&["--systems", "xvpc", "--dirs", "egress", "--sizes", "64"]);
        // 15 + 63 + 7 × 33 + 63 + 25 = 397 ds in rep 1; rep 2 has no check: 372.
        assert_eq!(rep_seconds(&base, 1), 39);
        assert_eq!(rep_seconds(&base, 2), 37);
        let nolat = opts(&[
            "--systems",
            "xvpc",
            "--dirs",
            "egress",
            "--sizes",
            "64",
            "--lat-reps",
            "1",
        ]);
        assert_eq!(rep_seconds(&nolat, 2), 30); // 372 - 63 = 309
        let nozl = opts(&[
            "--systems",
            "xvpc",
            "--dirs",
            "egress",
            "--sizes",
            "64",
            "--no-zero-loss",
        ]);
        assert_eq!(rep_seconds(&nozl, 1), 16); // 397 - 231 = 166
        let limited = opts(&["--time-limit", "1"]);
        assert!(report(&limited)[2].contains("exceeds --time-limit 1 min"));
        assert_eq!(human(3599), "59 min 59 s");
        assert_eq!(human(3600), "1 h 0 min");
    }

    #[test]
    fn time_limit_scales_by_the_finished_repetitions() {
        assert_eq!(next_rep_fits(1, 1000, 0, 0), Ok(()));
        // Finished reps took twice their estimate: a 20 s rep is predicted at 40 s.
        assert_eq!(next_rep_fits(1, 20, 20, 10), Ok(()));
        assert_eq!(next_rep_fits(1, 20, 30, 10), Err(60));
        assert_eq!(next_rep_fits(2, 20, 30, 10), Ok(()));
    }
}
