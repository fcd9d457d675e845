//! UDP headers (RFC 768) and their checksum over the IPv4/IPv6 pseudo-header.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::be;
use super::checksum;
use super::ip::protocol;
use super::{Result, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// The length of a UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;
const _: () = assert!(HEADER_LEN == 8);

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// The length of a UDP header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wrap a buffer without checking it; getters may panic on a short or inconsistent one.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wrap a buffer, checking that the length field is between 8 and the buffer length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check: len ≥ 8, 8 ≤ length field ≤ len.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if field_len > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// The destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[inline]
    pub fn len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH)
    }

    /// Is the length field 0 (never true for a checked packet)?
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, bounded by the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// The bytes the checksum covers: header and payload, bounded by the length field.
    #[inline]
    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// Does the checksum verify over the IPv4 pseudo-header? A zero checksum means "not
    /// computed" in IPv4 and is accepted.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = u32::from(self.len());
        let sum = checksum::pseudo_header_v4(src, dst, protocol::UDP, len)
            + checksum::sum(self.datagram());
        checksum::fold(sum) == 0xFFFF
    }

    /// Does the checksum verify over the IPv6 pseudo-header? Zero is invalid in IPv6
    /// (RFC 8200 section 8.1).
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let len = u32::from(self.len());
        let sum = checksum::pseudo_header_v6(src, dst, protocol::UDP, len)
            + checksum::sum(self.datagram());
        checksum::fold(sum) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        be::set_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Set the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        be::set_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Set the length field.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        be::set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        be::set_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// The payload, writable, bounded by the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Compute the checksum over the IPv4 pseudo-header and store it (a computed 0 is sent as
    /// 0xFFFF, since 0 means "no checksum").
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = u32::from(self.len());
        let sum = checksum::pseudo_header_v4(src, dst, protocol::UDP, len)
            + checksum::sum(self.datagram());
        self.set_checksum(nonzero(checksum::finish(sum)));
    }

    /// Compute the checksum over the IPv6 pseudo-header and store it (a computed 0 is sent as
    /// 0xFFFF).
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let len = u32::from(self.len());
        let sum = checksum::pseudo_header_v6(src, dst, protocol::UDP, len)
            + checksum::sum(self.datagram());
        self.set_checksum(nonzero(checksum::finish(sum)));
    }
}

/// RFC 768: a computed checksum of zero is transmitted as all ones.
#[inline]
fn nonzero(checksum: u16) -> u16 {
    if checksum == 0 {
        0xFFFF
    } else {
        checksum
    }
}

/// The fields of a UDP header, except the checksum (fill it with the `fill_checksum_*`
/// methods once the payload is in place, or leave it 0 on IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes (at most 65 527).
    pub payload_len: usize,
}

impl UdpRepr {
    /// Read the ports and payload length of a checked datagram (the checksum is the caller's
    /// to verify, since it needs the IP addresses).
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    /// The length of the header [`Self::emit`] writes (8 bytes).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header with a zero checksum into a buffer of at least 8 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + self.payload_len).min(usize::from(u16::MAX)) as u16);
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The UDP part of scapy's `IP(src="198.18.0.1", dst="198.19.1.2")/
    /// UDP(sport=40000, dport=4789)/Raw(b"hello xvpc")`.
    const UDP_V4: [u8; 18] = [
        0x9c, 0x40, 0x12, 0xb5, 0x00, 0x12, 0x96, 0xdf, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x78,
        0x76, 0x70, 0x63,
    ];
    /// The same datagram inside scapy's `IPv6(src="2001:2::1", dst="2001:2:0:1::2")`.
    const UDP_V6_CHECKSUM: u16 = 0xe3fe;

    const SRC4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST4: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 2);

    fn v6() -> (Ipv6Addr, Ipv6Addr) {
        (
            "2001:2::1".parse().expect("literal"),
            "2001:2:0:1::2".parse().expect("literal"),
        )
    }

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&UDP_V4[..]).expect("valid datagram");
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 4789);
        assert_eq!(p.len(), 18);
        assert_eq!(p.checksum(), 0x96df);
        assert_eq!(p.payload(), b"hello xvpc");
        assert!(p.verify_checksum_v4(SRC4, DST4));
        assert!(!p.verify_checksum_v4(SRC4, Ipv4Addr::new(198, 19, 1, 3)));
        assert_eq!(
            UdpRepr::parse(&p),
            Ok(UdpRepr {
                src_port: 40000,
                dst_port: 4789,
                payload_len: 10
            })
        );

        let (s6, d6) = v6();
        let mut b = UDP_V4;
        b[6..8].copy_from_slice(&UDP_V6_CHECKSUM.to_be_bytes());
        let p = UdpPacket::new_checked(&b[..]).expect("valid datagram");
        assert!(p.verify_checksum_v6(&s6, &d6));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 18];
        let mut p = UdpPacket::new_unchecked(&mut bytes[..]);
        UdpRepr {
            src_port: 40000,
            dst_port: 4789,
            payload_len: 10,
        }
        .emit(&mut p);
        assert_eq!(p.checksum(), 0);
        p.payload_mut().copy_from_slice(b"hello xvpc");
        p.fill_checksum_v4(SRC4, DST4);
        assert_eq!(bytes, UDP_V4);

        let (s6, d6) = v6();
        let mut p = UdpPacket::new_unchecked(&mut bytes[..]);
        p.fill_checksum_v6(&s6, &d6);
        assert_eq!(p.checksum(), UDP_V6_CHECKSUM);
    }

    #[test]
    fn zero_checksum_rules() {
        let mut b = UDP_V4;
        b[6] = 0;
        b[7] = 0;
        let p = UdpPacket::new_checked(&b[..]).expect("valid datagram");
        assert!(
            p.verify_checksum_v4(SRC4, DST4),
            "zero means not computed in IPv4"
        );
        let (s6, d6) = v6();
        assert!(!p.verify_checksum_v6(&s6, &d6), "zero is invalid in IPv6");
    }

    #[test]
    fn computed_zero_is_sent_as_ones() {
        // Choose the payload word so the sum of everything else is exactly 0xFFFF.
        let mut b = [0u8; 10];
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload_len: 2,
        }
        .emit(&mut p);
        let partial = checksum::pseudo_header_v4(SRC4, DST4, protocol::UDP, 10)
            + checksum::sum(&p.datagram()[..8]);
        let filler = !checksum::fold(partial);
        p.payload_mut().copy_from_slice(&filler.to_be_bytes());
        p.fill_checksum_v4(SRC4, DST4);
        assert_eq!(p.checksum(), 0xFFFF);
        assert!(p.verify_checksum_v4(SRC4, DST4));
    }

    #[test]
    fn rejects_bad_lengths() {
        let check = |bytes: &[u8]| UdpPacket::new_checked(bytes).map(|_| ());
        assert_eq!(check(&UDP_V4[..7]), Err(WireError::Truncated));
        assert_eq!(check(&UDP_V4[..17]), Err(WireError::Truncated));
        let mut b = UDP_V4;
        b[5] = 7;
        assert_eq!(check(&b), Err(WireError::BadLength));
        b[5] = 12; // shorter than the buffer: the rest is ignored
        let p = UdpPacket::new_checked(&b[..]).expect("valid datagram");
        assert_eq!(p.payload(), b"hell");
    }

    proptest! {
        #[test]
        fn checked_never_panics(
            mut data in proptest::collection::vec(any::<u8>(), 0..64),
            plausible in any::<bool>(),
        ) {
            if plausible && data.len() >= 6 {
                // Keep the length field near the buffer length so the checked path is reached.
                let len = u16::from(data[5]) % (data.len() as u16 + 4);
                data[4..6].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let (s6, d6) = v6();
                let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload());
                let _ = (p.verify_checksum_v4(SRC4, DST4), p.verify_checksum_v6(&s6, &d6));
                let _ = UdpRepr::parse(&p);
            }
        }

        #[test]
        fn emit_fill_verify(
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            s4 in any::<[u8; 4]>(),
            d4 in any::<[u8; 4]>(),
            s6 in any::<[u8; 16]>(),
            d6 in any::<[u8; 16]>(),
        ) {
            let repr = UdpRepr { src_port, dst_port, payload_len: payload.len() };
            let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
            let mut p = UdpPacket::new_unchecked(&mut buf[..]);
            repr.emit(&mut p);
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum_v4(s4.into(), d4.into());
            prop_assert!(p.checksum() != 0);
            prop_assert!(p.verify_checksum_v4(s4.into(), d4.into()));
            let (s6, d6) = (Ipv6Addr::from(s6), Ipv6Addr::from(d6));
            p.fill_checksum_v6(&s6, &d6);
            prop_assert!(p.verify_checksum_v6(&s6, &d6));
            let p = UdpPacket::new_checked(&buf[..]).expect("emitted datagram");
            prop_assert_eq!(UdpRepr::parse(&p), Ok(repr));
        }
    }
}
