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
