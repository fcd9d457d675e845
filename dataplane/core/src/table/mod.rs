//! The per-core mapping table: `(VNI, overlay IP)` → a compiled entry (overlay MAC, underlay
//! address, its precomputed part of the outer checksum), key and entry in one cache line, so
//! the worker's per-packet work is one slot read and a few fixed-offset header writes.
//!
//! One writer: entries are compiled on the control path ([`Compiler`]), sent to each worker as
//! a [`TableUpdate`], and applied by the worker between batches. A full sync arrives as a whole
//! new table that the worker swaps in at once; the old one goes back to be freed off the fast
//! path.
//!
//! A worker's table never grows: growing allocates and rehashes the whole table, a pause on
//! the fast path. Workers get [`MappingTable::fixed`] tables, with room for a number of live
//! mappings (which the control path keeps them under, sending a bigger table when it must)
//! and a reserve for the negative and pending entries that misses add, which are refused
//! (and counted) once it is used up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod slots;

use slots::{SlotKey, SlotTable};

use crate::model::{Fabric, MacAddr, Mapping, MappingKey, Vni};
use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ip::IpProtocol;
use crate::wire::udp::UdpPacket;

/// Outer Ethernet + IPv4 + UDP + VXLAN.
pub const OUTER_V4_LEN: usize = 14 + 20 + 8 + 8;
/// Outer Ethernet + IPv6 + UDP + VXLAN.
pub const OUTER_V6_LEN: usize = 14 + 40 + 8 + 8;
/// The most headroom encapsulation needs.
pub const MAX_OUTER_LEN: usize = OUTER_V6_LEN;
const _: () = assert!(OUTER_V4_LEN == 50 && OUTER_V6_LEN == 70);

/// TTL / hop limit of the outer header.
const OUTER_TTL: u8 = 64;

/// Errors from compiling a mapping for this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The mapping's underlay is IPv4 (or IPv6) but this host has no underlay address of
    /// that family to send from.
    #[error("mapping {key:?} has underlay {underlay}, but the fabric has no local {family} underlay address")]
    NoLocalUnderlay {
        /// The mapping's key.
        key: MappingKey,
        /// Its underlay address.
        underlay: IpAddr,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The overlay MAC is not a unicast address.
    #[error("mapping {key:?} has a non-unicast overlay MAC {mac}")]
    BadOverlayMac {
        /// The mapping's key.
        key: MappingKey,
        /// The offending MAC.
        mac: MacAddr,
    },
    /// The underlay address is not a unicast address.
    #[error("mapping {key:?} has a non-unicast underlay address {underlay}")]
    BadUnderlay {
        /// The mapping's key.
        key: MappingKey,
        /// The offending address.
        underlay: IpAddr,
    },
}

/// A mapping compiled for this host: what a packet to or from it needs, small enough that a
/// table slot (key and entry) is one cache line.
///
/// Egress writes the outer headers field by field from this entry, the worker's [`Fabric`]
/// (MACs, local underlay address, VXLAN port) and the guest's VNI; the entry holds what varies
/// per mapping, including its part of the outer checksum, precomputed. A 70-byte prebuilt
/// template per entry made every slot two cache lines and a 1,000,000-mapping table 256 MB;
/// writing ~50 bytes of fields costs less than the extra cache miss. `repr(C)` keeps what
/// ingress reads (MAC, underlay) first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct CompiledEntry {
    /// Inner destination MAC to write.
    pub overlay_mac: MacAddr,
    /// The remote tunnel endpoint: the outer destination, checked on ingress.
    pub underlay_ip: IpAddr,
    /// Ones'-complement sum of the fixed part of the outer headers: over IPv4, the IPv4 header
    /// without its total length; over IPv6, the UDP pseudo-header without its length.
    outer_sum: u32,
}

impl CompiledEntry {
    /// Outer header length: [`OUTER_V4_LEN`] or [`OUTER_V6_LEN`].
    #[inline]
    pub fn outer_len(&self) -> usize {
        match self.underlay_ip {
            IpAddr::V4(_) => OUTER_V4_LEN,
            IpAddr::V6(_) => OUTER_V6_LEN,
        }
    }

    /// Does `fabric` have a local address of this entry's underlay family to send from?
    /// (Always, if the entry was compiled for it.)
    #[inline]
    pub fn has_source_in(&self, fabric: &Fabric) -> bool {
        match self.underlay_ip {
            IpAddr::V4(_) => fabric.underlay_ipv4.is_some(),
            IpAddr::V6(_) => fabric.underlay_ipv6.is_some(),
        }
    }

    /// Write the outer Ethernet + IP + UDP + VXLAN headers (VNI `vni`, UDP source port
    /// `src_port`) into the first [`Self::outer_len`] bytes of `packet`, which are followed by
    /// `inner_len` bytes of inner frame already in place. `fabric` must be the one the entry
    /// was compiled for; false (nothing written) if it has no local address of the
    /// underlay's family or `packet` is too short. The caller checked the result against the
    /// fabric MTU (≤ 65535).
    #[inline]
    pub fn write_outer(
        &self,
        fabric: &Fabric,
        vni: Vni,
        packet: &mut [u8],
        inner_len: usize,
        src_port: u16,
    ) -> bool {
        let udp_len = (inner_len + 16) as u16;
        match (self.underlay_ip, fabric.underlay_ipv4, fabric.underlay_ipv6) {
            (IpAddr::V4(dst), Some(src), _) => {
                let Some(outer) = packet.first_chunk_mut::<OUTER_V4_LEN>() else {
                    return false;
                };
                let total_len = udp_len + 20;
                let checksum = checksum::finish(self.outer_sum + u32::from(total_len));
                let (eth, rest) = outer.split_at_mut(14);
                write_ethernet(eth, fabric, EtherType::IPV4);
                let (ip, udp_vxlan) = rest.split_at_mut(20);
                ip.copy_from_slice(&outer_ipv4_header(total_len, checksum, src, dst));
                write_udp_vxlan(udp_vxlan, fabric, vni, udp_len, src_port);
                true
            }
            (IpAddr::V6(dst), _, Some(src)) => {
                let Some(packet) = packet.get_mut(..OUTER_V6_LEN + inner_len) else {
                    return false;
                };
                let Some(outer) = packet.first_chunk_mut::<OUTER_V6_LEN>() else {
                    return false;
                };
                let (eth, rest) = outer.split_at_mut(14);
                write_ethernet(eth, fabric, EtherType::IPV6);
                let (ip, udp_vxlan) = rest.split_at_mut(40);
                ip[..8].copy_from_slice(&[
                    0x60,
                    0,
                    0,
                    0,
                    (udp_len >> 8) as u8,
                    udp_len as u8,
                    IpProtocol::UDP,
                    OUTER_TTL,
                ]);
                ip[8..24].copy_from_slice(&src.octets());
                ip[24..40].copy_from_slice(&dst.octets());
                write_udp_vxlan(udp_vxlan, fabric, vni, udp_len, src_port);
                if fabric.udp6_zero_checksum_tx {
                    // Written as 0 already: RFC 6935 lets a tunnel opt out of reading the
                    // whole packet.
                    return true;
                }
                // UDP header (checksum 0 so far, adding nothing), VXLAN and the inner frame:
                // one contiguous sum.
                let udp = &mut packet[OUTER_V6_LEN - 16..];
                let sum = self.outer_sum + u32::from(udp_len) + checksum::sum(udp);
                let checksum = match checksum::finish(sum) {
                    0 => 0xffff,
                    c => c,
                };
                UdpPacket::new_unchecked(udp).set_checksum(checksum);
                true
            }
            _ => false,
        }
    }
}

/// The outer IPv4 header, from one place for both its uses: the compiler sums it with length
/// and checksum 0, egress writes it with both. No options, DSCP/ECN 0, identification 0, DF
/// (never fragmented on the fabric), our TTL, UDP.
#[inline(always)]
fn outer_ipv4_header(total_len: u16, checksum: u16, src: Ipv4Addr, dst: Ipv4Addr) -> [u8; 20] {
    let ([l0, l1], [c0, c1]) = (total_len.to_be_bytes(), checksum.to_be_bytes());
    let ([s0, s1, s2, s3], [d0, d1, d2, d3]) = (src.octets(), dst.octets());
    [
        0x45,
        0,
        l0,
        l1,
        0,
        0,
        0x40,
        0,
        OUTER_TTL,
        IpProtocol::UDP,
        c0,
        c1,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ]
}

#[inline(always)]
fn write_ethernet(eth: &mut [u8], fabric: &Fabric, ethertype: EtherType) {
    let mut eth = EthernetFrame::new_unchecked(eth);
    eth.set_dst_addr(fabric.next_hop_mac);
    eth.set_src_addr(fabric.local_mac);
    eth.set_ethertype(ethertype);
}

/// UDP (checksum 0) and VXLAN (I flag, `vni`) headers: 16 bytes.
#[inline(always)]
fn write_udp_vxlan(out: &mut [u8], fabric: &Fabric, vni: Vni, udp_len: u16, src_port: u16) {
    let (port, vni) = (fabric.vxlan_port, vni.get());
    out[..16].copy_from_slice(&[
        (src_port >> 8) as u8,
        src_port as u8,
        (port >> 8) as u8,
        port as u8,
        (udp_len >> 8) as u8,
        udp_len as u8,
        0,
        0,
        0x08, // I flag: the VNI is valid
        0,
        0,
        0,
        (vni >> 16) as u8,
        (vni >> 8) as u8,
        vni as u8,
        0,
    ]);
}

/// What a table slot holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Entry {
    /// A live mapping.
    Mapped(CompiledEntry),
    /// The mapping service said the key does not exist; don't ask again until then.
    Negative {
        /// Worker clock (ms) at which the entry expires.
        expires_at_ms: u64,
    },
    /// The agent has been asked; don't ask again until then.
    Pending {
        /// Worker clock (ms) at which the request is considered lost.
        expires_at_ms: u64,
    },
}

/// The result of a lookup at a given time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lookup<'a> {
    /// A live mapping.
    Hit(&'a CompiledEntry),
    /// Known not to exist.
    Negative,
    /// Asked for, no answer yet.
    Pending,
    /// Nothing (or an expired negative/pending entry): ask the agent.
    Absent,
}

/// Builds compiled entries for this host's fabric configuration.
#[derive(Clone, Debug)]
pub struct Compiler {
    fabric: Fabric,
}

impl Compiler {
    /// A compiler for this fabric.
    pub fn new(fabric: Fabric) -> Self {
        Compiler { fabric }
    }

    /// The fabric this compiler builds for.
    pub fn fabric(&self) -> &Fabric {
        &self.fabric
    }

    /// Compile one mapping.
    pub fn compile(&self, mapping: &Mapping) -> Result<CompiledEntry, TableError> {
        let key = mapping.key();
        if !mapping.overlay_mac.is_unicast() {
            return Err(TableError::BadOverlayMac {
                key,
                mac: mapping.overlay_mac,
            });
        }
        let unicast = match mapping.underlay_ip {
            IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
            IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
        };
        if !unicast {
            return Err(TableError::BadUnderlay {
                key,
                underlay: mapping.underlay_ip,
            });
        }
        let no_local = |family| TableError::NoLocalUnderlay {
            key,
            underlay: mapping.underlay_ip,
            family,
        };
        let outer_sum = match mapping.underlay_ip {
            IpAddr::V4(dst) => {
                let src = self.fabric.underlay_ipv4.ok_or_else(|| no_local("IPv4"))?;
                // The header as written, with total length 0 (the packet adds its own) and
                // checksum 0.
                checksum::sum(&outer_ipv4_header(0, 0, src, dst))
            }
            IpAddr::V6(dst) => {
                let src = self.fabric.underlay_ipv6.ok_or_else(|| no_local("IPv6"))?;
                checksum::pseudo_header_v6(&src, &dst, IpProtocol::UDP, 0)
            }
        };
        Ok(CompiledEntry {
            overlay_mac: mapping.overlay_mac,
            underlay_ip: mapping.underlay_ip,
            outer_sum,
        })
    }
}

/// A change to one worker's table, prepared on the control path.
#[derive(Debug)]
pub enum TableUpdate {
    /// Insert or replace one mapping.
    Upsert(MappingKey, CompiledEntry),
    /// Remove one mapping (or negative entry).
    Delete(MappingKey),
    /// The mapping service says the key does not exist.
    NotFound {
        /// The key.
        key: MappingKey,
        /// How long to remember that.
        ttl_ms: u32,
    },
    /// Swap in a whole new table (a full sync), at once.
    Replace(Box<MappingTable>),
}

/// The fewest live mappings a [`MappingTable::fixed`] table has room for: 65,536 slots
/// (4 MiB), whose reserve takes at least 16,384 negative or pending entries.
pub const MIN_FIXED_CAPACITY: usize = 1 << 15;

/// One worker's mapping table.
#[derive(Clone, Debug, Default)]
pub struct MappingTable {
    slots: SlotTable,
    mapped: usize,
    epoch: u64,
    /// Live mappings a fixed table has room for; `None`: it grows as needed.
    live_capacity: Option<usize>,
    /// Inserts a fixed table refused for want of room.
    refused: u64,
}

impl MappingTable {
    /// An empty table of a sync epoch.
    pub fn new(epoch: u64) -> Self {
        Self::with_capacity(epoch, 0)
    }

    /// An empty table with room for `capacity` mappings, which grows (allocates and
    /// rehashes) when it needs more: for the control path, never for a worker.
    pub fn with_capacity(epoch: u64, capacity: usize) -> Self {
        MappingTable {
            slots: SlotTable::with_capacity(capacity),
            mapped: 0,
            epoch,
            live_capacity: None,
            refused: 0,
        }
    }

    /// An empty table that never grows, with room for `mappings` live mappings (at least
    /// [`MIN_FIXED_CAPACITY`]) at a load of one half, the rest of three quarters kept for
    /// negative and pending entries. Inserts beyond that are refused and counted
    /// ([`Self::refused`]); the live room is [`Self::live_capacity`].
    pub fn fixed(epoch: u64, mappings: usize) -> Self {
        let slots = SlotTable::with_capacity(mappings.max(MIN_FIXED_CAPACITY));
        let live = slots.full_at() / 3 * 2;
        MappingTable {
            slots,
            live_capacity: Some(live),
            ..Self::with_capacity(epoch, 0)
        }
    }

    /// Live mappings a fixed table has room for (`None`: the table grows).
    pub fn live_capacity(&self) -> Option<usize> {
        self.live_capacity
    }

    /// Inserts refused by a fixed table for want of room: a live mapping beyond
    /// [`Self::live_capacity`] when the reserve is full too, or a negative or pending entry
    /// beyond the reserve.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The full-sync epoch this table was built from.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Live mappings.
    pub fn mapped_len(&self) -> usize {
        self.mapped
    }

    /// All slots, including negative and pending ones.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No slots at all?
    pub fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }

    /// Look `key` up at worker time `now_ms`.
    #[inline]
    pub fn lookup(&self, key: &MappingKey, now_ms: u64) -> Lookup<'_> {
        self.lookup_slot(&SlotKey::new(key), now_ms)
    }

    /// [`Self::lookup`] of an IPv4 overlay address, for the fast paths: the key is built in
    /// registers (a `MappingKey` written field by field and read back whole stalls on
    /// store forwarding).
    #[inline]
    pub fn lookup_v4(&self, vni: Vni, overlay_ip: Ipv4Addr, now_ms: u64) -> Lookup<'_> {
        self.lookup_slot(
            &SlotKey::from_parts(vni, u128::from(u32::from(overlay_ip)), false),
            now_ms,
        )
    }

    /// [`Self::lookup`] of an IPv6 overlay address (see [`Self::lookup_v4`]).
    #[inline]
    pub fn lookup_v6(&self, vni: Vni, overlay_ip: Ipv6Addr, now_ms: u64) -> Lookup<'_> {
        self.lookup_slot(
            &SlotKey::from_parts(vni, u128::from(overlay_ip), true),
            now_ms,
        )
    }

    #[inline(always)]
    fn lookup_slot(&self, key: &SlotKey, now_ms: u64) -> Lookup<'_> {
        match self.slots.find(key) {
            Some(Entry::Mapped(entry)) => Lookup::Hit(entry),
            Some(Entry::Negative { expires_at_ms }) if *expires_at_ms > now_ms => Lookup::Negative,
            Some(Entry::Pending { expires_at_ms }) if *expires_at_ms > now_ms => Lookup::Pending,
            _ => Lookup::Absent,
        }
    }

    /// The most slots an insert may leave used: unbounded for a growing table; for a fixed
    /// one, all it holds for a live mapping, and for anything else all but the room still
    /// kept for live mappings up to the live capacity.
    fn max_used(&self, live: bool) -> usize {
        let Some(capacity) = self.live_capacity else {
            return usize::MAX;
        };
        let full = self.slots.full_at();
        match live {
            true => full,
            false => (full + self.mapped).saturating_sub(capacity.max(self.mapped)),
        }
    }

    /// Store `entry` under `key`, unless `keep` says the entry already there stays. Returns
    /// what was there (`Ok(None)`: nothing), or `Err` if a fixed table had no room.
    fn store(
        &mut self,
        key: &MappingKey,
        entry: Entry,
        keep: impl Fn(&Entry) -> bool,
    ) -> Result<Option<Entry>, ()> {
        let max_used = self.max_used(matches!(entry, Entry::Mapped(_)));
        let Some((slot, existed)) = self
            .slots
            .find_or_insert(SlotKey::new(key), entry, max_used)
        else {
            self.refused += 1;
            return Err(());
        };
        if !existed {
            return Ok(None);
        }
        let old = *slot;
        if !keep(&old) {
            *slot = entry;
        }
        Ok(Some(old))
    }

    /// Insert or replace a mapping (refused and counted by a full fixed table).
    pub fn upsert(&mut self, key: MappingKey, entry: CompiledEntry) {
        if let Ok(old) = self.store(&key, Entry::Mapped(entry), |_| false) {
            if !matches!(old, Some(Entry::Mapped(_))) {
                self.mapped += 1;
            }
        }
    }

    /// Remove whatever `key` holds. Returns whether it was a live mapping.
    pub fn delete(&mut self, key: &MappingKey) -> bool {
        let Some(old) = self.slots.remove(&SlotKey::new(key)) else {
            return false;
        };
        let was_mapped = matches!(old, Entry::Mapped(_));
        if was_mapped {
            self.mapped -= 1;
        }
        was_mapped
    }

    /// Remember that `key` does not exist until `expires_at_ms` (never over a live mapping;
    /// refused and counted by a fixed table whose reserve is full).
    pub fn set_negative(&mut self, key: MappingKey, expires_at_ms: u64) {
        let _ = self.store(&key, Entry::Negative { expires_at_ms }, is_mapped);
    }

    /// Remember that `key` was asked for (never over a live mapping). False if a fixed table
    /// had no room for it (counted): nothing will then stop the key being asked again.
    pub fn set_pending(&mut self, key: MappingKey, expires_at_ms: u64) -> bool {
        self.store(&key, Entry::Pending { expires_at_ms }, is_mapped)
            .is_ok()
    }

    /// Apply an update at worker time `now_ms`. A replaced table is returned so that the
    /// caller can free it off the fast path.
    pub fn apply(&mut self, update: TableUpdate, now_ms: u64) -> Option<Box<MappingTable>> {
        match update {
            TableUpdate::Upsert(key, entry) => self.upsert(key, entry),
            TableUpdate::Delete(key) => {
                self.delete(&key);
            }
            TableUpdate::NotFound { key, ttl_ms } => {
                self.set_negative(key, now_ms.saturating_add(u64::from(ttl_ms)))
            }
            TableUpdate::Replace(mut table) => {
                std::mem::swap(self, &mut *table);
                return Some(table);
            }
        }
        None
    }

    /// Remove expired negative and pending entries among the next `slots` slots (round the
    /// table, one call after another); returns how many. A guest creates such entries at will
    /// by sending to addresses nobody maps, so without this the table would grow for as long
    /// as it runs. The worker calls it between batches: a bounded step, never a whole-table
    /// pause.
    pub fn expire(&mut self, now_ms: u64, slots: usize) -> usize {
        if self.slots.len() == self.mapped {
            return 0; // Nothing but live mappings: nothing to look for.
        }
        self.slots.sweep(slots, |entry| match entry {
            Entry::Mapped(_) => false,
            Entry::Negative { expires_at_ms } | Entry::Pending { expires_at_ms } => {
                *expires_at_ms <= now_ms
            }
        })
    }

    /// Iterate over live mappings.
    pub fn mappings(&self) -> impl Iterator<Item = (MappingKey, &CompiledEntry)> {
        self.slots.iter().filter_map(|slot| match &slot.entry {
            Entry::Mapped(c) => Some((slot.key.key(), c)),
            _ => None,
        })
    }

    /// The live mappings as the control path received them (what another table, a process
    /// taking over, or the XDP tier's map is built from).
    pub fn to_mappings(&self) -> Vec<Mapping> {
        self.mappings()
            .map(|(key, entry)| Mapping {
                vni: key.vni,
                overlay_ip: key.overlay_ip,
                underlay_ip: entry.underlay_ip,
                overlay_mac: entry.overlay_mac,
            })
            .collect()
    }
}

fn is_mapped(entry: &Entry) -> bool {
    matches!(entry, Entry::Mapped(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fabric with only an IPv4 underlay address.
    fn ipv4_fabric() -> Fabric {
        Fabric {
            underlay_ipv4: Some("198.18.0.2".parse().expect("ip")),
            underlay_ipv6: None,
            local_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            next_hop_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            vxlan_port: 4789,
            mtu: 1500,
            udp6_zero_checksum_tx: false,
            udp6_zero_checksum_rx: false,
        }
    }

    fn key(vni: u32, ip: &str) -> MappingKey {
        MappingKey {
            vni: Vni::new(vni).expect("vni"),
            overlay_ip: ip.parse().expect("ip"),
        }
    }

    #[test]
    fn slot_keys_round_trip_and_keep_families_apart() {
        let keys = [
            key(0, "198.18.0.1"),
            key(0xFF_FFFF, "198.18.0.1"),
            key(7, "::c612:1"),
            key(7, "::ffff:198.18.0.1"),
            key(7, "198.18.0.1"),
            key(7, "2001:2::1"),
        ];
        for k in keys {
            assert_eq!(SlotKey::new(&k).key(), k);
        }
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(
                    SlotKey::new(a),
                    SlotKey::new(b),
                    "{a:?} and {b:?} share a slot key"
                );
            }
        }
    }

    #[test]
    fn lookups_find_what_upserts_put() {
        let compiler = Compiler::new(ipv4_fabric());
        let mut table = MappingTable::new(1);
        let v4 = key(100, "198.18.10.3");
        let v6 = key(100, "::c612:a03");
        let mapping = Mapping {
            vni: v4.vni,
            overlay_ip: v4.overlay_ip,
            underlay_ip: "198.18.0.1".parse().expect("ip"),
            overlay_mac: MacAddr([2, 0, 0, 0, 2, 2]),
        };
        table.upsert(v4, compiler.compile(&mapping).expect("compiles"));
        assert!(matches!(table.lookup(&v4, 0), Lookup::Hit(_)));
        assert_eq!(
            table.lookup(&v6, 0),
            Lookup::Absent,
            "IPv6 ::c612:a03 is not IPv4 198.18.10.3"
        );
        table.set_pending(v6, 10);
        assert_eq!(table.lookup(&v6, 5), Lookup::Pending);
        assert_eq!(
            table.lookup(&v6, 10),
            Lookup::Absent,
            "pending entries expire"
        );
        table.set_negative(v4, 10);
        assert!(
            matches!(table.lookup(&v4, 0), Lookup::Hit(_)),
            "a negative entry never hides a live mapping"
        );
        assert_eq!((table.mapped_len(), table.len()), (1, 2));
        assert!(table.delete(&v4));
        assert_eq!(table.mapped_len(), 0);
        assert_eq!(table.mappings().count(), 0);
    }

    #[test]
    fn a_fixed_table_keeps_room_for_its_mappings_and_never_grows() {
        let compiler = Compiler::new(ipv4_fabric());
        let mut table = MappingTable::fixed(1, 0);
        let live = table.live_capacity().expect("fixed");
        assert_eq!(live, MIN_FIXED_CAPACITY);
        let ip = |i: usize| format!("198.18.{}.{}", i / 250, i % 250 + 1);
        let k = |i: usize| key(5 + (i / 50_000) as u32, &ip(i % 50_000));
        // Misses fill the reserve: half the live room, then refused.
        let mut stored = 0;
        for i in 0..live {
            stored += usize::from(table.set_pending(k(i), 10));
        }
        assert_eq!(stored, live / 2, "the reserve is a quarter of the slots");
        assert_eq!(table.refused(), (live - live / 2) as u64);
        table.set_negative(k(live), 10);
        assert_eq!(table.refused(), (live - live / 2 + 1) as u64);
        // The live room is still all there.
        let mapping = |i: usize| Mapping {
            vni: k(i).vni,
            overlay_ip: k(i).overlay_ip,
            underlay_ip: "198.18.0.1".parse().expect("ip"),
            overlay_mac: MacAddr([2, 0, 0, 0, 2, 2]),
        };
        let entry = compiler.compile(&mapping(0)).expect("compiles");
        for i in live..2 * live {
            table.upsert(k(i), entry);
        }
        assert_eq!(table.mapped_len(), live);
        assert_eq!(table.len(), live + live / 2, "three quarters full");
        // Full: a live mapping beyond the capacity has no slot left either.
        table.upsert(k(2 * live), entry);
        assert_eq!(table.mapped_len(), live);
        assert!(!matches!(table.lookup(&k(2 * live), 0), Lookup::Hit(_)));
        // An entry already there is updated in place, never refused.
        assert!(table.set_pending(k(0), 20));
        table.upsert(k(0), entry);
        assert_eq!(table.mapped_len(), live + 1);
        // A growing table of the same start takes them all.
        let mut growing = MappingTable::with_capacity(1, 0);
        for i in 0..2 * live {
            growing.set_pending(k(i), 10);
        }
        assert_eq!((growing.len(), growing.refused()), (2 * live, 0));
    }

    #[test]
    fn expired_negative_and_pending_entries_are_swept_and_mappings_stay() {
        let compiler = Compiler::new(ipv4_fabric());
        let mut table = MappingTable::new(1);
        let ip = |i: u32| format!("198.18.{}.{}", i / 250, i % 250 + 1);
        for i in 0..100 {
            let k = key(5, &ip(i));
            let mapping = Mapping {
                vni: k.vni,
                overlay_ip: k.overlay_ip,
                underlay_ip: "198.18.0.1".parse().expect("ip"),
                overlay_mac: MacAddr([2, 0, 0, 0, 2, 2]),
            };
            table.upsert(k, compiler.compile(&mapping).expect("compiles"));
        }
        // What a guest scanning unmapped addresses leaves behind.
        for i in 100..5_000 {
            if i % 2 == 0 {
                table.set_pending(key(5, &ip(i)), 10);
            } else {
                table.set_negative(key(5, &ip(i)), 20);
            }
        }
        assert_eq!(table.len(), 5_000);
        assert_eq!(
            table.expire(10, usize::MAX),
            2_450,
            "pending entries are gone at 10"
        );
        assert_eq!(table.lookup(&key(5, &ip(101)), 10), Lookup::Negative);
        let mut removed = 0;
        while table.len() > table.mapped_len() {
            removed += table.expire(20, 16);
        }
        assert_eq!(
            removed, 2_450,
            "negative entries are gone at 20, 16 slots at a time"
        );
        assert_eq!(table.mapped_len(), 100);
        for i in 0..100 {
            assert!(matches!(table.lookup(&key(5, &ip(i)), 20), Lookup::Hit(_)));
        }
        assert_eq!(table.expire(20, usize::MAX), 0);
    }
}
