//! The table's store: open addressing with linear probing over one-cache-line slots, each
//! holding its key and entry inline.
//!
//! Why not `hashbrown`: a SwissTable lookup reads a control-byte group and then the slot, two
//! cache misses per packet once the table outgrows the cache, and it offers no way to visit a
//! few buckets at a time, so expired negative and pending entries (which a guest creates at
//! will by sending to unmapped addresses) could only be swept by a stop-the-world `retain`.
//!
//! Here a lookup reads the home slot and, on a collision, the next ones (adjacent lines, which
//! the prefetcher fetches along). A table is sized to be at most half full (a hit then probes
//! 1.5 slots on average) and grows at three quarters, so the negative and pending entries that
//! misses add to a table built for exactly its mappings do not make the worker stop to grow
//! it. Deletion shifts the rest of the cluster back (no tombstones), so probe chains never
//! grow with churn, and [`SlotTable::sweep`] removes expired entries a few slots per call.

use std::hash::BuildHasher;
use std::net::IpAddr;

use super::Entry;
use crate::model::{MappingKey, Vni};

/// The table's own key: a [`MappingKey`] packed into three words, compared without branches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct SlotKey {
    /// The overlay address as 128 bits (IPv4 in the low 32), high and low halves, then the
    /// VNI in the low 32 bits of the third word and the family in its high 32: [`FAMILY_IPV4`]
    /// or [`FAMILY_IPV6`] keeps a.b.c.d and ::a.b.c.d apart; [`EMPTY`] marks a free slot,
    /// which therefore equals no key.
    words: [u64; 3],
}

const EMPTY: u64 = 0;
const FAMILY_IPV4: u64 = 4;
const FAMILY_IPV6: u64 = 6;

impl SlotKey {
    #[inline]
    pub(super) fn new(key: &MappingKey) -> Self {
        match key.overlay_ip {
            IpAddr::V4(a) => Self::from_parts(key.vni, u128::from(u32::from(a)), false),
            IpAddr::V6(a) => Self::from_parts(key.vni, u128::from(a), true),
        }
    }

    #[inline(always)]
    pub(super) fn from_parts(vni: Vni, addr: u128, ipv6: bool) -> Self {
        let family = if ipv6 { FAMILY_IPV6 } else { FAMILY_IPV4 };
        SlotKey {
            words: [
                (addr >> 64) as u64,
                addr as u64,
                u64::from(vni.get()) | (family << 32),
            ],
        }
    }

    #[inline(always)]
    fn family(&self) -> u64 {
        self.words[2] >> 32
    }

    /// Equality as one test (the derived `==` branches per field, and whether a probed slot
    /// holds the key is the one branch a lookup cannot predict).
    #[inline(always)]
    fn matches(&self, other: &SlotKey) -> bool {
        let [a, b, c] = self.words;
        let [x, y, z] = other.words;
        ((a ^ x) | (b ^ y) | (c ^ z)) == 0
    }

    pub(super) fn key(&self) -> MappingKey {
        let [high, low, vni] = self.words;
        let addr = (u128::from(high) << 64) | u128::from(low);
        let overlay_ip = if self.family() == FAMILY_IPV6 {
            IpAddr::V6(addr.into())
        } else {
            IpAddr::V4((addr as u32).into())
        };
        MappingKey {
            // Built from a `Vni` in `from_parts`.
            vni: Vni::new(vni as u32).unwrap_or(Vni::ZERO),
            overlay_ip,
        }
    }
}

/// A key and what it holds, in one cache line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C, align(64))]
pub(super) struct Slot {
    pub(super) key: SlotKey,
    pub(super) entry: Entry,
}
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

impl Slot {
    const FREE: Slot = Slot {
        key: SlotKey {
            words: [0, 0, EMPTY << 32],
        },
        entry: Entry::Pending { expires_at_ms: 0 },
    };

    #[inline(always)]
    fn is_free(&self) -> bool {
        self.key.family() == EMPTY
    }
}

/// The fewest slots a table has: lookups never need an empty-table special case.
const MIN_SLOTS: usize = 16;

/// Slots in a power-of-two array, at most three quarters of them used.
#[derive(Clone, Debug)]
pub(super) struct SlotTable {
    slots: Box<[Slot]>,
    /// `slots.len() - 1`: a hash's home slot is `hash & mask`.
    mask: usize,
    used: usize,
    /// Per-table random hash seeds, so a guest cannot aim its misses at one probe chain.
    seeds: [u64; 3],
    /// Where the next [`SlotTable::sweep`] starts.
    sweep_at: usize,
}

impl Default for SlotTable {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl SlotTable {
    /// Room for `capacity` keys at a load of at most one half.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let seeds = std::collections::hash_map::RandomState::new();
        let slots = vec![Slot::FREE; Self::slots_for(capacity)].into_boxed_slice();
        SlotTable {
            mask: slots.len() - 1,
            slots,
            used: 0,
            seeds: [
                seeds.hash_one(1u8),
                seeds.hash_one(2u8),
                seeds.hash_one(3u8),
            ],
            sweep_at: 0,
        }
    }

    /// Slots for `capacity` keys at a load of at most one half.
    fn slots_for(capacity: usize) -> usize {
        capacity
            .saturating_mul(2)
            .checked_next_power_of_two()
            .unwrap_or(1 << (usize::BITS - 1))
            .max(MIN_SLOTS)
    }

    pub(super) fn len(&self) -> usize {
        self.used
    }

    /// Two rounds of a folded 64×64→128-bit multiply over the key's words, VNI and family
    /// folded into the high address word (zero for IPv4).
    #[inline(always)]
    fn hash(&self, key: &SlotKey) -> usize {
        let [high, low, vni_family] = key.words;
        let h = folded_multiply(
            high ^ vni_family.rotate_left(24) ^ self.seeds[0],
            low ^ self.seeds[1],
        );
        folded_multiply(h, self.seeds[2] | 1) as usize
    }

    /// The index of `key`'s slot, or of the free slot where it would go.
    #[inline(always)]
    fn probe(&self, key: &SlotKey) -> Result<usize, usize> {
        let mut i = self.hash(key) & self.mask;
        // At most three quarters of the slots are used, so the probe meets a free one.
        loop {
            let slot = &self.slots[i];
            if slot.key.matches(key) {
                return Ok(i);
            }
            if slot.is_free() {
                return Err(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// What `key` holds.
    #[inline(always)]
    pub(super) fn find(&self, key: &SlotKey) -> Option<&Entry> {
        self.probe(key).ok().map(|i| &self.slots[i].entry)
    }

    /// The most keys the slots hold before the table must grow: three quarters of them.
    pub(super) fn full_at(&self) -> usize {
        self.slots.len() / 4 * 3
    }

    /// `key`'s entry, inserting `entry` first if the key is absent, unless that would make
    /// more than `max_used` keys (`None`). An insert that would pass [`Self::full_at`] grows
    /// the table (allocates and rehashes): a caller that must not grow passes at most that.
    /// Returns the entry and whether it was already there.
    pub(super) fn find_or_insert(
        &mut self,
        key: SlotKey,
        entry: Entry,
        max_used: usize,
    ) -> Option<(&mut Entry, bool)> {
        let i = match self.probe(&key) {
            Ok(i) => return Some((&mut self.slots[i].entry, true)),
            Err(_) if self.used >= max_used => return None,
            Err(i) if self.used < self.full_at() => i,
            Err(_) => {
                self.grow();
                match self.probe(&key) {
                    Ok(i) | Err(i) => i,
                }
            }
        };
        self.slots[i] = Slot { key, entry };
        self.used += 1;
        Some((&mut self.slots[i].entry, false))
    }

    /// Remove `key`'s entry, returning it.
    pub(super) fn remove(&mut self, key: &SlotKey) -> Option<Entry> {
        let i = self.probe(key).ok()?;
        let entry = self.slots[i].entry;
        self.remove_at(i);
        Some(entry)
    }

    /// Free slot `hole` and shift back every later slot of its cluster that may live there
    /// (its home is not between the hole and it), so no probe chain passes a free slot.
    fn remove_at(&mut self, mut hole: usize) {
        let mut i = (hole + 1) & self.mask;
        while !self.slots[i].is_free() {
            let home = self.hash(&self.slots[i].key) & self.mask;
            if (i.wrapping_sub(home) & self.mask) >= (i.wrapping_sub(hole) & self.mask) {
                self.slots[hole] = self.slots[i];
                hole = i;
            }
            i = (i + 1) & self.mask;
        }
        self.slots[hole] = Slot::FREE;
        self.used -= 1;
    }

    /// Double the slots and reinsert every key.
    fn grow(&mut self) {
        let mut bigger = SlotTable {
            slots: vec![Slot::FREE; self.slots.len() * 2].into_boxed_slice(),
            mask: self.slots.len() * 2 - 1,
            used: 0,
            seeds: self.seeds,
            sweep_at: 0,
        };
        for slot in self.slots.iter().filter(|s| !s.is_free()) {
            if let Err(i) = bigger.probe(&slot.key) {
                bigger.slots[i] = *slot;
                bigger.used += 1;
            }
        }
        *self = bigger;
    }

    /// Look at the next `budget` slots (round the table, one call after another) and remove
    /// the entries `expired` says are dead. Returns how many it removed.
    pub(super) fn sweep(&mut self, budget: usize, expired: impl Fn(&Entry) -> bool) -> usize {
        let mut removed = 0;
        let mut i = self.sweep_at & self.mask;
        let mut looked = 0;
        while looked < budget.min(self.slots.len()) {
            let slot = &self.slots[i];
            if !slot.is_free() && expired(&slot.entry) {
                // The shift may move a later entry into `i`: look at `i` again. Each removal
                // frees a slot for good, so this ends.
                self.remove_at(i);
                removed += 1;
            } else {
                i = (i + 1) & self.mask;
                looked += 1;
            }
        }
        self.sweep_at = i;
        removed
    }

    /// Every used slot.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| !s.is_free())
    }
}

/// The high and low halves of the 128-bit product, XORed: every bit of the result depends on
/// every bit of both inputs.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::Ipv6Addr;

    fn key(vni: u32, host: u8, ipv6: bool) -> SlotKey {
        let vni = Vni::new(vni).expect("vni");
        // Two families of the same numeric address: the family must keep them apart.
        let addr = if ipv6 {
            u128::from(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, u16::from(host)))
        } else {
            u128::from(u32::from_be_bytes([198, 18, 0, host]))
        };
        SlotKey::from_parts(vni, addr, ipv6)
    }

    fn entry(tag: u64) -> Entry {
        Entry::Pending { expires_at_ms: tag }
    }

    /// The table agrees with `model`, and every used slot is found by a probe from its home,
    /// which fails if a removal left a free slot inside a cluster.
    fn check(table: &SlotTable, model: &HashMap<SlotKey, u64>) -> Result<(), TestCaseError> {
        prop_assert_eq!(table.len(), model.len());
        prop_assert_eq!(table.iter().count(), model.len());
        prop_assert!(
            table.len() * 4 <= table.slots.len() * 3,
            "more than three quarters full"
        );
        for (i, slot) in table.slots.iter().enumerate() {
            if !slot.is_free() {
                prop_assert_eq!(table.probe(&slot.key), Ok(i), "slot {} unreachable", i);
            }
        }
        for (k, tag) in model {
            prop_assert_eq!(table.find(k), Some(&entry(*tag)));
        }
        Ok(())
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(SlotKey, u64),
        Remove(SlotKey),
        /// Sweep this many slots, removing tags below the threshold.
        Sweep(usize, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few keys, so the ops revisit them, and a table of 16 to 128 slots, so clusters
        // collide and wrap round its end.
        let key = (0u32..3, 0u8..40, any::<bool>()).prop_map(|(v, h, six)| key(v, h, six));
        prop_oneof![
            4 => (key.clone(), 0u64..100).prop_map(|(k, t)| Op::Insert(k, t)),
            2 => key.prop_map(Op::Remove),
            1 => (0usize..300, 0u64..100).prop_map(|(n, t)| Op::Sweep(n, t)),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut table = SlotTable::default();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, tag) => {
                        let Some((e, existed)) = table.find_or_insert(k, entry(tag), usize::MAX) else {
                            return Err(TestCaseError::fail("an unbounded insert was refused"));
                        };
                        prop_assert_eq!(existed, model.contains_key(&k));
                        *e = entry(tag);
                        model.insert(k, tag);
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(table.remove(&k), model.remove(&k).map(entry));
                    }
                    Op::Sweep(budget, below) => {
                        let expired = |e: &Entry| matches!(e, Entry::Pending { expires_at_ms } if *expires_at_ms < below);
                        let removed = table.sweep(budget, expired);
                        let before = model.len();
                        // Whatever the sweep removed was expired; what it left is intact.
                        model.retain(|k, tag| table.find(k).is_some() || *tag >= below);
                        prop_assert_eq!(before - model.len(), removed);
                        if budget >= table.slots.len() {
                            prop_assert!(model.values().all(|t| *t >= below), "a full sweep missed one");
                        }
                    }
                }
                check(&table, &model)?;
            }
        }
    }

    #[test]
    fn full_sweeps_reach_every_slot_from_any_start() {
        let mut table = SlotTable::with_capacity(100);
        for host in 0..100 {
            table.find_or_insert(key(1, host, host % 2 == 0), entry(u64::from(host)), 100);
        }
        // Sweep in uneven steps: however the calls fall, one lap removes every expired entry.
        let mut swept = 0;
        for step in [1, 7, 50, 3, 200, 0, 29] {
            table.sweep(
                step,
                |e| matches!(e, Entry::Pending { expires_at_ms } if *expires_at_ms < 60),
            );
            swept += step;
        }
        assert!(swept >= table.slots.len());
        assert_eq!(table.len(), 40);
        assert!(table
            .iter()
            .all(|s| matches!(s.entry, Entry::Pending { expires_at_ms } if expires_at_ms >= 60)));
    }

    #[test]
    fn a_bounded_insert_never_grows_the_table() {
        let mut table = SlotTable::with_capacity(8);
        let slots = table.slots.len();
        let full = table.full_at();
        for host in 0..full as u8 {
            assert!(table
                .find_or_insert(key(1, host, false), entry(0), full)
                .is_some());
        }
        assert!(table
            .find_or_insert(key(1, 200, false), entry(0), full)
            .is_none());
        // A key already there is found, not inserted.
        assert_eq!(
            table.find_or_insert(key(1, 0, false), entry(0), full),
            Some((&mut entry(0), true))
        );
        assert_eq!((table.slots.len(), table.len()), (slots, full));
        // Unbounded, the same insert grows it.
        assert!(table
            .find_or_insert(key(1, 200, false), entry(0), usize::MAX)
            .is_some());
        assert_eq!(table.slots.len(), 2 * slots);
    }

    #[test]
    fn free_slots_match_no_key() {
        let zero = SlotKey::from_parts(Vni::ZERO, 0, false);
        assert!(!Slot::FREE.key.matches(&zero));
        assert!(!Slot::FREE
            .key
            .matches(&SlotKey::from_parts(Vni::ZERO, 0, true)));
        assert!(!zero.matches(&SlotKey::from_parts(Vni::ZERO, 0, true)));
    }
}
