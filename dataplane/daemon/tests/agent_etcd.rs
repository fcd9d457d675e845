//! The mapping agent on a real etcd feeding a real `xvpc run`, checked with traffic to Linux
//! kernel VXLAN peers: put/delete/move a mapping, 100,000 mappings on every worker, and agent,
//! dataplane and etcd restarts under traffic.

mod agent_common;

use std::net::IpAddr;
use std::time::Duration;

use agent_common::*;
use xvpc_testbed::etcd::Etcd;
use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{workspace_bin, Underlay, Vpc, GUEST_MAC, GUEST_V4, GUEST_V6};

/// Put → traffic flows to the VXLAN peer; delete → it stops and the dataplane misses; a new
/// underlay → traffic moves to the other peer (a migrated VM).
#[test]
fn etcd_put_delete_and_move_steer_traffic() {
    require_root();
    let vpc = Vpc::new("ae1", &[Underlay::V4, Underlay::V4]).expect("topology");
    let etcd = Etcd::start().expect("etcd");
    let _dp = vpc
        .start_dataplane(&workspace_bin("xvpc"), &vpc.config_toml("", ""))
        .expect("xvpc starts");
    let _agent = start_etcd_agent(&vpc, 0, &etcd);
    wait_full_syncs(&vpc, 1);
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    let target = IpAddr::V4(r0.overlay_v4);
    assert!(!ping_once(&vpc, target), "reachable before any mapping");

    // Put: the guest reaches the remote guest behind remote 0's kernel VXLAN device.
    put_remote(&etcd, r0, target);
    wait_ping(&vpc, target);
    let rx0 = r0.vxlan_rx_packets().expect("rx counter");
    vpc.guest
        .sh(&format!("ping -c 3 -i 0.2 -W 2 {target}"))
        .expect("ping through xvpc");
    assert!(r0.vxlan_rx_packets().expect("rx counter") >= rx0 + 3);

    // Delete: traffic stops; the dataplane counts misses and the agent answers NotFound.
    etcd.delete(&etcd_key(target)).expect("etcdctl del");
    wait_mappings(&vpc, 0);
    let before = stats(&vpc);
    assert!(
        !ping_once(&vpc, target),
        "still reachable after the delete\n{}",
        logs(&vpc)
    );
    wait_until(&vpc, "total.misses and control.not_found move", || {
        let now = stats(&vpc);
        counter(&now, "/total/misses") > counter(&before, "/total/misses")
            && counter(&now, "/control/not_found") > counter(&before, "/control/not_found")
    });

    // Move: remote 1 now holds the same overlay address and MAC (a migrated VM), and the
    // mapping's underlay changes to remote 1.
    r1.ns
        .sh(&format!(
            "ip addr add {target}/24 dev vx100 && ip link set vx100 address {}",
            r0.mac
        ))
        .expect("remote 1 takes over the overlay address");
    // A MAC change flushes the device's neighbours, permanent ones included: restore the
    // remote host's knowledge of our guest (no ARP across the fabric).
    for (ip, mac) in [(GUEST_V4, GUEST_MAC), (GUEST_V6, GUEST_MAC)] {
        r1.ns.add_neigh("vx100", ip, mac).expect("static neighbour");
    }
    put_remote(&etcd, r0, target);
    wait_ping(&vpc, target);
    etcd.put(&etcd_key(target), &etcd_value(r1.underlay_ip(), &r0.mac))
        .expect("etcdctl put (new underlay)");
    // Wait until answers come from remote 1 only.
    wait_until(&vpc, "traffic moves to remote 1", || {
        let (a0, a1) = (
            r0.vxlan_rx_packets().expect("rx"),
            r1.vxlan_rx_packets().expect("rx"),
        );
        ping_once(&vpc, target)
            && r0.vxlan_rx_packets().expect("rx") == a0
            && r1.vxlan_rx_packets().expect("rx") > a1
    });
    let (a0, a1) = (
        r0.vxlan_rx_packets().expect("rx"),
        r1.vxlan_rx_packets().expect("rx"),
    );
    vpc.guest
        .sh(&format!("ping -c 5 -i 0.2 -W 2 {target}"))
        .expect("ping the migrated guest");
    assert_eq!(
        r0.vxlan_rx_packets().expect("rx"),
        a0,
        "old peer still gets traffic"
    );
    assert!(
        r1.vxlan_rx_packets().expect("rx") >= a1 + 5,
        "new peer got less than 5 packets"
    );
}

/// 100,000 mappings in etcd reach both workers of a two-queue dataplane, exactly.
#[test]
fn etcd_100k_mappings_reach_every_worker() {
    require_root();
    const N: usize = 100_000;
    let vpc = Vpc::with_queues("ae2", &[Underlay::V4], 2).expect("topology");
    let etcd = Etcd::start().expect("etcd");
    let r0 = &vpc.remotes[0];
    // N-1 synthetic mappings in 198.18.32.0.. (inside 198.18.0.0/15) plus the real remote.
    let mut kvs: Vec<(String, String)> = (0..N as u32 - 1)
        .map(|i| {
            let ip = IpAddr::V4((0xC612_2000u32 + i).into());
            let mac = format!(
                "02:10:00:{:02x}:{:02x}:{:02x}",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            );
            (etcd_key(ip), etcd_value(r0.underlay_ip(), &mac))
        })
        .collect();
    kvs.push((
        etcd_key(IpAddr::V4(r0.overlay_v4)),
        etcd_value(r0.underlay_ip(), &r0.mac),
    ));
    etcd.put_many(&kvs).expect("load 100k keys into etcd");
    let config = vpc
        .config_toml("", "")
        .replace("queues = [0]\n", "queues = [0, 1]\n");
    let _dp = vpc
        .start_dataplane(&workspace_bin("xvpc"), &config)
        .expect("xvpc starts with two queues");
    assert_eq!(
        stats(&vpc)["control"]["worker_entries"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "two workers"
    );
    let _agent = start_etcd_agent(&vpc, 0, &etcd);
    wait_until(&vpc, "100,000 mappings on every worker", || {
        let s = stats(&vpc);
        let entries: Vec<u64> = s["control"]["worker_entries"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        counter(&s, "/control/mappings") == N as u64
            && entries.len() == 2
            && entries.iter().all(|&e| e == N as u64)
    });
    let s = stats(&vpc);
    assert_eq!(counter(&s, "/control/rejected"), 0, "no mapping rejected");
    assert_eq!(counter(&s, "/control/full_syncs"), 1, "one full sync");
    // And the table forwards.
    wait_ping(&vpc, IpAddr::V4(r0.overlay_v4));
}

/// Kill -9 and restart the agent under a paced UDP stream: nothing is dropped for lack of a
/// mapping; restart the dataplane: the agent resyncs it; etcd crashes and restarts: changes
/// made after (or just before) still arrive.
#[test]
fn agent_dataplane_and_etcd_restarts() {
    require_root();
    let vpc = Vpc::new("ae3", &[Underlay::V4, Underlay::V4]).expect("topology");
    let mut etcd = Etcd::start().expect("etcd");
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    let target = IpAddr::V4(r0.overlay_v4);
    put_remote(&etcd, r0, target);
    let xvpc = workspace_bin("xvpc");
    let config = vpc.config_toml("", "");
    let mut dp = vpc.start_dataplane(&xvpc, &config).expect("xvpc starts");
    let mut agent = start_etcd_agent(&vpc, 0, &etcd);
    wait_full_syncs(&vpc, 1);
    wait_ping(&vpc, target);

    // 1. Agent crash and restart during a paced stream (600 datagrams, 5 ms apart).
    const COUNT: u32 = 600;
    let sink = udp_sink(r0, target, 7000);
    let miss_drops = stat(&vpc, "/total/drops/miss");
    let misses = stat(&vpc, "/total/misses");
    let syncs = stat(&vpc, "/control/full_syncs");
    let (sent, seen) = std::thread::scope(|s| {
        let receiver = s.spawn(|| drain_sink(&sink, COUNT));
        let sender = s.spawn(|| udp_stream(&vpc, target, 7000, COUNT, Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(300));
        agent.kill_hard().expect("kill -9 the agent");
        agent = start_etcd_agent(&vpc, 1, &etcd);
        wait_full_syncs(&vpc, syncs + 1);
        (
            sender.join().expect("sender thread"),
            receiver.join().expect("receiver thread"),
        )
    });
    assert_eq!(sent, COUNT, "the guest sent every datagram");
    assert_eq!(
        stat(&vpc, "/total/drops/miss"),
        miss_drops,
        "packets dropped for lack of a mapping during the agent restart"
    );
    // Held frames would hide a short gap; there must be none: not a single miss.
    assert_eq!(
        stat(&vpc, "/total/misses"),
        misses,
        "the table lacked the mapping during the agent restart"
    );
    assert_eq!(
        seen.len() as u32,
        COUNT,
        "datagrams lost across the agent restart (missing: {:?})\n{}",
        (0..COUNT)
            .filter(|i| !seen.contains(i))
            .take(20)
            .collect::<Vec<_>>(),
        logs(&vpc)
    );

    // 2. Dataplane restart (no static mappings): the agent reconnects and full-syncs it.
    dp.terminate().expect("stop xvpc");
    dp = vpc.start_dataplane(&xvpc, &config).expect("xvpc restarts");
    wait_full_syncs(&vpc, 1);
    wait_mappings(&vpc, 1);
    wait_ping(&vpc, target);

    // 3. etcd crashes and comes back; a change made afterwards arrives.
    etcd.kill().expect("kill -9 etcd");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        ping_once(&vpc, target),
        "the last state is kept while etcd is down"
    );
    etcd.start_again().expect("etcd restarts");
    let r1_v4 = IpAddr::V4(r1.overlay_v4);
    put_remote(&etcd, r1, r1_v4);
    wait_ping(&vpc, r1_v4);

    // 4. A change, then etcd crashes at once: once back, the change arrives.
    let r1_v6 = IpAddr::V6(r1.overlay_v6);
    put_remote(&etcd, r1, r1_v6);
    etcd.kill().expect("kill -9 etcd");
    etcd.start_again().expect("etcd restarts");
    wait_ping(&vpc, r1_v6);
    wait_mappings(&vpc, 3);
    drop(agent);
    drop(dp);
}
