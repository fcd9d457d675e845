//! The guest cannot reach the host: while xvpc runs, nothing the guest sends reaches the
//! dataplane namespace's kernel stack, whatever address it targets (the fabric addresses,
//! the guest port's own link-local address), and no reply comes back.
//!
//! The probe is checked first without xvpc (the same frames do reach the kernel then), so
//! the test can tell "blocked" from "the probe never worked".

use std::collections::HashMap;
use std::net::Ipv6Addr;

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc, GUEST_MAC, GUEST_V4, UNDERLAY_V4, UNDERLAY_V6};

use crate::common::*;

/// Frames of each kind the probe sends.
const N: u64 = 10;

/// The kernel counters the probe moves when it gets through. IPv4 ones are quiet in this
/// topology (the fabric router sends no IPv4 of its own); IPv6 ones are per interface.
const WATCHED: [&str; 5] = [
    "Ip.InReceives",
    "Icmp.InEchos",
    "Udp.NoPorts",
    "xg0.Ip6InReceives",
    "xg0.Icmp6InEchos",
];

/// Sends the probe from the guest to the dataplane namespace's addresses, addressed at
/// layer 2 to the guest port itself (as a guest that knew its MAC would).
fn probe(vpc: &Vpc, xg0_mac: &str, xg0_ll: Ipv6Addr, guest_ll: Ipv6Addr) {
    scapy(
        &vpc.guest,
        &format!(
            r#"
e = Ether(src="{GUEST_MAC}", dst="{xg0_mac}")
frames = []
frames += [e / IP(src="{GUEST_V4}", dst="{UNDERLAY_V4}") / ICMP(id=7, seq=i) for i in range({N})]
frames += [e / IP(src="{GUEST_V4}", dst="{UNDERLAY_V4}") / UDP(sport=4000, dport=9999) / Raw(b"probe") for i in range({N})]
frames += [e / IPv6(src="{guest_ll}", dst="{xg0_ll}") / ICMPv6EchoRequest(id=7, seq=i) for i in range({N})]
frames += [e / IPv6(src="{guest_ll}", dst="{UNDERLAY_V6}") / ICMPv6EchoRequest(id=8, seq=i) for i in range({N})]
sendp(frames, iface="g0")
"#
        ),
    );
}

fn moved(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> Vec<(String, u64)> {
    WATCHED
        .iter()
        .map(|k| {
            let get = |m: &HashMap<String, u64>| {
                *m.get(*k).unwrap_or_else(|| panic!("no kernel counter {k}"))
            };
            (k.to_string(), get(after) - get(before))
        })
        .collect()
}

#[test]
fn guest_cannot_reach_the_host_stack() {
    require_root();
    let vpc = Vpc::new("iso", &[Underlay::V4]).expect("topology");
    let xg0_mac = vpc.dataplane.mac("xg0").expect("xg0 MAC");
    let xg0_ll = link_local(&vpc.dataplane, "xg0");
    let guest_ll = link_local(&vpc.guest, "g0");

    // Positive control, xvpc not running: the probe reaches the kernel.
    let before = snmp(&vpc.dataplane, &["xg0"]);
    probe(&vpc, &xg0_mac, xg0_ll, guest_ll);
    let control = wait_until("the probe to reach the kernel without xvpc", || {
        let m = moved(&before, &snmp(&vpc.dataplane, &["xg0"]));
        m.iter().all(|(_, n)| *n >= N).then_some(m)
    });
    eprintln!("without xvpc the probe moved {control:?}");

    let daemon = start_default(&vpc);
    let before_xdp = stats(&vpc)["xdp"]["guest"]["redirected"]
        .as_u64()
        .expect("xdp.guest.redirected");
    let before_counters = totals(&vpc);
    let before = snmp(&vpc.dataplane, &["xg0"]);
    probe(&vpc, &xg0_mac, xg0_ll, guest_ll);
    for target in [UNDERLAY_V4, UNDERLAY_V6, "198.18.0.1", "2001:2::1"] {
        let out = vpc
            .guest
            .exec(&["ping", "-c", "1", "-W", "1", target])
            .expect("ping");
        assert!(
            !out.status.success(),
            "the guest got a reply from host/fabric address {target}"
        );
    }
    // Everything the probe sent went to xvpc (and was dropped there): 4N probe frames.
    wait_until("xvpc to receive the probe", || {
        let now = stats(&vpc)["xdp"]["guest"]["redirected"].as_u64()?;
        (now - before_xdp >= 4 * N).then_some(())
    });
    let after_counters = wait_counter(&vpc, &before_counters, "guest_rx_packets", 4 * N);
    let after = snmp(&vpc.dataplane, &["xg0"]);
    let m = moved(&before, &after);
    assert!(
        m.iter().all(|(_, n)| *n == 0),
        "guest traffic reached the dataplane's kernel while xvpc ran: {m:?}; xvpc: {after_counters}"
    );
    drop(daemon);
}
