//! `xvpc stats` for people: the JSON snapshot rendered as a table. Rates are computed
//! between two snapshots (`--watch`), or averaged since the daemon started (one snapshot).
//!
//! Reads the snapshot by key, and drop reasons by iterating the object, so a counter added
//! to the core shows up here without a change.

use std::fmt::Write as _;

use serde_json::Value;

/// Reads an unsigned counter at a JSON pointer (0 if absent: an older daemon).
fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Packets (or anything) per second, short: 950, 12.3k, 1.25M.
fn si(rate: f64) -> String {
    let (value, unit) = if rate >= 1e9 {
        (rate / 1e9, "G")
    } else if rate >= 1e6 {
        (rate / 1e6, "M")
    } else if rate >= 1e3 {
        (rate / 1e3, "k")
    } else {
        return format!("{rate:.0}");
    };
    if value >= 100.0 {
        format!("{value:.0}{unit}")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + unit
    }
}

fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// What rates are measured against.
struct Window<'a> {
    /// The earlier snapshot, or `None`: since start.
    prev: Option<&'a Value>,
    secs: f64,
}

impl Window<'_> {
    /// The per-second rate of the counter at `pointer` within worker `w` (or the total
    /// when `w` is `None`).
    fn rate(&self, cur: &Value, w: Option<usize>, pointer: &str) -> f64 {
        let read = |snap: &Value| match w {
            Some(i) => snap
                .pointer(&format!("/workers/{i}"))
                .map_or(0, |ws| u(ws, pointer)),
            None => u(snap, pointer),
        };
        let before = self.prev.map_or(0, read);
        if self.secs <= 0.0 {
            return 0.0;
        }
        read(cur).saturating_sub(before) as f64 / self.secs
    }
}

/// Busy % of worker `i` within the window.
fn busy_percent(cur: &Value, prev: Option<&Value>, i: usize) -> Option<f64> {
    let at = |snap: &Value, key: &str| u(snap, &format!("/workers/{i}/{key}"));
    let delta = |key: &str| at(cur, key).saturating_sub(prev.map_or(0, |p| at(p, key)));
    let (busy, idle) = (delta("busy_ns"), delta("idle_ns"));
    (busy + idle > 0).then(|| 100.0 * busy as f64 / (busy + idle) as f64)
}

/// Renders `cur` as a table. With `prev` (taken `secs` earlier), rates are over that
/// interval; without, since the daemon started.
pub fn render(cur: &Value, prev: Option<(&Value, f64)>) -> String {
    let uptime = cur
        .get("uptime_secs")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let window = match prev {
        Some((p, secs)) => Window {
            prev: Some(p),
            secs: p
                .get("uptime_secs")
                .and_then(Value::as_f64)
                .map_or(secs, |before| uptime - before),
        },
        None => Window {
            prev: None,
            secs: uptime,
        },
    };
    let mut out = String::new();
    let version = cur.get("version").and_then(Value::as_str).unwrap_or("?");
    let _ = writeln!(
        out,
        "xvpc {version}, up {}; rates {}",
        duration(uptime),
        match prev {
            Some(_) => format!("over the last {:.1}s", window.secs),
            None => "averaged since start".to_string(),
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<8} {:>14} {:>9} {:>14} {:>9} {:>12} {:>8} {:>6}",
        "worker", "egress pkts", "pps", "ingress pkts", "pps", "drops", "drops/s", "busy"
    );
    let workers = cur
        .get("workers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let row = |out: &mut String, name: &str, base: &str, w: Option<usize>, busy: Option<f64>| {
        let at = |k: &str| format!("{base}/{k}");
        let snap = match w {
            Some(i) => cur
                .pointer(&format!("/workers/{i}"))
                .unwrap_or(&Value::Null),
            None => cur,
        };
        let _ = writeln!(
            out,
            "{:<8} {:>14} {:>9} {:>14} {:>9} {:>12} {:>8} {:>6}",
            name,
            u(snap, &at("egress_packets")),
            si(window.rate(cur, w, &at("egress_packets"))),
            u(snap, &at("ingress_packets")),
            si(window.rate(cur, w, &at("ingress_packets"))),
            u(snap, &at("drops_total")),
            si(window.rate(cur, w, &at("drops_total"))),
            busy.map_or("-".to_string(), |b| format!("{b:.1}%")),
        );
    };
    let mut busy_sum = 0.0;
    let mut busy_n = 0usize;
    for i in 0..workers {
        let busy = busy_percent(cur, window.prev, i);
        if let Some(b) = busy {
            busy_sum += b;
            busy_n += 1;
        }
        row(&mut out, &i.to_string(), "/counters", Some(i), busy);
    }
    let mean_busy = (busy_n > 0).then(|| busy_sum / busy_n as f64);
    row(&mut out, "total", "/total", None, mean_busy);

    // Drops by reason, non-zero only, largest first.
    let mut drops: Vec<(&str, u64)> = cur
        .pointer("/total/drops")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_u64()?)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    drops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let _ = writeln!(out);
    if drops.is_empty() {
        let _ = writeln!(out, "drops: none");
    } else {
        let _ = writeln!(
            out,
            "{:<28} {:>14} {:>9}",
            "drop reason", "packets", "per s"
        );
        for (reason, n) in drops {
            let _ = writeln!(
                out,
                "{:<28} {:>14} {:>9}",
                reason,
                n,
                si(window.rate(cur, None, &format!("/total/drops/{reason}")))
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "misses {} (sent to the agent {}, unsent {}), held {}, released {}",
        u(cur, "/total/misses"),
        u(cur, "/control/misses_sent"),
        u(cur, "/control/misses_unsent"),
        u(cur, "/total/held_packets"),
        u(cur, "/total/held_released"),
    );
    let entries: Vec<String> = cur
        .pointer("/control/worker_entries")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.to_string()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "tables: {} mappings (per worker: {}), {} negative entries, epoch {}",
        u(cur, "/control/mappings"),
        entries.join(", "),
        u(cur, "/control/negative_entries"),
        u(cur, "/control/epoch"),
    );
    let connected = cur
        .pointer("/control/agent_connected")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let last_sync = u(cur, "/control/last_full_sync_unix");
    let ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(last_sync);
    let _ = writeln!(
        out,
        "agent: {}, {} session(s), {} full sync(s){}, {} upserts, {} deletes, {} rejected",
        if connected {
            "connected"
        } else {
            "NOT connected"
        },
        u(cur, "/control/agent_sessions"),
        u(cur, "/control/full_syncs"),
        if last_sync == 0 {
            String::new()
        } else {
            format!(" (last {} ago)", duration(ago as f64))
        },
        u(cur, "/control/upserts"),
        u(cur, "/control/deletes"),
        u(cur, "/control/rejected"),
    );
    let ring_full = |port: &str| -> u64 {
        (0..workers)
            .map(|i| u(cur, &format!("/workers/{i}/kernel/{port}/rx_ring_full")))
            .sum()
    };
    let _ = writeln!(
        out,
        "xdp: guest redirected {}, fabric steered {} passed {} malformed {}; no socket: guest {} fabric {}",
        u(cur, "/xdp/guest/redirected"),
        u(cur, "/xdp/fabric/steered"),
        u(cur, "/xdp/fabric/passed"),
        u(cur, "/xdp/fabric/malformed"),
        u(cur, "/xdp/guest/dropped_no_socket"),
        u(cur, "/xdp/fabric/dropped_no_socket"),
    );
    let _ = writeln!(
        out,
        "kernel drops at full AF_XDP rx rings: guest {}, fabric {}",
        ring_full("guest"),
        ring_full("fabric"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap(uptime: f64, egress: u64, spoofed: u64, busy: u64, idle: u64) -> Value {
        let counters = json!({
            "egress_packets": egress, "ingress_packets": 7, "drops_total": spoofed,
            "misses": 3, "held_packets": 2, "held_released": 1,
            "drops": {"spoofed_source_ip": spoofed, "miss": 0},
        });
        json!({
            "version": "0.1.0",
            "uptime_secs": uptime,
            "total": counters,
            "workers": [{"worker": 0, "busy_ns": busy, "idle_ns": idle, "counters": counters,
                         "kernel": {"guest": {"rx_ring_full": 4}, "fabric": null}}],
            "control": {"mappings": 5, "worker_entries": [5], "epoch": 2, "agent_connected": true,
                        "agent_sessions": 1, "full_syncs": 1},
            "xdp": {"guest": {"redirected": 9}},
        })
    }

    #[test]
    fn rates_between_samples_and_non_zero_drops_only() {
        let before = snap(10.0, 1000, 10, 1_000, 3_000);
        let after = snap(12.0, 3000, 30, 2_000, 4_000);
        let table = render(&after, Some((&before, 2.0)));
        // 2000 packets in 2 s; 20 drops in 2 s; busy 1000 of 2000 ns.
        let worker = table
            .lines()
            .find(|l| l.starts_with("0 "))
            .expect("worker row");
        let cols: Vec<&str> = worker.split_whitespace().collect();
        assert_eq!(
            cols,
            ["0", "3000", "1k", "7", "0", "30", "10", "50.0%"],
            "{table}"
        );
        assert!(table.contains("spoofed_source_ip"), "{table}");
        assert!(
            !table.contains("\nmiss "),
            "zero reasons are hidden: {table}"
        );
        assert!(table.contains("agent: connected, 1 session(s)"), "{table}");
        assert!(table.contains("guest 4, fabric 0"), "{table}");
        // One snapshot: averaged since start (3000 packets in 12 s).
        let once = render(&after, None);
        assert!(once.contains("averaged since start"), "{once}");
        let total = once
            .lines()
            .find(|l| l.starts_with("total"))
            .expect("total row");
        assert_eq!(total.split_whitespace().nth(2), Some("250"), "{once}");
    }

    #[test]
    fn si_units() {
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12_345.0), "12.345k");
        assert_eq!(si(1_250_000.0), "1.25M");
        assert_eq!(si(250_000_000.0), "250M");
    }
}
