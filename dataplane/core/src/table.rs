//! The per-core mapping table: `(VNI, overlay IP)` → a compiled entry holding a prebuilt
//! outer-header template, so the worker's per-packet work is a copy and a few patches.
//!
//! One writer: entries are compiled on the control path ([`Compiler`]), sent to each worker as
//! a [`TableUpdate`], and applied by the worker between batches. A full sync arrives as a whole
//! new table that the worker swaps in at once; the old one goes back to be freed off the fast
//! path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

use crate::model::{Fabric, MacAddr, Mapping, MappingKey, Vni};
use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ip::IpProtocol;
use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};
use crate::wire::udp::UdpPacket;
use crate::wire::vxlan::{VxlanPacket, VxlanRepr};

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

/// The outer headers for one mapping, with lengths, checksum and source port left to patch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OuterTemplate {
    bytes: [u8; MAX_OUTER_LEN],
    len: u8,
    /// IPv6 only: ones'-complement sum of the pseudo-header without its length field.
    pseudo_sum: u32,
}

impl OuterTemplate {
    /// Outer header length: [`OUTER_V4_LEN`] or [`OUTER_V6_LEN`].
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Never: a template always has headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Is the underlay IPv6?
    #[inline]
    pub fn is_ipv6(&self) -> bool {
        self.len() == OUTER_V6_LEN
    }

    /// Write the outer headers into `packet` (exactly `self.len()` bytes, followed by
    /// `inner_len` bytes of inner frame already in place) and patch lengths, the IPv4 header
    /// checksum (incrementally, RFC 1624) or the IPv6 UDP checksum, and the UDP source port.
    /// Each family copies a fixed-size header, so the copy is a few moves, not a `memcpy` call.
    #[inline]
    pub fn write(&self, packet: &mut [u8], inner_len: usize, src_port: u16) {
        // Lengths fit: the caller checked the result against the fabric MTU (≤ 65535).
        let udp_len = (inner_len + 16) as u16;
        if self.is_ipv6() {
            let Some((outer, inner)) = packet.split_first_chunk_mut::<OUTER_V6_LEN>() else {
                return;
            };
            outer.copy_from_slice(&self.bytes[..OUTER_V6_LEN]);
            Ipv6Packet::new_unchecked(&mut outer[14..54]).set_payload_len(udp_len);
            let mut udp = UdpPacket::new_unchecked(&mut outer[54..]);
            udp.set_src_port(src_port);
            udp.set_len(udp_len);
            // The template's checksum field is 0: summing it with the packet adds nothing.
            let sum = self.pseudo_sum
                + u32::from(udp_len)
                + checksum::sum(&outer[54..])
                + checksum::sum(inner.get(..inner_len).unwrap_or(inner));
            let csum = match checksum::finish(sum) {
                0 => 0xffff,
                c => c,
            };
            UdpPacket::new_unchecked(&mut outer[54..]).set_checksum(csum);
        } else {
            let Some(outer) = packet.first_chunk_mut::<OUTER_V4_LEN>() else {
                return;
            };
            outer.copy_from_slice(&self.bytes[..OUTER_V4_LEN]);
            let total_len = udp_len + 20;
            // The template's checksum, not the copy's: reading back a field just written by
            // a wide store stalls on store forwarding.
            let old = Ipv4Packet::new_unchecked(&self.bytes[14..34]).checksum();
            let mut ip = Ipv4Packet::new_unchecked(&mut outer[14..34]);
            ip.set_total_len(total_len);
            ip.set_checksum(checksum::update_u16(old, 0, total_len));
            let mut udp = UdpPacket::new_unchecked(&mut outer[34..]);
            udp.set_src_port(src_port);
            udp.set_len(udp_len);
        }
    }
}

/// A mapping compiled for this host.
///
/// `repr(C)` keeps what ingress reads (MAC, underlay) next to the slot's key, in the first
/// cache line of the slot; only egress reaches the template behind them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct CompiledEntry {
    /// Inner destination MAC to write.
    pub overlay_mac: MacAddr,
    /// The remote tunnel endpoint (checked on ingress).
    pub underlay_ip: IpAddr,
    /// Outer headers.
    pub template: OuterTemplate,
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
        let mut bytes = [0u8; MAX_OUTER_LEN];
        let (len, l3_len, ethertype, pseudo_sum) = match mapping.underlay_ip {
            IpAddr::V4(dst) => {
                let src = self
                    .fabric
                    .underlay_ipv4
                    .ok_or(TableError::NoLocalUnderlay {
                        key,
                        underlay: mapping.underlay_ip,
                        family: "IPv4",
                    })?;
                // Total length 0 here; the per-packet patch adds it to the checksum.
                let repr = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    protocol: IpProtocol::UDP,
                    payload_len: 0,
                    ttl: OUTER_TTL,
                    dont_frag: true,
                };
                let mut ip = Ipv4Packet::new_unchecked(&mut bytes[14..34]);
                repr.emit(&mut ip);
                ip.set_total_len(0);
                ip.fill_checksum();
                (OUTER_V4_LEN, 20, EtherType::IPV4, 0)
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
                let repr = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: IpProtocol::UDP,
                    payload_len: 0,
                    hop_limit: OUTER_TTL,
                };
                repr.emit(&mut Ipv6Packet::new_unchecked(&mut bytes[14..54]));
                let pseudo = checksum::pseudo_header_v6(&src, &dst, IpProtocol::UDP, 0);
                (OUTER_V6_LEN, 40, EtherType::IPV6, pseudo)
            }
        };
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..14]);
        eth.set_dst_addr(self.fabric.next_hop_mac);
        eth.set_src_addr(self.fabric.local_mac);
        eth.set_ethertype(ethertype);
        let udp_at = 14 + l3_len;
        let mut udp = UdpPacket::new_unchecked(&mut bytes[udp_at..udp_at + 8]);
        udp.set_dst_port(self.fabric.vxlan_port);
        udp.set_checksum(0);
        let vxlan = VxlanRepr { vni: mapping.vni };
        vxlan.emit(&mut VxlanPacket::new_unchecked(
            &mut bytes[udp_at + 8..udp_at + 16],
        ));
        Ok(CompiledEntry {
            overlay_mac: mapping.overlay_mac,
            underlay_ip: mapping.underlay_ip,
            template: OuterTemplate {
                bytes,
                len: len as u8,
                pseudo_sum,
            },
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

/// The table's own key: a [`MappingKey`] packed into 24 bytes and hashed as one word.
/// `IpAddr`'s derived `Hash` feeds the hasher four separate writes (VNI, discriminant, length,
/// bytes); this is one.
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
        // One multiply-fold; the map's hasher finishes the mixing. Collisions only cost a compare.
        let vni_family = u64::from(self.vni.get()) | (u64::from(self.ipv6) << 31);
        let folded = (self.addr[0] ^ vni_family.rotate_left(32))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ self.addr[1];
        state.write_u64(folded);
    }
}

/// One worker's mapping table.
#[derive(Clone, Debug, Default)]
pub struct MappingTable {
    entries: HashMap<SlotKey, Entry>,
    mapped: usize,
    epoch: u64,
}

impl MappingTable {
    /// An empty table of a sync epoch.
    pub fn new(epoch: u64) -> Self {
        MappingTable {
            entries: HashMap::new(),
            mapped: 0,
            epoch,
        }
    }

    /// An empty table with room for `capacity` mappings.
    pub fn with_capacity(epoch: u64, capacity: usize) -> Self {
        MappingTable {
            entries: HashMap::with_capacity(capacity),
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
        self.entries.len()
    }

    /// No slots at all?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
        match self.entries.get(key) {
            Some(Entry::Mapped(entry)) => Lookup::Hit(entry),
            Some(Entry::Negative { expires_at_ms }) if *expires_at_ms > now_ms => Lookup::Negative,
            Some(Entry::Pending { expires_at_ms }) if *expires_at_ms > now_ms => Lookup::Pending,
            _ => Lookup::Absent,
        }
    }

    /// Insert or replace a mapping.
    pub fn upsert(&mut self, key: MappingKey, entry: CompiledEntry) {
        if !matches!(
            self.entries
                .insert(SlotKey::new(&key), Entry::Mapped(entry)),
            Some(Entry::Mapped(_))
        ) {
            self.mapped += 1;
        }
    }

    /// Remove whatever `key` holds. Returns whether it was a live mapping.
    pub fn delete(&mut self, key: &MappingKey) -> bool {
        let was_mapped = matches!(
            self.entries.remove(&SlotKey::new(key)),
            Some(Entry::Mapped(_))
        );
        if was_mapped {
            self.mapped -= 1;
        }
        was_mapped
    }

    /// Remember that `key` does not exist until `expires_at_ms` (never over a live mapping).
    pub fn set_negative(&mut self, key: MappingKey, expires_at_ms: u64) {
        self.set_unmapped(key, Entry::Negative { expires_at_ms });
    }

    /// Remember that `key` was asked for (never over a live mapping).
    pub fn set_pending(&mut self, key: MappingKey, expires_at_ms: u64) {
        self.set_unmapped(key, Entry::Pending { expires_at_ms });
    }

    fn set_unmapped(&mut self, key: MappingKey, entry: Entry) {
        match self.entries.entry(SlotKey::new(&key)) {
            hashbrown::hash_map::Entry::Occupied(mut slot) => {
                if !matches!(slot.get(), Entry::Mapped(_)) {
                    slot.insert(entry);
                }
            }
            hashbrown::hash_map::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
        }
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
        self.entries.iter().filter_map(|(k, e)| match e {
            Entry::Mapped(c) => Some((k.key(), c)),
            _ => None,
        })
    }
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
