//! The per-core mapping table: `(VNI, overlay IP)` → a compiled entry (overlay MAC, underlay
//! address, its precomputed part of the outer checksum), key and entry in one cache line, so
//! the worker's per-packet work is one slot read and a few fixed-offset header writes.
//!
//! One writer: entries are compiled on the control path ([`Compiler`]), sent to each worker as
//! a [`TableUpdate`], and applied by the worker between batches. A full sync arrives as a whole
//! new table that the worker swaps in at once; the old one goes back to be freed off the fast
//! path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

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
                let Some((outer, inner)) = packet.split_first_chunk_mut::<OUTER_V6_LEN>() else {
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
                // The checksum field is 0 here: summing it with the packet adds nothing.
                let sum = self.outer_sum
                    + u32::from(udp_len)
                    + checksum::sum(udp_vxlan)
                    + checksum::sum(inner.get(..inner_len).unwrap_or(inner));
                let checksum = match checksum::finish(sum) {
                    0 => 0xffff,
                    c => c,
                };
                UdpPacket::new_unchecked(udp_vxlan).set_checksum(checksum);
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
        let outer_sum = match mapping.underlay_ip {
            IpAddr::V4(dst) => {
                let src = self
                    .fabric
                    .underlay_ipv4
                    .ok_or(TableError::NoLocalUnderlay {
                        key,
                        underlay: mapping.underlay_ip,
                        family: "IPv4",
                    })?;
                // The header as written, with total length 0 (the packet adds its own) and
                // checksum 0.
                checksum::sum(&outer_ipv4_header(0, 0, src, dst))
            }
            IpAddr::V6(dst) => {
                let src = self
                    .fabric
                    .underlay_ipv6
                    .ok_or(TableError::NoLocalUnderlay {
                        key,
                        underlay: mapping.underlay_ip,
                        family: "IPv6",
                    })?;
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

/// The table's own key: a [`MappingKey`] packed into 24 bytes and hashed as two words.
/// `IpAddr`'s derived `Hash` feeds the hasher four separate writes (VNI, discriminant, length,
/// bytes); this is two.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct SlotKey {
    /// The overlay address as 128 bits (IPv4 in the low 32), high and low halves.
    addr: [u64; 2],
    vni: Vni,
    /// 1 for IPv6, 0 for IPv4: keeps a.b.c.d and ::a.b.c.d apart. A full word, not a `bool`:
    /// the key is stored field by field and read back by the probe, and a wider load over a
    /// narrower store stalls on store forwarding.
    ipv6: u32,
}

impl SlotKey {
    #[inline]
    fn new(key: &MappingKey) -> Self {
        match key.overlay_ip {
            IpAddr::V4(a) => Self::from_parts(key.vni, u128::from(u32::from(a)), false),
            IpAddr::V6(a) => Self::from_parts(key.vni, u128::from(a), true),
        }
    }

    #[inline(always)]
    fn from_parts(vni: Vni, addr: u128, ipv6: bool) -> Self {
        SlotKey {
            addr: [(addr >> 64) as u64, addr as u64],
            vni,
            ipv6: u32::from(ipv6),
        }
    }

    fn key(&self) -> MappingKey {
        let addr = (u128::from(self.addr[0]) << 64) | u128::from(self.addr[1]);
        let overlay_ip = if self.ipv6 != 0 {
            IpAddr::V6(addr.into())
        } else {
            IpAddr::V4((addr as u32).into())
        };
        MappingKey {
            vni: self.vni,
            overlay_ip,
        }
    }
}

impl std::hash::Hash for SlotKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // VNI and family go into the high word, whose top 32 bits are zero for IPv4. The
        // hasher is seeded per table, so a guest cannot aim its misses at one probe chain.
        let vni_family = u64::from(self.vni.get()) | (u64::from(self.ipv6) << 31);
        state.write_u64(self.addr[0] ^ vni_family.rotate_left(32));
        state.write_u64(self.addr[1]);
    }
}

/// A key and what it holds, in one cache line: a lookup touches the table's control bytes
/// and this line, nothing else.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C, align(64))]
struct Slot {
    key: SlotKey,
    entry: Entry,
}
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// One worker's mapping table.
#[derive(Clone, Debug, Default)]
pub struct MappingTable {
    slots: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    mapped: usize,
    epoch: u64,
}

impl MappingTable {
    /// An empty table of a sync epoch.
    pub fn new(epoch: u64) -> Self {
        Self::with_capacity(epoch, 0)
    }

    /// An empty table with room for `capacity` mappings.
    pub fn with_capacity(epoch: u64, capacity: usize) -> Self {
        MappingTable {
            slots: HashTable::with_capacity(capacity),
            hasher: DefaultHashBuilder::default(),
            mapped: 0,
            epoch,
        }
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
        self.slots.is_empty()
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
        let hash = self.hasher.hash_one(key);
        match self
            .slots
            .find(hash, |slot| slot.key == *key)
            .map(|s| &s.entry)
        {
            Some(Entry::Mapped(entry)) => Lookup::Hit(entry),
            Some(Entry::Negative { expires_at_ms }) if *expires_at_ms > now_ms => Lookup::Negative,
            Some(Entry::Pending { expires_at_ms }) if *expires_at_ms > now_ms => Lookup::Pending,
            _ => Lookup::Absent,
        }
    }

    /// Store `entry` under `key`, unless `keep` says the entry already there stays. Returns
    /// the entry that was there (if any).
    fn store(
        &mut self,
        key: &MappingKey,
        entry: Entry,
        keep: impl Fn(&Entry) -> bool,
    ) -> Option<Entry> {
        let key = SlotKey::new(key);
        let hasher = &self.hasher;
        let hash = hasher.hash_one(key);
        match self.slots.entry(
            hash,
            |slot| slot.key == key,
            |slot| hasher.hash_one(slot.key),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => {
                let old = slot.get().entry;
                if !keep(&old) {
                    slot.get_mut().entry = entry;
                }
                Some(old)
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(Slot { key, entry });
                None
            }
        }
    }

    /// Insert or replace a mapping.
    pub fn upsert(&mut self, key: MappingKey, entry: CompiledEntry) {
        let old = self.store(&key, Entry::Mapped(entry), |_| false);
        if !matches!(old, Some(Entry::Mapped(_))) {
            self.mapped += 1;
        }
    }

    /// Remove whatever `key` holds. Returns whether it was a live mapping.
    pub fn delete(&mut self, key: &MappingKey) -> bool {
        let key = SlotKey::new(key);
        let hash = self.hasher.hash_one(key);
        let Ok(slot) = self.slots.find_entry(hash, |slot| slot.key == key) else {
            return false;
        };
        let was_mapped = matches!(slot.remove().0.entry, Entry::Mapped(_));
        if was_mapped {
            self.mapped -= 1;
        }
        was_mapped
    }

    /// Remember that `key` does not exist until `expires_at_ms` (never over a live mapping).
    pub fn set_negative(&mut self, key: MappingKey, expires_at_ms: u64) {
        self.store(&key, Entry::Negative { expires_at_ms }, is_mapped);
    }

    /// Remember that `key` was asked for (never over a live mapping).
    pub fn set_pending(&mut self, key: MappingKey, expires_at_ms: u64) {
        self.store(&key, Entry::Pending { expires_at_ms }, is_mapped);
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

    /// Iterate over live mappings.
    pub fn mappings(&self) -> impl Iterator<Item = (MappingKey, &CompiledEntry)> {
        self.slots.iter().filter_map(|slot| match &slot.entry {
            Entry::Mapped(c) => Some((slot.key.key(), c)),
            _ => None,
        })
    }
}

fn is_mapped(entry: &Entry) -> bool {
    matches!(entry, Entry::Mapped(_))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let fabric = Fabric {
            underlay_ipv4: Some("198.18.0.2".parse().expect("ip")),
            underlay_ipv6: None,
            local_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            next_hop_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            vxlan_port: 4789,
            mtu: 1500,
        };
        let compiler = Compiler::new(fabric);
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
}
