//! The virtual network model: VNIs, MAC addresses, guests, gateways, mappings and the fabric.
//!
//! A leaf crate (serde and thiserror only), so the control channel and the mapping agent use
//! the model without linking the packet library; `xvpc-core` re-exports it as
//! `xvpc_core::model`.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from constructing model values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A VXLAN network identifier has 24 bits.
    #[error("VNI {0} does not fit in 24 bits (max 16777215)")]
    VniOutOfRange(u32),
    /// MAC addresses are written as six colon-separated hex octets.
    #[error("invalid MAC address {0:?}: expected six hex octets like 02:00:00:00:00:01")]
    BadMac(String),
}

/// A 24-bit VXLAN network identifier (RFC 7348 section 5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI.
    pub const MAX: u32 = 0x00FF_FFFF;
    /// VNI 0.
    pub const ZERO: Vni = Vni(0);

    /// A VNI, if `value` fits in 24 bits.
    pub const fn new(value: u32) -> Result<Self, ModelError> {
        if value > Self::MAX {
            Err(ModelError::VniOutOfRange(value))
        } else {
            Ok(Vni(value))
        }
    }

    /// The VNI as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Vni {
    type Error = ModelError;
    fn try_from(value: u32) -> Result<Self, ModelError> {
        Vni::new(value)
    }
}

impl From<Vni> for u32 {
    fn from(vni: Vni) -> u32 {
        vni.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six octets.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }
    /// Group bit set: broadcast or multicast.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
    /// Neither group nor all-zero.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != MacAddr::ZERO
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        let bad = || ModelError::BadMac(s.to_string());
        let mut octets = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for octet in octets.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(octets))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(MacAddr(<[u8; 6]>::deserialize(d)?))
        }
    }
}

/// What a mapping is looked up by: an overlay address inside one virtual network.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct MappingKey {
    /// The virtual network.
    pub vni: Vni,
    /// The overlay (tenant) address.
    pub overlay_ip: IpAddr,
}

/// Where an overlay address lives: `(VNI, overlay IP) → (underlay IP, overlay MAC)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Mapping {
    /// The virtual network.
    pub vni: Vni,
    /// The overlay (tenant) address.
    pub overlay_ip: IpAddr,
    /// The underlay address of the host that holds it (the VXLAN tunnel endpoint).
    pub underlay_ip: IpAddr,
    /// The MAC address of the overlay interface that holds it.
    pub overlay_mac: MacAddr,
}

impl Mapping {
    /// The lookup key of this mapping.
    pub fn key(&self) -> MappingKey {
        MappingKey {
            vni: self.vni,
            overlay_ip: self.overlay_ip,
        }
    }
}

/// A guest attached to this dataplane (the bare-metal tenant behind the guest port).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Guest {
    /// The virtual network the guest belongs to.
    pub vni: Vni,
    /// The guest's MAC address: the only source MAC accepted from it.
    pub mac: MacAddr,
    /// The guest's overlay IPv4 addresses: the only IPv4 sources accepted from it.
    pub ipv4: Vec<Ipv4Addr>,
    /// The guest's overlay IPv6 addresses: the only IPv6 sources accepted from it
    /// (a link-local source is accepted for neighbor discovery only).
    pub ipv6: Vec<Ipv6Addr>,
    /// The guest interface MTU (the largest inner IP packet it may send).
    pub mtu: u16,
}

impl Guest {
    /// Is `ip` one of the guest's own overlay addresses?
    pub fn owns(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.ipv4.contains(&v4),
            IpAddr::V6(v6) => self.ipv6.contains(&v6),
        }
    }
}

/// The virtual gateway of a virtual network, answered by the dataplane itself.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Gateway {
    /// The MAC the dataplane answers ARP/ND with for the gateway addresses.
    pub mac: MacAddr,
    /// The gateway's IPv4 address, if the network has IPv4.
    pub ipv4: Option<Ipv4Addr>,
    /// The gateway's IPv6 address, if the network has IPv6.
    pub ipv6: Option<Ipv6Addr>,
}

/// The underlay side: our tunnel endpoint addresses and how to reach the fabric.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Fabric {
    /// Our IPv4 underlay address (outer source of IPv4-underlay packets).
    pub underlay_ipv4: Option<Ipv4Addr>,
    /// Our IPv6 underlay address (outer source of IPv6-underlay packets).
    pub underlay_ipv6: Option<Ipv6Addr>,
    /// The MAC of our fabric port (outer source MAC).
    pub local_mac: MacAddr,
    /// The MAC of the fabric next hop (outer destination MAC).
    pub next_hop_mac: MacAddr,
    /// The VXLAN UDP destination port (IANA: 4789).
    pub vxlan_port: u16,
    /// The fabric MTU: the largest outer IP packet we may send.
    pub mtu: u16,
    /// Send IPv6-underlay packets with a zero UDP checksum (RFC 6935, under the constraints
    /// of RFC 6936; Linux `udp6zerocsumtx`). Off by default: RFC 8200 section 8.1 requires the
    /// checksum, and computing it reads the whole packet.
    #[serde(default)]
    pub udp6_zero_checksum_tx: bool,
    /// Accept IPv6-underlay packets with a zero UDP checksum (Linux `udp6zerocsumrx`). Off by
    /// default: they are dropped and counted `outer_zero_udp6_checksum` (RFC 6936 section 5,
    /// requirement 1). A non-zero checksum is always verified.
    #[serde(default)]
    pub udp6_zero_checksum_rx: bool,
}

impl Fabric {
    /// The IANA-assigned VXLAN port (RFC 7348 section 5).
    pub const VXLAN_PORT: u16 = 4789;

    /// Is `ip` one of our underlay addresses?
    pub fn is_local_underlay(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.underlay_ipv4 == Some(v4),
            IpAddr::V6(v6) => self.underlay_ipv6 == Some(v6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_is_24_bits() {
        assert_eq!(Vni::new(0xFF_FFFF).map(Vni::get), Ok(0xFF_FFFF));
        assert_eq!(
            Vni::new(0x100_0000),
            Err(ModelError::VniOutOfRange(0x100_0000))
        );
    }

    #[test]
    fn mac_parses_and_prints() {
        let mac: MacAddr = "02:00:5e:10:00:0a".parse().expect("valid mac");
        assert_eq!(mac.0, [0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a]);
        assert_eq!(mac.to_string(), "02:00:5e:10:00:0a");
        assert!(mac.is_unicast());
        assert!(MacAddr::BROADCAST.is_multicast());
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:0a:01",
            "zz:00:5e:10:00:0a",
            "2:00:5e:10:00:0a",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} should not parse");
        }
    }
}
