//! IP protocol numbers shared by IPv4 (`protocol`) and IPv6 (`next_header`).

/// IANA "Assigned Internet Protocol Numbers" used by the dataplane, as plain `u8` consts.
pub mod protocol {
    /// IPv6 Hop-by-Hop Options extension header.
    pub const HOPOPT: u8 = 0;
    /// Internet Control Message Protocol (IPv4).
    pub const ICMP: u8 = 1;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP.
    pub const IPV6: u8 = 41;
    /// IPv6 Routing extension header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment extension header.
    pub const IPV6_FRAG: u8 = 44;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const IPV6_ICMP: u8 = 58;
    /// IPv6 "No Next Header".
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options extension header.
    pub const IPV6_OPTS: u8 = 60;
    /// Stream Control Transmission Protocol.
    pub const SCTP: u8 = 132;
}

/// The same protocol numbers as associated consts, for `IpProtocol::UDP`-style paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpProtocol;

impl IpProtocol {
    /// IPv6 Hop-by-Hop Options extension header.
    pub const HOPOPT: u8 = protocol::HOPOPT;
    /// Internet Control Message Protocol (IPv4).
    pub const ICMP: u8 = protocol::ICMP;
    /// Transmission Control Protocol.
    pub const TCP: u8 = protocol::TCP;
    /// User Datagram Protocol.
    pub const UDP: u8 = protocol::UDP;
    /// IPv6 encapsulated in IP.
    pub const IPV6: u8 = protocol::IPV6;
    /// IPv6 Routing extension header.
    pub const IPV6_ROUTE: u8 = protocol::IPV6_ROUTE;
    /// IPv6 Fragment extension header.
    pub const IPV6_FRAG: u8 = protocol::IPV6_FRAG;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = protocol::ESP;
    /// Authentication Header.
    pub const AH: u8 = protocol::AH;
    /// ICMP for IPv6.
    pub const IPV6_ICMP: u8 = protocol::IPV6_ICMP;
    /// IPv6 "No Next Header".
    pub const IPV6_NONXT: u8 = protocol::IPV6_NONXT;
    /// IPv6 Destination Options extension header.
    pub const IPV6_OPTS: u8 = protocol::IPV6_OPTS;
    /// Stream Control Transmission Protocol.
    pub const SCTP: u8 = protocol::SCTP;
}
