//! IPv6 headers (RFC 8200) and a bounded walk over extension headers.

use std::net::Ipv6Addr;

use super::be;
use super::ip::protocol;
use super::{Result, WireError};

mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// The length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
const _: () = assert!(HEADER_LEN == 40);

/// The most extension headers [`Ipv6Packet::upper_layer`] walks before giving up.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// The length of an IPv6 Fragment extension header.
const FRAGMENT_HEADER_LEN: usize = 8;

/// Where the upper-layer header of an IPv6 packet starts, after its extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The upper-layer protocol (see [`protocol`]); `IPV6_NONXT` (59) if there is none.
    pub protocol: u8,
    /// The offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// A Fragment header was seen with a non-zero offset or the M flag set. For a non-first
    /// fragment `offset` points at fragment data, not at an upper-layer header.
    pub is_fragment: bool,
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// The length of the fixed IPv6 header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wrap a buffer without checking it; getters may panic on a short or inconsistent one.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wrap a buffer, checking the version and that the payload length fits in it.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check: len ≥ 40, version 6, 40 + payload_len ≤ len (trailing padding is allowed).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn first_word(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    /// The version field (6 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// The traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000F_FFFF
    }

    /// The payload length (everything after the fixed header, extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH)
    }

    /// The next header: the first extension header or the upper-layer protocol.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// The hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(be::array::<16>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(be::array::<16>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The payload, bounded by `payload_len` (trailing padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walk the extension headers (Hop-by-Hop, Routing, Fragment, Destination Options, AH) to
    /// the upper-layer header.
    ///
    /// Fails with `Truncated` if a header overruns `payload_len`, `Malformed` if Hop-by-Hop is
    /// not first, and `Unsupported` after [`MAX_EXTENSION_HEADERS`] headers. The walk stops at a
    /// non-first fragment, whose payload is not a header.
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let data = self.buffer.as_ref();
        let end = HEADER_LEN + usize::from(self.payload_len());
        let mut next = self.next_header();
        let mut offset = HEADER_LEN;
        let mut is_fragment = false;
        for index in 0..=MAX_EXTENSION_HEADERS {
            let len = match next {
                protocol::HOPOPT | protocol::IPV6_ROUTE | protocol::IPV6_OPTS => {
                    if next == protocol::HOPOPT && index != 0 {
                        return Err(WireError::Malformed);
                    }
                    if offset + 2 > end {
                        return Err(WireError::Truncated);
                    }
                    (usize::from(data[offset + 1]) + 1) * 8
                }
                protocol::AH => {
                    if offset + 2 > end {
                        return Err(WireError::Truncated);
                    }
                    (usize::from(data[offset + 1]) + 2) * 4
                }
                protocol::IPV6_FRAG => FRAGMENT_HEADER_LEN,
                _ => {
                    return Ok(UpperLayer {
                        protocol: next,
                        offset,
                        is_fragment,
                    })
                }
            };
            if index == MAX_EXTENSION_HEADERS {
                break;
            }
            if offset + len > end {
                return Err(WireError::Truncated);
            }
            let header_next = data[offset];
            if next == protocol::IPV6_FRAG {
                let offset_flags = be::u16_at(data, offset + 2);
                let frag_offset = offset_flags >> 3;
                let more = offset_flags & 1 != 0;
                is_fragment |= frag_offset != 0 || more;
                if frag_offset != 0 {
                    return Ok(UpperLayer {
                        protocol: header_next,
                        offset: offset + len,
                        is_fragment,
                    });
                }
            }
            next = header_next;
            offset += len;
        }
        Err(WireError::Unsupported)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_first_word(&mut self, value: u32) {
        be::set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, value);
    }

    /// Set the version field.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let word = (self.first_word() & 0x0FFF_FFFF) | (u32::from(version & 0x0F) << 28);
        self.set_first_word(word);
    }

    /// Set the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let word = (self.first_word() & 0xF00F_FFFF) | (u32::from(tc) << 20);
        self.set_first_word(word);
    }

    /// Set the flow label (the low 20 bits of `label`).
    #[inline]
    pub fn set_flow_label(&mut self, label: u32) {
        let word = (self.first_word() & 0xFFF0_0000) | (label & 0x000F_FFFF);
        self.set_first_word(word);
    }

    /// Set the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        be::set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Set the next header.
    #[inline]
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = next_header;
    }

    /// Set the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload, writable, bounded by `payload_len`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fields of an IPv6 header the dataplane builds and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header (upper-layer protocol when there are no extension headers).
    pub next_header: u8,
    /// Payload length in bytes (at most 65 535).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Read the fixed header of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
        })
    }

    /// The length of the header [`Self::emit`] writes (40 bytes).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the fixed header (traffic class and flow label 0) into a buffer of at least 40
    /// bytes. A `payload_len` above 65 535 saturates the length field.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_first_word(0x6000_0000);
        packet.set_payload_len(self.payload_len.min(usize::from(u16::MAX)) as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// scapy: `IPv6(src="2001:2::1", dst="2001:2:0:1::2", hlim=64, tc=0x28, fl=0x12345)/
    /// UDP(sport=40000, dport=4789)/Raw(b"hello xvpc")`
    const IPV6_UDP: [u8; 58] = [
        0x62, 0x81, 0x23, 0x45, 0x00, 0x12, 0x11, 0x40, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x12, 0xb5, 0x00,
        0x12, 0xe3, 0xfe, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x78, 0x76, 0x70, 0x63,
    ];

    /// scapy: `IPv6(src="2001:2::1", dst="2001:2::2", hlim=64)/IPv6ExtHdrHopByHop()/
    /// IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0"*4)])/
    /// IPv6ExtHdrRouting(addresses=["2001:2::3"])/IPv6ExtHdrFragment(offset=0, m=1, id=7)/
    /// UDP(sport=1, dport=2)/Raw(b"xy")`
    const IPV6_EXT: [u8; 98] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x00, 0x40, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x00, 0x01, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x2b, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x02, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x03, 0x11, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01,
        0x00, 0x02, 0x00, 0x0a, 0x47, 0x54, 0x78, 0x79,
    ];

    fn src() -> Ipv6Addr {
        "2001:2::1".parse().expect("literal")
    }

    fn dst() -> Ipv6Addr {
        "2001:2:0:1::2".parse().expect("literal")
    }

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(&IPV6_UDP[..]).expect("valid packet");
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x28);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 18);
        assert_eq!(p.next_header(), protocol::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), src());
        assert_eq!(p.dst_addr(), dst());
        assert_eq!(p.payload(), &IPV6_UDP[40..]);
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: protocol::UDP,
                offset: 40,
                is_fragment: false
            })
        );
        let repr = Ipv6Repr::parse(&p).expect("valid packet");
        assert_eq!(
            repr,
            Ipv6Repr {
                src_addr: src(),
                dst_addr: dst(),
                next_header: protocol::UDP,
                payload_len: 18,
                hop_limit: 64
            }
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 58];
        let mut p = Ipv6Packet::new_unchecked(&mut bytes[..]);
        let repr = Ipv6Repr {
            src_addr: src(),
            dst_addr: dst(),
            next_header: protocol::UDP,
            payload_len: 18,
            hop_limit: 64,
        };
        repr.emit(&mut p);
        p.set_traffic_class(0x28);
        p.set_flow_label(0x12345);
        p.payload_mut().copy_from_slice(&IPV6_UDP[40..]);
        assert_eq!(bytes, IPV6_UDP);
        let mut p = Ipv6Packet::new_unchecked(&mut bytes[..]);
        p.set_version(6);
        p.set_traffic_class(0);
        p.set_flow_label(0);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0);
        assert_eq!(p.version(), 6);
    }

    #[test]
    fn walks_extension_headers() {
        let p = Ipv6Packet::new_checked(&IPV6_EXT[..]).expect("valid packet");
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: protocol::UDP,
                offset: 88,
                is_fragment: true
            })
        );
        // The UDP header scapy wrote is where the walk says.
        assert_eq!(&IPV6_EXT[88..92], &[0x00, 0x01, 0x00, 0x02]);
    }

    #[test]
    fn stops_at_non_first_fragment() {
        let mut b = IPV6_EXT;
        b[82..84].copy_from_slice(&0x0050u16.to_be_bytes()); // offset 10, M clear
        let p = Ipv6Packet::new_checked(&b[..]).expect("valid packet");
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: protocol::UDP,
                offset: 88,
                is_fragment: true
            })
        );
    }

    #[test]
    fn extension_walk_errors() {
        // Payload length cuts the routing header short.
        let mut b = IPV6_EXT;
        b[5] = 30;
        let p = Ipv6Packet::new_checked(&b[..]).expect("lengths fine");
        assert_eq!(p.upper_layer(), Err(WireError::Truncated));
        // Hop-by-Hop anywhere but first.
        let mut b = IPV6_EXT;
        b[48] = protocol::HOPOPT;
        let p = Ipv6Packet::new_checked(&b[..]).expect("lengths fine");
        assert_eq!(p.upper_layer(), Err(WireError::Malformed));
        // Nine Destination Options headers in a row.
        let mut chain = [0u8; 40 + 9 * 8 + 8];
        chain[0] = 0x60;
        chain[4..6].copy_from_slice(&((9 * 8 + 8) as u16).to_be_bytes());
        chain[6] = protocol::IPV6_OPTS;
        for i in 0..9 {
            chain[40 + i * 8] = if i == 8 {
                protocol::UDP
            } else {
                protocol::IPV6_OPTS
            };
        }
        let p = Ipv6Packet::new_checked(&chain[..]).expect("lengths fine");
        assert_eq!(p.upper_layer(), Err(WireError::Unsupported));
        // Eight are fine.
        chain[40 + 7 * 8] = protocol::UDP;
        let p = Ipv6Packet::new_checked(&chain[..]).expect("lengths fine");
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: protocol::UDP,
                offset: 40 + 64,
                is_fragment: false
            })
        );
    }

    #[test]
    fn ah_length_is_in_words() {
        let mut b = [0u8; 40 + 16 + 8];
        b[0] = 0x60;
        b[5] = 24;
        b[6] = protocol::AH;
        b[40] = protocol::TCP;
        b[41] = 2; // (2 + 2) * 4 = 16 bytes
        let p = Ipv6Packet::new_checked(&b[..]).expect("lengths fine");
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: protocol::TCP,
                offset: 56,
                is_fragment: false
            })
        );
    }

    #[test]
    fn rejects_bad_headers() {
        let check = |bytes: &[u8]| Ipv6Packet::new_checked(bytes).map(|_| ());
        assert_eq!(check(&IPV6_UDP[..39]), Err(WireError::Truncated));
        assert_eq!(check(&IPV6_UDP[..57]), Err(WireError::Truncated));
        let mut b = IPV6_UDP;
        b[0] = 0x42;
        assert_eq!(check(&b), Err(WireError::BadVersion));
    }

    proptest! {
        #[test]
        fn checked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..160)) {
            let mut data = data;
            // Give the generator a fair chance to reach the extension-header walk.
            if data.len() >= 40 {
                data[0] = 0x60 | (data[0] & 0x0F);
                let room = (data.len() - 40) as u16;
                let claimed = u16::from_be_bytes([data[4], data[5]]);
                data[4..6].copy_from_slice(&(claimed % (room + 1)).to_be_bytes());
            }
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.traffic_class(), p.flow_label(), p.payload_len());
                let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload());
                if let Ok(ul) = p.upper_layer() {
                    prop_assert!(ul.offset <= 40 + usize::from(p.payload_len()));
                }
                let _ = Ipv6Repr::parse(&p);
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            next_header in any::<u8>(),
            payload_len in 0usize..200,
            hop_limit in any::<u8>(),
        ) {
            let repr = Ipv6Repr {
                src_addr: src.into(),
                dst_addr: dst.into(),
                next_header,
                payload_len,
                hop_limit,
            };
            let mut buf = vec![0xffu8; repr.buffer_len() + payload_len];
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
            let p = Ipv6Packet::new_checked(&buf[..]).expect("emitted packet");
            prop_assert_eq!(p.traffic_class(), 0);
            prop_assert_eq!(p.flow_label(), 0);
            prop_assert_eq!(Ipv6Repr::parse(&p), Ok(repr));
        }
    }
}
