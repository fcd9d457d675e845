//! ARP and neighbor discovery are answered by xvpc: the guest learns the remote guest's MAC
//! and the gateway's MAC, over IPv4 and IPv6.

use std::collections::HashMap;

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc, GATEWAY_MAC, GATEWAY_V4, GATEWAY_V6};

use crate::common::*;

/// The guest's neighbour table: address → MAC.
fn neighbours(vpc: &Vpc) -> HashMap<String, String> {
    let text = vpc
        .guest
        .ip(&["neigh", "show", "dev", "g0"])
        .expect("ip neigh")
        + &vpc
            .guest
            .ip(&["-6", "neigh", "show", "dev", "g0"])
            .expect("ip -6 neigh");
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mac = words.iter().position(|w| *w == "lladdr")?;
            Some((words[0].to_string(), words.get(mac + 1)?.to_string()))
        })
        .collect()
}

#[test]
fn guest_resolves_remote_and_gateway_by_arp_and_nd() {
    require_root();
    let vpc = Vpc::new("nbr", &[Underlay::V4]).expect("topology");
    let _daemon = start_default(&vpc);
    let remote = &vpc.remotes[0];
    let before = totals(&vpc);
    for target in [
        remote.overlay_v4.to_string(),
        remote.overlay_v6.to_string(),
        GATEWAY_V4.to_string(),
        GATEWAY_V6.to_string(),
    ] {
        if let Err(out) = ping(&vpc.guest, &target, 1) {
            panic!("guest → {target}: {out}\nlog:\n{}", vpc.dataplane_log());
        }
    }
    let table = neighbours(&vpc);
    for (addr, mac) in [
        (remote.overlay_v4.to_string(), remote.mac.as_str()),
        (remote.overlay_v6.to_string(), remote.mac.as_str()),
        (GATEWAY_V4.to_string(), GATEWAY_MAC),
        (GATEWAY_V6.to_string(), GATEWAY_MAC),
    ] {
        assert_eq!(
            table.get(&addr).map(String::as_str),
            Some(mac),
            "the guest's neighbour entry for {addr}; table: {table:?}"
        );
    }
    // Workers publish their counters every 20 ms: wait (bounded) for them to show.
    for (name, n) in [
        ("arp_replies", 2),
        ("nd_replies", 2),
        ("gateway_echo_replies", 2),
    ] {
        wait_counter(&vpc, &before, name, n);
    }
}
