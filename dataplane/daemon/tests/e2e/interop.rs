//! Interop: what xvpc puts on the fabric, dissected by tshark with checksum validation on:
//! VXLAN with VNI 100, the right inner addresses, good checksums, over IPv4 and IPv6
//! underlays.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc, GUEST_V4, GUEST_V6, UNDERLAY_V4, UNDERLAY_V6};

use crate::common::*;

/// Fields per packet: outer and inner values are comma-separated in capture order.
const FIELDS: [&str; 9] = [
    "vxlan.vni",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.checksum.status",
    "udp.checksum.status",
    "udp.dstport",
    "vxlan.flag_i",
];

/// Wireshark's checksum status values.
const GOOD: &str = "1";
const NOT_PRESENT: &str = "3";

#[test]
fn tshark_dissects_our_vxlan_with_good_checksums() {
    require_root();
    let vpc = Vpc::new("tsk", &[Underlay::V4, Underlay::V6]).expect("topology");
    let _daemon = start_default(&vpc);
    // Neighbours first, so only our four datagrams are VXLAN from us during the capture.
    for remote in &vpc.remotes {
        ping(&vpc.guest, &remote.overlay_v4.to_string(), 1).expect("ping");
        ping(&vpc.guest, &remote.overlay_v6.to_string(), 1).expect("ping");
    }
    let capture = Capture::start(
        &vpc.fabric,
        "f0",
        "udp dst port 4789 and (src host 198.18.0.2 or src host 2001:2::2)",
        4,
        &vpc.work.join("interop.pcap"),
    );
    let targets: Vec<IpAddr> = vpc
        .remotes
        .iter()
        .flat_map(|r| [IpAddr::V4(r.overlay_v4), IpAddr::V6(r.overlay_v6)])
        .collect();
    vpc.guest.run_in(|| {
        for target in &targets {
            let bind: SocketAddr = match target {
                IpAddr::V4(_) => "0.0.0.0:4444".parse().expect("literal"),
                IpAddr::V6(_) => "[::]:4444".parse().expect("literal"),
            };
            let socket = UdpSocket::bind(bind).expect("bind");
            socket
                .send_to(b"interop check payload", SocketAddr::new(*target, 4445))
                .expect("send");
        }
    });
    let pcap = capture.wait_done();
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&pcap).args([
        "-n",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-d",
        "udp.port==4789,vxlan",
        "-T",
        "fields",
        "-E",
        "separator=;",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
    assert_eq!(rows.len(), 4, "four VXLAN packets from us:\n{text}");
    for (row, (remote_i, target)) in rows.iter().zip([
        (0usize, targets[0]),
        (0, targets[1]),
        (1, targets[2]),
        (1, targets[3]),
    ]) {
        let remote = &vpc.remotes[remote_i];
        let get = |name: &str| row[FIELDS.iter().position(|f| *f == name).expect("field")];
        assert_eq!(get("vxlan.vni"), "100", "VNI; {text}");
        assert_eq!(get("vxlan.flag_i"), "1", "the I flag is set; {text}");
        // Outer: our underlay to the remote's, on the remote's underlay family.
        let (outer_src, outer_dst) = match remote.underlay {
            Underlay::V4 => (UNDERLAY_V4.to_string(), remote.underlay_v4.to_string()),
            Underlay::V6 | Underlay::V6ZeroChecksum => {
                (UNDERLAY_V6.to_string(), remote.underlay_v6.to_string())
            }
        };
        let (inner_src, inner_dst) = match target {
            IpAddr::V4(_) => (GUEST_V4.to_string(), target.to_string()),
            IpAddr::V6(_) => (GUEST_V6.to_string(), target.to_string()),
        };
        // The values of each family's fields, outer first.
        let mut v4: Vec<(String, String)> = Vec::new();
        let mut v6: Vec<(String, String)> = Vec::new();
        let pairs = |src: &str, dst: &str| -> Vec<(String, String)> {
            src.split(',')
                .zip(dst.split(','))
                .filter(|(s, _)| !s.is_empty())
                .map(|(s, d)| (s.to_string(), d.to_string()))
                .collect()
        };
        v4.extend(pairs(get("ip.src"), get("ip.dst")));
        v6.extend(pairs(get("ipv6.src"), get("ipv6.dst")));
        let (outer_list, inner_list) = match (remote.underlay, target) {
            (Underlay::V4, IpAddr::V4(_)) => (&v4[..1], &v4[1..]),
            (Underlay::V4, IpAddr::V6(_)) => (&v4[..], &v6[..]),
            (_, IpAddr::V4(_)) => (&v6[..], &v4[..]),
            (_, IpAddr::V6(_)) => (&v6[..1], &v6[1..]),
        };
        assert_eq!(
            outer_list,
            [(outer_src, outer_dst)],
            "outer addresses; {text}"
        );
        assert_eq!(
            inner_list,
            [(inner_src, inner_dst)],
            "inner addresses; {text}"
        );
        // UDP checksums, outer then inner: the outer one is zero (not present) over IPv4
        // (RFC 7348 allows it) and must be good over IPv6; the inner one is the guest's.
        let udp: Vec<&str> = get("udp.checksum.status").split(',').collect();
        let outer_udp = match remote.underlay {
            Underlay::V4 => NOT_PRESENT,
            Underlay::V6 | Underlay::V6ZeroChecksum => GOOD,
        };
        assert_eq!(
            udp,
            [outer_udp, GOOD],
            "UDP checksum status (outer, inner); {text}"
        );
        let ip: Vec<&str> = get("ip.checksum.status")
            .split(',')
            .filter(|s| !s.is_empty())
            .collect();
        assert!(
            ip.iter().all(|s| *s == GOOD),
            "IPv4 header checksums; {text}"
        );
        assert_eq!(get("udp.dstport"), "4789,4445", "ports; {text}");
    }
}

/// RFC 6935 zero UDP checksums over IPv6, against a kernel VXLAN device with
/// `udp6zerocsumtx udp6zerocsumrx`: without the opt-in its packets are dropped and counted
/// apart (RFC 6936: off by default); with `udp6_zero_checksum_tx`/`_rx` both ways work, and
/// both ends send checksum 0.
#[test]
fn zero_ipv6_udp_checksums_interoperate_once_opted_in() {
    require_root();
    let vpc = Vpc::new("z6c", &[Underlay::V6ZeroChecksum]).expect("topology");
    let remote = &vpc.remotes[0];
    let mappings = static_mappings(&vpc);

    let mut daemon = start_default(&vpc);
    let base = totals(&vpc);
    assert!(
        ping(&remote.ns, GUEST_V4, 1).is_err(),
        "a zero-checksum IPv6 packet got through without the opt-in"
    );
    wait_counter(&vpc, &base, "outer_zero_udp6_checksum", 1);
    stop(&vpc, &mut daemon);

    let opted_in = "udp6_zero_checksum_tx = true\nudp6_zero_checksum_rx = true";
    let _daemon = start(&vpc, &vpc.config_toml_with(&mappings, opted_in, ""));
    let pcap = vpc.work.join("zero-csum.pcap");
    let capture = Capture::start(&vpc.fabric, "f0", "ip6 and udp port 4789", 100, &pcap);
    for target in [remote.overlay_v4.to_string(), remote.overlay_v6.to_string()] {
        ping(&vpc.guest, &target, 1)
            .unwrap_or_else(|e| panic!("ping {target} with zero checksums: {e}"));
    }
    // The echoes only: the remote's kernel may also send multicast (MLD) over its tunnel.
    let echoes = "icmp.type == 8 || icmp.type == 0 || icmpv6.type == 128 || icmpv6.type == 129";
    let text = wait_until("four echo packets in the capture", || {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args([
                "-n",
                "-d",
                "udp.port==4789,vxlan",
                "-Y",
                echoes,
                "-T",
                "fields",
            ])
            .args(["-E", "separator=;", "-e", "ipv6.src", "-e", "udp.checksum"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.lines().count() >= 4).then_some(text)
    });
    capture.finish();
    fn first(list: &str) -> &str {
        list.split(',').next().unwrap_or("")
    }
    let rows: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(';'))
        .map(|(src, sums)| (first(src), first(sums)))
        .collect();
    let remote_u6 = remote.underlay_v6.to_string();
    let outer_sources: Vec<&str> = rows.iter().map(|(src, _)| *src).collect();
    assert_eq!(
        outer_sources,
        [UNDERLAY_V6, &remote_u6, UNDERLAY_V6, &remote_u6],
        "two echo requests from us, two replies from the kernel:\n{text}"
    );
    assert!(
        rows.iter().all(|(_, sum)| *sum == "0x0000"),
        "every outer UDP checksum is 0:\n{text}"
    );
    let now = totals(&vpc);
    assert_eq!(counter(&now, "outer_zero_udp6_checksum"), 0, "{now}");
    assert!(counter(&now, "ingress_packets") >= 2, "{now}");
}
