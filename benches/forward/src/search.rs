//! RFC 2544 §26.1 throughput, the "zero-loss rate": the highest offered rate at which the sink
//! counts every frame the generator sent.
//!
//! The first trial runs at the max forwarding rate the sink measured (lossless: done);
//! otherwise `steps` bisections of [0, that rate). From 1000 pps up the generator sends
//! rate/1000 whole frames per 1 ms tick, so it can only offer whole kpps there: the search
//! bisects on those and stops when no untried one is left between the bounds. Recorded: the
//! generator's own measured rate in the best lossless trial (what was really offered; the
//! pacing may fall short of `--rate`), and in the lowest lossy one.
//!
//! Pure: the trials come from a closure, so the search is tested against simulated DUTs.

/// What one trial measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Frames the generator sent (0 if it printed no result).
    pub sent: u64,
    /// Marked frames the sink counted (0 if it printed no result).
    pub received: u64,
    /// The rate the generator measured, whole pps; `None` without a generator result.
    pub offered: Option<u64>,
    /// The generator's `RESULT` line, for the log when it sent nothing.
    pub gen_line: Option<String>,
}

impl Trial {
    /// Every frame sent arrived (and something was sent).
    pub fn lossless(&self) -> bool {
        self.sent > 0 && self.received >= self.sent
    }
}

/// The outcome of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroLoss {
    /// Offered rate of the best lossless trial; 0 if none was lossless.
    pub pps: u64,
    /// Offered rate of the lowest lossy trial; `None` if no trial lost frames.
    pub lossy_pps: Option<u64>,
}

/// Runs the search. `label` names the measurement in the log lines (`log` gets each line
/// bench.sh printed on stderr); `max_pps` is the sink's rate in the full-speed run; `trial`
/// runs the generator at the given rate against a fresh sink.
pub fn zero_loss_search<E>(
    label: &str,
    max_pps: f64,
    steps: u32,
    mut trial: impl FnMut(u64) -> Result<Trial, E>,
    mut log: impl FnMut(String),
) -> Result<ZeroLoss, E> {
    let mut zl = ZeroLoss {
        pps: 0,
        lossy_pps: None,
    };
    // bench.sh truncated the rate to an integer ("${4%.*}").
    let mut rate = if max_pps.is_finite() && max_pps >= 1.0 {
        max_pps as u64
    } else {
        log(format!(
            "zero-loss {label}: nothing forwarded at full speed, no search; zero-loss rate 0"
        ));
        return Ok(zl);
    };
    let (mut lo, mut hi): (u64, Option<u64>) = (0, None);
    let mut n = 0u32;
    loop {
        n += 1;
        let t = trial(rate)?;
        let ok = t.lossless();
        let offered = t.offered.unwrap_or(rate);
        let mut verdict = if ok {
            lo = rate;
            zl.pps = offered;
            "lossless".to_string()
        } else {
            hi = Some(rate);
            zl.lossy_pps = Some(offered);
            "LOSS".to_string()
        };
        if t.sent == 0 {
            verdict = format!(
                "LOSS (the generator sent nothing: {})",
                t.gen_line.as_deref().unwrap_or("no RESULT line")
            );
        }
        if t.received > t.sent && t.sent > 0 {
            verdict = format!(
                "lossless, but {} more frames arrived than were sent",
                t.received - t.sent
            );
        }
        if t.offered.is_some_and(|o| o * 10 < rate * 9) {
            verdict.push_str("; the generator fell short of --rate");
        }
        let lost = t.sent.saturating_sub(t.received);
        let pct = if t.sent > 0 {
            100.0 * lost as f64 / t.sent as f64
        } else {
            0.0
        };
        log(format!(
            "zero-loss {label}: trial {n}/{} at {rate} pps (offered {}): sent {}, received {}, lost {lost} ({pct:.4} %): {verdict}; zero-loss rate in [{lo}, {})",
            steps + 1,
            t.offered.map_or("?".to_string(), |o| o.to_string()),
            t.sent,
            t.received,
            hi.map_or("?".to_string(), |h| h.to_string()),
        ));
        if n == 1 && ok {
            break; // lossless at the max forwarding rate
        }
        if n > steps {
            break;
        }
        // After the first trial, a lossy one has set the upper bound.
        let Some(h) = hi else { break };
        rate = (lo + h) / 2;
        if rate >= 1000 {
            rate = rate / 1000 * 1000;
        }
        if !(rate > lo && rate < h) {
            break;
        }
    }
    if zl.pps == 0 {
        log(format!(
            "zero-loss {label}: no lossless rate found (the lowest trial, {} pps, lost frames): zero-loss rate 0",
            hi.map_or(String::new(), |h| h.to_string())
        ));
    } else {
        log(format!("zero-loss {label}: {} pps", zl.pps));
    }
    Ok(zl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A DUT that forwards everything up to `capacity` pps and loses frames above it; the
    /// generator offers `offer(rate)`. Returns the result and the rates tried.
    fn search(
        max: f64,
        steps: u32,
        capacity: u64,
        offer: impl Fn(u64) -> u64,
    ) -> (ZeroLoss, Vec<u64>, Vec<String>) {
        let mut rates = vec![];
        let mut logs = vec![];
        let zl = zero_loss_search(
            "t",
            max,
            steps,
            |rate| {
                rates.push(rate);
                let o = offer(rate);
                let sent = o; // a 1 s trial
                let received = if o <= capacity { sent } else { sent - 1 };
                Ok::<_, Infallible>(Trial {
                    sent,
                    received,
                    offered: Some(o),
                    gen_line: None,
                })
            },
            |l| logs.push(l),
        )
        .unwrap_or_else(|e| match e {});
        (zl, rates, logs)
    }

    #[test]
    fn lossless_at_the_max_rate_is_one_trial() {
        let (zl, rates, logs) = search(1_000_000.7, 6, 2_000_000, |r| r - 3);
        assert_eq!(rates, vec![1_000_000]);
        assert_eq!(
            zl,
            ZeroLoss {
                pps: 999_997,
                lossy_pps: None
            }
        );
        assert_eq!(
            logs,
            vec![
                "zero-loss t: trial 1/7 at 1000000 pps (offered 999997): sent 999997, received 999997, lost 0 (0.0000 %): lossless; zero-loss rate in [1000000, ?)",
                "zero-loss t: 999997 pps",
            ]
        );
    }

    #[test]
    fn bisects_on_whole_kpps() {
        // lo=0 hi=1M: 500k ok, 750k loss, 625k loss, 562.5k -> 562k ok, 593.5k -> 593k ok,
        // 609k loss: 7 trials (1 + 6 steps).
        // The generator offers 7 pps less than asked: the recorded rates are what it offered.
        let (zl, rates, logs) = search(1_000_000.0, 6, 600_000, |r| r - 7);
        assert_eq!(
            rates,
            vec![1_000_000, 500_000, 750_000, 625_000, 562_000, 593_000, 609_000]
        );
        assert_eq!(
            zl,
            ZeroLoss {
                pps: 592_993,
                lossy_pps: Some(608_993)
            }
        );
        assert_eq!(
            logs[1],
            "zero-loss t: trial 2/7 at 500000 pps (offered 499993): sent 499993, received 499993, lost 0 (0.0000 %): lossless; zero-loss rate in [500000, 1000000)"
        );
        assert_eq!(
            logs[2],
            "zero-loss t: trial 3/7 at 750000 pps (offered 749993): sent 749993, received 749992, lost 1 (0.0001 %): LOSS; zero-loss rate in [500000, 750000)"
        );
        assert_eq!(logs.last().expect("a log line"), "zero-loss t: 592993 pps");
    }

    #[test]
    fn stops_when_no_untried_kpps_is_left() {
        // 10k loss, 5k ok, 7k ok, 8k ok, 9k loss: (8000+9000)/2 = 8500 -> 8000 = lo: stop.
        let (zl, rates, _) = search(10_000.0, 20, 8_400, |r| r);
        assert_eq!(rates, vec![10_000, 5_000, 7_000, 8_000, 9_000]);
        assert_eq!(
            zl,
            ZeroLoss {
                pps: 8_000,
                lossy_pps: Some(9_000)
            }
        );
        // Below 1000 pps the rates are not rounded.
        let (_, rates, _) = search(1_500.0, 3, 0, |r| r);
        assert_eq!(rates, vec![1_500, 750, 375, 187]);
    }

    #[test]
    fn no_lossless_rate_and_no_search() {
        let (zl, rates, logs) = search(4_000.0, 2, 0, |r| r);
        assert_eq!(rates, vec![4_000, 2_000, 1_000]);
        assert_eq!(
            zl,
            ZeroLoss {
                pps: 0,
                lossy_pps: Some(1_000)
            }
        );
        assert_eq!(
            logs.last().expect("a log line"),
            "zero-loss t: no lossless rate found (the lowest trial, 1000 pps, lost frames): zero-loss rate 0"
        );
        for max in [0.0, 0.9, f64::NAN] {
            let (zl, rates, logs) = search(max, 6, 0, |r| r);
            assert!(rates.is_empty());
            assert_eq!(
                zl,
                ZeroLoss {
                    pps: 0,
                    lossy_pps: None
                }
            );
            assert_eq!(
                logs,
                vec!["zero-loss t: nothing forwarded at full speed, no search; zero-loss rate 0"]
            );
        }
    }

    #[test]
    fn zero_steps_is_the_first_trial_only() {
        let (zl, rates, _) = search(10_000.0, 0, 100, |r| r);
        assert_eq!(rates, vec![10_000]);
        assert_eq!(
            zl,
            ZeroLoss {
                pps: 0,
                lossy_pps: Some(10_000)
            }
        );
    }

    /// Trials with odd results: nothing sent, more received than sent, no generator result,
    /// and a generator that cannot keep up with --rate.
    #[test]
    fn odd_trials_are_judged_and_logged_like_bench_sh() {
        let trials = [
            Trial {
                sent: 0,
                received: 0,
                offered: Some(0),
                gen_line: Some("RESULT sent=0".into()),
            },
            Trial {
                sent: 100,
                received: 103,
                offered: Some(100),
                gen_line: None,
            },
            Trial {
                sent: 0,
                received: 0,
                offered: None,
                gen_line: None,
            },
        ];
        let mut it = trials.into_iter();
        let mut logs = vec![];
        let zl = zero_loss_search(
            "x",
            8_000.0,
            2,
            |_| Ok::<_, Infallible>(it.next().expect("three trials")),
            |l| logs.push(l),
        )
        .unwrap_or_else(|e| match e {});
        // 8000 lossy (offered 0), 4000 lossless (offered 100 < 90 %), 6000 lossy without
        // a generator result (offered = the requested rate).
        assert_eq!(
            zl,
            ZeroLoss {
                pps: 100,
                lossy_pps: Some(6_000)
            }
        );
        assert_eq!(
            logs[0],
            "zero-loss x: trial 1/3 at 8000 pps (offered 0): sent 0, received 0, lost 0 (0.0000 %): LOSS (the generator sent nothing: RESULT sent=0); the generator fell short of --rate; zero-loss rate in [0, 8000)"
        );
        assert_eq!(
            logs[1],
            "zero-loss x: trial 2/3 at 4000 pps (offered 100): sent 100, received 103, lost 0 (0.0000 %): lossless, but 3 more frames arrived than were sent; the generator fell short of --rate; zero-loss rate in [4000, 8000)"
        );
        assert_eq!(
            logs[2],
            "zero-loss x: trial 3/3 at 6000 pps (offered ?): sent 0, received 0, lost 0 (0.0000 %): LOSS (the generator sent nothing: no RESULT line); zero-loss rate in [4000, 6000)"
        );
        assert_eq!(logs[3], "zero-loss x: 100 pps");
    }

    #[test]
    fn trial_errors_end_the_search() {
        let r = zero_loss_search("e", 1000.0, 6, |_| Err("sink gone"), |_| {});
        assert_eq!(r, Err("sink gone"));
    }
}
