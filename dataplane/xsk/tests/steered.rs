//! Privileged test: with an AF_XDP socket registered, `xvpc_fabric` hands VXLAN for the
//! underlay addresses to it (and only that), and unregistering it makes the program drop
//! them again. It lives here rather than in xvpc-xdp so that only this crate dev-depends on
//! the other (xvpc-xdp's own tests need no AF_XDP socket).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use xvpc_testbed::{require_root, veth_pair, Netns};
use xvpc_xdp::{AttachMode, FabricFilter, FabricSteering};
use xvpc_xsk::{BindMode, Desc, Port, SocketOptions, UmemConfig};

const VXLAN_PORT: u16 = 4789;

fn send_udp(ns: &Netns, dst: SocketAddr, count: usize) {
    ns.run_in(|| {
        let bind: SocketAddr = if dst.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = UdpSocket::bind(bind).expect("bind sender");
        for _ in 0..count {
            s.send_to(&[0x08u8; 72], dst).expect("send UDP");
        }
    });
}

/// Receives up to `want` frames, giving up after `within`.
fn receive(port: &mut Port, want: usize, within: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut batch = [Desc::default(); 16];
    let deadline = Instant::now() + within;
    while got.len() < want && Instant::now() < deadline {
        port.service();
        let n = port.recv(&mut batch);
        for d in &batch[..n] {
            let f = port.frame(*d).expect("received frame is ours");
            got.push(f.data().to_vec());
            port.release(d.addr);
        }
        if n == 0 {
            let _ = port.wait(Duration::from_millis(5));
        }
    }
    got
}

#[test]
fn vxlan_for_the_underlay_reaches_the_registered_socket() {
    require_root();
    let dp = Netns::new("sdp").expect("dataplane ns");
    let peer = Netns::new("speer").expect("peer ns");
    veth_pair((&dp, "fab0"), (&peer, "fabp")).expect("veth");
    peer.tx_offload_off("fabp").expect("tx off");
    dp.add_addr("fab0", "198.18.3.1/24").expect("addr");
    dp.add_addr("fab0", "2001:2:0:3::1/64").expect("addr6");
    peer.add_addr("fabp", "198.18.3.2/24").expect("addr");
    peer.add_addr("fabp", "2001:2:0:3::2/64").expect("addr6");
    let v4 = Ipv4Addr::new(198, 18, 3, 1);
    let v6: Ipv6Addr = "2001:2:0:3::1".parse().expect("v6");
    // Resolve neighbours before steering starts, so the sends below are all VXLAN.
    peer.sh("ping -c 1 -W 2 198.18.3.1 && ping -c 1 -W 2 2001:2:0:3::1")
        .expect("pre-steering ping");

    let filter = FabricFilter {
        underlay_ipv4: Some(v4),
        underlay_ipv6: Some(v6),
        vxlan_port: VXLAN_PORT,
    };
    dp.run_in(|| {
        let mut steering =
            FabricSteering::attach("fab0", AttachMode::Driver, &filter, None).expect("attach");
        let cfg = UmemConfig {
            frame_count: 1024,
            ring_size: 256,
            ..UmemConfig::default()
        };
        let mut port = Port::new("fab0", 0, cfg, BindMode::Copy, &SocketOptions::default())
            .expect("AF_XDP socket on fab0 queue 0");
        steering
            .register_socket(0, port.fd())
            .expect("register socket");
        let listener = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, VXLAN_PORT)).expect("listener");
        listener.set_nonblocking(true).expect("nonblocking");

        send_udp(&peer, (v4, VXLAN_PORT).into(), 10);
        send_udp(&peer, (v6, VXLAN_PORT).into(), 7);
        let frames = receive(&mut port, 17, Duration::from_secs(10));
        assert_eq!(frames.len(), 17, "{:?}", steering.counters());
        let (mut n4, mut n6) = (0, 0);
        for f in &frames {
            match f.get(12..14) {
                Some([0x08, 0x00]) => {
                    assert_eq!(f[30..34], v4.octets(), "IPv4 destination");
                    assert_eq!(f[36..38], VXLAN_PORT.to_be_bytes(), "UDP port");
                    n4 += 1;
                }
                Some([0x86, 0xdd]) => {
                    assert_eq!(f[38..54], v6.octets(), "IPv6 destination");
                    assert_eq!(f[56..58], VXLAN_PORT.to_be_bytes(), "UDP port");
                    n6 += 1;
                }
                other => panic!("unexpected frame type {other:?}: {f:02x?}"),
            }
        }
        assert_eq!((n4, n6), (10, 7));
        let c = steering.counters().expect("counters");
        assert_eq!(c.steered, 17, "{c:?}");
        assert_eq!(c.dropped_no_socket, 0, "{c:?}");
        let mut buf = [0u8; 256];
        assert!(
            listener.recv_from(&mut buf).is_err(),
            "VXLAN reached the kernel"
        );

        // The host's own traffic still works while a socket is registered.
        peer.sh("ping -c 2 -i 0.2 -W 2 198.18.3.1")
            .expect("ping with steering active");
        assert!(
            receive(&mut port, 1, Duration::from_millis(300)).is_empty(),
            "ping was steered"
        );

        // Without the socket, VXLAN is dropped again (fail closed toward the kernel).
        steering.unregister_socket(0).expect("unregister");
        send_udp(&peer, (v4, VXLAN_PORT).into(), 5);
        peer.sh("ping -c 1 -W 2 198.18.3.1").expect("settle");
        let after = steering.counters().expect("counters");
        assert_eq!(after.dropped_no_socket, 5, "{after:?}");
        assert_eq!(after.steered, 17, "{after:?}");
        assert!(
            listener.recv_from(&mut buf).is_err(),
            "VXLAN reached the kernel"
        );
        assert!(port.audit(), "socket frame accounting");
    });
}
