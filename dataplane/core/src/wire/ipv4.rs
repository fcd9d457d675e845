//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::be;
use super::checksum;
use super::{Result, WireError};

pub use super::ip::protocol;

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// The length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
const _: () = assert!(HEADER_LEN == 20);

/// The Don't Fragment flag in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
/// The More Fragments flag in the flags/fragment-offset word.
const FLAG_MF: u16 = 0x2000;
/// The fragment offset (in 8-byte units) in the flags/fragment-offset word.
const OFFSET_MASK: u16 = 0x1FFF;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The length of an IPv4 header without options.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wrap a buffer without checking it; getters may panic on a short or inconsistent one.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wrap a buffer, checking version, IHL and total length against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check: len ≥ 20, version 4, IHL ≥ 5, header_len ≤ len, header_len ≤ total_len ≤ len.
    /// Bytes after `total_len` (Ethernet padding) are allowed and ignored by [`Self::payload`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if header_len > len {
            return Err(WireError::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(WireError::BadLength);
        }
        if total_len > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    /// The DSCP and ECN byte (the former type of service).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The total length of header and payload.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH)
    }

    /// The identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// The Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// The More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// The fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// Is this a fragment (More Fragments set or a non-zero offset)?
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// The time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The payload protocol (see [`protocol`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::array::<4>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::array::<4>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The header bytes, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The options bytes (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Does the header checksum verify?
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.header())) == 0xFFFF
    }

    /// The payload, from the end of the header to `total_len` (trailing padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set the version field.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0F) | (version << 4);
    }

    /// Set the header length in bytes (a multiple of 4 between 20 and 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xF0) | ((len / 4) as u8 & 0x0F);
    }

    /// Set the DSCP and ECN byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Set the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        be::set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Set the identification field.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        be::set_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    #[inline]
    fn set_flags_offset(&mut self, value: u16) {
        be::set_u16(self.buffer.as_mut(), field::FLG_OFF, value);
    }

    /// Set the Don't Fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let raw = self.flags_offset() & !FLAG_DF;
        self.set_flags_offset(if value { raw | FLAG_DF } else { raw });
    }

    /// Set the More Fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let raw = self.flags_offset() & !FLAG_MF;
        self.set_flags_offset(if value { raw | FLAG_MF } else { raw });
    }

    /// Set the fragment offset in bytes (a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let raw = self.flags_offset() & !OFFSET_MASK;
        self.set_flags_offset(raw | ((offset >> 3) & OFFSET_MASK));
    }

    /// Set the time to live.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Set the payload protocol.
    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Set the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        be::set_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Compute the header checksum over the whole header (options included) and store it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::sum(self.header());
        self.set_checksum(checksum::finish(sum));
    }

    /// The options bytes, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload, writable, from the end of the header to `total_len`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[start..end]
    }
}

/// The fields of an IPv4 header the dataplane builds and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol (see [`protocol`]).
    pub protocol: u8,
    /// Payload length in bytes (at most 65 515 for a 20-byte header).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Don't Fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Read a checked packet, verifying its header checksum. Options are skipped, fragments
    /// are not reassembled (check [`Ipv4Packet::is_fragment`] first if that matters).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// The length of the header [`Self::emit`] writes (20 bytes, no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write a 20-byte header (DSCP/ECN 0, ident 0, no fragmentation, checksum filled) into a
    /// buffer of at least 20 bytes. A `payload_len` above 65 515 saturates the total length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let total = (HEADER_LEN + self.payload_len).min(usize::from(u16::MAX)) as u16;
        let buf = packet.buffer.as_mut();
        buf[field::VER_IHL] = 0x45;
        buf[field::DSCP_ECN] = 0;
        be::set_u16(buf, field::LENGTH, total);
        be::set_u16(buf, field::IDENT, 0);
        be::set_u16(
            buf,
            field::FLG_OFF,
            if self.dont_frag { FLAG_DF } else { 0 },
        );
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol;
        buf[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        buf[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// scapy: `IP(src="198.18.0.1", dst="198.19.1.2", ttl=64, flags="DF", id=0)/
    /// UDP(sport=40000, dport=4789)/Raw(b"hello xvpc")`
    const IPV4_UDP: [u8; 38] = [
        0x45, 0x00, 0x00, 0x26, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xad, 0x9e, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x13, 0x01, 0x02, 0x9c, 0x40, 0x12, 0xb5, 0x00, 0x12, 0x96, 0xdf, 0x68, 0x65,
        0x6c, 0x6c, 0x6f, 0x20, 0x78, 0x76, 0x70, 0x63,
    ];

    /// scapy: `IP(src="198.18.0.1", dst="198.19.1.2", ttl=17, id=0x1234, flags="MF", frag=185,
    /// tos=0xb8, options=[IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_EOL()])/
    /// Raw(b"abcdefgh")`
    const IPV4_FRAG: [u8; 32] = [
        0x46, 0xb8, 0x00, 0x20, 0x12, 0x34, 0x20, 0xb9, 0x11, 0x00, 0xe6, 0x0f, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x13, 0x01, 0x02, 0x01, 0x01, 0x01, 0x00, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
        0x67, 0x68,
    ];

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 2);

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: SRC,
            dst_addr: DST,
            protocol: protocol::UDP,
            payload_len: 18,
            ttl: 64,
            dont_frag: true,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Ipv4Packet::new_checked(&IPV4_UDP[..]).expect("valid packet");
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 38);
        assert_eq!(p.ident(), 0);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::UDP);
        assert_eq!(p.checksum(), 0xad9e);
        assert_eq!(p.src_addr(), SRC);
        assert_eq!(p.dst_addr(), DST);
        assert!(p.options().is_empty());
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &IPV4_UDP[20..]);
        assert_eq!(Ipv4Repr::parse(&p), Ok(repr()));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 38];
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut p);
        p.payload_mut().copy_from_slice(&IPV4_UDP[20..]);
        assert_eq!(bytes, IPV4_UDP);
    }

    #[test]
    fn deconstruct_fragment_with_options() {
        let p = Ipv4Packet::new_checked(&IPV4_FRAG[..]).expect("valid packet");
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp_ecn(), 0xb8);
        assert_eq!(p.ident(), 0x1234);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 185 * 8);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 17);
        assert_eq!(p.protocol(), 0);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), b"abcdefgh");
    }

    #[test]
    fn construct_fragment_with_setters() {
        let mut bytes = [0u8; 32];
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_dscp_ecn(0xb8);
        p.set_total_len(32);
        p.set_ident(0x1234);
        p.set_dont_frag(true);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(185 * 8);
        p.set_ttl(17);
        p.set_protocol(0);
        p.set_src_addr(SRC);
        p.set_dst_addr(DST);
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        p.payload_mut().copy_from_slice(b"abcdefgh");
        p.fill_checksum();
        assert_eq!(bytes, IPV4_FRAG);
    }

    #[test]
    fn rejects_bad_headers() {
        let check = |bytes: &[u8]| Ipv4Packet::new_checked(bytes).map(|_| ());
        assert_eq!(check(&IPV4_UDP[..19]), Err(WireError::Truncated));
        let mut b = IPV4_UDP;
        b[0] = 0x65;
        assert_eq!(check(&b), Err(WireError::BadVersion));
        b[0] = 0x44;
        assert_eq!(check(&b), Err(WireError::BadHeaderLen));
        b[0] = 0x4f; // 60-byte header in a 38-byte buffer
        assert_eq!(check(&b), Err(WireError::Truncated));
        let mut b = IPV4_UDP;
        b[3] = 19; // total_len < header_len
        assert_eq!(check(&b), Err(WireError::BadLength));
        b[3] = 39; // total_len > buffer
        assert_eq!(check(&b), Err(WireError::Truncated));
        let mut b = IPV4_UDP;
        b[11] ^= 1;
        let p = Ipv4Packet::new_checked(&b[..]).expect("lengths are fine");
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::BadChecksum));
    }

    #[test]
    fn payload_excludes_ethernet_padding() {
        let mut padded = [0u8; 60];
        padded[..38].copy_from_slice(&IPV4_UDP);
        let p = Ipv4Packet::new_checked(&padded[..]).expect("padding is allowed");
        assert_eq!(p.payload().len(), 18);
    }

    proptest! {
        #[test]
        fn checked_never_panics(
            mut data in proptest::collection::vec(any::<u8>(), 0..80),
            plausible in any::<bool>(),
        ) {
            if plausible && data.len() >= 4 {
                // Random bytes almost never have a usable total length; half the cases get a
                // version 4 header whose lengths are near (and sometimes past) the buffer.
                data[0] = 0x40 | (data[0] & 0x0F);
                let total = u16::from(data[3]) % (data.len() as u16 + 8);
                data[2..4].copy_from_slice(&total.to_be_bytes());
            }
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.header_len(), p.dscp_ecn(), p.total_len(), p.ident());
                let _ = (p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment());
                let _ = (p.ttl(), p.protocol(), p.checksum(), p.src_addr(), p.dst_addr());
                let _ = (p.options(), p.header(), p.verify_checksum(), p.payload());
                let _ = Ipv4Repr::parse(&p);
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            protocol in any::<u8>(),
            payload_len in 0usize..200,
            ttl in any::<u8>(),
            dont_frag in any::<bool>(),
        ) {
            let repr = Ipv4Repr {
                src_addr: src.into(),
                dst_addr: dst.into(),
                protocol,
                payload_len,
                ttl,
                dont_frag,
            };
            let mut buf = vec![0u8; repr.buffer_len() + payload_len];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            let p = Ipv4Packet::new_checked(&buf[..]).expect("emitted packet");
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Ipv4Repr::parse(&p), Ok(repr));
        }

        #[test]
        fn fill_then_verify(mut data in proptest::collection::vec(any::<u8>(), 20..80), ihl in 5u8..16) {
            let header_len = usize::from(ihl) * 4;
            prop_assume!(header_len <= data.len());
            data[0] = 0x40 | ihl;
            let total = data.len() as u16;
            data[2..4].copy_from_slice(&total.to_be_bytes());
            let mut p = Ipv4Packet::new_checked(&mut data[..]).expect("lengths set above");
            p.fill_checksum();
            prop_assert!(p.verify_checksum());
        }
    }
}
