//! The four single-producer/single-consumer rings of an AF_XDP socket, mapped from the
//! kernel. Batches are transactions: [`Ring::reserve`] returns a [`WriteBatch`] and
//! [`Ring::peek`] a [`ReadBatch`]; they can touch only the slots they hold, and nothing is
//! published to the kernel until [`WriteBatch::commit`] / [`ReadBatch::release`]. Indices are
//! cached, so the shared producer/consumer words are touched once per batch.

use std::io;
use std::mem;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::Mmap;

/// A mapped ring of `T` entries (`u64` for fill/completion, `xdp_desc` for RX/TX).
///
/// Invariant: `producer`, `consumer`, `flags` point to aligned `u32` words and `descs` to
/// `size` aligned `T` entries, all inside `_map`, which lives as long as this value.
pub(crate) struct Ring<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    size: u32,
    mask: u32,
    /// Producer side: our next producer index. Consumer side: last seen producer index.
    cached_prod: u32,
    /// Producer side: last seen consumer index + size. Consumer side: our next index.
    cached_cons: u32,
    _map: Mmap,
}

// SAFETY: the raw pointers point into `_map`, which moves with the ring; the ring is used by
// one thread at a time (`&mut self` for every index change).
unsafe impl<T: Send> Send for Ring<T> {}

/// Which end of the ring this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// We produce (fill, TX).
    Producer,
    /// We consume (RX, completion).
    Consumer,
}

impl<T: Copy> Ring<T> {
    /// Maps a ring of `size` entries described by `off` at page offset `pgoff`.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
        end: End,
    ) -> io::Result<Self> {
        let len = Self::map_len(off, size)?;
        Self::from_map(Mmap::ring(fd, len, pgoff)?, off, size, end)
    }

    /// Bytes a ring of `size` entries laid out as `off` needs, after checking that every
    /// offset lies inside them and is aligned for its type.
    fn map_len(off: &libc::xdp_ring_offset, size: u32) -> io::Result<usize> {
        let invalid = || io::Error::from_raw_os_error(libc::EINVAL);
        if !size.is_power_of_two() {
            return Err(invalid());
        }
        let desc_off = usize::try_from(off.desc).map_err(|_| invalid())?;
        let len = desc_off
            .checked_add(size as usize * mem::size_of::<T>())
            .ok_or_else(invalid)?;
        for word in [off.producer, off.consumer, off.flags] {
            let w = usize::try_from(word).map_err(|_| invalid())?;
            if w % mem::align_of::<AtomicU32>() != 0 || w + 4 > len {
                return Err(invalid());
            }
        }
        if desc_off % mem::align_of::<T>() != 0 {
            return Err(invalid());
        }
        Ok(len)
    }

    /// The ring laid out as `off` in `map`.
    fn from_map(map: Mmap, off: &libc::xdp_ring_offset, size: u32, end: End) -> io::Result<Self> {
        let len = Self::map_len(off, size)?;
        if map.len() < len {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let base = map.as_ptr();
        // SAFETY: `map_len` checked all offsets to lie inside the first `len` bytes of the
        // mapping (and `map` has at least `len`) and to be aligned for their types (mmap
        // returns page-aligned memory).
        let (producer, consumer, flags, descs) = unsafe {
            (
                base.add(off.producer as usize).cast::<AtomicU32>() as *const AtomicU32,
                base.add(off.consumer as usize).cast::<AtomicU32>() as *const AtomicU32,
                base.add(off.flags as usize).cast::<AtomicU32>() as *const AtomicU32,
                base.add(off.desc as usize).cast::<T>(),
            )
        };
        let mut ring = Self {
            producer,
            consumer,
            flags,
            descs,
            size,
            mask: size - 1,
            cached_prod: 0,
            cached_cons: 0,
            _map: map,
        };
        ring.sync(end);
        Ok(ring)
    }

    /// Loads both shared indices into the caches.
    fn sync(&mut self, end: End) {
        self.cached_prod = self.prod().load(Ordering::Acquire);
        self.cached_cons = self.cons().load(Ordering::Acquire);
        if end == End::Producer {
            self.cached_cons = self.cached_cons.wrapping_add(self.size);
        }
    }

    fn prod(&self) -> &AtomicU32 {
        // SAFETY: type invariant: aligned and inside the live mapping; the kernel accesses it
        // atomically too.
        unsafe { &*self.producer }
    }

    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as for `prod`.
        unsafe { &*self.consumer }
    }

    /// Pointer to the descriptor slot of ring index `index` (any `u32`; it is masked).
    fn slot(&self, index: u32) -> *mut T {
        let idx = (index & self.mask) as usize;
        // SAFETY: `idx <= mask < size`, so the result stays inside the `size`-entry
        // descriptor array (type invariant).
        unsafe { self.descs.add(idx) }
    }

    /// Number of entries.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Whether the kernel asks for a wakeup syscall (`XDP_RING_NEED_WAKEUP`).
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: type invariant (aligned, inside the live mapping).
        let flags = unsafe { &*self.flags };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // ---- producer end (fill, TX) ----

    /// Reserves up to `n` free slots (never more than the ring holds). The batch writes at
    /// most that many and publishes what it wrote on [`WriteBatch::commit`]; dropped, it
    /// publishes nothing.
    pub(crate) fn reserve(&mut self, n: u32) -> WriteBatch<'_, T> {
        let mut free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free < n {
            self.cached_cons = self.cons().load(Ordering::Acquire).wrapping_add(self.size);
            free = self.cached_cons.wrapping_sub(self.cached_prod);
        }
        WriteBatch {
            reserved: free.min(n).min(self.size),
            written: 0,
            ring: self,
        }
    }

    /// Entries we produced that the kernel has not consumed yet.
    pub(crate) fn pending(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.cons().load(Ordering::Acquire))
    }

    // ---- consumer end (RX, completion) ----

    /// Up to `n` entries ready to read (never more than the ring holds), read in order by
    /// iterating the batch. [`ReadBatch::release`] returns the entries read to the kernel;
    /// dropped, the batch returns nothing and the next `peek` sees the same entries.
    pub(crate) fn peek(&mut self, n: u32) -> ReadBatch<'_, T> {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < n {
            self.cached_prod = self.prod().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        ReadBatch {
            peeked: avail.min(n).min(self.size),
            read: 0,
            ring: self,
        }
    }

    /// Entries the kernel produced that we have not released (refreshes the cache).
    pub(crate) fn available(&mut self) -> u32 {
        self.cached_prod = self.prod().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }
}

/// Slots reserved on a producer ring ([`Ring::reserve`]): the slots past our producer index
/// that the kernel has consumed, so it does not read them until we publish them.
///
/// Writes go to the next reserved slot and stop when all are written: a batch cannot write
/// outside its reservation. [`WriteBatch::commit`] publishes exactly the slots written;
/// dropping the batch publishes none (the ring is as before the reservation).
#[must_use = "reserved slots are published only by `commit`"]
pub(crate) struct WriteBatch<'r, T> {
    ring: &'r mut Ring<T>,
    /// Slots reserved: `reserved <= size` and free at reservation time.
    reserved: u32,
    /// Slots written so far, `written <= reserved`: `0..written` relative to the producer
    /// index.
    written: u32,
}

impl<T: Copy> WriteBatch<'_, T> {
    /// Slots reserved.
    pub(crate) fn capacity(&self) -> u32 {
        self.reserved
    }

    /// Writes items of `items` into the next reserved slots until all are written or the
    /// items end; returns how many it wrote. An item is taken from the iterator only when a
    /// slot is free for it, and every item taken is written, so side effects of producing
    /// an item (taking a frame off the free list) are never wasted.
    pub(crate) fn insert(&mut self, items: impl IntoIterator<Item = T>) -> u32 {
        let mut items = items.into_iter();
        let before = self.written;
        while self.written < self.reserved {
            let Some(value) = items.next() else { break };
            let slot = self
                .ring
                .slot(self.ring.cached_prod.wrapping_add(self.written));
            // SAFETY: `slot` is inside the descriptor array (`Ring::slot`) and aligned. It is
            // one of the `reserved` slots past our producer index: the kernel consumed it
            // (checked in `reserve`) and reads it only after `commit` publishes it, and
            // `written < reserved <= size`, so the batch never wraps onto a slot it wrote
            // earlier. The `&mut` ring borrow excludes every other access from our side.
            unsafe { slot.write(value) }
            self.written += 1;
        }
        self.written - before
    }

    /// Publishes the slots written (in order) to the kernel; returns how many.
    pub(crate) fn commit(self) -> u32 {
        let n = self.written;
        if n > 0 {
            let ring = self.ring;
            ring.cached_prod = ring.cached_prod.wrapping_add(n);
            ring.prod().store(ring.cached_prod, Ordering::Release);
        }
        n
    }
}

/// Entries ready on a consumer ring ([`Ring::peek`]): the kernel published them and does not
/// reuse their slots until we release them.
///
/// Iterating yields each peeked entry once, in order, and then `None`: a batch cannot read
/// past what the kernel published. [`ReadBatch::release`] returns exactly the entries read;
/// dropping the batch returns none (the next `peek` sees them again).
#[must_use = "entries go back to the kernel only through `release`"]
pub(crate) struct ReadBatch<'r, T> {
    ring: &'r mut Ring<T>,
    /// Entries published by the kernel and held by this batch, `peeked <= size`.
    peeked: u32,
    /// Entries read so far, `read <= peeked`.
    read: u32,
}

impl<T: Copy> Iterator for ReadBatch<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.read >= self.peeked {
            return None;
        }
        let slot = self
            .ring
            .slot(self.ring.cached_cons.wrapping_add(self.read));
        // SAFETY: `slot` is inside the descriptor array (`Ring::slot`) and aligned. It holds
        // one of the `peeked` entries past our consumer index, which the kernel published
        // (acquire load of its producer index in `peek`) and does not overwrite until
        // `release` moves our consumer index past it.
        let value = unsafe { slot.read() };
        self.read += 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.peeked - self.read) as usize;
        (left, Some(left))
    }
}

impl<T: Copy> ExactSizeIterator for ReadBatch<'_, T> {}

impl<T: Copy> ReadBatch<'_, T> {
    /// Returns the entries read (in order) to the kernel; returns how many.
    pub(crate) fn release(self) -> u32 {
        let n = self.read;
        if n > 0 {
            let ring = self.ring;
            ring.cached_cons = ring.cached_cons.wrapping_add(n);
            ring.cons().store(ring.cached_cons, Ordering::Release);
        }
        n
    }
}

/// A ring in anonymous memory, for unit tests: the test plays the kernel through the
/// `kernel_*` methods.
#[cfg(test)]
impl<T: Copy> Ring<T> {
    fn anonymous(size: u32, end: End, start: u32) -> Self {
        let off = libc::xdp_ring_offset {
            producer: 0,
            consumer: 64,
            flags: 128,
            desc: 192,
        };
        let len = Self::map_len(&off, size).expect("ring layout");
        let map = Mmap::anonymous(len).expect("anonymous mapping");
        let mut ring = Self::from_map(map, &off, size, end).expect("ring");
        ring.prod().store(start, Ordering::Relaxed);
        ring.cons().store(start, Ordering::Relaxed);
        ring.sync(end);
        ring
    }

    fn kernel_prod(&self) -> u32 {
        self.prod().load(Ordering::Acquire)
    }

    fn kernel_cons(&self) -> u32 {
        self.cons().load(Ordering::Acquire)
    }

    fn kernel_set_prod(&mut self, v: u32) {
        self.prod().store(v, Ordering::Release);
    }

    fn kernel_set_cons(&mut self, v: u32) {
        self.cons().store(v, Ordering::Release);
    }

    fn kernel_slot(&self, index: u32) -> T {
        // SAFETY: `slot` is in bounds and aligned; the memory was zeroed or written with a
        // `T` (plain integers in these tests), and no batch is alive (`&self`).
        unsafe { self.slot(index).read() }
    }

    fn kernel_set_slot(&mut self, index: u32, v: T) {
        // SAFETY: `slot` is in bounds and aligned; no batch is alive (`&mut self`).
        unsafe { self.slot(index).write(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTOUCHED: u64 = 0xdead;

    /// A producer ring of `size` whose slots all hold `UNTOUCHED`, indices at `start`.
    fn producer(size: u32, start: u32) -> Ring<u64> {
        let mut r = Ring::anonymous(size, End::Producer, start);
        for i in 0..size {
            r.kernel_set_slot(i, UNTOUCHED);
        }
        r
    }

    fn slots(r: &Ring<u64>) -> Vec<u64> {
        (0..r.size()).map(|i| r.kernel_slot(i)).collect()
    }

    const U: u64 = UNTOUCHED;

    #[test]
    fn write_batch_stops_at_its_reservation() {
        let mut r = producer(8, 0);
        let mut pulled = 0;
        let mut b = r.reserve(3);
        assert_eq!(b.capacity(), 3);
        assert_eq!(b.insert((100..).inspect(|_| pulled += 1)), 3);
        assert_eq!(pulled, 3, "no item is taken without a slot for it");
        assert_eq!(b.insert([999]), 0, "a full batch writes nothing");
        assert_eq!(b.commit(), 3);
        assert_eq!(r.kernel_prod(), 3);
        assert_eq!(slots(&r), [100, 101, 102, U, U, U, U, U]);
    }

    #[test]
    fn write_batch_holds_only_the_slots_the_kernel_consumed() {
        let mut r = producer(8, 0);
        let mut b = r.reserve(100);
        assert_eq!(b.capacity(), 8);
        assert_eq!(b.insert(0..), 8);
        b.commit();
        // Full: nothing to reserve, nothing written.
        let mut b = r.reserve(1);
        assert_eq!((b.capacity(), b.insert([99])), (0, 0));
        b.commit();
        // The kernel consumes two: exactly those two slots come back.
        r.kernel_set_cons(2);
        let mut b = r.reserve(5);
        assert_eq!(b.capacity(), 2);
        assert_eq!(b.insert(50..), 2);
        assert_eq!(b.commit(), 2);
        assert_eq!(slots(&r), [50, 51, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.kernel_prod(), 10);
    }

    #[test]
    fn dropped_write_batch_publishes_nothing() {
        let mut r = producer(8, 0);
        let mut b = r.reserve(4);
        assert_eq!(b.insert([1, 2, 3, 4]), 4);
        drop(b);
        assert_eq!(r.kernel_prod(), 0);
        assert_eq!(r.pending(), 0);
        // The same slots are reserved again and overwritten.
        let mut b = r.reserve(4);
        assert_eq!(b.insert([7]), 1);
        assert_eq!(b.commit(), 1);
        assert_eq!(r.kernel_prod(), 1);
        assert_eq!(r.kernel_slot(0), 7);
    }

    #[test]
    fn commit_publishes_exactly_the_slots_written() {
        let mut r = producer(8, 0);
        let mut b = r.reserve(5);
        assert_eq!(b.insert([1, 2]), 2);
        assert_eq!(b.commit(), 2);
        assert_eq!(r.kernel_prod(), 2);
        assert_eq!(r.pending(), 2);
        assert_eq!(slots(&r), [1, 2, U, U, U, U, U, U]);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let start = u32::MAX - 2;
        let mut r = producer(8, start);
        let mut b = r.reserve(5);
        assert_eq!(b.insert(10..), 5);
        assert_eq!(b.commit(), 5);
        assert_eq!(r.kernel_prod(), start.wrapping_add(5));
        // `start & 7 == 5`: slots 5, 6, 7, 0, 1.
        assert_eq!(slots(&r), [13, 14, U, U, U, 10, 11, 12]);
    }

    #[test]
    fn a_batch_never_exceeds_the_ring_whatever_the_kernel_says() {
        let mut r = producer(8, 0);
        r.kernel_set_cons(1000);
        let mut b = r.reserve(u32::MAX);
        assert_eq!(b.capacity(), 8);
        assert_eq!(b.insert(0..), 8);
        drop(b);
        let mut c = Ring::<u64>::anonymous(8, End::Consumer, 0);
        c.kernel_set_prod(1000);
        assert_eq!(c.peek(u32::MAX).len(), 8);
    }

    /// A consumer ring of `size` whose slots hold `UNTOUCHED`, with `entries` published.
    fn consumer(size: u32, entries: &[u64]) -> Ring<u64> {
        let mut r = Ring::anonymous(size, End::Consumer, 0);
        for i in 0..size {
            r.kernel_set_slot(i, UNTOUCHED);
        }
        for (i, v) in (0..).zip(entries) {
            r.kernel_set_slot(i, *v);
        }
        r.kernel_set_prod(entries.len() as u32);
        r
    }

    #[test]
    fn read_batch_yields_only_published_entries() {
        let mut r = consumer(8, &[10, 11, 12]);
        let mut b = r.peek(8);
        assert_eq!(b.len(), 3);
        assert_eq!(b.by_ref().collect::<Vec<_>>(), [10, 11, 12]);
        assert_eq!(
            b.next(),
            None,
            "slots past the kernel's producer are not read"
        );
        assert_eq!(b.release(), 3);
        assert_eq!(r.kernel_cons(), 3);
        assert_eq!(r.peek(8).len(), 0);
    }

    #[test]
    fn dropped_read_batch_releases_nothing() {
        let mut r = consumer(8, &[10, 11, 12]);
        let mut b = r.peek(8);
        assert_eq!(b.next(), Some(10));
        drop(b);
        assert_eq!(r.kernel_cons(), 0);
        assert_eq!(r.peek(8).collect::<Vec<_>>(), [10, 11, 12]);
    }

    #[test]
    fn release_returns_exactly_the_entries_read() {
        let mut r = consumer(8, &[10, 11, 12]);
        let mut b = r.peek(2);
        assert_eq!(b.len(), 2);
        assert_eq!(b.next(), Some(10));
        assert_eq!(b.release(), 1);
        assert_eq!(r.kernel_cons(), 1);
        assert_eq!(r.peek(8).collect::<Vec<_>>(), [11, 12]);
    }
}
