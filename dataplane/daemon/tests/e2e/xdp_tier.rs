//! `dataplane.fast_path = "xdp"`: the guest port runs `xvpc_guest_fast`, which encapsulates
//! the common egress case in XDP and redirects it to the fabric port through a devmap (veth in
//! driver mode here). ARP, ICMP and the first packet of a miss still go through the workers;
//! spoofed frames are dropped in XDP under the workers' reasons and `xvpc stats` merges them;
//! the control path is the only writer of the XDP map, so an upsert makes a mapping fast and a
//! delete stops XDP forwarding by it. The fabric port runs `xvpc_fabric_fast`, which
//! decapsulates the common ingress case in XDP and redirects the inner frame to the guest
//! port; the rest (outer IPv4 options, spoofed senders) is the workers' or dropped under their
//! reasons.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use xvpc_control::{handshake, read_message, write_message, Message, Role};
use xvpc_core::model::{MacAddr, Mapping, MappingKey, Vni};
use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{
    Remote, Underlay, Vpc, GUEST_MAC, GUEST_V4, GUEST_V6, UNDERLAY_V4, UNDERLAY_V6, VNI,
};

use crate::common::*;

/// An agent of our own on the control socket: sends what the test says, reports misses.
struct Agent {
    stream: UnixStream,
    misses: mpsc::Receiver<MappingKey>,
}

impl Agent {
    fn connect(vpc: &Vpc) -> Agent {
        let mut stream = UnixStream::connect(vpc.control_socket()).expect("control socket");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("read timeout");
        handshake(&mut stream, Role::Agent, 0x7e57).expect("handshake with the dataplane");
        let (tx, misses) = mpsc::channel();
        let mut reader = stream.try_clone().expect("clone");
        std::thread::spawn(move || {
            // Ends when the daemon closes the session (or the read times out).
            while let Ok(m) = read_message(&mut reader) {
                if let Message::Miss { key } = m {
                    if tx.send(key).is_err() {
                        return;
                    }
                }
            }
        });
        Agent { stream, misses }
    }

    fn send(&mut self, m: &Message) {
        write_message(&mut self.stream, m).expect("send to the dataplane");
        self.stream.flush().expect("flush");
    }

    /// Waits (bounded) for a miss of `key`.
    fn expect_miss(&self, key: MappingKey) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.misses.recv_timeout(left) {
                Ok(k) if k == key => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no miss for {key:?} reached the agent");
    }
}

fn mapping(remote: &Remote, overlay_ip: IpAddr) -> Mapping {
    Mapping {
        vni: Vni::new(VNI).expect("VNI"),
        overlay_ip,
        underlay_ip: remote.underlay_ip(),
        overlay_mac: remote.mac.parse::<MacAddr>().expect("remote MAC"),
    }
}

/// `xdp.guest_fast` of a snapshot.
fn fast(snapshot: &Value) -> &Value {
    &snapshot["xdp"]["guest_fast"]
}

fn encapsulated(snapshot: &Value) -> u64 {
    fast(snapshot)["encapsulated"]
        .as_u64()
        .unwrap_or_else(|| panic!("no xdp.guest_fast.encapsulated in {snapshot}"))
}

/// The workers' own count of `name` (what the totals hold without the XDP tier).
fn workers(snapshot: &Value, name: &str) -> u64 {
    snapshot["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| counter(&w["counters"], name))
        .sum()
}

/// Sends `n` UDP datagrams from the guest to `dst` and returns how many arrived intact.
fn udp(vpc: &Vpc, remote: &Remote, dst: SocketAddr, n: u32) -> UdpReport {
    udp_transfer(&vpc.guest, &remote.ns, dst, n)
}

#[test]
fn the_xdp_tier_encapsulates_udp_and_leaves_the_rest_to_the_workers() {
    require_root();
    let vpc = Vpc::new("xdpt", &[Underlay::V4, Underlay::V6]).expect("topology");
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    // Remote 0 is static; remote 1 is learned from our agent on a miss.
    let config = vpc.config_toml(
        &r0.mappings_toml(),
        "fast_path = \"xdp\"\nfast_path_capacity = 4096",
    );
    // veth transmits an XDP redirect only into a peer with NAPI: GRO on (or an XDP program)
    // on the far end of the fabric port. Without it the kernel drops every redirected frame
    // after our program returned (docs/XDP.md).
    vpc.gro_for_xdp_redirects()
        .expect("GRO on the peers of both ports");
    let mut daemon = start(&vpc, &config);
    let log = vpc.dataplane_log();
    assert!(
        log.contains("XDP fast path (egress) on the guest port"),
        "log:\n{log}"
    );
    assert!(
        has_xdp(&vpc.dataplane, "xg0"),
        "a program on the guest port"
    );
    let s = stats(&vpc);
    assert!(
        fast(&s).is_object(),
        "xvpc stats shows the XDP tier: {}",
        s["xdp"]
    );

    // Ping (ARP to the gateway first, ICMP echo): the workers, not XDP.
    let before = stats(&vpc);
    for target in [r0.overlay_v4.to_string(), r0.overlay_v6.to_string()] {
        if let Err(out) = ping(&vpc.guest, &target, 2) {
            panic!("guest → {target}: {out}\nlog:\n{}", vpc.dataplane_log());
        }
    }
    let after = stats(&vpc);
    assert_eq!(
        encapsulated(&after),
        encapsulated(&before),
        "ICMP is the workers'"
    );
    assert!(workers(&after, "egress_packets") >= workers(&before, "egress_packets") + 4);

    // UDP over the IPv4 underlay: every datagram arrives, and every one was XDP's.
    const N: u32 = 2000;
    let dst = SocketAddr::new(r0.overlay_v4.into(), 5101);
    let before = stats(&vpc);
    let report = udp(&vpc, r0, dst, N);
    let after = stats(&vpc);
    assert!(
        report.intact == N && report.corrupt == 0 && report.send_errors == 0,
        "guest → remote 0 over XDP: {report:?}\nxdp: {}\nlog:\n{}",
        after["xdp"],
        vpc.dataplane_log()
    );
    let by_xdp = encapsulated(&after) - encapsulated(&before);
    assert_eq!(by_xdp, u64::from(N), "the XDP tier encapsulated the flow");
    assert_eq!(
        workers(&after, "egress_packets"),
        workers(&before, "egress_packets"),
        "no UDP datagram went through a worker"
    );
    assert_eq!(
        delta(&before["total"], &after["total"], "egress_packets"),
        u64::from(N),
        "the totals include what XDP sent"
    );
    // Received: XDP's datagrams plus whatever the workers saw meanwhile (ND, ARP).
    assert_eq!(
        delta(&before["total"], &after["total"], "guest_rx_packets"),
        u64::from(N) + workers(&after, "guest_rx_packets") - workers(&before, "guest_rx_packets")
    );
    assert_eq!(fast(&after)["aborted"], 0);

    // A miss: the first packet goes to a worker, which asks our agent and holds it; the
    // answer (an upsert) releases it and mirrors the mapping into XDP, which takes the rest.
    let mut agent = Agent::connect(&vpc);
    let r1_v6 = mapping(r1, r1.overlay_v6.into());
    // The guest knows the neighbour already, so the datagram itself is the first packet (not
    // a neighbour solicitation).
    vpc.guest
        .add_neigh("g0", &r1.overlay_v6.to_string(), &r1.mac)
        .expect("neighbour");
    let before = stats(&vpc);
    let dst6 = SocketAddr::new(r1.overlay_v6.into(), 5102);
    let first = std::thread::scope(|s| {
        let sender = s.spawn(|| udp(&vpc, r1, dst6, 1));
        agent.expect_miss(r1_v6.key());
        agent.send(&Message::Upsert(r1_v6));
        sender.join().expect("sender")
    });
    assert_eq!(
        first.intact,
        1,
        "the first packet of a miss: {first:?}\nlog:\n{}",
        vpc.dataplane_log()
    );
    // Workers publish their counters every 20 ms: the datagram may be there first.
    let total = wait_counter(&vpc, &before["total"], "held_released", 1);
    assert_eq!(
        delta(&before["total"], &total, "held_released"),
        1,
        "{total}"
    );
    assert_eq!(
        encapsulated(&stats(&vpc)),
        encapsulated(&before),
        "held by a worker"
    );
    let before = stats(&vpc);
    let report = udp(&vpc, r1, dst6, 500);
    let after = stats(&vpc);
    assert_eq!(
        report.intact, 500,
        "IPv6 in IPv6 after the upsert: {report:?}"
    );
    assert_eq!(
        encapsulated(&after) - encapsulated(&before),
        500,
        "the upsert reached the XDP map"
    );

    // Spoofed sources: dropped in XDP, under the workers' reasons, in the merged totals.
    let n = 25u64;
    let before = stats(&vpc);
    let rx_before = r0.vxlan_rx_packets().expect("vxlan rx");
    scapy(
        &vpc.guest,
        &format!(
            r#"
udp = UDP(sport=4000, dport=5000) / Raw(b"spoofed")
sendp([Ether(src="{GUEST_MAC}", dst="{mac}") / IP(src="198.18.10.99", dst="{r4}") / udp] * {n}, iface="g0")
sendp([Ether(src="02:00:00:00:01:99", dst="{mac}") / IP(src="{GUEST_V4}", dst="{r4}") / udp] * {n}, iface="g0")
sendp([Ether(src="{GUEST_MAC}", dst="{mac}") / IP(src="{GUEST_V4}", dst="{r4}") / UDP(sport=4000, dport=5000) / Raw(b"control")] * 3, iface="g0")
"#,
            mac = r0.mac,
            r4 = r0.overlay_v4,
        ),
    );
    let after = assert_deltas(
        &vpc,
        &before["total"],
        &[
            ("spoofed_source_ip", n),
            ("spoofed_source_mac", n),
            ("egress_packets", 3),
        ],
    );
    let snapshot = stats(&vpc);
    assert_eq!(
        fast(&snapshot)["drops"]["spoofed_source_ip"]
            .as_u64()
            .unwrap_or(0)
            - fast(&before)["drops"]["spoofed_source_ip"]
                .as_u64()
                .unwrap_or(0),
        n,
        "XDP dropped them: {}",
        snapshot["xdp"]
    );
    assert_eq!(
        workers(&snapshot, "spoofed_source_ip"),
        workers(&before, "spoofed_source_ip"),
        "no worker saw them"
    );
    assert_eq!(
        counter(&after, "spoofed_source_mac"),
        counter(&snapshot["total"], "spoofed_source_mac")
    );
    let rx = wait_until("the 3 control frames at remote 0", || {
        let rx = r0.vxlan_rx_packets().ok()? - rx_before;
        (rx >= 3).then_some(rx)
    });
    assert_eq!(rx, 3, "only the control frames reached remote 0");

    // A delete through the control path: XDP stops forwarding by that mapping at once; the
    // workers miss and ask, and nothing reaches the remote.
    agent.send(&Message::Delete(mapping(r0, r0.overlay_v4.into()).key()));
    wait_until("the delete applied", || {
        (stats(&vpc)["control"]["deletes"].as_u64()? >= 1).then_some(())
    });
    let before = stats(&vpc);
    let rx_before = r0.vxlan_rx_packets().expect("vxlan rx");
    let sent = 50u64;
    scapy(
        &vpc.guest,
        &format!(
            r#"sendp([Ether(src="{GUEST_MAC}", dst="{mac}") / IP(src="{GUEST_V4}", dst="{r4}") / UDP(sport=4001, dport=5000) / Raw(b"gone")] * {sent}, iface="g0")"#,
            mac = r0.mac,
            r4 = r0.overlay_v4,
        ),
    );
    let after = wait_counter(&vpc, &before["total"], "guest_rx_packets", sent);
    let snapshot = stats(&vpc);
    assert_eq!(
        encapsulated(&snapshot),
        encapsulated(&before),
        "XDP forwarded by a deleted mapping"
    );
    agent.expect_miss(mapping(r0, r0.overlay_v4.into()).key());
    assert_eq!(delta(&before["total"], &after, "egress_packets"), 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        r0.vxlan_rx_packets().expect("vxlan rx") - rx_before,
        0,
        "nothing for a deleted mapping reached the remote"
    );

    // Fail closed in this tier too: once the daemon is dead (its sockets leave the XSKMAP
    // with its descriptors) the pinned program forwards nothing, not even by the mapping
    // of remote 1 still in its table.
    let fast_flow = udp(&vpc, r1, SocketAddr::new(r1.overlay_v6.into(), 5104), 20);
    assert_eq!(
        fast_flow.intact, 20,
        "remote 1 is served by XDP: {fast_flow:?}"
    );
    daemon.kill_hard().expect("kill -9 xvpc");
    std::thread::sleep(Duration::from_millis(300));
    let rx_before = r1.vxlan_rx_packets().expect("vxlan rx");
    let dead = udp(&vpc, r1, SocketAddr::new(r1.overlay_v6.into(), 5105), 50);
    assert_eq!(
        dead.intact, 0,
        "the XDP tier forwarded with no dataplane: {dead:?}"
    );
    assert_eq!(
        r1.vxlan_rx_packets().expect("vxlan rx") - rx_before,
        0,
        "nothing reached the fabric with no dataplane"
    );
}

/// A full sync that does not fit `fast_path_capacity`: a sync stages the new generation
/// beside the live one, so the map needs room for both. The daemon keeps running and counts
/// `control.xdp_no_room`, the workers forward what the XDP map could not hold, and XDP
/// forwards by the new generation only: never by an entry the sync changed or dropped.
#[test]
fn a_full_sync_beyond_the_xdp_capacity_leaves_the_rest_to_the_workers() {
    require_root();
    let vpc = Vpc::new("xfl", &[Underlay::V4, Underlay::V4]).expect("topology");
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    let vni = Vni::new(VNI).expect("VNI");
    // The static mappings fill the map: remote 0's two addresses and remote 1's IPv6 one.
    let r1_v6 = mapping(r1, r1.overlay_v6.into());
    let statics = format!(
        "{}[[mappings]]\nvni = {VNI}\noverlay_ip = \"{}\"\nunderlay_ip = \"{}\"\noverlay_mac = \"{}\"\n",
        r0.mappings_toml(),
        r1.overlay_v6,
        r1.underlay_ip(),
        r1.mac
    );
    let config = vpc.config_toml(&statics, "fast_path = \"xdp\"\nfast_path_capacity = 3");
    vpc.fabric
        .sh("ethtool -K f0 gro on")
        .expect("GRO on the fabric peer");
    let mut daemon = start(&vpc, &config);
    // Datagrams are their own first packets: no ARP or ND in the counts below.
    for (ip, mac) in [
        (r0.overlay_v4.to_string(), &r0.mac),
        (r0.overlay_v6.to_string(), &r0.mac),
        (r1.overlay_v4.to_string(), &r1.mac),
        (r1.overlay_v6.to_string(), &r1.mac),
    ] {
        vpc.guest.add_neigh("g0", &ip, mac).expect("neighbour");
    }
    let dst_r1_v6 = SocketAddr::new(r1.overlay_v6.into(), 5201);
    let before = stats(&vpc);
    assert_eq!(udp(&vpc, r1, dst_r1_v6, 100).intact, 100);
    assert_eq!(
        encapsulated(&stats(&vpc)) - encapsulated(&before),
        100,
        "the static mappings are in XDP"
    );

    // The sync: remote 0's IPv4 address moved to remote 1's host, remote 1's IPv6 one stays,
    // remote 0's IPv6 one is gone, and three new ones (remote 1's IPv4 address, two more)
    // would need room the full map does not have while the old generation is live.
    // Whatever order the stage writes in, the two kept keys are rewritten in place and the
    // three new ones find no room.
    let moved = Mapping {
        vni,
        overlay_ip: r0.overlay_v4.into(),
        underlay_ip: r1.underlay_ip(),
        overlay_mac: r0.mac.parse::<MacAddr>().expect("MAC"),
    };
    let mut sync = vec![moved, r1_v6, mapping(r1, r1.overlay_v4.into())];
    for last in [50u8, 51] {
        sync.push(mapping(
            r1,
            IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 10, last)),
        ));
    }
    let mut agent = Agent::connect(&vpc);
    agent.send(&Message::SyncBegin { epoch: 1 });
    agent.send(&Message::SyncChunk {
        mappings: sync.clone(),
    });
    agent.send(&Message::SyncEnd {
        epoch: 1,
        count: sync.len() as u64,
    });
    let control = wait_until("the sync in every worker", || {
        let s = stats(&vpc);
        let done = s["control"]["full_syncs"].as_u64()? >= 1
            && s["workers"][0]["mapped"].as_u64()? == sync.len() as u64;
        done.then(|| s["control"].clone())
    });
    assert!(
        daemon.try_wait().expect("wait").is_none(),
        "the daemon died; log:\n{}",
        vpc.dataplane_log()
    );
    assert_eq!(
        control["xdp_no_room"],
        3,
        "the three new mappings found no room: {control}\nlog:\n{}",
        vpc.dataplane_log()
    );
    assert_eq!(control["xdp_errors"], 0, "{control}");

    // Left out of XDP: the workers forward it, intact.
    let before = stats(&vpc);
    let report = udp(&vpc, r1, SocketAddr::new(r1.overlay_v4.into(), 5202), 200);
    let after = stats(&vpc);
    assert_eq!(
        report.intact, 200,
        "no room in XDP, the workers: {report:?}"
    );
    assert_eq!(
        encapsulated(&after),
        encapsulated(&before),
        "not in the XDP map"
    );
    assert_eq!(
        workers(&after, "egress_packets") - workers(&before, "egress_packets"),
        200,
        "the workers encapsulated it"
    );

    // Kept: XDP forwards by the new generation.
    let before = stats(&vpc);
    assert_eq!(udp(&vpc, r1, dst_r1_v6, 200).intact, 200);
    assert_eq!(
        encapsulated(&stats(&vpc)) - encapsulated(&before),
        200,
        "a mapping the sync kept stays fast"
    );

    // Moved: XDP sends it to the new host, none to the old one.
    let n = 20u64;
    let send = |ip: &str, dst: String| {
        scapy(
            &vpc.guest,
            &format!(
                r#"sendp([Ether(src="{GUEST_MAC}", dst="{mac}") / {ip}(src="{src}", dst="{dst}") / UDP(sport=4100, dport=5300) / Raw(b"sync")] * {n}, iface="g0")"#,
                mac = r0.mac,
                src = if ip == "IP" {
                    GUEST_V4.to_string()
                } else {
                    xvpc_testbed::vpc::GUEST_V6.to_string()
                },
            ),
        );
    };
    let before = stats(&vpc);
    let rx = |r: &Remote| r.vxlan_rx_packets().expect("vxlan rx");
    let (rx0, rx1) = (rx(r0), rx(r1));
    send("IP", r0.overlay_v4.to_string());
    wait_until("the moved address's frames at remote 1", || {
        (rx(r1) - rx1 >= n).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rx(r1) - rx1, n, "remote 1 got the moved address's frames");
    assert_eq!(rx(r0) - rx0, 0, "XDP forwarded by the replaced mapping");
    assert_eq!(
        encapsulated(&stats(&vpc)) - encapsulated(&before),
        n,
        "by XDP, with the new value"
    );

    // Dropped by the sync: XDP forwards none of it; the workers miss and ask.
    let before = stats(&vpc);
    let (rx0, rx1) = (rx(r0), rx(r1));
    send("IPv6", r0.overlay_v6.to_string());
    wait_counter(&vpc, &before["total"], "guest_rx_packets", n);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        encapsulated(&stats(&vpc)),
        encapsulated(&before),
        "XDP forwarded by a mapping of the old generation"
    );
    assert_eq!(
        (rx(r0) - rx0, rx(r1) - rx1),
        (0, 0),
        "nothing for a mapping the sync dropped reached a remote"
    );
    agent.expect_miss(mapping(r0, r0.overlay_v6.into()).key());

    let last = stop(&vpc, &mut daemon);
    assert_eq!(last["frames_audit"], true, "{last}");
}

/// `xdp.fabric_fast.decapsulated` of a snapshot.
fn decapsulated(snapshot: &Value) -> u64 {
    snapshot["xdp"]["fabric_fast"]["decapsulated"]
        .as_u64()
        .unwrap_or_else(|| panic!("no xdp.fabric_fast.decapsulated in {snapshot}"))
}

/// What `xvpc_fabric_fast` dropped, all reasons it drops with: the kernel peers' own
/// multicast (MLD, router solicitations) is dropped as `inner_wrong_destination` at any time.
fn ingress_drops(snapshot: &Value) -> u64 {
    let drops = &snapshot["xdp"]["guest_fast"]["drops"];
    [
        "vxlan_no_vni",
        "unknown_vni",
        "inner_wrong_destination",
        "spoofed_underlay",
    ]
    .iter()
    .map(|r| drops[*r].as_u64().unwrap_or(0))
    .sum()
}

/// UDP datagrams the guest's kernel received (delivered or to a closed port).
fn guest_udp_in(vpc: &Vpc) -> u64 {
    let m = snmp(&vpc.guest, &[]);
    [
        "Udp.InDatagrams",
        "Udp.NoPorts",
        "Udp6InDatagrams",
        "Udp6NoPorts",
    ]
    .iter()
    .map(|k| m.get(*k).copied().unwrap_or(0))
    .sum()
}

#[test]
fn the_xdp_tier_decapsulates_vxlan_from_kernel_peers_and_leaves_the_rest_to_the_workers() {
    require_root();
    let vpc = Vpc::new("xdpi", &[Underlay::V4, Underlay::V6]).expect("topology");
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    let config = vpc.config_toml(
        &format!("{}{}", r0.mappings_toml(), r1.mappings_toml()),
        "fast_path = \"xdp\"\nfast_path_capacity = 4096",
    );
    // As for egress: veth delivers an XDP redirect into xg0 only with NAPI on g0.
    vpc.gro_for_xdp_redirects()
        .expect("GRO on the peers of both ports");
    let mut daemon = start(&vpc, &config);
    let log = vpc.dataplane_log();
    assert!(
        log.contains("XDP fast path (ingress) on the fabric port"),
        "log:\n{log}"
    );
    assert!(
        has_xdp(&vpc.dataplane, "xf0"),
        "a program on the fabric port"
    );
    let guest_v4: IpAddr = GUEST_V4.parse().expect("guest v4");
    let guest_v6: IpAddr = GUEST_V6.parse().expect("guest v6");

    // The underlay's neighbours first (the host's own traffic: passed to its stack), so no
    // datagram waits in a neighbour queue that holds only a few.
    ping(&r0.ns, UNDERLAY_V4, 1).expect("remote 0 pings the host's fabric address");
    ping(&r1.ns, UNDERLAY_V6, 1).expect("remote 1 pings the host's fabric address");

    // Remote 0 over the IPv4 underlay (the kernel sends UDP checksum 0), remote 1 over IPv6
    // (checksum computed): every datagram reaches the guest, and every one was XDP's.
    const N: u32 = 2000;
    for (remote, dst) in [
        (r0, SocketAddr::new(guest_v4, 5201)),
        (r1, SocketAddr::new(guest_v6, 5202)),
    ] {
        let before = stats(&vpc);
        let report = udp_transfer(&remote.ns, &vpc.guest, dst, N);
        let after = stats(&vpc);
        assert!(
            report.intact == N && report.corrupt == 0 && report.send_errors == 0,
            "remote {} → guest over XDP: {report:?}\nxdp: {}\nlog:\n{}",
            remote.index,
            after["xdp"],
            vpc.dataplane_log()
        );
        assert_eq!(
            decapsulated(&after) - decapsulated(&before),
            u64::from(N),
            "the XDP tier decapsulated the flow from remote {}",
            remote.index
        );
        assert_eq!(
            workers(&after, "ingress_packets"),
            workers(&before, "ingress_packets"),
            "no datagram from remote {} went through a worker",
            remote.index
        );
        assert_eq!(
            delta(&before["total"], &after["total"], "ingress_packets"),
            u64::from(N),
            "the totals include what XDP delivered"
        );
        // Received: XDP's datagrams and drops, plus whatever the workers saw meanwhile.
        assert_eq!(
            delta(&before["total"], &after["total"], "fabric_rx_packets"),
            u64::from(N) + ingress_drops(&after) - ingress_drops(&before)
                + workers(&after, "fabric_rx_packets")
                - workers(&before, "fabric_rx_packets")
        );
        assert_eq!(after["xdp"]["fabric_fast"]["aborted"], 0);
    }

    // Traffic the workers finish: an outer IPv4 header with options is outside XDP's shape;
    // the workers decapsulate it and the guest receives it.
    let n = 20u64;
    let router0 = vpc.fabric.mac("r0").expect("router MAC");
    let router1 = vpc.fabric.mac("r1").expect("router MAC");
    let u0 = r0.ns.mac("u0").expect("remote MAC");
    let u1 = r1.ns.mac("u0").expect("remote MAC");
    let inner = format!(
        r#"Ether(src="{mac}", dst="{GUEST_MAC}") / IP(src="{r4}", dst="{GUEST_V4}") / UDP(sport=4000, dport=5300) / Raw(b"via a worker")"#,
        mac = r0.mac,
        r4 = r0.overlay_v4,
    );
    let before = stats(&vpc);
    let guest_before = guest_udp_in(&vpc);
    scapy(
        &r0.ns,
        &format!(
            r#"
opts = [IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_EOL()]
outer = Ether(src="{u0}", dst="{router0}") / IP(src="{src}", dst="{UNDERLAY_V4}", options=opts) / UDP(sport=4321, dport=4789) / VXLAN(vni={VNI}, flags=0x08)
sendp([outer / {inner}] * {n}, iface="u0")
"#,
            src = r0.underlay_v4,
        ),
    );
    let after = wait_counter(&vpc, &before["total"], "ingress_packets", n);
    assert_eq!(
        delta(&before["total"], &after, "ingress_packets"),
        n,
        "{after}"
    );
    let snapshot = stats(&vpc);
    assert_eq!(
        workers(&snapshot, "ingress_packets") - workers(&before, "ingress_packets"),
        n,
        "the workers delivered the frames with outer options"
    );
    assert_eq!(decapsulated(&snapshot), decapsulated(&before), "not XDP's");
    let got = wait_until("the guest received them", || {
        let rx = guest_udp_in(&vpc) - guest_before;
        (rx >= n).then_some(rx)
    });
    assert_eq!(got, n);

    // A spoofed sender (remote 0's overlay address from remote 1's underlay): dropped in
    // XDP under the workers' reason, in the merged totals; no worker saw it.
    let before = stats(&vpc);
    scapy(
        &r1.ns,
        &format!(
            r#"
outer = Ether(src="{u1}", dst="{router1}") / IPv6(src="{src}", dst="{UNDERLAY_V6}") / UDP(sport=4321, dport=4789) / VXLAN(vni={VNI}, flags=0x08)
sendp([outer / {inner}] * {n}, iface="u0")
"#,
            src = r1.underlay_v6,
        ),
    );
    assert_deltas(&vpc, &before["total"], &[("spoofed_underlay", n)]);
    let snapshot = stats(&vpc);
    assert_eq!(
        workers(&snapshot, "spoofed_underlay"),
        workers(&before, "spoofed_underlay"),
        "no worker saw them"
    );
    assert_eq!(
        snapshot["xdp"]["guest_fast"]["drops"]["spoofed_underlay"]
            .as_u64()
            .unwrap_or(0)
            - before["xdp"]["guest_fast"]["drops"]["spoofed_underlay"]
                .as_u64()
                .unwrap_or(0),
        n,
        "XDP dropped them: {}",
        snapshot["xdp"]
    );

    // Fail closed: with the daemon dead, nothing from the pinned table reaches the guest,
    // and the host's own traffic on the fabric still reaches its stack.
    daemon.kill_hard().expect("kill -9 xvpc");
    std::thread::sleep(Duration::from_millis(300));
    let guest_before = guest_udp_in(&vpc);
    let dead = udp_transfer(&r0.ns, &vpc.guest, SocketAddr::new(guest_v4, 5203), 50);
    assert_eq!(
        dead.intact, 0,
        "the XDP tier delivered with no dataplane: {dead:?}"
    );
    assert_eq!(
        guest_udp_in(&vpc),
        guest_before,
        "nothing reached the guest"
    );
    if let Err(out) = ping(&r0.ns, UNDERLAY_V4, 2) {
        panic!("the host's own traffic on the fabric: {out}");
    }
}
