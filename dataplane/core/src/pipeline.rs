//! What both pipelines share: the per-port context, the verdict and the flow hash.

use std::net::IpAddr;

use crate::counters::DropReason;
use crate::model::{Fabric, Gateway, Guest, MappingKey};

/// The configuration a pipeline runs against: one guest, its gateway, and the fabric.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The local guest behind the guest port.
    pub guest: &'a Guest,
    /// The virtual gateway answered by the dataplane.
    pub gateway: &'a Gateway,
    /// Our side of the underlay.
    pub fabric: &'a Fabric,
}

/// How many frames a worker prepares ([`egress_prepare`](crate::egress::egress_prepare),
/// [`ingress_prepare`](crate::ingress::ingress_prepare)) before finishing them: enough
/// lookups in flight to overlap their cache misses, few enough to stay in registers and L1.
pub const PREPARE_AHEAD: usize = 16;

/// What to do with a frame after a pipeline has run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Encapsulated in place: transmit on the fabric port.
    ToFabric,
    /// Transmit on the guest port: a decapsulated frame, or a reply built in place
    /// (ARP, neighbor advertisement, ICMP error, echo reply from the gateway).
    ToGuest,
    /// No mapping for this key: ask the agent. The frame is unchanged.
    Miss(MappingKey),
    /// Drop, counted under this reason.
    Drop(DropReason),
}

/// The outer UDP source port for an inner flow: 49152–65535 so that ECMP spreads flows
/// (RFC 7348 section 5), the same for every packet of a flow.
#[inline]
pub fn flow_source_port(hash: u32) -> u16 {
    0xC000 | (hash as u16 & 0x3FFF)
}

/// A hash of the inner 5-tuple (ports are 0 for non-TCP/UDP/SCTP and for every fragment, so
/// all fragments of a packet take the same path).
#[inline]
pub fn flow_hash(src: IpAddr, dst: IpAddr, protocol: u8, ports: u32) -> u32 {
    fn bits(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }
    flow_hash_bits(bits(src), bits(dst), protocol, ports)
}

/// [`flow_hash`] of addresses as 128-bit numbers (an IPv4 address in the low 32 bits).
#[inline(always)]
pub fn flow_hash_bits(src: u128, dst: u128, protocol: u8, ports: u32) -> u32 {
    #[inline(always)]
    fn mix(h: u64, v: u64) -> u64 {
        (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(31)
    }
    let mut h = mix(0x51_7CC1_B727_220A, src as u64);
    h = mix(h, (src >> 64) as u64);
    h = mix(h, dst as u64);
    h = mix(h, (dst >> 64) as u64);
    h = mix(h, (u64::from(protocol) << 32) | u64::from(ports));
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7348 section 5: the source port is a hash of the inner flow, in 49152–65535. The
    /// expected ports were computed apart from this code, by the Python reimplementation in
    /// `tests/oracle/gen_fixtures.py` (`49152 + hash % 16384`), so a change to the hash or to
    /// the port mapping shows here, and the fixtures must be regenerated with it.
    #[test]
    fn source_port_follows_the_flow_hash() {
        let ip = |s: &str| -> IpAddr { s.parse().expect("addr") };
        let cases: [(&str, &str, u8, u32, u16); 4] = [
            ("198.18.10.2", "198.18.10.3", 17, (5000 << 16) | 53, 64342),
            ("198.18.10.2", "198.18.10.3", 6, (40000 << 16) | 80, 49153),
            ("198.18.10.2", "198.18.10.3", 1, 0, 59510),
            (
                "2001:2:0:10::2",
                "2001:2:0:10::4",
                17,
                (5003 << 16) | 123,
                58000,
            ),
        ];
        for (src, dst, protocol, ports, expected) in cases {
            let hash = flow_hash(ip(src), ip(dst), protocol, ports);
            assert_eq!(
                flow_source_port(hash),
                expected,
                "{src} -> {dst} {protocol} {ports:#x}"
            );
            // The same flow, hashed again, takes the same path.
            let again = flow_hash(ip(src), ip(dst), protocol, ports);
            assert_eq!(flow_source_port(again), expected);
        }

        // Different flows cover the whole range: every 1024-port sixteenth of it is used.
        let mut used = [0u32; 16];
        for p in 0..4096u32 {
            let port = flow_source_port(flow_hash(ip("198.18.0.1"), ip("198.18.0.2"), 6, p));
            let offset = port.checked_sub(49152).expect("below the dynamic range");
            used[usize::from(offset / 1024)] += 1;
        }
        assert!(used.iter().all(|&n| n > 128), "uneven spread: {used:?}");
    }

    #[test]
    fn flows_spread_over_ports() {
        let src: IpAddr = "198.18.0.1".parse().expect("addr");
        let dst: IpAddr = "198.18.0.2".parse().expect("addr");
        let mut ports: Vec<u16> = (0..256u32)
            .map(|p| flow_source_port(flow_hash(src, dst, 17, p)))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert!(
            ports.len() > 240,
            "only {} distinct ports for 256 flows",
            ports.len()
        );
    }
}
