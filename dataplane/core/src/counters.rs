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

/// Defines [`Counters`] with its scalar fields, their names, [`Counters::add`] and
/// [`Counters::scalars`] from one table, so adding a counter cannot miss one of them.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $field:ident,)*) => {
        /// The counters of one worker. Plain integers: one writer (the worker); readers get
        /// copies.
        #[derive(Clone, PartialEq, Eq, Debug)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $field: u64,)*
            /// Drops by reason, indexed by `DropReason as usize`.
            pub drops: [u64; DropReason::COUNT],
        }

        impl Counters {
            /// Number of scalar (non-drop) counters.
            pub const SCALARS: usize = [$(stringify!($field),)*].len();

            /// Named scalar counters, in table order, for stats output. The name is the field's.
            pub fn scalars(&self) -> [(&'static str, u64); Counters::SCALARS] {
                [$((stringify!($field), self.$field),)*]
            }

            /// The scalar counters by name, writable, in the order of [`Self::scalars`].
            pub fn scalars_mut(&mut self) -> [(&'static str, &mut u64); Counters::SCALARS] {
                [$((stringify!($field), &mut self.$field),)*]
            }

            /// Add another worker's counters to these.
            pub fn add(&mut self, other: &Counters) {
                $(self.$field += other.$field;)*
                for (mine, theirs) in self.drops.iter_mut().zip(other.drops.iter()) {
                    *mine += theirs;
                }
            }
        }

        impl Default for Counters {
            fn default() -> Self {
                Counters {
                    $($field: 0,)*
                    drops: [0; DropReason::COUNT],
                }
            }
        }
    };
}

counters! {
    /// Frames received from the guest port.
    guest_rx_packets,
    /// Frames received from the fabric port.
    fabric_rx_packets,
    /// Frames encapsulated and sent to the fabric.
    egress_packets,
    /// Bytes (outer frame) sent to the fabric.
    egress_bytes,
    /// Frames decapsulated and delivered to the guest.
    ingress_packets,
    /// Bytes (inner frame) delivered to the guest.
    ingress_bytes,
    /// ARP replies generated for the guest.
    arp_replies,
    /// Neighbor advertisements generated for the guest.
    nd_replies,
    /// ICMP echo replies generated for pings to the gateway.
    gateway_echo_replies,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" sent to the guest.
    icmp_errors,
    /// Frames whose destination had no live mapping (the worker asks the agent once per key
    /// per pending period, and holds the frame while it waits).
    misses,
    /// Missed frames held by the worker until their mapping arrives.
    held_packets,
    /// Held frames processed once their mapping (or negative answer) arrived.
    held_released,
}

impl DropReason {
    /// Is this a reason of the ingress pipeline (a frame from the fabric)? The XDP tier
    /// counts the drops of both its programs in one map; the totals attribute each to the
    /// port it was received on by its reason.
    pub const fn is_ingress(self) -> bool {
        use DropReason::*;
        matches!(
            self,
            OuterMalformed
                | OuterBadIpChecksum
                | OuterFragment
                | OuterNotForUs
                | OuterNotVxlan
                | OuterBadUdpChecksum
                | OuterZeroUdp6Checksum
                | VxlanNoVni
                | UnknownVni
                | InnerMalformed
                | InnerWrongDestination
                | InnerNotIp
                | UnknownSource
                | SpoofedUnderlay
        )
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
        // A distinct value in every counter of each side, so a counter that is skipped,
        // overwritten or added to its neighbour gives a wrong sum.
        for (i, ((_, x), (_, y))) in a.scalars_mut().into_iter().zip(b.scalars_mut()).enumerate() {
            *x = i as u64 + 1;
            *y = 1000 * (i as u64 + 1);
        }
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            a.drops[*reason as usize] = i as u64 + 1;
            b.drops[*reason as usize] = 1000 * (i as u64 + 1);
        }
        a.add(&b);
        for (i, (name, value)) in a.scalars().into_iter().enumerate() {
            assert_eq!(value, 1001 * (i as u64 + 1), "{name}");
        }
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(a.drops_for(*reason), 1001 * (i as u64 + 1), "{reason:?}");
        }
        let n = DropReason::COUNT as u64;
        assert_eq!(a.total_drops(), 1001 * n * (n + 1) / 2);
    }

    #[test]
    fn scalars_name_their_fields() {
        let c = Counters {
            guest_rx_packets: 7,
            held_released: 9,
            ..Counters::default()
        };
        let scalars = c.scalars();
        assert_eq!(scalars.first(), Some(&("guest_rx_packets", 7)));
        assert_eq!(scalars.last(), Some(&("held_released", 9)));
        let mut names: Vec<_> = scalars.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            Counters::SCALARS,
            "scalar names must be unique"
        );
    }
}
