//! ICMPv6 messages (RFC 4443) and the neighbor discovery messages the dataplane answers
//! (RFC 4861): neighbor solicitation/advertisement and their link-layer address options.

use std::net::Ipv6Addr;

use super::be;
use super::checksum;
use super::ip::protocol;
use super::{Result, WireError};
use crate::model::MacAddr;

/// Message type: destination unreachable.
pub const DST_UNREACHABLE: u8 = 1;
/// Message type: packet too big.
pub const PKT_TOO_BIG: u8 = 2;
/// Message type: time exceeded.
pub const TIME_EXCEEDED: u8 = 3;
/// Message type: parameter problem.
pub const PARAM_PROBLEM: u8 = 4;
/// Message type: echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Message type: echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Message type: router solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// Message type: router advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// Message type: neighbor solicitation.
pub const NEIGHBOR_SOLICIT: u8 = 135;
/// Message type: neighbor advertisement.
pub const NEIGHBOR_ADVERT: u8 = 136;
/// Message type: redirect.
pub const REDIRECT: u8 = 137;

/// Is `msg_type` an ICMPv6 error message (types 0–127, RFC 4443 section 2.1)? Errors must
/// never be sent in response to errors.
pub const fn is_error(msg_type: u8) -> bool {
    msg_type < 128
}

/// Neighbor discovery option type: source link-layer address.
pub const OPT_SOURCE_LLADDR: u8 = 1;
/// Neighbor discovery option type: target link-layer address.
pub const OPT_TARGET_LLADDR: u8 = 2;
/// The length of an Ethernet link-layer address option (type, length 1, six octets).
pub const LLADDR_OPTION_LEN: usize = 8;

/// The length of a neighbor solicitation or advertisement without options.
pub const NDISC_NS_NA_LEN: usize = field::TARGET.end;
const _: () = assert!(NDISC_NS_NA_LEN == 24);

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const MTU: usize = 4;
    pub const NA_FLAGS: usize = 4;
    pub const RESERVED: Range<usize> = 4..8;
    pub const TARGET: Range<usize> = 8..24;
}

/// The length of the part common to all messages (type, code, checksum).
pub const HEADER_LEN: usize = 4;

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// The minimum length of a message of `msg_type`, and where its ND options start (if it has
/// any).
fn layout(msg_type: u8) -> (usize, Option<usize>) {
    match msg_type {
        DST_UNREACHABLE | PKT_TOO_BIG | TIME_EXCEEDED | PARAM_PROBLEM => (8, None),
        ECHO_REQUEST | ECHO_REPLY => (8, None),
        ROUTER_SOLICIT => (8, Some(8)),
        ROUTER_ADVERT => (16, Some(16)),
        NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT => (24, Some(24)),
        REDIRECT => (40, Some(40)),
        _ => (HEADER_LEN, None),
    }
}

/// One neighbor discovery option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdiscOption<'a> {
    /// The option type.
    pub kind: u8,
    /// The option body after the type and length bytes.
    pub data: &'a [u8],
}

/// Iterates over neighbor discovery options; yields one `Err(Malformed)` and stops at a zero
/// length or an option that overruns the message.
#[derive(Debug, Clone)]
pub struct NdiscOptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> NdiscOptionIter<'a> {
    /// Iterate over the options in `options`.
    pub fn new(options: &'a [u8]) -> Self {
        NdiscOptionIter { rest: options }
    }
}

impl<'a> Iterator for NdiscOptionIter<'a> {
    type Item = Result<NdiscOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        let len = match rest {
            [_, units, ..] => usize::from(*units) * 8,
            _ => 0,
        };
        if len == 0 || len > rest.len() {
            self.rest = &[];
            return Some(Err(WireError::Malformed));
        }
        self.rest = &rest[len..];
        Some(Ok(NdiscOption {
            kind: rest[0],
            data: &rest[2..len],
        }))
    }
}

/// A read/write view of an ICMPv6 message. The buffer is the whole message (the upper-layer
/// payload of the IPv6 packet): the checksum covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wrap a buffer without checking it; getters may panic on a short one.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wrap a buffer, checking the minimum length for its message type and, for neighbor
    /// discovery messages, that every option has a non-zero length inside the message.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let (min_len, _) = layout(self.msg_type());
        if data.len() < min_len {
            return Err(WireError::Truncated);
        }
        for option in self.ndisc_option_iter() {
            option?;
        }
        Ok(())
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

    /// The echo identifier (echo request/reply; needs an 8-byte message).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// The echo sequence number (echo request/reply; needs an 8-byte message).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// The MTU of a packet-too-big message.
    #[inline]
    pub fn pkt_too_big_mtu(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::MTU)
    }

    /// The target address of a neighbor solicitation or advertisement.
    #[inline]
    pub fn target_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(be::array::<16>(self.buffer.as_ref(), field::TARGET))
    }

    /// The Router flag of a neighbor advertisement.
    #[inline]
    pub fn router_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_ROUTER != 0
    }

    /// The Solicited flag of a neighbor advertisement.
    #[inline]
    pub fn solicited_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_SOLICITED != 0
    }

    /// The Override flag of a neighbor advertisement.
    #[inline]
    pub fn override_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_OVERRIDE != 0
    }

    /// The bytes after the 4-byte common header (message body).
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The bytes after the 8-byte header of an error or echo message (the quoted packet or
    /// the echo data); empty for shorter messages.
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(8..).unwrap_or(&[])
    }

    /// The neighbor discovery options (empty for non-ND messages).
    #[inline]
    pub fn ndisc_options(&self) -> &[u8] {
        match layout(self.msg_type()) {
            (_, Some(start)) => self.buffer.as_ref().get(start..).unwrap_or(&[]),
            (_, None) => &[],
        }
    }

    /// Iterate over the neighbor discovery options.
    pub fn ndisc_option_iter(&self) -> NdiscOptionIter<'_> {
        NdiscOptionIter::new(self.ndisc_options())
    }

    fn lladdr_option(&self, kind: u8) -> Option<MacAddr> {
        self.ndisc_option_iter()
            .map_while(|o| o.ok())
            .find_map(|o| match o.data {
                [a, b, c, d, e, f] if o.kind == kind => Some(MacAddr([*a, *b, *c, *d, *e, *f])),
                _ => None,
            })
    }

    /// The Ethernet address in the first source link-layer address option, if any.
    pub fn source_lladdr(&self) -> Option<MacAddr> {
        self.lladdr_option(OPT_SOURCE_LLADDR)
    }

    /// The Ethernet address in the first target link-layer address option, if any.
    pub fn target_lladdr(&self) -> Option<MacAddr> {
        self.lladdr_option(OPT_TARGET_LLADDR)
    }

    fn sum_with_pseudo_header(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u32 {
        let data = self.buffer.as_ref();
        // ICMPv6 messages live in IPv6 packets, so their length always fits in 32 bits.
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        checksum::pseudo_header_v6(src, dst, protocol::IPV6_ICMP, len) + checksum::sum(data)
    }

    /// Does the checksum over the pseudo-header and the whole message verify?
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::fold(self.sum_with_pseudo_header(src, dst)) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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

    /// Set the MTU of a packet-too-big message.
    #[inline]
    pub fn set_pkt_too_big_mtu(&mut self, mtu: u32) {
        be::set_u32(self.buffer.as_mut(), field::MTU, mtu);
    }

    /// Set the target address of a neighbor solicitation or advertisement.
    #[inline]
    pub fn set_target_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&addr.octets());
    }

    /// Zero the 4-byte reserved/flags word after the checksum.
    #[inline]
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }

    fn set_na_flag(&mut self, flag: u8, value: bool) {
        let b = &mut self.buffer.as_mut()[field::NA_FLAGS];
        *b = if value { *b | flag } else { *b & !flag };
    }

    /// Set the Router flag of a neighbor advertisement.
    #[inline]
    pub fn set_router_flag(&mut self, value: bool) {
        self.set_na_flag(NA_ROUTER, value);
    }

    /// Set the Solicited flag of a neighbor advertisement.
    #[inline]
    pub fn set_solicited_flag(&mut self, value: bool) {
        self.set_na_flag(NA_SOLICITED, value);
    }

    /// Set the Override flag of a neighbor advertisement.
    #[inline]
    pub fn set_override_flag(&mut self, value: bool) {
        self.set_na_flag(NA_OVERRIDE, value);
    }

    /// Write the whole flags/reserved word of a neighbor advertisement: the three flags and
    /// zero reserved bits.
    #[inline]
    pub fn set_na_flags(&mut self, router: bool, solicited: bool, override_: bool) {
        self.clear_reserved();
        let mut flags = 0;
        if router {
            flags |= NA_ROUTER;
        }
        if solicited {
            flags |= NA_SOLICITED;
        }
        if override_ {
            flags |= NA_OVERRIDE;
        }
        self.buffer.as_mut()[field::NA_FLAGS] = flags;
    }

    /// The bytes after the 8-byte header, writable (empty for shorter messages).
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut().get_mut(8..).unwrap_or(&mut [])
    }

    /// The neighbor discovery options area, writable (empty for non-ND messages).
    #[inline]
    pub fn ndisc_options_mut(&mut self) -> &mut [u8] {
        match layout(self.msg_type()) {
            (_, Some(start)) => self.buffer.as_mut().get_mut(start..).unwrap_or(&mut []),
            (_, None) => &mut [],
        }
    }

    /// Write a target link-layer address option (type 2, length 1) at the start of the
    /// options area. Set the message type first. Like every setter, this assumes the caller
    /// sized the buffer (24 + 8 bytes for an advertisement) and panics otherwise; use
    /// [`write_lladdr_option`] on [`Self::ndisc_options_mut`] for a checked write.
    pub fn set_target_lladdr_option(&mut self, addr: MacAddr) {
        lladdr_option(self.ndisc_options_mut(), OPT_TARGET_LLADDR, addr);
    }

    /// Write a source link-layer address option (type 1, length 1) at the start of the
    /// options area, like [`Self::set_target_lladdr_option`].
    pub fn set_source_lladdr_option(&mut self, addr: MacAddr) {
        lladdr_option(self.ndisc_options_mut(), OPT_SOURCE_LLADDR, addr);
    }

    /// Compute the checksum over the pseudo-header and the whole message and store it.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let sum = self.sum_with_pseudo_header(src, dst);
        self.set_checksum(checksum::finish(sum));
    }
}

/// Write an Ethernet link-layer address option of `kind` into the first 8 bytes of `buf`,
/// failing with `Truncated` if `buf` is shorter.
pub fn write_lladdr_option(buf: &mut [u8], kind: u8, addr: MacAddr) -> Result<()> {
    let option = buf
        .get_mut(..LLADDR_OPTION_LEN)
        .ok_or(WireError::Truncated)?;
    lladdr_option(option, kind, addr);
    Ok(())
}

fn lladdr_option(buf: &mut [u8], kind: u8, addr: MacAddr) {
    buf[0] = kind;
    buf[1] = 1;
    buf[2..LLADDR_OPTION_LEN].copy_from_slice(&addr.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv6Packet, UdpPacket};
    use proptest::prelude::*;

    /// scapy: `IPv6(src="2001:2::1", dst="ff02::1:ff00:fe", hlim=255)/
    /// ICMPv6ND_NS(tgt="2001:2::fe")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")`
    const IPV6_NS: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0xfe, 0x87, 0x00, 0x35, 0x9b, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xfe, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    /// scapy: `IPv6(src="2001:2::fe", dst="2001:2::1", hlim=255)/
    /// ICMPv6ND_NA(tgt="2001:2::fe", R=1, S=1, O=1)/
    /// ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:fe")`
    const IPV6_NA: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0x00, 0x30, 0x9f, 0xe0,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xfe, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0xfe,
    ];

    /// scapy: `IPv6(src="2001:2::fe", dst="2001:2::1", hlim=64)/ICMPv6PacketTooBig(mtu=1450)/
    /// IPv6(src="2001:2::1", dst="2001:2::9")/UDP(sport=5, dport=6)`
    const IPV6_PTB: [u8; 96] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x38, 0x3a, 0x40, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x45, 0xaf, 0x00,
        0x00, 0x05, 0xaa, 0x60, 0x00, 0x00, 0x00, 0x00, 0x08, 0x11, 0x40, 0x20, 0x01, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x05,
        0x00, 0x06, 0x00, 0x08, 0xbf, 0xc3,
    ];

    const GUEST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().expect("literal")
    }

    #[test]
    fn deconstruct_ns() {
        let ip = Ipv6Packet::new_checked(&IPV6_NS[..]).expect("valid IPv6");
        let p = Icmpv6Packet::new_checked(ip.payload()).expect("valid NS");
        assert_eq!(p.msg_type(), NEIGHBOR_SOLICIT);
        assert_eq!(p.code(), 0);
        assert_eq!(p.target_addr(), addr("2001:2::fe"));
        assert_eq!(p.source_lladdr(), Some(GUEST_MAC));
        assert_eq!(p.target_lladdr(), None);
        assert!(p.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        assert!(!p.verify_checksum(&ip.src_addr(), &addr("ff02::1:ff00:ff")));
        let options: Vec<_> = p.ndisc_option_iter().collect();
        assert_eq!(
            options,
            [Ok(NdiscOption {
                kind: OPT_SOURCE_LLADDR,
                data: &GUEST_MAC.0[..]
            })]
        );
    }

    #[test]
    fn deconstruct_na() {
        let ip = Ipv6Packet::new_checked(&IPV6_NA[..]).expect("valid IPv6");
        let p = Icmpv6Packet::new_checked(ip.payload()).expect("valid NA");
        assert_eq!(p.msg_type(), NEIGHBOR_ADVERT);
        assert!(p.router_flag() && p.solicited_flag() && p.override_flag());
        assert_eq!(p.target_addr(), addr("2001:2::fe"));
        assert_eq!(p.target_lladdr(), Some(GW_MAC));
        assert_eq!(p.source_lladdr(), None);
        assert!(p.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
    }

    #[test]
    fn construct_na() {
        // Build the advertisement the dataplane sends for its gateway address.
        let (src, dst) = (addr("2001:2::fe"), addr("2001:2::1"));
        let mut bytes = [0xa5u8; 32];
        let mut p = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        p.set_msg_type(NEIGHBOR_ADVERT);
        p.set_code(0);
        p.set_na_flags(true, true, true);
        p.set_target_addr(addr("2001:2::fe"));
        p.set_target_lladdr_option(GW_MAC);
        p.fill_checksum(&src, &dst);
        assert_eq!(bytes, IPV6_NA[40..]);

        let mut p = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        p.set_router_flag(false);
        assert!(!p.router_flag() && p.solicited_flag() && p.override_flag());
        p.set_solicited_flag(false);
        p.set_override_flag(false);
        p.set_router_flag(true);
        assert!(p.router_flag() && !p.solicited_flag() && !p.override_flag());
    }

    #[test]
    fn construct_ns() {
        let (src, dst) = (addr("2001:2::1"), addr("ff02::1:ff00:fe"));
        let mut bytes = [0xa5u8; 32];
        let mut p = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        p.set_msg_type(NEIGHBOR_SOLICIT);
        p.set_code(0);
        p.clear_reserved();
        p.set_target_addr(addr("2001:2::fe"));
        p.set_source_lladdr_option(GUEST_MAC);
        p.fill_checksum(&src, &dst);
        assert_eq!(bytes, IPV6_NS[40..]);
    }

    #[test]
    fn packet_too_big_round_trip() {
        let ip = Ipv6Packet::new_checked(&IPV6_PTB[..]).expect("valid IPv6");
        let p = Icmpv6Packet::new_checked(ip.payload()).expect("valid PTB");
        assert_eq!(p.msg_type(), PKT_TOO_BIG);
        assert_eq!(p.pkt_too_big_mtu(), 1450);
        assert!(p.ndisc_options().is_empty());
        assert!(p.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        let quoted = Ipv6Packet::new_checked(p.data()).expect("quoted header");
        assert_eq!(
            UdpPacket::new_checked(quoted.payload()).map(|u| u.dst_port()),
            Ok(6)
        );

        let mut bytes = [0xa5u8; 56];
        let mut p = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        p.set_msg_type(PKT_TOO_BIG);
        p.set_code(0);
        p.set_pkt_too_big_mtu(1450);
        p.data_mut().copy_from_slice(&IPV6_PTB[48..]);
        p.fill_checksum(&ip.src_addr(), &ip.dst_addr());
        assert_eq!(bytes, IPV6_PTB[40..]);
    }

    #[test]
    fn rejects_short_and_bad_options() {
        let msg = &IPV6_NS[40..];
        assert_eq!(
            Icmpv6Packet::new_checked(&msg[..3]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            Icmpv6Packet::new_checked(&msg[..23]),
            Err(WireError::Truncated)
        );
        assert!(
            Icmpv6Packet::new_checked(&msg[..24]).is_ok(),
            "options are optional"
        );
        // An option cut short.
        assert_eq!(
            Icmpv6Packet::new_checked(&msg[..30]),
            Err(WireError::Malformed)
        );
        // A zero-length option (RFC 4861 section 4.6: must be discarded).
        let mut b = [0u8; 32];
        b.copy_from_slice(msg);
        b[25] = 0;
        assert_eq!(Icmpv6Packet::new_checked(&b[..]), Err(WireError::Malformed));
        // A length that overruns the message.
        b[25] = 2;
        assert_eq!(Icmpv6Packet::new_checked(&b[..]), Err(WireError::Malformed));
        // Error messages need their 8-byte header.
        assert_eq!(
            Icmpv6Packet::new_checked(&IPV6_PTB[40..47]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn error_types() {
        assert!(is_error(DST_UNREACHABLE) && is_error(PKT_TOO_BIG) && is_error(PARAM_PROBLEM));
        assert!(!is_error(ECHO_REQUEST) && !is_error(NEIGHBOR_SOLICIT));
    }

    #[test]
    fn lladdr_option_needs_room() {
        let mut b = [0u8; 24];
        let mut p = Icmpv6Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(NEIGHBOR_ADVERT);
        let options = p.ndisc_options_mut();
        assert!(options.is_empty());
        assert_eq!(
            write_lladdr_option(options, OPT_TARGET_LLADDR, GW_MAC),
            Err(WireError::Truncated)
        );
        let mut b = [0u8; 40];
        b[0] = NEIGHBOR_ADVERT;
        let mut p = Icmpv6Packet::new_unchecked(&mut b[..]);
        assert_eq!(
            write_lladdr_option(p.ndisc_options_mut(), OPT_TARGET_LLADDR, GW_MAC),
            Ok(())
        );
        assert_eq!(&b[24..34], &[2, 1, 2, 0, 0, 0, 0, 0xfe, 0, 0]);
    }

    proptest! {
        #[test]
        fn checked_never_panics(
            mut data in proptest::collection::vec(any::<u8>(), 0..64),
            nd in any::<bool>(),
        ) {
            if nd && !data.is_empty() {
                // Make neighbor discovery messages common so the option parser is exercised.
                data[0] = [ROUTER_SOLICIT, ROUTER_ADVERT, NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT,
                           REDIRECT][usize::from(data[0]) % 5];
            }
            let (src, dst) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
            if let Ok(p) = Icmpv6Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.body(), p.data());
                let _ = (p.ndisc_options(), p.source_lladdr(), p.target_lladdr());
                let _ = p.verify_checksum(&src, &dst);
                let (min, _) = layout(p.msg_type());
                if min >= 8 {
                    let _ = (p.echo_ident(), p.echo_seq_no(), p.pkt_too_big_mtu());
                }
                if min >= 24 {
                    let _ = (p.target_addr(), p.router_flag(), p.solicited_flag());
                    let _ = p.override_flag();
                }
                for option in p.ndisc_option_iter() {
                    prop_assert!(option.is_ok());
                }
            }
        }

        #[test]
        fn na_fill_then_verify(
            target in any::<[u8; 16]>(),
            mac in any::<[u8; 6]>(),
            flags in any::<(bool, bool, bool)>(),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
        ) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut b = [0u8; NDISC_NS_NA_LEN + LLADDR_OPTION_LEN];
            let mut p = Icmpv6Packet::new_unchecked(&mut b[..]);
            p.set_msg_type(NEIGHBOR_ADVERT);
            p.set_na_flags(flags.0, flags.1, flags.2);
            p.set_target_addr(target.into());
            p.set_target_lladdr_option(MacAddr(mac));
            p.fill_checksum(&src, &dst);
            let p = Icmpv6Packet::new_checked(&b[..]).expect("emitted NA");
            prop_assert!(p.verify_checksum(&src, &dst));
            prop_assert_eq!(p.target_addr(), Ipv6Addr::from(target));
            prop_assert_eq!(p.target_lladdr(), Some(MacAddr(mac)));
            prop_assert_eq!((p.router_flag(), p.solicited_flag(), p.override_flag()), flags);
        }
    }
}
