//! `/metrics` of the dataplane in the Prometheus text format, built from the same published
//! sources as `xvpc stats` (the workers' status slots, the control path's counters, the XDP
//! programs' maps): a scrape never touches the packet path.
//!
//! The pipeline's scalar counters come from `Counters::scalars()` and the drop reasons from
//! `DropReason::ALL`, so counters added to the core appear here without a change. A scalar
//! named `egress_*`/`ingress_*` (or `guest_rx_*`/`fabric_rx_*`) becomes one family with a
//! `direction` label; every other scalar becomes its own family.

use std::sync::atomic::Ordering;

use xvpc_control::metrics::Exposition;
use xvpc_core::counters::{Counters, DropReason};

use crate::stats::StatsSources;
use crate::worker::WorkerStatus;

/// The family name and `direction` label of a pipeline scalar.
fn scalar_family(scalar: &str) -> (String, Option<&'static str>) {
    for (prefix, family_prefix, direction) in [
        ("egress_", "", "egress"),
        ("ingress_", "", "ingress"),
        ("guest_rx_", "rx_", "egress"),
        ("fabric_rx_", "rx_", "ingress"),
    ] {
        if let Some(rest) = scalar.strip_prefix(prefix) {
            return (format!("xvpc_{family_prefix}{rest}_total"), Some(direction));
        }
    }
    (format!("xvpc_{scalar}_total"), None)
}

fn scalar_help(family: &str) -> String {
    match family {
        "xvpc_packets_total" => "Packets forwarded, per worker and direction.".into(),
        "xvpc_bytes_total" => "Bytes forwarded, per worker and direction.".into(),
        "xvpc_rx_packets_total" => {
            "Packets received from the guest (egress) or the fabric (ingress) port.".into()
        }
        other => format!(
            "Pipeline counter {}, per worker.",
            other.trim_start_matches("xvpc_").trim_end_matches("_total")
        ),
    }
}

fn worker(e: &mut Exposition, index: usize, s: &WorkerStatus) {
    let w = index.to_string();
    let w = w.as_str();
    pipeline_counters(e, w, &s.counters);
    e.counter_seconds(
        "xvpc_worker_busy_seconds_total",
        "Time the worker spent in loop iterations that moved frames.",
        &[("worker", w)],
        s.busy_ns,
    );
    e.counter_seconds(
        "xvpc_worker_idle_seconds_total",
        "Time the worker spent in loop iterations that found no frame (sleeping included).",
        &[("worker", w)],
        s.idle_ns,
    );
    for (how, ends) in [
        ("window", s.spin_ends.window),
        ("preempted", s.spin_ends.preempted),
    ] {
        e.counter(
            "xvpc_worker_spin_ends_total",
            "Spins after traffic (dataplane.idle_spin_us) that ran their window, or that a \
             preemption ended early.",
            &[("worker", w), ("end", how)],
            ends,
        );
    }
    e.gauge(
        "xvpc_worker_mappings",
        "Live mappings in the worker's table.",
        &[("worker", w)],
        s.mapped as f64,
    );
    e.gauge(
        "xvpc_worker_table_entries",
        "Slots in use in the worker's table (live, negative and pending).",
        &[("worker", w)],
        s.entries as f64,
    );
    e.gauge(
        "xvpc_worker_table_epoch",
        "Epoch of the full sync the worker's table came from.",
        &[("worker", w)],
        s.epoch as f64,
    );
    if let Some(a) = s.accounting {
        let in_fill: u64 = a.in_fill.iter().map(|n| *n as u64).sum();
        let in_tx: u64 = a.in_tx.iter().map(|n| *n as u64).sum();
        for (place, n) in [
            ("free", a.free as u64),
            ("fill", in_fill),
            ("app", a.in_app as u64),
            ("tx", in_tx),
        ] {
            e.gauge(
                "xvpc_umem_frames",
                "UMEM frames of the worker by where they are.",
                &[("worker", w), ("place", place)],
                n as f64,
            );
        }
    }
    if let Some(x) = s.xsk {
        for (name, help, value) in [
            (
                "xvpc_xsk_tx_kicks_total",
                "TX wakeups (sendto).",
                x.tx_kicks,
            ),
            (
                "xvpc_xsk_tx_kick_busy_total",
                "TX wakeups the kernel answered EBUSY/EAGAIN.",
                x.tx_kick_busy,
            ),
            (
                "xvpc_xsk_tx_kick_errors_total",
                "TX wakeups that failed.",
                x.tx_kick_errors,
            ),
            (
                "xvpc_xsk_fill_wakeups_total",
                "Fill ring wakeups.",
                x.fill_wakeups,
            ),
            (
                "xvpc_xsk_polls_total",
                "poll() calls on the sockets.",
                x.polls,
            ),
        ] {
            e.counter(name, help, &[("worker", w)], value);
        }
    }
    for (port, k) in ["guest", "fabric"].into_iter().zip(s.kernel) {
        let Some(k) = k else { continue };
        for (name, help, value) in [
            (
                "xvpc_xsk_rx_ring_full_total",
                "Frames the kernel dropped at the socket's full RX ring (backpressure).",
                k.rx_ring_full,
            ),
            (
                "xvpc_xsk_rx_dropped_total",
                "Frames the kernel dropped for the socket (XDP_STATISTICS rx_dropped).",
                k.rx_dropped,
            ),
            (
                "xvpc_xsk_rx_fill_ring_empty_total",
                "Times the kernel found the fill ring empty.",
                k.rx_fill_ring_empty_descs,
            ),
            (
                "xvpc_xsk_rx_invalid_descs_total",
                "Invalid RX descriptors.",
                k.rx_invalid_descs,
            ),
            (
                "xvpc_xsk_tx_invalid_descs_total",
                "Invalid TX descriptors.",
                k.tx_invalid_descs,
            ),
        ] {
            e.counter(name, help, &[("worker", w), ("port", port)], value);
        }
    }
}

/// The whole exposition.
/// The pipeline's counters and drops of one worker, or of the XDP tier (`worker="xdp"`).
fn pipeline_counters(e: &mut Exposition, w: &str, counters: &Counters) {
    for (scalar, value) in counters.scalars() {
        let (family, direction) = scalar_family(scalar);
        let help = scalar_help(&family);
        match direction {
            Some(d) => e.counter(&family, &help, &[("worker", w), ("direction", d)], value),
            None => e.counter(&family, &help, &[("worker", w)], value),
        }
    }
    for reason in DropReason::ALL {
        e.counter(
            "xvpc_drops_total",
            "Frames dropped by the pipeline, per worker and reason.",
            &[("worker", w), ("reason", reason.name())],
            counters.drops_for(reason),
        );
    }
}

pub fn render(sources: &StatsSources) -> String {
    let mut e = Exposition::new();
    e.gauge(
        "xvpc_build_info",
        "The running daemon's version.",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    e.gauge(
        "xvpc_uptime_seconds",
        "Seconds since the daemon started.",
        &[],
        sources.started.elapsed().as_secs_f64(),
    );
    for (i, slot) in sources.workers.iter().enumerate() {
        // Copy out, so the worker's next publish never waits on formatting.
        let status = slot.lock().ok().map(|s| s.clone());
        if let Some(status) = status {
            worker(&mut e, i, &status);
        }
    }
    // Under fast_path = "xdp", what the XDP tier did since start, as one more "worker", so
    // sums over workers are the same whichever tier did the work.
    if let Some(Ok(fast)) = sources.guest.fast_since_start() {
        let mut c = Counters::default();
        crate::stats::merge_fast(&mut c, &fast);
        if let Some(Ok(ingress)) = sources.fabric.ingress_since_start() {
            crate::stats::merge_ingress(&mut c, &ingress);
        }
        pipeline_counters(&mut e, "xdp", &c);
    }
    let report = sources.fanout.report();
    let c = &sources.fanout.counters;
    for (name, help, value) in [
        (
            "xvpc_control_full_syncs_total",
            "Full syncs from the agent swapped in.",
            report.full_syncs,
        ),
        (
            "xvpc_control_upserts_total",
            "Mapping upserts applied (outside full syncs).",
            report.upserts,
        ),
        (
            "xvpc_control_deletes_total",
            "Mapping deletes applied.",
            report.deletes,
        ),
        (
            "xvpc_control_misses_sent_total",
            "Misses reported to the agent.",
            report.misses,
        ),
        (
            "xvpc_control_misses_unsent_total",
            "Misses not reported (no agent, queue full).",
            report.misses_rate_limited,
        ),
        (
            "xvpc_control_not_found_total",
            "NotFound answers received from the agent.",
            report.not_found,
        ),
        (
            "xvpc_control_rejected_total",
            "Mappings rejected (wrong VNI, no local underlay, bad MAC).",
            report.invalid_skipped,
        ),
        (
            "xvpc_control_agent_sessions_total",
            "Agent sessions accepted.",
            c.sessions.load(Ordering::Relaxed),
        ),
    ] {
        e.counter(name, help, &[], value);
    }
    for (name, help, value) in [
        (
            "xvpc_control_epoch",
            "Epoch of the last full sync.",
            report.epoch,
        ),
        (
            "xvpc_control_mappings",
            "Mappings in the tables.",
            report.mappings,
        ),
        (
            "xvpc_control_negative_entries",
            "Negative (not found) entries in the worker tables.",
            report.negative_entries,
        ),
        (
            "xvpc_control_agent_connected",
            "1 while a mapping agent session is open.",
            u64::from(c.agent_connected.load(Ordering::Relaxed)),
        ),
        (
            "xvpc_control_last_full_sync_timestamp_seconds",
            "When the last full sync was swapped in (Unix time; 0: never).",
            c.last_full_sync_unix.load(Ordering::Relaxed),
        ),
    ] {
        e.gauge(name, help, &[], value as f64);
    }
    let xdp = "xvpc_xdp_packets_total";
    let xdp_help = "Packets the XDP programs handled, per port and action.";
    let up = |e: &mut Exposition, port: &str, ok: bool| {
        e.gauge(
            "xvpc_xdp_counters_up",
            "1 if the XDP program's counters could be read.",
            &[("port", port)],
            f64::from(u8::from(ok)),
        );
    };
    match sources.guest.counters() {
        Ok(c) => {
            up(&mut e, "guest", true);
            for (action, v) in [
                ("redirected", c.redirected),
                ("dropped_no_socket", c.dropped_no_socket),
            ] {
                e.counter(xdp, xdp_help, &[("port", "guest"), ("action", action)], v);
            }
        }
        Err(_) => up(&mut e, "guest", false),
    }
    match sources.fabric.counters() {
        Ok(c) => {
            up(&mut e, "fabric", true);
            for (action, v) in [
                ("redirected", c.steered),
                ("passed", c.passed),
                ("dropped_no_socket", c.dropped_no_socket),
                ("dropped_malformed", c.malformed),
            ] {
                e.counter(xdp, xdp_help, &[("port", "fabric"), ("action", action)], v);
            }
        }
        Err(_) => up(&mut e, "fabric", false),
    }
    e.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_map_to_directional_families() {
        assert_eq!(
            scalar_family("egress_packets"),
            ("xvpc_packets_total".into(), Some("egress"))
        );
        assert_eq!(
            scalar_family("ingress_bytes"),
            ("xvpc_bytes_total".into(), Some("ingress"))
        );
        assert_eq!(
            scalar_family("fabric_rx_packets"),
            ("xvpc_rx_packets_total".into(), Some("ingress"))
        );
        assert_eq!(
            scalar_family("arp_replies"),
            ("xvpc_arp_replies_total".into(), None)
        );
    }

    #[test]
    fn a_worker_exposes_every_scalar_and_drop_reason() {
        let mut status = WorkerStatus::default();
        status.counters.drop(DropReason::SpoofedSourceIp);
        status.counters.egress_packets = 5;
        let mut e = Exposition::new();
        worker(&mut e, 0, &status);
        let text = e.render();
        for (scalar, _) in status.counters.scalars() {
            let (family, _) = scalar_family(scalar);
            assert!(text.contains(&format!("\n{family}{{")), "{family} missing");
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("xvpc_drops_total{"))
                .count(),
            DropReason::COUNT
        );
        assert!(text.contains("xvpc_drops_total{worker=\"0\",reason=\"spoofed_source_ip\"} 1\n"));
        assert!(text.contains("xvpc_packets_total{worker=\"0\",direction=\"egress\"} 5\n"));
    }
}
