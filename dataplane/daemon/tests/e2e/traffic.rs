//! Guest ↔ remote guests: ping, 10,000 verified UDP datagrams, and a verified 50 MB TCP
//! transfer, over IPv4 and IPv6 overlays and underlays.

use std::net::{IpAddr, SocketAddr};

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc, GUEST_V4, GUEST_V6};

use crate::common::*;

#[test]
fn ping_both_ways_over_both_underlays() {
    require_root();
    let vpc = Vpc::new("png", &[Underlay::V4, Underlay::V6]).expect("topology");
    let _daemon = start_default(&vpc);
    for remote in &vpc.remotes {
        for target in [remote.overlay_v4.to_string(), remote.overlay_v6.to_string()] {
            if let Err(out) = ping(&vpc.guest, &target, 2) {
                panic!(
                    "guest → {target} over the {:?} underlay failed:\n{out}\nlog:\n{}",
                    remote.underlay,
                    vpc.dataplane_log()
                );
            }
        }
        for target in [GUEST_V4, GUEST_V6] {
            if let Err(out) = ping(&remote.ns, target, 2) {
                panic!(
                    "remote {} → guest {target} over the {:?} underlay failed:\n{out}",
                    remote.index, remote.underlay
                );
            }
        }
    }
}

#[test]
fn ten_thousand_udp_datagrams_arrive_intact_both_ways() {
    require_root();
    let vpc = Vpc::new("udp", &[Underlay::V4, Underlay::V6]).expect("topology");
    let _daemon = start_default(&vpc);
    let guest_v6: IpAddr = GUEST_V6.parse().expect("literal address");
    let runs = [
        // guest → remote 0: IPv4 overlay, IPv4 underlay.
        (
            &vpc.guest,
            &vpc.remotes[0].ns,
            SocketAddr::new(vpc.remotes[0].overlay_v4.into(), 5001),
            "guest → remote 0 (IPv4 in IPv4)",
        ),
        // remote 1 → guest: IPv6 overlay, IPv6 underlay.
        (
            &vpc.remotes[1].ns,
            &vpc.guest,
            SocketAddr::new(guest_v6, 5002),
            "remote 1 → guest (IPv6 in IPv6)",
        ),
    ];
    for (from, to, dst, what) in runs {
        // Resolve every neighbour on the path first (overlay and underlay, both ways): a
        // kernel drops what overflows its unresolved-neighbour queue, before we see it.
        if let Err(out) = ping(from, &dst.ip().to_string(), 1) {
            panic!("{what}: warm-up ping failed:\n{out}");
        }
        let before = totals(&vpc);
        let report = udp_transfer(from, to, dst, UDP_COUNT);
        let after = totals(&vpc);
        assert!(
            report.intact == UDP_COUNT
                && report.corrupt == 0
                && report.duplicates == 0
                && report.send_errors == 0,
            "{what}: {report:?}\ncounter deltas: egress {} ingress {} tx_ring_full {} drops {}\nlog:\n{}",
            delta(&before, &after, "egress_packets"),
            delta(&before, &after, "ingress_packets"),
            delta(&before, &after, "tx_ring_full"),
            delta(&before, &after, "drops_total"),
            vpc.dataplane_log()
        );
        for reason in ["tx_ring_full", "invalid_descriptor", "no_headroom"] {
            assert_eq!(counter(&after, reason), 0, "{what}: {reason} moved");
        }
    }
}

#[test]
fn tcp_50_mb_transfer_is_byte_exact() {
    require_root();
    let vpc = Vpc::new("tcp", &[Underlay::V4, Underlay::V6]).expect("topology");
    let _daemon = start_default(&vpc);
    const BYTES: u64 = 50 * 1024 * 1024;
    // Guest → remote 0 over IPv4; a smaller IPv6-in-IPv6 transfer the other way.
    let dst = SocketAddr::new(vpc.remotes[0].overlay_v4.into(), 5003);
    let report = tcp_transfer(&vpc.guest, &vpc.remotes[0].ns, dst, BYTES);
    assert_tcp_ok(&report, BYTES, "guest → remote 0, 50 MB over IPv4", &vpc);
    let guest_v6: IpAddr = GUEST_V6.parse().expect("literal address");
    let report = tcp_transfer(
        &vpc.remotes[1].ns,
        &vpc.guest,
        SocketAddr::new(guest_v6, 5004),
        BYTES / 5,
    );
    assert_tcp_ok(
        &report,
        BYTES / 5,
        "remote 1 → guest, 10 MB over IPv6",
        &vpc,
    );
    let t = totals(&vpc);
    assert_eq!(counter(&t, "tx_ring_full"), 0, "{t}");
}

/// Spins after traffic (`dataplane.idle_spin_us`) are counted by how they ended, and a worker
/// with the default window never spins: every ping leaves the worker idle for far longer than
/// a 1 ms window (they are 200 ms apart), so each ends at least one spin.
#[test]
fn spins_after_traffic_are_counted_by_how_they_ended() {
    require_root();
    let vpc = Vpc::new("spn", &[Underlay::V4]).expect("topology");
    let target = vpc.remotes[0].overlay_v4.to_string();
    let spin_ends = |vpc: &Vpc| -> (u64, u64) {
        let s = stats(vpc);
        let workers = s["workers"].as_array().cloned().unwrap_or_default();
        assert!(!workers.is_empty(), "xvpc stats lists its workers: {s}");
        workers.iter().fold((0, 0), |(w, p), worker| {
            let ends = &worker["spin_ends"];
            let read = |k: &str| {
                ends[k]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no spin_ends.{k} in {worker}"))
            };
            (w + read("window"), p + read("preempted"))
        })
    };
    // The workers' tier whatever the environment asks: the XDP tier would answer these pings.
    let mut daemon = start(
        &vpc,
        &vpc.config_toml(
            &static_mappings(&vpc),
            "fast_path = \"afxdp\"\nidle_spin_us = 1000\n",
        ),
    );
    ping(&vpc.guest, &target, 4).unwrap_or_else(|out| panic!("ping: {out}"));
    let (window, preempted) = wait_until("the pings' spins to be counted", || {
        let (w, p) = spin_ends(&vpc);
        (w + p >= 4).then_some((w, p))
    });
    eprintln!(
        "idle_spin_us = 1000, 4 pings: {window} spins ran their window, {preempted} preempted"
    );
    stop(&vpc, &mut daemon);

    let mut daemon = start(
        &vpc,
        &vpc.config_toml(&static_mappings(&vpc), "fast_path = \"afxdp\"\n"),
    );
    ping(&vpc.guest, &target, 4).unwrap_or_else(|out| panic!("ping: {out}"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(spin_ends(&vpc), (0, 0), "the default window never spins");
    stop(&vpc, &mut daemon);
}
