//! TCP headers (RFC 9293): enough to read flows and the MSS option.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::be;
use super::checksum;
use super::ip::protocol;
use super::{Result, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// The length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
const _: () = assert!(HEADER_LEN == 20);

const FLG_FIN: u8 = 0x01;
const FLG_SYN: u8 = 0x02;
const FLG_RST: u8 = 0x04;
const FLG_PSH: u8 = 0x08;
const FLG_ACK: u8 = 0x10;

/// Option kind: end of option list.
pub const OPT_END: u8 = 0;
/// Option kind: no-operation (padding).
pub const OPT_NOP: u8 = 1;
/// Option kind: maximum segment size.
pub const OPT_MSS: u8 = 2;

/// One TCP option (End and NOP are not yielded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOption<'a> {
    /// The option kind.
    pub kind: u8,
    /// The option body after the kind and length bytes.
    pub data: &'a [u8],
    /// The offset of the option's kind byte from the start of the options.
    pub offset: usize,
}

/// Iterates over TCP options; stops at End of Option List, yields one `Err(Malformed)` and
/// stops at a length below 2 or past the options.
#[derive(Debug, Clone)]
pub struct TcpOptionIter<'a> {
    options: &'a [u8],
    at: usize,
}

impl<'a> TcpOptionIter<'a> {
    /// Iterate over the options in `options`.
    pub fn new(options: &'a [u8]) -> Self {
        TcpOptionIter { options, at: 0 }
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.options.get(self.at..).unwrap_or(&[]);
            match rest {
                [] | [OPT_END, ..] => {
                    self.at = self.options.len();
                    return None;
                }
                [OPT_NOP, ..] => self.at += 1,
                [kind, len, ..] if usize::from(*len) >= 2 && usize::from(*len) <= rest.len() => {
                    let len = usize::from(*len);
                    let option = TcpOption {
                        kind: *kind,
                        data: &rest[2..len],
                        offset: self.at,
                    };
                    self.at += len;
                    return Some(Ok(option));
                }
                _ => {
                    self.at = self.options.len();
                    return Some(Err(WireError::Malformed));
                }
            }
        }
    }
}

/// A read/write view of a TCP segment. The buffer is the whole segment (the IP payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// The length of a TCP header without options.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wrap a buffer without checking it; getters may panic on a short or inconsistent one.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wrap a buffer, checking len ≥ 20 and 20 ≤ header_len ≤ len. Options are validated
    /// lazily by [`TcpOptionIter`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if header_len > len {
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

    /// The sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// The acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// The header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & FLG_FIN != 0
    }

    /// The SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & FLG_SYN != 0
    }

    /// The RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & FLG_RST != 0
    }

    /// The PSH flag.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & FLG_PSH != 0
    }

    /// The ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & FLG_ACK != 0
    }

    /// The receive window.
    #[inline]
    pub fn window(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::WINDOW)
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::URGENT)
    }

    /// The options bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Iterate over the options.
    pub fn option_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.options())
    }

    /// The value of the first well-formed MSS option, if any (options after a malformed one
    /// are not looked at).
    pub fn mss_option(&self) -> Option<u16> {
        self.option_iter()
            .map_while(|o| o.ok())
            .find_map(|o| match o.data {
                [hi, lo] if o.kind == OPT_MSS => Some(u16::from_be_bytes([*hi, *lo])),
                _ => None,
            })
    }

    /// The segment data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    fn segment_len(&self) -> u32 {
        // A segment lives in an IP packet, so its length fits in 32 bits.
        u32::try_from(self.buffer.as_ref().len()).unwrap_or(u32::MAX)
    }

    /// Does the checksum verify over the IPv4 pseudo-header and the whole buffer?
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let sum = checksum::pseudo_header_v4(src, dst, protocol::TCP, self.segment_len())
            + checksum::sum(self.buffer.as_ref());
        checksum::fold(sum) == 0xFFFF
    }

    /// Does the checksum verify over the IPv6 pseudo-header and the whole buffer?
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let sum = checksum::pseudo_header_v6(src, dst, protocol::TCP, self.segment_len())
            + checksum::sum(self.buffer.as_ref());
        checksum::fold(sum) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Set the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, seq: u32) {
        be::set_u32(self.buffer.as_mut(), field::SEQ_NUM, seq);
    }

    /// Set the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, ack: u32) {
        be::set_u32(self.buffer.as_mut(), field::ACK_NUM, ack);
    }

    /// Set the header length in bytes (a multiple of 4 between 20 and 60); the reserved bits
    /// are cleared.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((len / 4) as u8 & 0x0F) << 4;
    }

    /// Set the whole flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    fn set_flag(&mut self, flag: u8, value: bool) {
        let flags = self.flags();
        self.set_flags(if value { flags | flag } else { flags & !flag });
    }

    /// Set the FIN flag.
    #[inline]
    pub fn set_fin(&mut self, value: bool) {
        self.set_flag(FLG_FIN, value);
    }

    /// Set the SYN flag.
    #[inline]
    pub fn set_syn(&mut self, value: bool) {
        self.set_flag(FLG_SYN, value);
    }

    /// Set the RST flag.
    #[inline]
    pub fn set_rst(&mut self, value: bool) {
        self.set_flag(FLG_RST, value);
    }

    /// Set the PSH flag.
    #[inline]
    pub fn set_psh(&mut self, value: bool) {
        self.set_flag(FLG_PSH, value);
    }

    /// Set the ACK flag.
    #[inline]
    pub fn set_ack(&mut self, value: bool) {
        self.set_flag(FLG_ACK, value);
    }

    /// Set the receive window.
    #[inline]
    pub fn set_window(&mut self, window: u16) {
        be::set_u16(self.buffer.as_mut(), field::WINDOW, window);
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        be::set_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Set the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, urgent: u16) {
        be::set_u16(self.buffer.as_mut(), field::URGENT, urgent);
    }

    /// The options bytes, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The segment data, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Overwrite the value of an existing MSS option (MSS clamping) and update the checksum
    /// incrementally. Returns the old value, or `None` (nothing changed) if there is no
    /// well-formed MSS option.
    pub fn set_mss_option(&mut self, mss: u16) -> Option<u16> {
        let (offset, old) =
            self.option_iter()
                .map_while(|o| o.ok())
                .find_map(|o| match o.data {
                    [hi, lo] if o.kind == OPT_MSS => {
                        Some((o.offset, u16::from_be_bytes([*hi, *lo])))
                    }
                    _ => None,
                })?;
        let at = HEADER_LEN + offset + 2;
        be::set_u16(self.buffer.as_mut(), at, mss);
        // The checksum sums 16-bit words from the segment start: a value at an odd offset
        // is byte-swapped in the sum.
        let (old_word, new_word) = if at & 1 == 0 {
            (old, mss)
        } else {
            (old.swap_bytes(), mss.swap_bytes())
        };
        let checksum = checksum::update_u16(self.checksum(), old_word, new_word);
        self.set_checksum(checksum);
        Some(old)
    }

    /// Compute the checksum over the IPv4 pseudo-header and the whole buffer and store it.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = checksum::pseudo_header_v4(src, dst, protocol::TCP, self.segment_len())
            + checksum::sum(self.buffer.as_ref());
        self.set_checksum(checksum::finish(sum));
    }

    /// Compute the checksum over the IPv6 pseudo-header and the whole buffer and store it.
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let sum = checksum::pseudo_header_v6(src, dst, protocol::TCP, self.segment_len())
            + checksum::sum(self.buffer.as_ref());
        self.set_checksum(checksum::finish(sum));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv4Packet;
    use proptest::prelude::*;

    /// scapy: `IP(src="198.18.0.1", dst="198.18.0.2", id=0, flags="DF")/
    /// TCP(sport=40000, dport=80, seq=0x01020304, ack=0, flags="S", window=64240,
    /// options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None),
    /// ("WScale", 7)])`
    const IPV4_TCP_SYN: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xae, 0x94, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x12, 0x00, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00,
        0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x20, 0x50, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04,
        0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn deconstruct() {
        let ip = Ipv4Packet::new_checked(&IPV4_TCP_SYN[..]).expect("valid IPv4");
        let p = TcpPacket::new_checked(ip.payload()).expect("valid TCP");
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x01020304);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0x2050);
        assert_eq!(p.urgent(), 0);
        assert_eq!(p.options().len(), 20);
        assert!(p.payload().is_empty());
        assert_eq!(p.mss_option(), Some(1460));
        assert!(p.verify_checksum_v4(SRC, DST));
        let kinds: Vec<u8> = p
            .option_iter()
            .map(|o| o.expect("well-formed").kind)
            .collect();
        assert_eq!(kinds, [2, 4, 8, 3]);
    }

    #[test]
    fn construct() {
        let mut bytes = IPV4_TCP_SYN;
        bytes[20..40].fill(0xa5);
        let mut p = TcpPacket::new_unchecked(&mut bytes[20..]);
        p.set_src_port(40000);
        p.set_dst_port(80);
        p.set_seq_number(0x01020304);
        p.set_ack_number(0);
        p.set_header_len(40);
        p.set_flags(0);
        p.set_syn(true);
        p.set_window(64240);
        p.set_urgent(0);
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(bytes, IPV4_TCP_SYN);
    }

    #[test]
    fn flag_setters() {
        let mut b = [0u8; 20];
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.set_ack(true);
        p.set_fin(true);
        p.set_rst(true);
        p.set_psh(true);
        p.set_rst(false);
        assert_eq!(p.flags(), 0x19);
        assert!(p.ack() && p.fin() && p.psh() && !p.rst() && !p.syn());
    }

    #[test]
    fn mss_clamp_keeps_checksum_valid() {
        let mut bytes = IPV4_TCP_SYN;
        let mut p = TcpPacket::new_checked(&mut bytes[20..]).expect("valid TCP");
        assert_eq!(p.set_mss_option(1410), Some(1460));
        assert_eq!(p.mss_option(), Some(1410));
        assert!(p.verify_checksum_v4(SRC, DST));
        // At an odd offset too (a NOP before MSS).
        let mut seg = [0u8; 28];
        let mut p = TcpPacket::new_unchecked(&mut seg[..]);
        p.set_header_len(28);
        p.options_mut()
            .copy_from_slice(&[1, 2, 4, 0x05, 0xb4, 1, 1, 0]);
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(p.set_mss_option(1200), Some(1460));
        assert_eq!(p.mss_option(), Some(1200));
        assert!(p.verify_checksum_v4(SRC, DST));
        // No MSS option: nothing changes.
        let mut seg = [0u8; 20];
        let mut p = TcpPacket::new_unchecked(&mut seg[..]);
        p.set_header_len(20);
        assert_eq!(p.set_mss_option(1200), None);
        let mut expected = [0u8; 20];
        expected[12] = 0x50;
        assert_eq!(seg, expected);
    }

    #[test]
    fn rejects_bad_headers_and_options() {
        let seg = &IPV4_TCP_SYN[20..];
        assert_eq!(
            TcpPacket::new_checked(&seg[..19]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            TcpPacket::new_checked(&seg[..39]),
            Err(WireError::Truncated)
        );
        let mut b = [0u8; 40];
        b.copy_from_slice(seg);
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]), Err(WireError::BadHeaderLen));
        // A zero-length option stops the iterator with an error.
        let opts = [2u8, 0, 0, 0];
        let got: Vec<_> = TcpOptionIter::new(&opts).collect();
        assert_eq!(got, [Err(WireError::Malformed)]);
        // An option running past the end.
        let opts = [1u8, 2, 4, 5];
        let got: Vec<_> = TcpOptionIter::new(&opts).collect();
        assert_eq!(got, [Err(WireError::Malformed)]);
        // End of list stops iteration even with bytes after it.
        let opts = [0u8, 2, 4, 5, 0xb4];
        assert_eq!(TcpOptionIter::new(&opts).count(), 0);
    }

    proptest! {
        #[test]
        fn checked_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if data.len() > 12 {
                // Keep the data offset plausible most of the time.
                data[12] = ((5 + data[12] % 11) << 4) | (data[12] & 0x0F);
            }
            if let Ok(p) = TcpPacket::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
                let _ = (p.header_len(), p.syn(), p.ack(), p.fin(), p.rst(), p.window());
                let _ = (p.checksum(), p.urgent(), p.options(), p.payload(), p.mss_option());
                let _ = p.verify_checksum_v4(SRC, DST);
                for o in p.option_iter().map_while(|o| o.ok()) {
                    prop_assert!(HEADER_LEN + o.offset + 2 + o.data.len() <= p.header_len());
                }
                let mut copy = data.clone();
                let mut q = TcpPacket::new_checked(&mut copy[..]).expect("same bytes");
                q.fill_checksum_v4(SRC, DST);
                if q.set_mss_option(536).is_some() {
                    prop_assert!(q.verify_checksum_v4(SRC, DST));
                }
            }
        }

        #[test]
        fn fill_then_verify(
            mut data in proptest::collection::vec(any::<u8>(), 20..120),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
        ) {
            data[12] = 0x50;
            let (s6, d6) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut p = TcpPacket::new_checked(&mut data[..]).expect("20-byte header");
            p.fill_checksum_v6(&s6, &d6);
            prop_assert!(p.verify_checksum_v6(&s6, &d6));
            p.fill_checksum_v4(SRC, DST);
            prop_assert!(p.verify_checksum_v4(SRC, DST));
        }
    }
}
