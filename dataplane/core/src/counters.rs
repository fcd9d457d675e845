//! Per-core packet counters. On the hot path an error is a [`DropReason`] and a counter
//! increment, never a string or a log line.

/// Defines [`DropReason`], its [`DropReason::ALL`] list and its stable names from one table,
/// so the three can never disagree.
macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Why a frame was dropped. Every drop in either pipeline has exactly one reason.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl DropReason {
            /// Number of reasons.
            pub const COUNT: usize = [$(stringify!($variant),)*].len();

            /// Every reason, in counter order.
            pub const ALL: [DropReason; DropReason::COUNT] = [$(DropReason::$variant,)*];

            /// A stable snake_case name for stats output.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    // --- egress (guest → fabric) ---
    /// The guest frame is too short or its headers are inconsistent.
    GuestMalformed => "guest_malformed",
    /// The guest sent an 802.1Q/802.1ad tagged frame; guests are untagged.
    GuestVlanTagged => "guest_vlan_tagged",
    /// The guest's source MAC is not its own.
    SpoofedSourceMac => "spoofed_source_mac",
    /// The guest's source IP (or ARP sender address) is not its own.
    SpoofedSourceIp => "spoofed_source_ip",
    /// Broadcast other than an ARP request.
    Broadcast => "broadcast",
    /// Multicast other than IPv6 neighbor solicitation.
    Multicast => "multicast",
    /// Neither IPv4, IPv6 nor ARP.
    UnsupportedEthertype => "unsupported_ethertype",
    /// An ARP reply or other non-request operation from the guest.
    ArpNotRequest => "arp_not_request",
    /// A gratuitous ARP or ARP probe: never leaves the guest port.
    ArpGratuitous => "arp_gratuitous",
    /// An ARP request for an address that is neither the gateway nor mapped.
    ArpUnknownTarget => "arp_unknown_target",
    /// A neighbor solicitation that breaks RFC 4861 (hop limit, code, DAD source).
    NdInvalid => "nd_invalid",
    /// A neighbor solicitation for an address that is neither the gateway nor mapped.
    NdUnknownTarget => "nd_unknown_target",
    /// A duplicate address detection probe (unspecified source): nothing to answer.
    NdDad => "nd_dad",
    /// The destination is the gateway itself, for a protocol it does not answer.
    ToGateway => "to_gateway",
    /// The destination is known not to exist (a negative table entry).
    NegativeEntry => "negative_entry",
    /// The destination has no mapping and the frame could not be held (hold queue full) or
    /// its hold expired before the mapping arrived.
    Miss => "miss",
    /// An IPv4 packet without DF that would exceed the fabric MTU: we never fragment.
    TooBigNoDf => "too_big_no_df",
    /// An oversized ICMP error: no ICMP error is sent about an ICMP error (RFC 1122).
    TooBigIcmpError => "too_big_icmp_error",
    /// The frame buffer has no room to prepend the outer headers or build the reply.
    NoHeadroom => "no_headroom",
    // --- ingress (fabric → guest) ---
    /// The outer headers are too short or inconsistent.
    OuterMalformed => "outer_malformed",
    /// The outer IPv4 header checksum is wrong.
    OuterBadIpChecksum => "outer_bad_ip_checksum",
    /// The outer packet is an IP fragment (VXLAN is never fragmented on our fabric).
    OuterFragment => "outer_fragment",
    /// The outer destination is not one of our underlay addresses.
    OuterNotForUs => "outer_not_for_us",
    /// Not UDP to our VXLAN port.
    OuterNotVxlan => "outer_not_vxlan",
    /// The outer UDP checksum is wrong.
    OuterBadUdpChecksum => "outer_bad_udp_checksum",
    /// The outer UDP checksum is zero over IPv6 and `udp6_zero_checksum_rx` is off (RFC 6936
    /// section 5: discarded by default, counted apart from corrupted packets).
    OuterZeroUdp6Checksum => "outer_zero_udp6_checksum",
    /// The VXLAN I flag is clear (RFC 7348: the VNI is not valid).
    VxlanNoVni => "vxlan_no_vni",
    /// The VNI is not the one of our guest.
    UnknownVni => "unknown_vni",
    /// The inner frame is too short or its headers are inconsistent.
    InnerMalformed => "inner_malformed",
    /// The inner frame is not IPv4 or IPv6 unicast to our guest's MAC and address.
    InnerWrongDestination => "inner_wrong_destination",
    /// The inner frame is not IPv4/IPv6 (ARP, tagged, other ethertypes).
    InnerNotIp => "inner_not_ip",
    /// No mapping for the inner source: we cannot prove who sent it.
    UnknownSource => "unknown_source",
    /// The inner source's mapping names another underlay address or MAC.
    SpoofedUnderlay => "spoofed_underlay",
    /// The mapping's underlay family has no local address in the pipeline's fabric: the
    /// table was compiled for another fabric (a caller's bug, never caused by a packet).
    NoLocalUnderlay => "no_local_underlay",
    // --- worker (I/O level) ---
    /// The transmit ring was full.
    TxRingFull => "tx_ring_full",
    /// The kernel handed us a descriptor outside our UMEM (never touched).
    InvalidDescriptor => "invalid_descriptor",
    /// A miss was not sent to the agent because the per-core miss limit was reached.
    MissRateLimited => "miss_rate_limited",
}

/// The counters of one worker. Plain integers: one writer (the worker); readers get copies.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Counters {
    /// Frames received from the guest port.
    pub guest_rx_packets: u64,
    /// Frames received from the fabric port.
    pub fabric_rx_packets: u64,
    /// Frames encapsulated and sent to the fabric.
    pub egress_packets: u64,
    /// Bytes (outer frame) sent to the fabric.
    pub egress_bytes: u64,
    /// Frames decapsulated and delivered to the guest.
    pub ingress_packets: u64,
    /// Bytes (inner frame) delivered to the guest.
    pub ingress_bytes: u64,
    /// ARP replies generated for the guest.
    pub arp_replies: u64,
    /// Neighbor advertisements generated for the guest.
    pub nd_replies: u64,
    /// ICMP echo replies generated for pings to the gateway.
    pub gateway_echo_replies: u64,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" sent to the guest.
    pub icmp_errors: u64,
    /// Frames whose destination had no live mapping (the worker asks the agent once per key
    /// per pending period, and holds the frame while it waits).
    pub misses: u64,
    /// Missed frames held by the worker until their mapping arrives.
    pub held_packets: u64,
    /// Held frames processed once their mapping (or negative answer) arrived.
    pub held_released: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            guest_rx_packets: 0,
            fabric_rx_packets: 0,
            egress_packets: 0,
            egress_bytes: 0,
            ingress_packets: 0,
            ingress_bytes: 0,
            arp_replies: 0,
            nd_replies: 0,
            gateway_echo_replies: 0,
            icmp_errors: 0,
            misses: 0,
            held_packets: 0,
            held_released: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Count one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Drops for one reason.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Named scalar counters, for stats output.
    pub fn scalars(&self) -> [(&'static str, u64); 13] {
        [
            ("guest_rx_packets", self.guest_rx_packets),
            ("fabric_rx_packets", self.fabric_rx_packets),
            ("egress_packets", self.egress_packets),
            ("egress_bytes", self.egress_bytes),
            ("ingress_packets", self.ingress_packets),
            ("ingress_bytes", self.ingress_bytes),
            ("arp_replies", self.arp_replies),
            ("nd_replies", self.nd_replies),
            ("gateway_echo_replies", self.gateway_echo_replies),
            ("icmp_errors", self.icmp_errors),
            ("misses", self.misses),
            ("held_packets", self.held_packets),
            ("held_released", self.held_released),
        ]
    }

    /// Add the counters of a pipeline run over a frame these counters have already seen
    /// received and missed (a held frame retried once its mapping may be there): only its
    /// outcome counts, not a second receive or miss.
    pub fn add_rerun(&mut self, rerun: &Counters) {
        self.add(&Counters {
            guest_rx_packets: 0,
            fabric_rx_packets: 0,
            misses: 0,
            ..rerun.clone()
        });
    }

    /// Add another worker's counters to these.
    pub fn add(&mut self, other: &Counters) {
        self.guest_rx_packets += other.guest_rx_packets;
        self.fabric_rx_packets += other.fabric_rx_packets;
        self.egress_packets += other.egress_packets;
        self.egress_bytes += other.egress_bytes;
        self.ingress_packets += other.ingress_packets;
        self.ingress_bytes += other.ingress_bytes;
        self.arp_replies += other.arp_replies;
        self.nd_replies += other.nd_replies;
        self.gateway_echo_replies += other.gateway_echo_replies;
        self.icmp_errors += other.icmp_errors;
        self.misses += other.misses;
        self.held_packets += other.held_packets;
        self.held_released += other.held_released;
        for (mine, theirs) in self.drops.iter_mut().zip(other.drops.iter()) {
            *mine += theirs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_in_order() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason:?} out of order");
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            DropReason::COUNT,
            "drop reason names must be unique"
        );
    }

    #[test]
    fn a_rerun_adds_its_outcome_only() {
        let mut total = Counters {
            guest_rx_packets: 1,
            misses: 1,
            ..Counters::default()
        };
        let rerun = Counters {
            guest_rx_packets: 1,
            egress_packets: 1,
            egress_bytes: 90,
            ..Counters::default()
        };
        total.add_rerun(&rerun);
        assert_eq!(
            total,
            Counters {
                guest_rx_packets: 1,
                misses: 1,
                egress_packets: 1,
                egress_bytes: 90,
                ..Counters::default()
            }
        );
    }

    #[test]
    fn add_sums_everything() {
        let mut a = Counters::default();
        let mut b = Counters::default();
        a.egress_packets = 2;
        b.egress_packets = 3;
        b.drop(DropReason::Miss);
        a.add(&b);
        assert_eq!(a.egress_packets, 5);
        assert_eq!(a.drops_for(DropReason::Miss), 1);
        assert_eq!(a.total_drops(), 1);
    }
}
