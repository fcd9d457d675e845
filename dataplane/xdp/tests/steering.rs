//! Privileged tests: the XDP programs attached to veths in namespaces, driven by real
//! traffic from peer namespaces.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use xvpc_testbed::{require_root, veth_pair, Netns};
use xvpc_xdp::{AttachMode, FabricFilter, FabricSteering, GuestSteering, XdpError};

const VXLAN_PORT: u16 = 4789;

/// One counter from `/proc/net/snmp` (or `snmp6`) inside `ns`, e.g. ("Udp", "InDatagrams").
fn snmp(ns: &Netns, proto: &str, field: &str) -> u64 {
    let text = ns.sh("cat /proc/net/snmp").expect("read /proc/net/snmp");
    let mut lines = text.lines().filter(|l| l.starts_with(&format!("{proto}:")));
    let names: Vec<&str> = lines
        .next()
        .expect("header line")
        .split_whitespace()
        .collect();
    let values: Vec<&str> = lines
        .next()
        .expect("value line")
        .split_whitespace()
        .collect();
    let i = names
        .iter()
        .position(|n| *n == field)
        .unwrap_or_else(|| panic!("no {proto} {field} in /proc/net/snmp"));
    values[i].parse().expect("numeric counter")
}

fn snmp6(ns: &Netns, field: &str) -> u64 {
    let text = ns.sh("cat /proc/net/snmp6").expect("read /proc/net/snmp6");
    text.lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(field)).then(|| it.next().and_then(|v| v.parse().ok()))?
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/net/snmp6"))
}

/// Binds a non-blocking UDP socket inside `ns`.
fn udp_in(ns: &Netns, addr: SocketAddr) -> UdpSocket {
    ns.run_in(|| {
        let s = UdpSocket::bind(addr).expect("bind UDP socket in namespace");
        s.set_nonblocking(true).expect("nonblocking");
        s
    })
}

/// Datagrams waiting on a non-blocking socket.
fn drain(s: &UdpSocket) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while s.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Sends `count` UDP datagrams from inside `ns` to `dst`.
fn send_udp(ns: &Netns, dst: SocketAddr, count: usize) {
    ns.run_in(|| {
        let bind: SocketAddr = if dst.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = UdpSocket::bind(bind).expect("bind sender");
        // A VXLAN-sized payload: 8-byte header and a 64-byte inner frame.
        let payload = [0x08u8; 72];
        for _ in 0..count {
            s.send_to(&payload, dst).expect("send UDP");
        }
    });
}

/// Waits until the kernel has delivered what it is going to deliver: veth delivers in the
/// sender's softirq, so a round trip through the stack (a ping) flushes it.
fn settle(peer: &Netns, dst: &str) {
    peer.sh(&format!("ping -c 1 -W 2 {dst} >/dev/null"))
        .expect("settle ping");
}

struct Fabric {
    dp: Netns,
    peer: Netns,
    steering: FabricSteering,
}

fn fabric_topology() -> Fabric {
    let dp = Netns::new("fdp").expect("dataplane ns");
    let peer = Netns::new("fpeer").expect("peer ns");
    veth_pair((&dp, "fab0"), (&peer, "fabp")).expect("veth");
    // The peer's locally sent UDP would otherwise carry partial checksums.
    peer.tx_offload_off("fabp").expect("tx off");
    dp.add_addr("fab0", "198.18.1.1/24").expect("addr");
    dp.add_addr("fab0", "198.18.1.3/24")
        .expect("second addr (not the underlay)");
    dp.add_addr("fab0", "2001:2:0:1::1/64").expect("addr6");
    dp.add_addr("fab0", "2001:2:0:1::3/64")
        .expect("second addr6");
    peer.add_addr("fabp", "198.18.1.2/24").expect("addr");
    peer.add_addr("fabp", "2001:2:0:1::2/64").expect("addr6");
    let filter = FabricFilter {
        underlay_ipv4: Some(Ipv4Addr::new(198, 18, 1, 1)),
        underlay_ipv6: Some("2001:2:0:1::1".parse().expect("v6")),
        vxlan_port: VXLAN_PORT,
    };
    let steering = dp
        .run_in(|| FabricSteering::attach("fab0", AttachMode::Driver, &filter, None))
        .expect("attach xvpc_fabric");
    assert_eq!(steering.mode(), AttachMode::Driver);
    Fabric { dp, peer, steering }
}

#[test]
fn fabric_passes_host_traffic_and_takes_vxlan_from_the_kernel() {
    require_root();
    let Fabric { dp, peer, steering } = fabric_topology();
    let link = dp.ip(&["link", "show", "fab0"]).expect("link");
    assert!(link.contains("xdp"), "no XDP program on fab0: {link}");

    // ARP, ND, ICMP and ICMPv6 reach the host and are answered.
    let before = steering.counters().expect("counters");
    peer.ip(&["neigh", "flush", "dev", "fabp"]).expect("flush");
    peer.sh("ping -c 3 -i 0.2 -W 2 198.18.1.1")
        .expect("IPv4 ping through xvpc_fabric");
    peer.sh("ping -c 3 -i 0.2 -W 2 2001:2:0:1::1")
        .expect("IPv6 ping through xvpc_fabric");
    let neigh = peer.ip(&["neigh", "show", "198.18.1.1"]).expect("neigh");
    assert!(neigh.contains("lladdr"), "ARP was not answered: {neigh}");
    let after = steering.counters().expect("counters");
    // 6 echo requests plus at least one ARP request and one neighbour solicitation.
    assert!(after.passed - before.passed >= 8, "{before:?} -> {after:?}");
    assert_eq!(after.steered, 0);
    assert_eq!(after.dropped_no_socket, 0);

    // Listeners that would see any VXLAN the kernel got (dual-stack sockets).
    let vxlan_listener = udp_in(&dp, (Ipv6Addr::UNSPECIFIED, VXLAN_PORT).into());
    let other_listener = udp_in(&dp, (Ipv6Addr::UNSPECIFIED, VXLAN_PORT + 1).into());
    let udp_in_before = snmp(&dp, "Udp", "InDatagrams");
    let udp6_in_before = snmp6(&dp, "Udp6InDatagrams");
    let before = steering.counters().expect("counters");

    // VXLAN to the underlay addresses: no socket registered, so dropped, and never seen by
    // the kernel.
    send_udp(&peer, (Ipv4Addr::new(198, 18, 1, 1), VXLAN_PORT).into(), 10);
    let v6: Ipv6Addr = "2001:2:0:1::1".parse().expect("v6");
    send_udp(&peer, (v6, VXLAN_PORT).into(), 7);
    settle(&peer, "198.18.1.1");
    let after = steering.counters().expect("counters");
    assert_eq!(
        after.dropped_no_socket - before.dropped_no_socket,
        17,
        "{after:?}"
    );
    assert_eq!(after.steered, 0);
    assert_eq!(
        drain(&vxlan_listener),
        0,
        "VXLAN for the dataplane reached the kernel"
    );
    assert_eq!(snmp(&dp, "Udp", "InDatagrams"), udp_in_before);
    assert_eq!(snmp6(&dp, "Udp6InDatagrams"), udp6_in_before);

    // The filter is exact: another port, or the same port on another of the host's
    // addresses, is the host's traffic.
    let before = after;
    send_udp(
        &peer,
        (Ipv4Addr::new(198, 18, 1, 1), VXLAN_PORT + 1).into(),
        3,
    );
    send_udp(&peer, (Ipv4Addr::new(198, 18, 1, 3), VXLAN_PORT).into(), 4);
    let v6_other: Ipv6Addr = "2001:2:0:1::3".parse().expect("v6");
    send_udp(&peer, (v6_other, VXLAN_PORT).into(), 5);
    settle(&peer, "198.18.1.1");
    let after = steering.counters().expect("counters");
    assert_eq!(after.dropped_no_socket, before.dropped_no_socket);
    assert!(
        after.passed - before.passed >= 12,
        "{before:?} -> {after:?}"
    );
    assert_eq!(drain(&other_listener), 3);
    assert_eq!(drain(&vxlan_listener), 9);
    drop(steering);
    let link = dp.ip(&["link", "show", "fab0"]).expect("link");
    assert!(
        !link.contains("xdp"),
        "program still attached after drop: {link}"
    );
}

#[test]
fn fabric_passes_fragments_and_counts_malformed_headers() {
    require_root();
    let Fabric { dp, peer, steering } = fabric_topology();
    let mac = dp.mac("fab0").expect("mac");
    // Frames built by hand with scapy so the headers can lie.
    let sendp = |what: &str, frame: &str| {
        let script = format!(
            "from scapy.all import Ether, IP, UDP, Raw, sendp\n\
             sendp({frame}, iface='fabp', verbose=False)\n"
        );
        let o = peer
            .exec(&["/usr/bin/python3", "-c", &script])
            .expect("run /usr/bin/python3");
        assert!(
            o.status.success(),
            "scapy failed sending {what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        settle(&peer, "198.18.1.1");
    };
    let eth = format!("Ether(dst='{mac}', src='02:00:00:00:00:02')");

    // An IPv4 header claiming 60 bytes (IHL 15) to the underlay, in a frame that ends
    // after 28 bytes of IP.
    let before = steering.counters().expect("counters");
    sendp(
        "truncated IPv4",
        &format!(
            "Ether(dst='{mac}', src='02:00:00:00:00:02', type=0x0800)/Raw(bytes(IP(src='198.18.1.2', dst='198.18.1.1', ihl=15, proto=17)\
             /UDP(dport={VXLAN_PORT}))[:28])"
        ),
    );
    let after = steering.counters().expect("counters");
    assert_eq!(
        after.malformed - before.malformed,
        1,
        "{before:?} -> {after:?}"
    );

    // A 20-byte "IPv6 header" (the fixed header is 40).
    let before = after;
    sendp(
        "truncated IPv6",
        &format!("Ether(dst='{mac}', src='02:00:00:00:00:02', type=0x86dd)/Raw(b'\\x60' + b'\\x00' * 19)"),
    );
    let after = steering.counters().expect("counters");
    assert_eq!(
        after.malformed - before.malformed,
        1,
        "{before:?} -> {after:?}"
    );

    // The first fragment of a VXLAN datagram to the underlay: the kernel reassembles.
    let before = after;
    sendp(
        "IPv4 fragment",
        &format!(
            "{eth}/IP(src='198.18.1.2', dst='198.18.1.1', flags='MF', id=7)\
             /UDP(dport={VXLAN_PORT})/Raw(b'x' * 64)"
        ),
    );
    let after = steering.counters().expect("counters");
    assert_eq!(after.malformed, before.malformed);
    assert_eq!(after.dropped_no_socket, before.dropped_no_socket);
    // The fragment and the settle ping were passed.
    assert!(after.passed - before.passed >= 2, "{before:?} -> {after:?}");
}

#[test]
fn guest_program_fails_closed_without_a_socket() {
    require_root();
    let dp = Netns::new("gdp").expect("dataplane ns");
    let guest = Netns::new("guest").expect("guest ns");
    veth_pair((&dp, "gdp0"), (&guest, "g0")).expect("veth");
    dp.add_addr("gdp0", "198.18.2.1/24").expect("addr");
    dp.add_addr("gdp0", "2001:2:0:2::1/64").expect("addr6");
    guest.add_addr("g0", "198.18.2.2/24").expect("addr");
    guest.add_addr("g0", "2001:2:0:2::2/64").expect("addr6");
    let dp_mac = dp.mac("gdp0").expect("mac");
    // Static neighbours so the guest sends real IP frames, not just ARP/ND.
    guest.add_neigh("g0", "198.18.2.1", &dp_mac).expect("neigh");
    guest
        .add_neigh("g0", "2001:2:0:2::1", &dp_mac)
        .expect("neigh6");

    let steering = dp
        .run_in(|| GuestSteering::attach("gdp0", AttachMode::Auto, None))
        .expect("attach xvpc_guest");
    assert_eq!(steering.mode(), AttachMode::Driver, "veth has native XDP");
    let ip_before = snmp(&dp, "Ip", "InReceives");
    let icmp_before = snmp(&dp, "Icmp", "InMsgs");
    let ip6_before = snmp6(&dp, "Ip6InReceives");
    let before = steering.counters().expect("counters");

    let out = guest
        .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "198.18.2.1"])
        .expect("run ping");
    assert!(!out.status.success(), "the guest reached the host stack");
    let out = guest
        .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "2001:2:0:2::1"])
        .expect("run ping6");
    assert!(
        !out.status.success(),
        "the guest reached the host stack over IPv6"
    );
    send_udp(&guest, (Ipv4Addr::new(198, 18, 2, 1), 53).into(), 4);

    let after = steering.counters().expect("counters");
    assert!(
        after.dropped_no_socket - before.dropped_no_socket >= 9,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.redirected, 0);
    assert_eq!(snmp(&dp, "Ip", "InReceives"), ip_before);
    assert_eq!(snmp(&dp, "Icmp", "InMsgs"), icmp_before);
    assert_eq!(snmp6(&dp, "Ip6InReceives"), ip6_before);
}

#[test]
fn attach_errors_name_the_interface_and_auto_falls_back_to_generic() {
    require_root();
    let ns = Netns::new("xdperr").expect("ns");
    let err = ns
        .run_in(|| GuestSteering::attach("nosuchdev0", AttachMode::Driver, None))
        .expect_err("no such interface");
    assert!(err.to_string().contains("nosuchdev0"), "{err}");

    // A bridge has no native XDP.
    ns.ip(&["link", "add", "dum0", "type", "bridge"])
        .expect("bridge");
    ns.link_up("dum0").expect("up");
    let err = ns
        .run_in(|| GuestSteering::attach("dum0", AttachMode::Driver, None))
        .expect_err("a bridge has no driver-mode XDP");
    assert!(
        matches!(err, XdpError::Attach { ref ifname, mode: AttachMode::Driver, .. } if ifname == "dum0"),
        "{err}"
    );
    let g = ns
        .run_in(|| GuestSteering::attach("dum0", AttachMode::Auto, None))
        .expect("auto falls back");
    assert_eq!(g.mode(), AttachMode::Generic);
    let link = ns.ip(&["link", "show", "dum0"]).expect("link");
    assert!(link.contains("xdpgeneric"), "{link}");

    let bad = FabricFilter {
        underlay_ipv4: None,
        underlay_ipv6: None,
        vxlan_port: VXLAN_PORT,
    };
    assert!(matches!(
        FabricSteering::attach("dum0", AttachMode::Auto, &bad, None),
        Err(XdpError::InvalidFilter(_))
    ));
    let mut g = g;
    let sock = udp_in(&ns, (Ipv4Addr::LOCALHOST, 0).into());
    use std::os::fd::AsFd;
    assert!(matches!(
        g.register_socket(64, sock.as_fd()),
        Err(XdpError::QueueOutOfRange { queue: 64, .. })
    ));
    // The kernel only accepts AF_XDP sockets in an XSKMAP.
    assert!(matches!(
        g.register_socket(0, sock.as_fd()),
        Err(XdpError::Map { .. })
    ));
}
