//! ARP for Ethernet and IPv4 (RFC 826), the only combination the dataplane answers.

use std::net::Ipv4Addr;

use super::be;
use super::{Result, WireError};
use crate::model::MacAddr;

mod field {
    use core::ops::Range;

    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// The length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::TPA.end;
const _: () = assert!(HEADER_LEN == 28);

/// Hardware type Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4 (its EtherType).
const PTYPE_IPV4: u16 = 0x0800;

/// ARP operation codes, as `u16` consts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpOperation;

impl ArpOperation {
    /// Who has `target_ip`?
    pub const REQUEST: u16 = 1;
    /// `sender_ip` is at `sender_hw_addr`.
    pub const REPLY: u16 = 2;
}

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// The length of an Ethernet/IPv4 ARP packet.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wrap a buffer without checking it; getters panic if it is shorter than 28 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wrap a buffer, checking its length (`Truncated`) and that it is Ethernet/IPv4 ARP
    /// (`Unsupported` otherwise).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check the length and the hardware/protocol types and lengths.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != PTYPE_IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(WireError::Unsupported);
        }
        Ok(())
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The hardware type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::HTYPE)
    }

    /// The protocol type (0x0800 for IPv4).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::PTYPE)
    }

    /// The hardware address length (6).
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// The protocol address length (4).
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation (see [`ArpOperation`]).
    #[inline]
    pub fn operation(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::OPER)
    }

    /// The sender hardware address.
    #[inline]
    pub fn sender_hw_addr(&self) -> MacAddr {
        MacAddr(be::array(self.buffer.as_ref(), field::SHA))
    }

    /// The sender protocol address.
    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::array::<4>(self.buffer.as_ref(), field::SPA))
    }

    /// The target hardware address.
    #[inline]
    pub fn target_hw_addr(&self) -> MacAddr {
        MacAddr(be::array(self.buffer.as_ref(), field::THA))
    }

    /// The target protocol address.
    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::array::<4>(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Write the fixed Ethernet/IPv4 hardware and protocol types and lengths.
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        let buf = self.buffer.as_mut();
        be::set_u16(buf, field::HTYPE, HTYPE_ETHERNET);
        be::set_u16(buf, field::PTYPE, PTYPE_IPV4);
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
    }

    /// Set the operation.
    #[inline]
    pub fn set_operation(&mut self, operation: u16) {
        be::set_u16(self.buffer.as_mut(), field::OPER, operation);
    }

    /// Set the sender hardware address.
    #[inline]
    pub fn set_sender_hw_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Set the sender protocol address.
    #[inline]
    pub fn set_sender_ip(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Set the target hardware address.
    #[inline]
    pub fn set_target_hw_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Set the target protocol address.
    #[inline]
    pub fn set_target_ip(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

/// The fields of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// The operation (see [`ArpOperation`]); any value is carried, the caller decides.
    pub operation: u16,
    /// The sender hardware address.
    pub sender_hw_addr: MacAddr,
    /// The sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// The target hardware address.
    pub target_hw_addr: MacAddr,
    /// The target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Read a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(ArpRepr {
            operation: packet.operation(),
            sender_hw_addr: packet.sender_hw_addr(),
            sender_ip: packet.sender_ip(),
            target_hw_addr: packet.target_hw_addr(),
            target_ip: packet.target_ip(),
        })
    }

    /// The packet length (28 bytes).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the whole packet into a buffer of at least 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_ethernet_ipv4();
        packet.set_operation(self.operation);
        packet.set_sender_hw_addr(self.sender_hw_addr);
        packet.set_sender_ip(self.sender_ip);
        packet.set_target_hw_addr(self.target_hw_addr);
        packet.set_target_ip(self.target_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// scapy: `ARP(op=2, hwsrc="02:00:00:00:00:fe", psrc="198.18.0.254",
    /// hwdst="02:00:00:00:00:01", pdst="198.18.0.1")`
    const ARP_REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0xfe, 0xc6,
        0x12, 0x00, 0xfe, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x01,
    ];

    /// The ARP part of scapy's `ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="198.18.0.1",
    /// pdst="198.18.0.254")`.
    const ARP_REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc6,
        0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0xfe,
    ];

    const GUEST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);
    const GUEST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const GW_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);

    fn reply() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::REPLY,
            sender_hw_addr: GW_MAC,
            sender_ip: GW_IP,
            target_hw_addr: GUEST_MAC,
            target_ip: GUEST_IP,
        }
    }

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&ARP_REQUEST[..]).expect("valid ARP");
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!(p.operation(), ArpOperation::REQUEST);
        assert_eq!(p.sender_hw_addr(), GUEST_MAC);
        assert_eq!(p.sender_ip(), GUEST_IP);
        assert_eq!(p.target_hw_addr(), MacAddr::ZERO);
        assert_eq!(p.target_ip(), GW_IP);
        let p = ArpPacket::new_checked(&ARP_REPLY[..]).expect("valid ARP");
        assert_eq!(ArpRepr::parse(&p), Ok(reply()));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        let repr = reply();
        assert_eq!(repr.buffer_len(), 28);
        repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, ARP_REPLY);
    }

    #[test]
    fn rejects_other_arp_flavours() {
        let check = |bytes: &[u8]| ArpPacket::new_checked(bytes).map(|_| ());
        assert_eq!(check(&ARP_REPLY[..27]), Err(WireError::Truncated));
        for (at, value) in [(1, 6u8), (3, 0xdd), (4, 8), (5, 16)] {
            let mut b = ARP_REPLY;
            b[at] = value;
            assert_eq!(
                check(&b),
                Err(WireError::Unsupported),
                "byte {at} = {value}"
            );
        }
    }

    proptest! {
        #[test]
        fn checked_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if data.len() >= 6 && data[0] & 1 == 0 {
                // Half the cases get a valid fixed prefix so the getters are reached.
                data[..6].copy_from_slice(&ARP_REPLY[..6]);
            }
            if let Ok(p) = ArpPacket::new_checked(&data[..]) {
                let _ = (p.operation(), p.sender_hw_addr(), p.sender_ip());
                let _ = (p.target_hw_addr(), p.target_ip());
                let repr = ArpRepr::parse(&p).expect("checked packet parses");
                let mut out = data.clone();
                repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
                prop_assert_eq!(out, data);
            }
        }

        #[test]
        fn emit_parse_round_trip(
            operation in any::<u16>(),
            sha in any::<[u8; 6]>(),
            spa in any::<[u8; 4]>(),
            tha in any::<[u8; 6]>(),
            tpa in any::<[u8; 4]>(),
        ) {
            let repr = ArpRepr {
                operation,
                sender_hw_addr: MacAddr(sha),
                sender_ip: spa.into(),
                target_hw_addr: MacAddr(tha),
                target_ip: tpa.into(),
            };
            let mut buf = [0u8; HEADER_LEN];
            repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
            let p = ArpPacket::new_checked(&buf[..]).expect("emitted packet");
            prop_assert_eq!(ArpRepr::parse(&p), Ok(repr));
        }
    }
}
