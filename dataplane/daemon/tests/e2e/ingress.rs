//! Ingress checks with crafted VXLAN from the fabric: unmapped or forged underlay sources,
//! a wrong VNI and malformed headers are dropped and counted; traffic for the host itself
//! (ping, plain UDP to the fabric address) still reaches the host's kernel.

use std::net::SocketAddr;

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc, GUEST_MAC, GUEST_V4, UNDERLAY_V4, UNDERLAY_V6};

use crate::common::*;

#[test]
fn bad_vxlan_is_dropped_and_counted_host_traffic_passes() {
    require_root();
    let vpc = Vpc::new("ing", &[Underlay::V4, Underlay::V6]).expect("topology");
    let _daemon = start_default(&vpc);
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    let router0 = vpc.fabric.mac("r0").expect("router MAC");
    let router1 = vpc.fabric.mac("r1").expect("router MAC");
    let u0 = r0.ns.mac("u0").expect("remote MAC");
    let u1 = r1.ns.mac("u0").expect("remote MAC");
    let before = totals(&vpc);
    let n = 10;
    // An inner frame for our guest claiming to come from `src` (with the remote's MAC).
    scapy(
        &r0.ns,
        &format!(
            r#"
def inner(src, mac="{r0mac}"):
    return Ether(src=mac, dst="{GUEST_MAC}") / IP(src=src, dst="{GUEST_V4}") / UDP(sport=7, dport=7) / Raw(b"x" * 32)
def outer(src="{r0u}", vni=100, flags=0x08):
    return Ether(src="{u0}", dst="{router0}") / IP(src=src, dst="{UNDERLAY_V4}") / UDP(sport=49152, dport=4789) / VXLAN(vni=vni, flags=flags)
frames = []
# unknown_source: nobody is mapped at 198.18.10.77.
frames += [outer() / inner("198.18.10.77")] * {n}
# spoofed_underlay: remote 1's overlay address sent from remote 0's underlay, and remote
# 0's overlay address from an underlay address nobody is mapped to.
frames += [outer() / inner("{r1v4}", mac="{r1mac}")] * {n}
frames += [outer(src="198.18.1.99") / inner("{r0v4}")] * {n}
# unknown_vni
frames += [outer(vni=200) / inner("{r0v4}")] * {n}
# vxlan_no_vni: the I flag is clear.
frames += [outer(flags=0) / inner("{r0v4}")] * {n}
# outer_malformed: UDP to 4789 with a 3-byte payload (no room for a VXLAN header).
frames += [Ether(src="{u0}", dst="{router0}") / IP(src="{r0u}", dst="{UNDERLAY_V4}") / UDP(sport=49152, dport=4789) / Raw(b"\x08\x00\x00")] * {n}
sendp(frames, iface="u0")
"#,
            r0mac = r0.mac,
            r0u = r0.underlay_v4,
            r0v4 = r0.overlay_v4,
            r1v4 = r1.overlay_v4,
            r1mac = r1.mac,
        ),
    );
    // The same over the IPv6 underlay, from remote 1.
    scapy(
        &r1.ns,
        &format!(
            r#"
def frame(vni=100, src="{r1v4}"):
    return (Ether(src="{u1}", dst="{router1}") / IPv6(src="{r1u}", dst="{UNDERLAY_V6}")
        / UDP(sport=49153, dport=4789) / VXLAN(vni=vni)
        / Ether(src="{r1mac}", dst="{GUEST_MAC}") / IP(src=src, dst="{GUEST_V4}") / UDP(sport=7, dport=7) / Raw(b"y" * 32))
sendp([frame(vni=300)] * {n} + [frame(src="{r0v4}")] * {n} + [frame(src="198.18.10.78")] * {n}, iface="u0")
"#,
            r1u = r1.underlay_v6,
            r1v4 = r1.overlay_v4,
            r1mac = r1.mac,
            r0v4 = r0.overlay_v4,
        ),
    );
    // The kernel VXLAN peers also send their own multicast (MLD, router solicitations) to
    // us: counted as inner_wrong_destination, so fabric_rx_packets is not exact.
    assert_deltas(
        &vpc,
        &before,
        &[
            ("unknown_source", 2 * n),
            ("spoofed_underlay", 3 * n),
            ("unknown_vni", 2 * n),
            ("vxlan_no_vni", n),
            ("outer_malformed", n),
            ("ingress_packets", 0),
        ],
    );

    // Not VXLAN: the host's own traffic still reaches its kernel.
    let passed_before = stats(&vpc)["xdp"]["fabric"]["passed"]
        .as_u64()
        .expect("xdp.fabric.passed");
    ping(&r0.ns, UNDERLAY_V4, 2).expect("remote 0 pings the host's fabric address");
    ping(&r1.ns, UNDERLAY_V6, 2).expect("remote 1 pings the host's fabric address (IPv6)");
    let report = udp_transfer(
        &r0.ns,
        &vpc.dataplane,
        SocketAddr::new(UNDERLAY_V4.parse().expect("literal address"), 5555),
        100,
    );
    assert_eq!(
        (report.intact, report.corrupt),
        (100, 0),
        "plain UDP to the host's fabric address reaches its kernel: {report:?}"
    );
    let passed = stats(&vpc)["xdp"]["fabric"]["passed"]
        .as_u64()
        .expect("xdp.fabric.passed");
    assert!(
        passed - passed_before >= 104,
        "the fabric XDP program passed {} frames to the kernel, expected ≥ 104",
        passed - passed_before
    );
}
