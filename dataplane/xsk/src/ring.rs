//! The four single-producer/single-consumer rings of an AF_XDP socket, mapped from the
//! kernel. Batches are transactions: reserve/peek, write/read, then submit/release, with
//! cached indices so the shared producer/consumer words are touched once per batch.

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
        let map = Mmap::ring(fd, len, pgoff)?;
        let base = map.as_ptr();
        debug_assert!(map.len() >= len);
        // SAFETY: all offsets were checked above to lie inside the `len`-byte mapping and to
        // be aligned for their types (mmap returns page-aligned memory).
        let (producer, consumer, flags, descs) = unsafe {
            (
                base.add(off.producer as usize).cast::<AtomicU32>() as *const AtomicU32,
                base.add(off.consumer as usize).cast::<AtomicU32>() as *const AtomicU32,
                base.add(off.flags as usize).cast::<AtomicU32>() as *const AtomicU32,
                base.add(desc_off).cast::<T>(),
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
        ring.cached_prod = ring.prod().load(Ordering::Acquire);
        ring.cached_cons = ring.cons().load(Ordering::Acquire);
        if end == End::Producer {
            ring.cached_cons = ring.cached_cons.wrapping_add(size);
        }
        Ok(ring)
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

    /// Reserves up to `n` free slots; returns how many. Slots are `0..returned`, relative to
    /// the current producer position, until [`Ring::submit`].
    pub(crate) fn reserve(&mut self, n: u32) -> u32 {
        let mut free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free < n {
            self.cached_cons = self.cons().load(Ordering::Acquire).wrapping_add(self.size);
            free = self.cached_cons.wrapping_sub(self.cached_prod);
        }
        free.min(n)
    }

    /// Writes reserved slot `i` (relative to the producer position).
    pub(crate) fn write(&mut self, i: u32, value: T) {
        let idx = (self.cached_prod.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `idx <= mask < size`, so the slot is inside the descriptor array; the slot
        // is reserved (not yet visible to the kernel), so nobody else accesses it.
        unsafe { self.descs.add(idx).write(value) }
    }

    /// Publishes the first `n` reserved slots to the kernel.
    pub(crate) fn submit(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.prod().store(self.cached_prod, Ordering::Release);
    }

    /// Entries we produced that the kernel has not consumed yet.
    pub(crate) fn pending(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.cons().load(Ordering::Acquire))
    }

    // ---- consumer end (RX, completion) ----

    /// Up to `n` entries ready to read; read them with [`Ring::read`] `0..returned`.
    pub(crate) fn peek(&mut self, n: u32) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < n {
            self.cached_prod = self.prod().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        avail.min(n)
    }

    /// Reads peeked entry `i` (relative to the consumer position).
    pub(crate) fn read(&self, i: u32) -> T {
        let idx = (self.cached_cons.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `idx < size`, inside the descriptor array; the entry was published by the
        // kernel (acquire load of the producer in `peek`) and is not reused until `release`.
        unsafe { self.descs.add(idx).read() }
    }

    /// Returns the first `n` peeked entries to the kernel.
    pub(crate) fn release(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.cons().store(self.cached_cons, Ordering::Release);
    }

    /// Entries the kernel produced that we have not released (refreshes the cache).
    pub(crate) fn available(&mut self) -> u32 {
        self.cached_prod = self.prod().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }
}
