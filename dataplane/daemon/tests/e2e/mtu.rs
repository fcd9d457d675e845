//! Path MTU: xvpc never fragments. With a 1400-byte fabric MTU, an oversized packet with DF
//! from the guest gets ICMP "fragmentation needed" (IPv6: "packet too big") carrying the
//! inner MTU that fits after encapsulation (1400 − 50 over an IPv4 underlay, 1400 − 70 over
//! IPv6); the guest's route cache learns it and TCP works at the smaller MSS. Without DF the
//! packet is dropped and counted.

use std::net::{IpAddr, SocketAddr};

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc};

use crate::common::*;

/// `ip route get <target>` in the guest.
fn route_get(vpc: &Vpc, target: &str) -> String {
    vpc.guest
        .ip(&["route", "get", target])
        .unwrap_or_else(|e| panic!("ip route get {target}: {e}"))
}

#[test]
fn oversized_packets_get_icmp_and_tcp_adapts() {
    require_root();
    let vpc = Vpc::new("mtu", &[Underlay::V4, Underlay::V6]).expect("topology");
    vpc.dataplane.set_mtu("xf0", 1400).expect("fabric MTU");
    vpc.fabric.set_mtu("f0", 1400).expect("router MTU");
    let config = vpc.config_toml_with(&static_mappings(&vpc), "mtu = 1400", "");
    let _daemon = start(&vpc, &config);
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    let (r0v4, r0v6) = (r0.overlay_v4.to_string(), r0.overlay_v6.to_string());
    ping(&vpc.guest, &r0v4, 1).expect("small packets pass");

    // No DF, too big after encapsulation: dropped (we never fragment), no ICMP.
    let before = totals(&vpc);
    let out = vpc
        .guest
        .exec(&[
            "ping", "-c", "2", "-i", "0.2", "-W", "1", "-M", "dont", "-s", "1400", &r0v4,
        ])
        .expect("ping");
    assert!(
        !out.status.success(),
        "a 1428-byte packet cannot pass a 1350-byte path"
    );
    assert_deltas(&vpc, &before, &[("too_big_no_df", 2), ("icmp_errors", 0)]);

    // DF: "fragmentation needed" with the inner MTU.
    let before = totals(&vpc);
    let out = vpc
        .guest
        .exec(&[
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", &r0v4,
        ])
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Frag needed and DF set (mtu = 1350)"),
        "ping -M do -s 1400 {r0v4}:\n{text}"
    );
    assert_deltas(&vpc, &before, &[("icmp_errors", 1)]);
    let route = route_get(&vpc, &r0v4);
    assert!(
        route.contains("mtu 1350"),
        "the guest learned the path MTU: {route}"
    );

    // IPv6: "packet too big".
    let before = totals(&vpc);
    let out = vpc
        .guest
        .exec(&[
            "ping", "-6", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", &r0v6,
        ])
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Packet too big") && text.contains("mtu=1350"),
        "ping -6 -M do -s 1400 {r0v6}:\n{text}"
    );
    assert_deltas(&vpc, &before, &[("icmp_errors", 1)]);
    let route = route_get(&vpc, &r0v6);
    assert!(
        route.contains("mtu 1350"),
        "the guest learned the IPv6 path MTU: {route}"
    );

    // TCP to remote 1 (IPv6 underlay: inner MTU 1330). The remote advertises MSS 1390 (its
    // VXLAN device's MTU is 1430), so the guest's first full segments are too big: it must
    // learn the MTU from our ICMP and carry on.
    const BYTES: u64 = 4 * 1024 * 1024;
    for (overlay, port) in [
        (IpAddr::from(r1.overlay_v4), 5010),
        (r1.overlay_v6.into(), 5011),
    ] {
        let before = totals(&vpc);
        let report = tcp_transfer(&vpc.guest, &r1.ns, SocketAddr::new(overlay, port), BYTES);
        assert_tcp_ok(
            &report,
            BYTES,
            &format!("TCP to {overlay} behind a 1330-byte path"),
            &vpc,
        );
        // The transfer needed our ICMP (bounded wait for the workers' 20 ms publication).
        wait_counter(&vpc, &before, "icmp_errors", 1);
        let route = route_get(&vpc, &overlay.to_string());
        assert!(route.contains("mtu 1330"), "path MTU to {overlay}: {route}");
    }
}
