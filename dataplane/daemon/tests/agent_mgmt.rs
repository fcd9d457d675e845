//! The management namespace deployment: etcd lives behind an out-of-band port in its own
//! namespace; the agent enters that namespace (`--management-netns`) and syncs the dataplane
//! over the Unix control socket (a path, which crosses namespaces), while the guest cannot
//! reach etcd at any address.

mod agent_common;

use std::net::IpAddr;

use agent_common::*;
use xvpc_testbed::etcd::Etcd;
use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{workspace_bin, Underlay, Vpc};

/// The management side of the out-of-band link (etcd listens here).
const MGMT_IP: &str = "198.18.200.1";
/// The dataplane host's side of the out-of-band link.
const HOST_IP: &str = "198.18.200.2";

#[test]
fn agent_in_management_namespace_guest_cannot_reach_etcd() {
    require_root();
    let vpc = Vpc::new("ae4", &[Underlay::V4]).expect("topology");
    let mgmt = vpc
        .add_management("ae4m", MGMT_IP, HOST_IP)
        .expect("management namespace and its out-of-band link");
    let etcd_ip: IpAddr = MGMT_IP.parse().expect("literal");
    let etcd = Etcd::start_in(&mgmt, etcd_ip).expect("etcd in the management namespace");
    let r0 = &vpc.remotes[0];
    let target = IpAddr::V4(r0.overlay_v4);
    put_remote(&etcd, r0, target);

    let _dp = vpc
        .start_dataplane(&workspace_bin("xvpc"), &vpc.config_toml("", ""))
        .expect("xvpc starts");
    let endpoint = etcd.endpoint();
    let _agent = start_agent(
        &vpc,
        0,
        &[
            "--source",
            "etcd",
            "--etcd-endpoints",
            &endpoint,
            "--management-netns",
            mgmt.name(),
        ],
    );
    // The agent (started in the test's namespace, which has no route to 198.18.200.0/24)
    // reached etcd from the management namespace and synced the dataplane.
    wait_full_syncs(&vpc, 1);
    wait_mappings(&vpc, 1);
    wait_ping(&vpc, target);

    // Every address of the management namespace, plus loopback, is closed to the guest.
    let port = etcd.client_port;
    let out = mgmt
        .sh("ip -o addr show scope global; ip -o addr show scope host")
        .expect("list mgmt addresses");
    let mut addrs: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|cidr| cidr.split('/').next())
        .map(str::to_string)
        .collect();
    addrs.sort();
    addrs.dedup();
    assert!(
        addrs.iter().any(|a| a == MGMT_IP),
        "etcd's address is among {addrs:?}"
    );
    // Positive controls: the check can fail. etcd answers inside its namespace and over the
    // out-of-band link from the dataplane host.
    mgmt.sh(&format!("nc -z -w1 {MGMT_IP} {port}"))
        .expect("etcd reachable inside the management namespace");
    vpc.dataplane
        .sh(&format!("nc -z -w1 {MGMT_IP} {port}"))
        .expect("etcd reachable from the dataplane host over the out-of-band link");
    for addr in addrs.iter().map(String::as_str).chain([HOST_IP]) {
        let reachable = vpc.guest.sh(&format!("nc -z -w1 {addr} {port}"));
        assert!(
            reachable.is_err(),
            "the guest reached etcd's port at {addr}:{port}"
        );
    }
    // The guest's attempts were misses in the dataplane (no mapping leads to the management
    // network), and the agent still works.
    assert!(stat(&vpc, "/total/misses") > 0);
    wait_ping(&vpc, target);
}
