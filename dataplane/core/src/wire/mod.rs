//! Zero-copy views of the packet formats the dataplane reads and writes.
//!
//! Every format follows the same pattern (after smoltcp's `wire` module):
//!
//! - `XxxPacket<T: AsRef<[u8]>>` wraps a buffer without copying. Untrusted bytes enter only
//!   through `new_checked`, which validates lengths (and the few fields that bound other
//!   fields) once; after it returns `Ok`, no getter panics. `new_unchecked` is for buffers the
//!   caller sized itself, e.g. when emitting into a frame's headroom.
//! - Setters exist when `T: AsMut<[u8]>`; `payload`/`payload_mut` give the bytes after the
//!   header, bounded by the header's own length field where it has one.
//! - A small `XxxRepr` holds the fields the dataplane cares about, with `parse`, `emit` and
//!   `buffer_len`.
//!
//! Nothing here allocates or does I/O.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vxlan;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr};
pub use icmpv4::Icmpv4Packet;
pub use icmpv6::{Icmpv6Packet, NdiscOption, NdiscOptionIter};
pub use ip::{protocol, IpProtocol};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr, UpperLayer};
pub use tcp::{TcpOption, TcpOptionIter, TcpPacket};
pub use udp::{UdpPacket, UdpRepr};
pub use vxlan::{VxlanPacket, VxlanRepr};

/// Why a buffer is not a valid packet of the expected format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the fixed header, or than a length field inside it says.
    #[error("packet truncated: buffer shorter than the header or its length fields")]
    Truncated,
    /// The IP version field does not match the header being parsed.
    #[error("wrong IP version")]
    BadVersion,
    /// A header-length field (IPv4 IHL, TCP data offset, an extension header length) is
    /// smaller than the minimum header or larger than the packet.
    #[error("bad header length field")]
    BadHeaderLen,
    /// A total/payload length field is inconsistent with the header or the buffer.
    #[error("bad length field")]
    BadLength,
    /// The checksum does not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// A valid packet of a kind this library does not handle (e.g. ARP for a non-Ethernet
    /// hardware type, too many IPv6 extension headers).
    #[error("unsupported packet variant")]
    Unsupported,
    /// A field holds a value the format forbids (e.g. VXLAN without the I flag, a zero-length
    /// neighbor discovery option).
    #[error("malformed field")]
    Malformed,
}

/// Result of parsing a packet.
pub type Result<T> = core::result::Result<T, WireError>;

/// Big-endian field access on buffers whose length was already checked.
///
/// These index directly: callers guarantee the range exists (by `new_checked` or by sizing
/// the buffer themselves), which is what lets the getters be plain and branch-free.
pub(crate) mod be {
    use core::ops::Range;

    #[inline]
    pub fn u16_at(data: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    #[inline]
    pub fn u32_at(data: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
    }

    #[inline]
    pub fn set_u16(data: &mut [u8], at: usize, value: u16) {
        data[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_u32(data: &mut [u8], at: usize, value: u32) {
        data[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn array<const N: usize>(data: &[u8], range: Range<usize>) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&data[range]);
        out
    }
}

#[cfg(test)]
mod corpus {
    //! Every captured vector, cut at every length, through every parser: a seed corpus for
    //! the "checked views never panic" property that the per-module property tests explore
    //! randomly.

    use super::*;
    use crate::model::MacAddr;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Frames and packets captured from scapy (the same vectors as the module tests).
    const SEEDS: &[&[u8]] = &[
        // Ethernet + ARP request.
        &[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
            0xc6, 0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0xfe,
        ],
        // IPv6 with Hop-by-Hop, Destination Options, Routing and Fragment headers, then UDP.
        &[
            0x60, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x00, 0x40, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x00, 0x02,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x00,
            0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
            0x2c, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x11, 0x00, 0x00, 0x01,
            0x00, 0x00, 0x00, 0x07, 0x00, 0x01, 0x00, 0x02, 0x00, 0x0a, 0x47, 0x54, 0x78, 0x79,
        ],
        // Ethernet + IPv4 + UDP + VXLAN + Ethernet + IPv4 + ICMP echo.
        &[
            0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01, 0x08, 0x00,
            0x45, 0x00, 0x00, 0x4e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xae, 0x77, 0xc6, 0x12,
            0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, 0xc0, 0x00, 0x12, 0xb5, 0x00, 0x3a, 0x00, 0x00,
            0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00, 0x1c, 0x00, 0x01,
            0x00, 0x00, 0x40, 0x01, 0xee, 0xb6, 0xc6, 0x13, 0x00, 0x01, 0xc6, 0x13, 0x00, 0x02,
            0x08, 0x00, 0xf7, 0xfd, 0x00, 0x01, 0x00, 0x01,
        ],
        // IPv6 + ICMPv6 neighbor solicitation with a source link-layer address option.
        &[
            0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0xfe, 0x87, 0x00,
            0x35, 0x9b, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00,
            0x00, 0x01,
        ],
        // IPv4 + TCP SYN with MSS, SACK-permitted, timestamps, NOP and window scale.
        &[
            0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xae, 0x94, 0xc6, 0x12,
            0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04,
            0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x20, 0x50, 0x00, 0x00, 0x02, 0x04,
            0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
            0x01, 0x03, 0x03, 0x07,
        ],
    ];

    /// Run every checked parser and every getter over `data`; returns how many parsers
    /// accepted it.
    fn parse_everything(data: &[u8]) -> usize {
        let (s4, d4) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
        let mut accepted = 0;
        if let Ok(p) = EthernetFrame::new_checked(data) {
            accepted += 1;
            let _ = (p.src_addr(), p.dst_addr(), p.ethertype(), p.payload());
        }
        if let Ok(p) = ArpPacket::new_checked(data) {
            accepted += 1;
            let _ = (
                p.operation(),
                p.sender_hw_addr(),
                p.target_ip(),
                ArpRepr::parse(&p),
            );
        }
        if let Ok(p) = Ipv4Packet::new_checked(data) {
            accepted += 1;
            let _ = (
                p.options(),
                p.payload(),
                p.verify_checksum(),
                Ipv4Repr::parse(&p),
            );
        }
        if let Ok(p) = Ipv6Packet::new_checked(data) {
            accepted += 1;
            let _ = (p.payload(), p.upper_layer(), Ipv6Repr::parse(&p));
        }
        if let Ok(p) = UdpPacket::new_checked(data) {
            accepted += 1;
            let _ = (
                p.payload(),
                p.verify_checksum_v4(s4, d4),
                p.verify_checksum_v6(&s6, &d6),
            );
        }
        if let Ok(p) = VxlanPacket::new_checked(data) {
            accepted += 1;
            let _ = (p.vni(), p.payload(), VxlanRepr::parse(&p));
        }
        if let Ok(p) = Icmpv4Packet::new_checked(data) {
            accepted += 1;
            let _ = (
                p.echo_ident(),
                p.next_hop_mtu(),
                p.data(),
                p.verify_checksum(),
            );
        }
        if let Ok(p) = Icmpv6Packet::new_checked(data) {
            accepted += 1;
            let _ = (
                p.source_lladdr(),
                p.target_lladdr(),
                p.verify_checksum(&s6, &d6),
            );
            assert!(p.ndisc_option_iter().all(|o| o.is_ok()));
        }
        if let Ok(p) = TcpPacket::new_checked(data) {
            accepted += 1;
            let _ = (p.mss_option(), p.payload(), p.verify_checksum_v4(s4, d4));
            let _ = p.option_iter().count();
        }
        accepted
    }

    #[test]
    fn every_prefix_of_every_seed() {
        let mut accepted = 0;
        for seed in SEEDS {
            for end in 0..=seed.len() {
                for start in 0..end.min(80) {
                    accepted += parse_everything(&seed[start..end]);
                }
            }
        }
        // Most cuts are rejected, but the corpus must reach the accepting paths too.
        assert!(accepted > 1000, "only {accepted} parses succeeded");
    }

    #[test]
    fn seeds_walk_to_their_innermost_layer() {
        // The VXLAN seed, decoded the way the ingress pipeline does, reaches the inner MAC.
        let eth = EthernetFrame::new_checked(SEEDS[2]).expect("seed frame");
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("outer IPv4");
        let udp = UdpPacket::new_checked(ip.payload()).expect("outer UDP");
        let vxlan = VxlanPacket::new_checked(udp.payload()).expect("VXLAN");
        let inner = EthernetFrame::new_checked(vxlan.payload()).expect("inner frame");
        assert_eq!(inner.dst_addr(), MacAddr([0x02, 0, 0, 0, 0, 0x02]));
    }
}
