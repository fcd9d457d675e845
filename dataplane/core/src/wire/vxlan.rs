//! VXLAN headers (RFC 7348 section 5).

use super::{Result, WireError};
use crate::model::Vni;

mod field {
    use core::ops::Range;

    pub const FLAGS: usize = 0;
    pub const RESERVED1: Range<usize> = 1..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED2: usize = 7;
    pub const PAYLOAD: usize = 8;
}

/// The length of a VXLAN header.
pub const HEADER_LEN: usize = field::PAYLOAD;
const _: () = assert!(HEADER_LEN == 8);

/// The I flag: the VNI field is valid (RFC 7348: must be set).
pub const FLAG_I: u8 = 0x08;

/// A read/write view of a VXLAN header and the inner Ethernet frame after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// The length of a VXLAN header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wrap a buffer without checking it; getters panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Wrap a buffer, checking that it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the buffer holds a whole header.
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

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Is the I flag (valid VNI) set?
    #[inline]
    pub fn has_vni(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VNI field.
    #[inline]
    pub fn vni(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The inner frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Set the flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Set the VNI field (the low 24 bits of `vni`).
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = vni.to_be_bytes();
        self.buffer.as_mut()[field::VNI].copy_from_slice(&b[1..4]);
    }

    /// Zero both reserved fields.
    #[inline]
    pub fn clear_reserved(&mut self) {
        let buf = self.buffer.as_mut();
        buf[field::RESERVED1].fill(0);
        buf[field::RESERVED2] = 0;
    }

    /// The inner frame, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The one field of a VXLAN header that carries meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    /// The virtual network.
    pub vni: Vni,
}

impl VxlanRepr {
    /// Read a checked header. Fails with `Malformed` if the I flag is clear; other flag and
    /// reserved bits are ignored on receipt (RFC 7348 section 5).
    pub fn parse<T: AsRef<[u8]>>(packet: &VxlanPacket<T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.has_vni() {
            return Err(WireError::Malformed);
        }
        // A 24-bit field always fits a Vni.
        let vni = Vni::new(packet.vni()).map_err(|_| WireError::Malformed)?;
        Ok(VxlanRepr { vni })
    }

    /// The header length (8 bytes).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write flags 0x08, the VNI and zero reserved fields into a buffer of at least 8 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VxlanPacket<T>) {
        packet.clear_reserved();
        packet.set_flags(FLAG_I);
        packet.set_vni(self.vni.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EtherType, EthernetFrame, Ipv4Packet, UdpPacket};
    use proptest::prelude::*;

    /// scapy: `Ether(dst="02:00:00:00:01:02", src="02:00:00:00:01:01")/
    /// IP(src="198.18.0.1", dst="198.18.0.2", ttl=64, id=0, flags="DF")/
    /// UDP(sport=49152, dport=4789, chksum=0)/VXLAN(vni=0x123456, flags=0x08)/
    /// Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")/
    /// IP(src="198.19.0.1", dst="198.19.0.2", id=1)/ICMP(id=1, seq=1)`
    const VXLAN_FRAME: [u8; 92] = [
        0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x4e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xae, 0x77, 0xc6, 0x12, 0x00, 0x01,
        0xc6, 0x12, 0x00, 0x02, 0xc0, 0x00, 0x12, 0xb5, 0x00, 0x3a, 0x00, 0x00, 0x08, 0x00, 0x00,
        0x00, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0xee,
        0xb6, 0xc6, 0x13, 0x00, 0x01, 0xc6, 0x13, 0x00, 0x02, 0x08, 0x00, 0xf7, 0xfd, 0x00, 0x01,
        0x00, 0x01,
    ];
    /// Outer Ethernet + IPv4 + UDP.
    const VXLAN_OFFSET: usize = 14 + 20 + 8;

    fn vni() -> Vni {
        Vni::new(0x123456).expect("24-bit literal")
    }

    #[test]
    fn deconstruct() {
        // Walk the whole encapsulated frame the way the ingress path will.
        let eth = EthernetFrame::new_checked(&VXLAN_FRAME[..]).expect("valid frame");
        assert_eq!(eth.ethertype(), EtherType::IPV4);
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("valid outer IPv4");
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).expect("valid outer UDP");
        assert_eq!(udp.dst_port(), 4789);
        let vx = VxlanPacket::new_checked(udp.payload()).expect("valid VXLAN");
        assert_eq!(vx.flags(), 0x08);
        assert!(vx.has_vni());
        assert_eq!(vx.vni(), 0x123456);
        assert_eq!(VxlanRepr::parse(&vx), Ok(VxlanRepr { vni: vni() }));
        let inner = EthernetFrame::new_checked(vx.payload()).expect("valid inner frame");
        assert_eq!(inner.ethertype(), EtherType::IPV4);
        assert_eq!(vx.payload(), &VXLAN_FRAME[VXLAN_OFFSET + 8..]);
    }

    #[test]
    fn construct() {
        let mut bytes = VXLAN_FRAME;
        bytes[VXLAN_OFFSET..VXLAN_OFFSET + 8].fill(0xa5);
        let mut vx = VxlanPacket::new_unchecked(&mut bytes[VXLAN_OFFSET..]);
        let repr = VxlanRepr { vni: vni() };
        assert_eq!(repr.buffer_len(), 8);
        repr.emit(&mut vx);
        assert_eq!(bytes, VXLAN_FRAME);
    }

    #[test]
    fn i_flag_required_reserved_ignored() {
        let mut hdr = [0x08, 0xff, 0xff, 0xff, 0x00, 0x00, 0x64, 0xff];
        let vx = VxlanPacket::new_checked(&hdr[..]).expect("8 bytes");
        assert_eq!(VxlanRepr::parse(&vx).map(|r| r.vni.get()), Ok(100));
        hdr[0] = 0xf7; // every flag but I
        let vx = VxlanPacket::new_checked(&hdr[..]).expect("8 bytes");
        assert_eq!(VxlanRepr::parse(&vx), Err(WireError::Malformed));
        assert_eq!(
            VxlanPacket::new_checked(&hdr[..7]),
            Err(WireError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn checked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(vx) = VxlanPacket::new_checked(&data[..]) {
                let _ = (vx.flags(), vx.has_vni(), vx.payload());
                prop_assert!(vx.vni() <= Vni::MAX);
                prop_assert_eq!(VxlanRepr::parse(&vx).is_ok(), vx.has_vni());
            }
        }

        #[test]
        fn emit_parse_round_trip(raw in 0u32..=Vni::MAX, junk in any::<[u8; 8]>()) {
            let repr = VxlanRepr { vni: Vni::new(raw).expect("in range") };
            let mut buf = junk;
            repr.emit(&mut VxlanPacket::new_unchecked(&mut buf[..]));
            prop_assert_eq!(buf[0], 0x08);
            prop_assert_eq!(&buf[1..4], &[0, 0, 0]);
            prop_assert_eq!(buf[7], 0);
            let vx = VxlanPacket::new_checked(&buf[..]).expect("emitted header");
            prop_assert_eq!(VxlanRepr::parse(&vx), Ok(repr));
        }
    }
}
