//! Frame book-keeping: who owns each UMEM chunk (free list, a fill ring, the application,
//! a TX ring), so no frame is ever leaked or handed out twice. Pure logic, no I/O.
#![forbid(unsafe_code)]

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// Ownership table and free list of a UMEM of `frame_count` chunks of `frame_size` bytes.
#[derive(Debug)]
pub(crate) struct FrameBook {
    shift: u32,
    frame_count: u32,
    free: Vec<u64>,
    owner: Vec<Owner>,
    acc: FrameAccounting,
    pub(crate) errors: FrameErrors,
}

impl FrameBook {
    /// All frames start free. `frame_size` must be a power of two (checked by the caller).
    pub(crate) fn new(frame_count: u32, frame_size: u32) -> Self {
        debug_assert!(frame_size.is_power_of_two());
        let shift = frame_size.trailing_zeros();
        // Pushed in reverse so the first pops hand out low addresses first.
        let free = (0..u64::from(frame_count))
            .rev()
            .map(|i| i << shift)
            .collect();
        Self {
            shift,
            frame_count,
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

    /// Chunk size in bytes.
    pub(crate) fn frame_size(&self) -> u32 {
        1 << self.shift
    }

    /// Index of the chunk containing `addr`, if inside the UMEM. Addresses on the RX and
    /// completion rings may carry an offset into the chunk; masking removes it.
    pub(crate) fn chunk_index(&self, addr: u64) -> Option<u32> {
        let idx = addr >> self.shift;
        if idx < u64::from(self.frame_count) {
            Some(idx as u32)
        } else {
            None
        }
    }

    /// Base address of the chunk containing `addr` (`addr & !(frame_size - 1)`).
    pub(crate) fn chunk_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size()) - 1)
    }

    fn owner_mut(&mut self, addr: u64) -> Option<&mut Owner> {
        let idx = self.chunk_index(addr)?;
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
            frame_count: self.frame_count,
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

    /// Whether the application holds the chunk containing `addr`.
    pub(crate) fn owned_by_app(&self, addr: u64) -> bool {
        self.chunk_index(addr)
            .and_then(|i| self.owner.get(i as usize))
            .is_some_and(|o| *o == Owner::App)
    }

    /// The application hands a frame it holds to `side`'s TX ring (caller checked
    /// [`FrameBook::owned_by_app`]).
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
        let base = self.chunk_base(addr);
        match self.owner_mut(addr) {
            Some(o) if *o == Owner::Tx(side) => {
                *o = Owner::Free;
                self.acc.in_tx[usize::from(side & 1)] -= 1;
                self.acc.free += 1;
                self.free.push(base);
                true
            }
            _ => {
                self.errors.completion_unexpected += 1;
                false
            }
        }
    }

    /// The application drops a frame it holds. Returns false (and counts) otherwise.
    pub(crate) fn release(&mut self, addr: u64) -> bool {
        let base = self.chunk_base(addr);
        match self.owner_mut(addr) {
            Some(o) if *o == Owner::App => {
                *o = Owner::Free;
                self.acc.in_app -= 1;
                self.acc.free += 1;
                self.free.push(base);
                true
            }
            _ => {
                self.errors.release_unowned += 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_strips_offsets_and_rejects_out_of_range() {
        let b = FrameBook::new(4, 2048);
        assert_eq!(b.chunk_base(2048 + 384), 2048);
        assert_eq!(b.chunk_index(2048 + 384), Some(1));
        assert_eq!(b.chunk_index(4 * 2048 - 1), Some(3));
        assert_eq!(b.chunk_index(4 * 2048), None);
        let b = FrameBook::new(2, 4096);
        assert_eq!(b.chunk_base(4096 + 4095), 4096);
    }

    #[test]
    fn full_cycle_keeps_balance() {
        let mut b = FrameBook::new(8, 2048);
        let a = b.give_to_fill(0).expect("free frame");
        let c = b.give_to_fill(1).expect("free frame");
        assert_eq!(b.accounting().in_fill, [1, 1]);
        assert!(b.accounting().is_balanced());
        // RX desc addresses carry the headroom offset.
        assert!(b.received(0, a + 384));
        assert!(b.owned_by_app(a + 10));
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
        let mut b = FrameBook::new(4, 2048);
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
    fn free_list_exhausts_and_refills() {
        let mut b = FrameBook::new(3, 2048);
        let got: Vec<u64> = std::iter::from_fn(|| b.alloc()).collect();
        assert_eq!(got, vec![0, 2048, 4096]);
        assert_eq!(b.give_to_fill(0), None);
        assert!(b.release(2048 + 7));
        assert_eq!(b.give_to_fill(0), Some(2048));
        assert!(b.accounting().is_balanced());
        assert_eq!(b.accounting(), b.recount());
    }
}
