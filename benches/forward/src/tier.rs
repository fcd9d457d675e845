//! The xvpc systems' accounting check: which tier forwarded a measurement's frames, and were
//! all of them accounted for. Pure; the harness takes an `xvpc stats --json` snapshot before
//! the first generator run and after the last one it counts, and reads the kernel's drop
//! counter of the DUT's outgoing veth at the same two points.
//!
//! The daemon's `total` merges what the XDP tier did (`xdp.guest_fast`) with the workers'
//! counters, so `total - Σ workers` is the XDP tier's share in either direction: ingress needs
//! no change here when the fabric side gets its XDP tier, as long as `xvpc stats` merges it
//! the same way.
//!
//! Between the two snapshots, with `forwarded` = Δ`total.egress_packets` (egress) or
//! Δ`total.ingress_packets` (ingress):
//! - the sink counted no frame that no tier forwarded: `marked <= forwarded`;
//! - every forwarded frame reached the sink or was dropped by the kernel after the DUT, where
//!   the outgoing veth counts it (`tx_dropped`, which includes XDP redirects its peer's ring
//!   had no room for): `forwarded <= marked + kernel_dropped`;
//! - `xvpc-xdp`, egress: the XDP tier's `encapsulated` is exactly the non-worker share, and the
//!   workers forwarded nothing (every generated frame is a fast-path case, so a worker's frame
//!   means the XDP tier missed one);
//! - `xvpc`: no XDP tier (`xdp.guest_fast` is null) and nothing beyond the workers' counts.
use serde_json::Value;

use crate::options::{Dir, System};

/// Who forwarded a measurement's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Split {
    /// Forwarded by the XDP tier (the totals beyond the workers' own counts).
    pub xdp: u64,
    /// Forwarded by the AF_XDP workers.
    pub workers: u64,
    /// Forwarded, then dropped by the kernel on the DUT's outgoing veth (counted there).
    pub kernel_dropped: u64,
}

impl Split {
    /// The `dut_tier` column: `xdp=N;workers=N;kernel_dropped=N`.
    pub fn to_column(&self) -> String {
        format!(
            "xdp={};workers={};kernel_dropped={}",
            self.xdp, self.workers, self.kernel_dropped
        )
    }
}

/// The counter of forwarded frames in `dir`.
fn forwarded_name(dir: Dir) -> &'static str {
    match dir {
        Dir::Egress => "egress_packets",
        Dir::Ingress => "ingress_packets",
    }
}

fn number(v: &Value, path: &str) -> Result<u64, String> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no {path} in the stats snapshot"))
}

/// `path` (within each worker) summed over the workers.
fn workers_sum(v: &Value, path: &str) -> Result<u64, String> {
    let ws = v
        .get("workers")
        .and_then(Value::as_array)
        .ok_or("no workers in the stats snapshot")?;
    ws.iter()
        .try_fold(0u64, |acc, w| number(w, path).map(|n| acc + n))
}

/// How the workers' spins after traffic (`dataplane.idle_spin_us`) ended between two
/// snapshots: (ran their window, cut short by a preemption).
pub fn spin_ends(before: &Value, after: &Value) -> Result<(u64, u64), String> {
    let ends = |end: &str| {
        let path = format!("spin_ends.{end}");
        moved(
            workers_sum(before, &path)?,
            workers_sum(after, &path)?,
            &path,
        )
    };
    Ok((ends("window")?, ends("preempted")?))
}

/// `after - before`, refusing a counter that went backwards (another daemon in between).
fn moved(before: u64, after: u64, what: &str) -> Result<u64, String> {
    after
        .checked_sub(before)
        .ok_or_else(|| format!("{what} went backwards ({before} -> {after})"))
}

/// Judges one measurement of `sys` (an xvpc system) in `dir`: `before`/`after` are the stats
/// snapshots, `marked` the generator's frames the sink counted in between, `kernel_dropped`
/// the outgoing veth's `tx_dropped` delta. `Err` says what does not add up.
pub fn account(
    sys: System,
    dir: Dir,
    before: &Value,
    after: &Value,
    marked: u64,
    kernel_dropped: u64,
) -> Result<Split, String> {
    let name = forwarded_name(dir);
    let total_path = format!("total.{name}");
    let forwarded = moved(
        number(before, &total_path)?,
        number(after, &total_path)?,
        &total_path,
    )?;
    let workers_path = format!("counters.{name}");
    let workers = moved(
        workers_sum(before, &workers_path)?,
        workers_sum(after, &workers_path)?,
        &format!("the workers' {name}"),
    )?;
    let xdp = forwarded.checked_sub(workers).ok_or_else(|| {
        format!("total.{name} moved by {forwarded}, less than the workers' {workers}")
    })?;
    let split = Split {
        xdp,
        workers,
        kernel_dropped,
    };
    let fast = &after["xdp"]["guest_fast"];
    match sys {
        System::XvpcXdp => {
            if fast.is_null() {
                return Err(
                    "no XDP tier: xdp.guest_fast is null (fast_path is not \"xdp\")".into(),
                );
            }
            // Every generated frame is a fast-path case in either direction.
            let (port, counter) = match dir {
                Dir::Egress => ("guest_fast", "encapsulated"),
                Dir::Ingress => ("fabric_fast", "decapsulated"),
            };
            let path = format!("xdp.{port}.{counter}");
            let done = moved(number(before, &path)?, number(after, &path)?, &path)?;
            if done != xdp {
                return Err(format!(
                    "the XDP tier counted {done} frames in {path}, but the totals hold {xdp} \
                     beyond the workers'"
                ));
            }
            if workers > 0 {
                return Err(format!(
                    "the workers forwarded {workers} of {forwarded} frames: every generated \
                     frame is a fast-path case, so the XDP tier missed them"
                ));
            }
        }
        _ => {
            if !fast.is_null() {
                return Err(
                    "an XDP tier runs (xdp.guest_fast is set) under fast_path \"afxdp\"".into(),
                );
            }
            if xdp > 0 {
                return Err(format!(
                    "total.{name} holds {xdp} frames beyond the workers' with no XDP tier"
                ));
            }
        }
    }
    if marked > forwarded {
        return Err(format!(
            "the sink counted {marked} frames, the DUT forwarded {forwarded}"
        ));
    }
    if forwarded - marked > kernel_dropped {
        return Err(format!(
            "{} of {forwarded} forwarded frames never reached the sink and no counter has them \
             (the outgoing veth dropped {kernel_dropped})",
            forwarded - marked
        ));
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A snapshot as `xvpc stats --json` prints it (the fields the check reads).
    /// `xdp`: the XDP tiers' work, as `encapsulated` and `decapsulated` alike (a check reads
    /// the one of its direction); `None`: no XDP tier.
    fn snap(total_eg: u64, total_in: u64, workers: &[(u64, u64)], xdp: Option<u64>) -> Value {
        json!({
            "total": {"egress_packets": total_eg, "ingress_packets": total_in, "drops": {}},
            "workers": workers.iter().map(|(e, i)| json!({
                "worker": 0,
                "counters": {"egress_packets": e, "ingress_packets": i},
            })).collect::<Vec<_>>(),
            "xdp": {
                "guest": {"redirected": 0, "dropped_no_socket": 0},
                "guest_fast": xdp.map_or(Value::Null, |n| json!({
                    "encapsulated": n, "aborted": 0, "egress_bytes": 0, "drops": {},
                })),
                "fabric_fast": xdp.map_or(Value::Null, |n| json!({"decapsulated": n})),
            },
        })
    }

    #[test]
    fn xvpc_xdp_egress_is_the_xdp_tiers() {
        // Measured on the bench topology: 2,040,805 encapsulated, 1,948,069 at the sink,
        // 92,736 refused by the sink's full veth ring (d1's tx_dropped).
        let before = snap(0, 0, &[(0, 0)], Some(0));
        let after = snap(2_040_805, 0, &[(0, 0)], Some(2_040_805));
        let split = account(
            System::XvpcXdp,
            Dir::Egress,
            &before,
            &after,
            1_948_069,
            92_736,
        );
        assert_eq!(
            split,
            Ok(Split {
                xdp: 2_040_805,
                workers: 0,
                kernel_dropped: 92_736
            })
        );
        assert_eq!(
            split.map(|s| s.to_column()).as_deref(),
            Ok("xdp=2040805;workers=0;kernel_dropped=92736")
        );
        // One frame fewer counted by the kernel: one frame vanished.
        let e = account(
            System::XvpcXdp,
            Dir::Egress,
            &before,
            &after,
            1_948_069,
            92_735,
        )
        .expect_err("a frame unaccounted for");
        assert!(
            e.starts_with("92736 of 2040805 forwarded frames never reached"),
            "{e}"
        );
        // The sink saw more than was forwarded.
        let e = account(System::XvpcXdp, Dir::Egress, &before, &after, 2_040_806, 0)
            .expect_err("more at the sink than forwarded");
        assert_eq!(
            e,
            "the sink counted 2040806 frames, the DUT forwarded 2040805"
        );
    }

    #[test]
    fn xvpc_xdp_egress_through_the_workers_fails() {
        // A dead fast path: the workers did it all.
        let before = snap(10, 0, &[(10, 0)], Some(0));
        let after = snap(1010, 0, &[(1010, 0)], Some(0));
        let e = account(System::XvpcXdp, Dir::Egress, &before, &after, 1000, 0)
            .expect_err("the workers forwarded");
        assert!(e.starts_with("the workers forwarded 1000 of 1000"), "{e}");
        // Not the XDP tier at all.
        let after = snap(1010, 0, &[(1010, 0)], None);
        let e =
            account(System::XvpcXdp, Dir::Egress, &before, &after, 1000, 0).expect_err("no tier");
        assert!(e.starts_with("no XDP tier"), "{e}");
        // Totals beyond the workers' that the XDP tier did not count.
        let after = snap(1010, 0, &[(10, 0)], Some(999));
        let e = account(System::XvpcXdp, Dir::Egress, &before, &after, 1000, 0)
            .expect_err("encapsulated does not match");
        assert!(
            e.starts_with("the XDP tier counted 999 frames in xdp.guest_fast.encapsulated"),
            "{e}"
        );
    }

    #[test]
    fn xvpc_xdp_ingress_is_the_xdp_tiers() {
        let before = snap(0, 5, &[(0, 5)], Some(0));
        let after = snap(0, 805, &[(0, 5)], Some(800));
        assert_eq!(
            account(System::XvpcXdp, Dir::Ingress, &before, &after, 790, 10),
            Ok(Split {
                xdp: 800,
                workers: 0,
                kernel_dropped: 10
            })
        );
        // The workers decapsulated some: the XDP tier missed fast-path frames.
        let after = snap(0, 805, &[(0, 105)], Some(700));
        let e = account(System::XvpcXdp, Dir::Ingress, &before, &after, 800, 0)
            .expect_err("workers did XDP's work");
        assert!(e.contains("workers forwarded 100"), "{e}");
        // decapsulated disagrees with the totals.
        let after = snap(0, 805, &[(0, 5)], Some(600));
        let e = account(System::XvpcXdp, Dir::Ingress, &before, &after, 800, 0)
            .expect_err("decapsulated short");
        assert!(e.contains("xdp.fabric_fast.decapsulated"), "{e}");
        // Frames lost with no counter.
        let after = snap(0, 805, &[(0, 5)], Some(800));
        assert!(account(System::XvpcXdp, Dir::Ingress, &before, &after, 700, 50).is_err());
    }

    #[test]
    fn xvpc_runs_no_xdp_tier() {
        let before = snap(0, 0, &[(0, 0)], None);
        let after = snap(500, 0, &[(500, 0)], None);
        assert_eq!(
            account(System::Xvpc, Dir::Egress, &before, &after, 500, 0).map(|s| s.workers),
            Ok(500)
        );
        let e = account(
            System::Xvpc,
            Dir::Egress,
            &before,
            &snap(500, 0, &[(500, 0)], Some(0)),
            500,
            0,
        )
        .expect_err("a tier under afxdp");
        assert!(e.starts_with("an XDP tier runs"), "{e}");
        let e = account(
            System::Xvpc,
            Dir::Egress,
            &before,
            &snap(600, 0, &[(500, 0)], None),
            500,
            100,
        )
        .expect_err("frames beyond the workers'");
        assert!(e.contains("100 frames beyond the workers'"), "{e}");
    }

    #[test]
    fn unreadable_snapshots_say_what_is_missing() {
        let good = snap(0, 0, &[(0, 0)], Some(0));
        let e = account(System::XvpcXdp, Dir::Egress, &json!({}), &good, 0, 0)
            .expect_err("empty before");
        assert_eq!(e, "no total.egress_packets in the stats snapshot");
        let e = account(
            System::XvpcXdp,
            Dir::Egress,
            &good,
            &json!({"total": {"egress_packets": 1}}),
            0,
            0,
        )
        .expect_err("no workers");
        assert_eq!(e, "no workers in the stats snapshot");
        // A restarted daemon between the snapshots.
        let e = account(
            System::XvpcXdp,
            Dir::Egress,
            &snap(9, 0, &[(0, 0)], Some(9)),
            &good,
            0,
            0,
        )
        .expect_err("backwards");
        assert_eq!(e, "total.egress_packets went backwards (9 -> 0)");
    }

    #[test]
    fn spin_ends_are_summed_over_the_workers_between_the_snapshots() {
        let ends = |w: &[(u64, u64)]| {
            json!({"workers": w.iter().map(|(window, preempted)| json!({
                "spin_ends": {"window": window, "preempted": preempted},
            })).collect::<Vec<_>>()})
        };
        let (before, after) = (ends(&[(1, 2), (0, 5)]), ends(&[(4, 2), (10, 6)]));
        assert_eq!(spin_ends(&before, &after), Ok((13, 1)));
        let e = spin_ends(&after, &before).expect_err("a restarted daemon");
        assert_eq!(e, "spin_ends.window went backwards (14 -> 1)");
        let e = spin_ends(&json!({"workers": [{}]}), &after).expect_err("an older daemon");
        assert_eq!(e, "no spin_ends.window in the stats snapshot");
    }
}
