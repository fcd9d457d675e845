//! Anti-spoofing: frames from the guest with a foreign source IP or MAC never reach the
//! fabric, and are counted as `spoofed_source_ip` / `spoofed_source_mac`.

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc, GATEWAY_MAC, GUEST_MAC, GUEST_V4, GUEST_V6};

use crate::common::*;

#[test]
fn spoofed_frames_never_reach_the_fabric() {
    require_root();
    let vpc = Vpc::new("spf", &[Underlay::V4]).expect("topology");
    let _daemon = start_default(&vpc);
    let remote = &vpc.remotes[0];
    let (r4, r6, rmac) = (remote.overlay_v4, remote.overlay_v6, &remote.mac);
    let capture = Capture::start(
        &vpc.fabric,
        "f0",
        "udp dst port 4789 and src host 198.18.0.2",
        1000,
        &vpc.work.join("spoof.pcap"),
    );
    let rx_before = remote.vxlan_rx_packets().expect("vxlan rx");
    let before = totals(&vpc);
    // Counts per kind; the last line sends 3 legitimate frames as a positive control: the
    // capture must see exactly those.
    let n = 20;
    scapy(
        &vpc.guest,
        &format!(
            r#"
g, fake = "{GUEST_MAC}", "02:00:00:00:01:99"
udp = UDP(sport=4000, dport=5000) / Raw(b"spoofed")
frames = []
# Foreign source IP (IPv4, IPv6), own MAC: spoofed_source_ip.
frames += [Ether(src=g, dst="{rmac}") / IP(src="198.18.10.99", dst="{r4}") / udp] * {n}
frames += [Ether(src=g, dst="{rmac}") / IPv6(src="2001:2:0:10::99", dst="{r6}") / udp] * {n}
frames += [Ether(src=g, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=g, psrc="198.18.10.99", pdst="{r4}")] * 5
# Foreign source MAC, own IP: spoofed_source_mac.
frames += [Ether(src=fake, dst="{rmac}") / IP(src="{GUEST_V4}", dst="{r4}") / udp] * {n}
frames += [Ether(src=fake, dst="{rmac}") / IPv6(src="{GUEST_V6}", dst="{r6}") / udp] * {n}
frames += [Ether(src=fake, dst="{GATEWAY_MAC}") / IP(src="{GUEST_V4}", dst="{r4}") / udp] * {n}
# ARP with our Ethernet source but a foreign sender hardware address.
frames += [Ether(src=g, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=fake, psrc="{GUEST_V4}", pdst="{r4}")] * 5
sendp(frames, iface="g0")
sendp([Ether(src=g, dst="{rmac}") / IP(src="{GUEST_V4}", dst="{r4}") / UDP(sport=4000, dport=5000) / Raw(b"control")] * 3, iface="g0")
"#
        ),
    );
    let spoofed_ip = 2 * n + 5;
    let spoofed_mac = 3 * n + 5;
    assert_deltas(
        &vpc,
        &before,
        &[
            ("spoofed_source_ip", spoofed_ip),
            ("spoofed_source_mac", spoofed_mac),
            ("egress_packets", 3),
        ],
    );
    // The spoofed frames went through xvpc before the controls: had any leaked, the
    // capture would hold it by the time the controls are in.
    let packets = pcap_packets(&capture.finish_after(3));
    assert_eq!(
        packets.len(),
        3,
        "only the 3 legitimate frames may reach the fabric; captured:\n{}",
        packets.join("\n")
    );
    let rx = wait_until("the control frames at the remote", || {
        let rx = remote.vxlan_rx_packets().ok()? - rx_before;
        (rx >= 3).then_some(rx)
    });
    assert_eq!(
        rx, 3,
        "the remote's VXLAN device decapsulated only the control frames"
    );
}
