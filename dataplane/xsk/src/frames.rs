//! Frame book-keeping: who owns each UMEM chunk (free list, a fill ring, the application,
//! a TX ring), so no frame is ever leaked or handed out twice. Pure logic, no I/O.
#![forbid(unsafe_code)]

use crate::error::DescError;
use crate::frame::Desc;

/// Owner of one UMEM chunk. `u8` side indices: 0 = guest (or the only port), 1 = fabric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// On the free list.
    Free,
    /// Given to the kernel for receive on that side (in the fill ring, or taken by the
    /// kernel and not yet seen on the RX ring).
    Fill(u8),
    /// Received (or allocated) and held by the application.
    App,
    /// Put on that side's TX ring, completion not yet seen.
    Tx(u8),
}

/// Where every frame is. The fields always sum to `frame_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FrameAccounting {
    /// Number of frames in the UMEM.
    pub frame_count: u32,
    /// On the free list.
    pub free: u32,
    /// Given to the kernel for receive, per side (`[guest, fabric]`): in the fill ring or
    /// taken from it and not yet returned on the RX ring.
    pub in_fill: [u32; 2],
    /// Received from an RX ring (or allocated) and held by the application: not yet sent
    /// or released.
    pub in_app: u32,
    /// Sent on that side's TX ring, completion not yet reaped (`[guest, fabric]`).
    pub in_tx: [u32; 2],
}

impl FrameAccounting {
    /// Sum of all places a frame can be.
    pub fn total(&self) -> u64 {
        u64::from(self.free)
            + u64::from(self.in_fill[0])
            + u64::from(self.in_fill[1])
            + u64::from(self.in_app)
            + u64::from(self.in_tx[0])
            + u64::from(self.in_tx[1])
    }

    /// True when every frame is accounted for exactly once.
    pub fn is_balanced(&self) -> bool {
        self.total() == u64::from(self.frame_count)
    }
}

/// Operations refused by the book because the frame was not where the caller claimed.
/// None of them should happen; each is counted rather than trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FrameErrors {
    /// RX descriptors whose frame was not given to that side's fill ring (skipped).
    pub rx_unexpected: u64,
    /// Completion addresses whose frame was not on that side's TX ring (ignored).
    pub completion_unexpected: u64,
    /// `release` of a frame the application does not hold (ignored).
    pub release_unowned: u64,
    /// `send` descriptors refused (frame not owned, or data outside its chunk).
    pub send_rejected: u64,
}

/// Log2 of the page a coloured chunk must stay inside: zero-copy drivers reject a chunk that
/// crosses a 4 KiB page unless the pages are DMA-contiguous.
const PAGE_SHIFT: u32 = 12;
/// Cache line size: the step between colours.
const LINE: u64 = 64;
/// Colours of a coloured layout: 32 × 64 B spreads the headers of consecutive frames over 32
/// of the L1's 64 sets, and a 2048-byte chunk at the last colour still ends inside its page.
const COLOURS: u32 = 32;

/// Where each frame's chunk lies in the UMEM.
///
/// Aligned (4096-byte frames): chunk `i` at `i × frame_size`, the kernel's default mode.
/// Coloured (2048-byte frames): one frame per 4 KiB page, chunk `i` at page `i` plus
/// `(i mod 32) × 64` bytes, registered in unaligned-chunk mode. Aligned chunks put the
/// headers of every frame in the same two L1 sets, and a batch of frames evicts itself
/// (egress cost 1.58× in the micro-benchmarks, docs/AF_XDP.md); coloured ones spread them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    frame_count: u32,
    frame_size: u32,
    /// Log2 of the distance between consecutive frames' slots.
    slot_shift: u32,
    /// 1 (aligned) or [`COLOURS`].
    colours: u32,
}

impl Layout {
    /// The layout for `frame_count` frames of `frame_size` bytes (a power of two ≤ 4096,
    /// checked by the caller): coloured when a chunk at the last colour fits in its page.
    pub(crate) fn new(frame_count: u32, frame_size: u32) -> Self {
        debug_assert!(frame_size.is_power_of_two());
        let last_colour = u64::from(COLOURS - 1) * LINE;
        let (slot_shift, colours) = if last_colour + u64::from(frame_size) <= 1 << PAGE_SHIFT {
            (PAGE_SHIFT, COLOURS)
        } else {
            (frame_size.trailing_zeros(), 1)
        };
        Self {
            frame_count,
            frame_size,
            slot_shift,
            colours,
        }
    }

    /// Registered in unaligned-chunk mode (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`)?
    pub(crate) fn is_coloured(&self) -> bool {
        self.colours > 1
    }

    /// Chunk size in bytes.
    pub(crate) fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Number of frames.
    pub(crate) fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// Bytes of UMEM the layout needs, or `None` if that overflows.
    pub(crate) fn umem_len(&self) -> Option<usize> {
        (self.frame_count as usize).checked_mul(1 << self.slot_shift)
    }

    /// UMEM offset of chunk `idx` (`idx < frame_count`).
    pub(crate) fn chunk_base(&self, idx: u32) -> u64 {
        (u64::from(idx) << self.slot_shift) + u64::from(idx % self.colours) * LINE
    }

    /// The chunk holding UMEM offset `addr`: its index and base, or `None` if `addr` is
    /// outside the UMEM or in the gap around a coloured chunk.
    pub(crate) fn locate(&self, addr: u64) -> Option<(u32, u64)> {
        let idx = u32::try_from(addr >> self.slot_shift)
            .ok()
            .filter(|i| *i < self.frame_count)?;
        let base = self.chunk_base(idx);
        (addr >= base && addr - base < u64::from(self.frame_size)).then_some((idx, base))
    }
}

/// An RX descriptor's address as a plain UMEM offset of the data. In unaligned-chunk mode the
/// kernel hands back the chunk base with the data's offset from it in bits 48–63
/// (`xp_get_handle`); in aligned mode those bits are zero and this changes nothing.
pub(crate) fn rx_data_addr(ring_addr: u64) -> u64 {
    const OFFSET_SHIFT: u32 = 48;
    (ring_addr & ((1 << OFFSET_SHIFT) - 1)) + (ring_addr >> OFFSET_SHIFT)
}

/// Ownership table and free list of a UMEM laid out by a [`Layout`].
#[derive(Debug)]
pub(crate) struct FrameBook {
    layout: Layout,
    free: Vec<u64>,
    owner: Vec<Owner>,
    acc: FrameAccounting,
    pub(crate) errors: FrameErrors,
}

impl FrameBook {
    /// All frames start free.
    pub(crate) fn new(layout: Layout) -> Self {
        let frame_count = layout.frame_count();
        // Pushed in reverse so the first pops hand out low addresses first.
        let free = (0..frame_count)
            .rev()
            .map(|i| layout.chunk_base(i))
            .collect();
        Self {
            layout,
            free,
            owner: vec![Owner::Free; frame_count as usize],
            acc: FrameAccounting {
                frame_count,
                free: frame_count,
                ..FrameAccounting::default()
            },
            errors: FrameErrors::default(),
        }
    }

    /// The UMEM layout.
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// Index and base of the chunk containing `addr` (a data address anywhere in a chunk),
    /// if any.
    pub(crate) fn locate(&self, addr: u64) -> Option<(u32, u64)> {
        self.layout.locate(addr)
    }

    fn owner_mut(&mut self, addr: u64) -> Option<&mut Owner> {
        let (idx, _) = self.locate(addr)?;
        self.owner.get_mut(idx as usize)
    }

    /// Frames on the free list.
    pub(crate) fn free_len(&self) -> u32 {
        self.acc.free
    }

    /// Current accounting.
    pub(crate) fn accounting(&self) -> FrameAccounting {
        self.acc
    }

    /// Recounts the owner table; equal to [`FrameBook::accounting`] unless the book is
    /// corrupt. O(frame_count): for tests and diagnostics.
    pub(crate) fn recount(&self) -> FrameAccounting {
        let mut acc = FrameAccounting {
            frame_count: self.layout.frame_count(),
            ..FrameAccounting::default()
        };
        for o in &self.owner {
            match *o {
                Owner::Free => acc.free += 1,
                Owner::Fill(s) => acc.in_fill[usize::from(s & 1)] += 1,
                Owner::App => acc.in_app += 1,
                Owner::Tx(s) => acc.in_tx[usize::from(s & 1)] += 1,
            }
        }
        acc
    }

    /// The owner of every frame, one byte each (0 free, 1/2 in the guest/fabric fill ring,
    /// 3/4 on the guest/fabric TX ring), for a takeover; `Err(held)` when the application
    /// holds frames, which a quiesced owner must have sent or released first.
    pub(crate) fn export(&self) -> Result<Vec<u8>, u32> {
        if self.acc.in_app > 0 {
            return Err(self.acc.in_app);
        }
        Ok(self
            .owner
            .iter()
            .map(|o| match *o {
                Owner::Free | Owner::App => 0,
                Owner::Fill(s) => 1 + (s & 1),
                Owner::Tx(s) => 3 + (s & 1),
            })
            .collect())
    }

    /// The book [`FrameBook::export`] described: `None` unless `owners` has one valid byte
    /// per frame of `layout`. Error counters start at zero.
    pub(crate) fn import(layout: Layout, owners: &[u8]) -> Option<Self> {
        if owners.len() != layout.frame_count() as usize {
            return None;
        }
        let mut book = Self::new(layout);
        book.free.clear();
        book.acc.free = 0;
        for (i, code) in owners.iter().enumerate().rev() {
            let o = match code {
                0 => Owner::Free,
                1 | 2 => Owner::Fill(code - 1),
                3 | 4 => Owner::Tx(code - 3),
                _ => return None,
            };
            match o {
                Owner::Free => {
                    book.free.push(layout.chunk_base(i as u32));
                    book.acc.free += 1;
                }
                Owner::Fill(s) => book.acc.in_fill[usize::from(s)] += 1,
                Owner::Tx(s) => book.acc.in_tx[usize::from(s)] += 1,
                Owner::App => {}
            }
            book.owner[i] = o;
        }
        Some(book)
    }

    /// Takes a free frame for the fill ring of `side`.
    pub(crate) fn give_to_fill(&mut self, side: u8) -> Option<u64> {
        let addr = self.free.pop()?;
        if let Some(o) = self.owner_mut(addr) {
            *o = Owner::Fill(side);
        }
        self.acc.free -= 1;
        self.acc.in_fill[usize::from(side & 1)] += 1;
        Some(addr)
    }

    /// Takes a free frame for the application (e.g. to build a packet for TX).
    pub(crate) fn alloc(&mut self) -> Option<u64> {
        let addr = self.free.pop()?;
        if let Some(o) = self.owner_mut(addr) {
            *o = Owner::App;
        }
        self.acc.free -= 1;
        self.acc.in_app += 1;
        Some(addr)
    }

    /// A frame came back on `side`'s RX ring. Returns false (and counts) if it was not
    /// given to that side's fill ring.
    pub(crate) fn received(&mut self, side: u8, addr: u64) -> bool {
        match self.owner_mut(addr) {
            Some(o) if *o == Owner::Fill(side) => {
                *o = Owner::App;
                self.acc.in_fill[usize::from(side & 1)] -= 1;
                self.acc.in_app += 1;
                true
            }
            _ => {
                self.errors.rx_unexpected += 1;
                false
            }
        }
    }

    /// The chunk base of a descriptor the application may use: inside one chunk of the
    /// UMEM, and that frame held by the application (not in a fill or TX ring).
    pub(crate) fn app_chunk(&self, d: Desc) -> Result<u64, DescError> {
        let (idx, base) = self.locate(d.addr).ok_or(DescError::OutOfUmem)?;
        if d.addr - base + u64::from(d.len) > u64::from(self.layout.frame_size()) {
            return Err(DescError::CrossesChunk);
        }
        match self.owner.get(idx as usize) {
            Some(Owner::App) => Ok(base),
            _ => Err(DescError::NotOwned),
        }
    }

    /// The application hands a frame it holds to `side`'s TX ring (caller checked
    /// [`FrameBook::app_chunk`]).
    pub(crate) fn sent(&mut self, side: u8, addr: u64) {
        if let Some(o) = self.owner_mut(addr) {
            if *o == Owner::App {
                *o = Owner::Tx(side);
                self.acc.in_app -= 1;
                self.acc.in_tx[usize::from(side & 1)] += 1;
            }
        }
    }

    /// A completion for `addr` arrived on `side`. Returns false (and counts) if that frame
    /// was not on that side's TX ring.
    pub(crate) fn completed(&mut self, side: u8, addr: u64) -> bool {
        let freed = self.free_from(addr, Owner::Tx(side));
        self.errors.completion_unexpected += u64::from(!freed);
        freed
    }

    /// The application drops a frame it holds. Returns false (and counts) otherwise.
    pub(crate) fn release(&mut self, addr: u64) -> bool {
        let freed = self.free_from(addr, Owner::App);
        self.errors.release_unowned += u64::from(!freed);
        freed
    }

    /// Puts the chunk holding `addr` back on the free list if `was` is its owner.
    fn free_from(&mut self, addr: u64, was: Owner) -> bool {
        let Some((idx, base)) = self.locate(addr) else {
            return false;
        };
        match self.owner.get_mut(idx as usize) {
            Some(o) if *o == was => *o = Owner::Free,
            _ => return false,
        }
        match was {
            Owner::Tx(side) => self.acc.in_tx[usize::from(side & 1)] -= 1,
            _ => self.acc.in_app -= 1,
        }
        self.acc.free += 1;
        self.free.push(base);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_chunks_cover_the_umem_and_nothing_else() {
        let l = Layout::new(4, 4096);
        assert!(!l.is_coloured());
        assert_eq!(l.umem_len(), Some(4 * 4096));
        assert_eq!(l.locate(4096 + 384), Some((1, 4096)));
        assert_eq!(l.locate(4 * 4096 - 1), Some((3, 3 * 4096)));
        assert_eq!(l.locate(4 * 4096), None);
        assert_eq!(l.locate(u64::MAX), None);
    }

    #[test]
    fn coloured_chunks_stay_in_their_page_and_walk_the_cache_sets() {
        let l = Layout::new(100, 2048);
        assert!(l.is_coloured());
        assert_eq!(l.umem_len(), Some(100 * 4096));
        let mut sets = std::collections::BTreeSet::new();
        for i in 0..100 {
            let base = l.chunk_base(i);
            assert_eq!(base >> 12, u64::from(i), "chunk {i} is in page {i}");
            assert!(base % 4096 + 2048 <= 4096, "chunk {i} crosses its page");
            if i < COLOURS {
                sets.insert((base / 64) % 64);
            }
            for inside in [0, 384, 2047] {
                assert_eq!(l.locate(base + inside), Some((i, base)));
            }
            // The gaps around a chunk belong to no frame.
            assert_eq!(l.locate(base + 2048), None);
            if !base.is_multiple_of(4096) {
                assert_eq!(l.locate(base - 1), None);
            }
        }
        assert_eq!(
            sets.len(),
            COLOURS as usize,
            "consecutive frames start in different sets"
        );
        assert_eq!(l.locate(100 * 4096), None);
    }

    #[test]
    fn rx_addresses_move_the_offset_out_of_the_top_bits() {
        let base = Layout::new(8, 2048).chunk_base(5);
        assert_eq!(rx_data_addr(base | (384 << 48)), base + 384);
        // Aligned mode: plain addresses pass unchanged.
        assert_eq!(rx_data_addr(5 * 4096 + 384), 5 * 4096 + 384);
    }

    #[test]
    fn full_cycle_keeps_balance() {
        let mut b = FrameBook::new(Layout::new(8, 2048));
        let a = b.give_to_fill(0).expect("free frame");
        let c = b.give_to_fill(1).expect("free frame");
        assert_eq!(b.accounting().in_fill, [1, 1]);
        assert!(b.accounting().is_balanced());
        // RX desc addresses carry the headroom offset.
        assert!(b.received(0, a + 384));
        assert_eq!(
            b.app_chunk(Desc {
                addr: a + 10,
                len: 0
            }),
            Ok(a)
        );
        b.sent(1, a + 100);
        assert_eq!(b.accounting().in_tx, [0, 1]);
        assert!(b.completed(1, a + 100));
        assert!(b.received(1, c + 384));
        assert!(b.release(c + 384));
        assert_eq!(b.accounting(), b.recount());
        assert_eq!(b.accounting().free, 8);
        assert!(b.accounting().is_balanced());
        assert_eq!(b.errors, FrameErrors::default());
    }

    #[test]
    fn wrong_transitions_are_counted_not_applied() {
        let mut b = FrameBook::new(Layout::new(4, 2048));
        let a = b.give_to_fill(0).expect("free frame");
        // Received on the wrong side.
        assert!(!b.received(1, a));
        // Release of a frame the kernel owns.
        assert!(!b.release(a));
        // Completion of a frame never sent.
        assert!(!b.completed(0, a));
        // Out of range.
        assert!(!b.release(1 << 40));
        assert_eq!(
            b.errors,
            FrameErrors {
                rx_unexpected: 1,
                completion_unexpected: 1,
                release_unowned: 2,
                send_rejected: 0
            }
        );
        assert!(b.received(0, a));
        assert!(b.release(a));
        // Double release.
        assert!(!b.release(a));
        assert_eq!(b.accounting(), b.recount());
        assert_eq!(b.free_len(), 4);
    }

    #[test]
    fn exported_book_imports_with_every_frame_where_it_was() {
        let layout = Layout::new(8, 2048);
        let mut b = FrameBook::new(layout);
        let f0 = b.give_to_fill(0).expect("free frame");
        let f1 = b.give_to_fill(1).expect("free frame");
        let t = b.give_to_fill(0).expect("free frame");
        assert!(b.received(0, t + 384));
        assert_eq!(b.export(), Err(1), "a held frame blocks the export");
        b.sent(1, t + 384);
        let codes = b.export().expect("quiesced book");
        let mut n = FrameBook::import(layout, &codes).expect("valid table");
        assert_eq!(n.accounting(), b.accounting());
        assert_eq!(n.accounting(), n.recount());
        // Free frames come off the free list in the same order.
        let a = n.alloc();
        assert_eq!(a, b.alloc());
        assert!(n.release(a.expect("free frame")));
        // The kernel's frames come back to the new owner as they would have to the old one.
        assert!(n.received(0, f0 + 384));
        assert!(n.received(1, f1 + 384));
        assert!(n.completed(1, t));
        assert!(!n.received(1, f0 + 384), "not in the fabric fill ring");
        assert_eq!(FrameBook::import(layout, &codes[1..]).map(|_| ()), None);
        let mut bad = codes.clone();
        bad[7] = 5;
        assert_eq!(FrameBook::import(layout, &bad).map(|_| ()), None);
    }

    #[test]
    fn free_list_exhausts_and_refills() {
        let mut b = FrameBook::new(Layout::new(3, 2048));
        let got: Vec<u64> = std::iter::from_fn(|| b.alloc()).collect();
        let layout = b.layout();
        assert_eq!(
            got,
            (0..3).map(|i| layout.chunk_base(i)).collect::<Vec<_>>()
        );
        assert_eq!(b.give_to_fill(0), None);
        assert!(b.release(got[1] + 7));
        assert_eq!(b.give_to_fill(0), Some(got[1]));
        assert!(b.accounting().is_balanced());
        assert_eq!(b.accounting(), b.recount());
    }
}
