//! ICMPv4 messages (RFC 792), the few the dataplane reads or generates: echo and the
//! "fragmentation needed" destination unreachable of path MTU discovery (RFC 1191).

use super::be;
use super::checksum;
use super::{Result, WireError};

/// Message type: echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Message type: destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Message type: source quench (deprecated, RFC 6633).
pub const SOURCE_QUENCH: u8 = 4;
/// Message type: redirect.
pub const REDIRECT: u8 = 5;
/// Message type: echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Message type: time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Message type: parameter problem.
pub const PARAM_PROBLEM: u8 = 12;
/// Destination-unreachable code: fragmentation needed and DF set (RFC 1191).
pub const FRAG_NEEDED: u8 = 4;

/// Is `msg_type` an ICMP error message? Errors must never be sent in response to errors
/// (RFC 1122 section 3.2.2).
pub const fn is_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        DEST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAM_PROBLEM
    )
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const UNUSED: usize = 4;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const DATA: usize = 8;
}

/// The length of the ICMPv4 header (type, code, checksum and the 4-byte rest-of-header).
pub const HEADER_LEN: usize = field::DATA;
const _: () = assert!(HEADER_LEN == 8);

/// A read/write view of an ICMPv4 message. The buffer is the whole message (the IPv4
/// payload): the checksum covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// The length of the ICMPv4 header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wrap a buffer without checking it; getters panic if it is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wrap a buffer, checking that it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// The echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// The next-hop MTU (destination unreachable, code 4; RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// The bytes after the 8-byte header (echo data, or the offending datagram of an error).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Does the checksum over the whole message verify?
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Set the message type.
    #[inline]
    pub fn set_msg_type(&mut self, msg_type: u8) {
        self.buffer.as_mut()[field::TYPE] = msg_type;
    }

    /// Set the message code.
    #[inline]
    pub fn set_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        be::set_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Set the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, ident: u16) {
        be::set_u16(self.buffer.as_mut(), field::ECHO_IDENT, ident);
    }

    /// Set the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, seq_no: u16) {
        be::set_u16(self.buffer.as_mut(), field::ECHO_SEQNO, seq_no);
    }

    /// Set the next-hop MTU and zero the unused word before it (RFC 1191).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        be::set_u16(self.buffer.as_mut(), field::UNUSED, 0);
        be::set_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, mtu);
    }

    /// The bytes after the header, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Compute the checksum over the whole message and store it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::sum(self.buffer.as_ref());
        self.set_checksum(checksum::finish(sum));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{protocol, Ipv4Packet, UdpPacket};
    use proptest::prelude::*;

    /// scapy: `ICMP(type=8, code=0, id=0x1234, seq=7)/Raw(b"pingdata")`
    const ICMPV4_ECHO: [u8; 16] = [
        0x08, 0x00, 0x2e, 0x31, 0x12, 0x34, 0x00, 0x07, 0x70, 0x69, 0x6e, 0x67, 0x64, 0x61, 0x74,
        0x61,
    ];

    /// scapy: `ICMP(type=3, code=4, nexthopmtu=1450)/IP(src="198.19.0.1", dst="198.19.0.2",
    /// id=1, flags="DF")/UDP(sport=5, dport=6)`
    const ICMPV4_FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x83, 0x95, 0x00, 0x00, 0x05, 0xaa, 0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x40,
        0x00, 0x40, 0x11, 0xae, 0xa6, 0xc6, 0x13, 0x00, 0x01, 0xc6, 0x13, 0x00, 0x02, 0x00, 0x05,
        0x00, 0x06, 0x00, 0x08, 0x73, 0xa9,
    ];

    #[test]
    fn deconstruct_echo() {
        let p = Icmpv4Packet::new_checked(&ICMPV4_ECHO[..]).expect("valid ICMP");
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x2e31);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 7);
        assert_eq!(p.data(), b"pingdata");
        assert!(p.verify_checksum());
    }

    #[test]
    fn construct_echo() {
        let mut bytes = [0xa5u8; 16];
        let mut p = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        p.set_msg_type(ECHO_REQUEST);
        p.set_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(7);
        p.data_mut().copy_from_slice(b"pingdata");
        p.fill_checksum();
        assert_eq!(bytes, ICMPV4_ECHO);
    }

    #[test]
    fn deconstruct_frag_needed() {
        let p = Icmpv4Packet::new_checked(&ICMPV4_FRAG_NEEDED[..]).expect("valid ICMP");
        assert_eq!(p.msg_type(), DEST_UNREACHABLE);
        assert_eq!(p.code(), FRAG_NEEDED);
        assert_eq!(p.next_hop_mtu(), 1450);
        assert!(p.verify_checksum());
        let inner = Ipv4Packet::new_checked(p.data()).expect("quoted header");
        assert_eq!(inner.protocol(), protocol::UDP);
        let udp = UdpPacket::new_checked(inner.payload()).expect("quoted UDP");
        assert_eq!(udp.dst_port(), 6);
    }

    #[test]
    fn construct_frag_needed() {
        let mut bytes = [0xa5u8; 36];
        let mut p = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        p.set_msg_type(DEST_UNREACHABLE);
        p.set_code(FRAG_NEEDED);
        p.set_next_hop_mtu(1450);
        p.data_mut().copy_from_slice(&ICMPV4_FRAG_NEEDED[8..]);
        p.fill_checksum();
        assert_eq!(bytes, ICMPV4_FRAG_NEEDED);
    }

    #[test]
    fn error_types() {
        let errors: Vec<u8> = (0..=255).filter(|t| is_error(*t)).collect();
        assert_eq!(errors, [3, 4, 5, 11, 12]);
    }

    #[test]
    fn short_and_corrupt() {
        assert_eq!(
            Icmpv4Packet::new_checked(&ICMPV4_ECHO[..7]),
            Err(WireError::Truncated)
        );
        let mut b = ICMPV4_ECHO;
        b[15] ^= 0x40;
        let p = Icmpv4Packet::new_checked(&b[..]).expect("length fine");
        assert!(!p.verify_checksum());
    }

    proptest! {
        #[test]
        fn checked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.echo_ident(), p.echo_seq_no());
                let _ = (p.next_hop_mtu(), p.data(), p.verify_checksum());
            }
        }

        #[test]
        fn fill_then_verify(mut data in proptest::collection::vec(any::<u8>(), 8..200)) {
            let mut p = Icmpv4Packet::new_checked(&mut data[..]).expect("8 bytes or more");
            p.fill_checksum();
            prop_assert!(p.verify_checksum());
            let flipped = p.checksum() ^ 0x0100;
            p.set_checksum(flipped);
            prop_assert!(!p.verify_checksum());
        }
    }
}
