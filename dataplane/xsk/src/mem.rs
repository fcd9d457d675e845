//! [`MemRings`]: a guest and a fabric port over plain memory, for tests and benchmarks of
//! code generic over [`Rings`] (feature `test-utils`).
//!
//! The same [`FrameBook`] as the AF_XDP engine says who owns each frame, so a frame the
//! code under test leaks, releases twice or sends without owning shows up in
//! [`Rings::audit`], [`Rings::accounting`] and [`Rings::counters`] exactly as it would over
//! real sockets. The test plays the kernel: [`MemRings::inject`] receives a frame on a port,
//! [`MemRings::complete`] and [`MemRings::transmitted`] take what was sent. Nothing
//! completes by itself, so a test controls when TX rings drain (backpressure), unless a
//! traffic source is set ([`MemRings::set_source`], for benchmarks of a whole loop).
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::{Side, UmemConfig, XDP_PACKET_HEADROOM};
use crate::engine::{XskCounters, XskStats};
use crate::error::{DescError, XskError};
use crate::frame::{Desc, FrameMut};
use crate::frames::{FrameAccounting, FrameBook, Layout};
use crate::rings::Rings;

/// Two in-memory ports sharing one frame pool; see the module documentation.
pub struct MemRings {
    mem: Vec<u8>,
    book: FrameBook,
    /// Where received data starts in its chunk: UMEM headroom + `XDP_PACKET_HEADROOM`,
    /// as in copy mode.
    rx_offset: u32,
    ring_size: usize,
    rx: [VecDeque<Desc>; 2],
    tx: [VecDeque<Desc>; 2],
    stats: [XskStats; 2],
    polls: u64,
    /// Frames `service` keeps each RX ring topped up with, in turn, and the next one.
    source: [Vec<Vec<u8>>; 2],
    next: [usize; 2],
}

impl MemRings {
    /// Rings of `cfg.ring_size` entries over `cfg.frame_count` frames laid out as the AF_XDP
    /// UMEM would be. Everything is allocated here: no later call allocates.
    pub fn new(cfg: UmemConfig) -> Result<Self, XskError> {
        cfg.validate(2)?;
        let layout = Layout::new(cfg.frame_count, cfg.frame_size);
        let len = layout
            .umem_len()
            .ok_or_else(|| XskError::Config("UMEM size overflows".into()))?;
        let ring_size = cfg.ring_size as usize;
        let ring = || VecDeque::with_capacity(ring_size);
        Ok(Self {
            mem: vec![0; len],
            book: FrameBook::new(layout),
            rx_offset: cfg.headroom + XDP_PACKET_HEADROOM,
            ring_size,
            rx: [ring(), ring()],
            tx: [ring(), ring()],
            stats: [XskStats::default(); 2],
            polls: 0,
            source: [Vec::new(), Vec::new()],
            next: [0; 2],
        })
    }

    /// The "kernel" receives `bytes` on `side`: copied into a free frame and queued on the
    /// port's RX ring. False, counted in [`Rings::stats`] as the kernel would, when the RX ring
    /// is full (`rx_ring_full`), no frame is free (`rx_fill_ring_empty_descs`) or the data does
    /// not fit a frame (`rx_dropped`).
    pub fn inject(&mut self, side: Side, bytes: &[u8]) -> bool {
        let i = side.index();
        let stats = &mut self.stats[i];
        if self.rx[i].len() >= self.ring_size {
            stats.rx_ring_full += 1;
            return false;
        }
        let Ok(len) = u32::try_from(bytes.len()) else {
            stats.rx_dropped += 1;
            return false;
        };
        if self.rx_offset + len > self.book.layout().frame_size() {
            stats.rx_dropped += 1;
            return false;
        }
        let Some(base) = self.book.give_to_fill(i as u8) else {
            stats.rx_fill_ring_empty_descs += 1;
            return false;
        };
        let addr = base + u64::from(self.rx_offset);
        // `base` is a chunk of this layout, whose bytes lie inside `mem`, and the data fits it.
        let start = addr as usize;
        self.mem[start..start + bytes.len()].copy_from_slice(bytes);
        self.rx[i].push_back(Desc { addr, len });
        true
    }

    /// Makes the "kernel" endlessly busy on `side`: from now on every `service` completes
    /// everything sent on both ports and tops `side`'s RX ring up with `frames`, taken in turn
    /// (none: stop). Lets a benchmark run a worker's whole loop over these rings.
    pub fn set_source(&mut self, side: Side, frames: Vec<Vec<u8>>) {
        self.source[side.index()] = frames;
        self.next[side.index()] = 0;
    }

    /// Frames waiting on `side`'s RX ring.
    pub fn rx_pending(&self, side: Side) -> usize {
        self.rx[side.index()].len()
    }

    /// Frames sent on `side` and not yet completed.
    pub fn tx_pending(&self, side: Side) -> usize {
        self.tx[side.index()].len()
    }

    /// The "kernel" transmits and completes up to `max` frames sent on `side`, oldest first;
    /// returns how many. Allocates nothing.
    pub fn complete(&mut self, side: Side, max: usize) -> usize {
        let i = side.index();
        let mut n = 0;
        while n < max {
            let Some(d) = self.tx[i].pop_front() else {
                break;
            };
            self.book.completed(i as u8, d.addr);
            n += 1;
        }
        n
    }

    /// Completes every frame sent on `side` and returns their bytes, in the order sent.
    pub fn transmitted(&mut self, side: Side) -> Vec<Vec<u8>> {
        let i = side.index();
        let mut out = Vec::with_capacity(self.tx[i].len());
        while let Some(d) = self.tx[i].pop_front() {
            // `send` took only descriptors inside one chunk of this layout.
            let start = d.addr as usize;
            out.push(self.mem[start..start + d.len as usize].to_vec());
            self.book.completed(i as u8, d.addr);
        }
        out
    }
}

impl Rings for MemRings {
    fn tx_room(&mut self, side: Side) -> usize {
        self.ring_size - self.tx[side.index()].len()
    }

    fn recv(&mut self, side: Side, out: &mut [Desc]) -> usize {
        let i = side.index();
        let mut k = 0;
        while k < out.len() {
            let Some(d) = self.rx[i].pop_front() else {
                break;
            };
            if self.book.received(i as u8, d.addr) {
                out[k] = d;
                k += 1;
            }
        }
        k
    }

    fn frame(&mut self, d: Desc) -> Result<FrameMut<'_>, DescError> {
        let base = self.book.app_chunk(d)?;
        let size = self.book.layout().frame_size() as usize;
        let start = usize::try_from(base).map_err(|_| DescError::OutOfUmem)?;
        let buf = self
            .mem
            .get_mut(start..start + size)
            .ok_or(DescError::OutOfUmem)?;
        // `app_chunk` checked `d.addr - base + d.len <= size`.
        Ok(FrameMut::new(
            buf,
            base,
            (d.addr - base) as usize,
            d.len as usize,
        ))
    }

    fn send(&mut self, side: Side, descs: &[Desc]) -> usize {
        let i = side.index();
        let mut k = 0;
        for d in descs {
            if self.tx[i].len() >= self.ring_size {
                break;
            }
            if self.book.app_chunk(*d).is_err() {
                self.book.errors.send_rejected += 1;
                break;
            }
            self.book.sent(i as u8, d.addr);
            self.tx[i].push_back(*d);
            k += 1;
        }
        k
    }

    fn release(&mut self, addr: u64) {
        self.book.release(addr);
    }

    /// Nothing to do unless a source is set ([`MemRings::set_source`]): there is no fill ring
    /// to refill (`inject` takes free frames directly) and completions come only from
    /// [`MemRings::complete`].
    fn service(&mut self) {
        if self.source.iter().all(Vec::is_empty) {
            return;
        }
        for side in Side::ALL {
            self.complete(side, usize::MAX);
        }
        for side in Side::ALL {
            let i = side.index();
            let n = self.source[i].len();
            while n > 0 && self.rx[i].len() < self.ring_size {
                let frame = std::mem::take(&mut self.source[i][self.next[i]]);
                let injected = self.inject(side, &frame);
                self.source[i][self.next[i]] = frame;
                if !injected {
                    break;
                }
                self.next[i] = (self.next[i] + 1) % n;
            }
        }
    }

    /// Returns at once if a frame is waiting; otherwise sleeps for `timeout` (nothing can
    /// arrive meanwhile: the rings are not shared with another thread).
    fn wait(&mut self, timeout: Duration) -> Result<bool, XskError> {
        self.polls += 1;
        if self.rx.iter().any(|r| !r.is_empty()) {
            return Ok(true);
        }
        std::thread::sleep(timeout);
        Ok(false)
    }

    fn accounting(&self) -> FrameAccounting {
        self.book.accounting()
    }

    fn audit(&self) -> bool {
        let a = self.book.accounting();
        a.is_balanced() && a == self.book.recount()
    }

    fn counters(&self) -> XskCounters {
        XskCounters {
            polls: self.polls,
            frames: self.book.errors,
            ..XskCounters::default()
        }
    }

    fn stats(&self, side: Side) -> Result<XskStats, XskError> {
        Ok(self.stats[side.index()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rings() -> MemRings {
        MemRings::new(UmemConfig {
            frame_count: 256,
            ring_size: 64,
            ..UmemConfig::default()
        })
        .expect("valid config")
    }

    #[test]
    fn a_frame_goes_round_and_every_frame_stays_accounted_for() {
        let mut r = rings();
        assert!(r.inject(Side::Guest, b"hello"));
        assert_eq!(r.accounting().in_fill, [1, 0]);
        let mut rx = [Desc::default(); 4];
        assert_eq!(r.recv(Side::Guest, &mut rx), 1);
        {
            let mut f = r.frame(rx[0]).expect("held frame");
            assert_eq!(f.start(), (UmemConfig::default().headroom + 256) as usize);
            assert_eq!(f.data(), b"hello");
            f.prepend(2).expect("headroom").copy_from_slice(b">>");
            rx[0] = f.desc();
        }
        assert_eq!(r.send(Side::Fabric, &rx[..1]), 1);
        assert_eq!(
            r.frame(rx[0]).err(),
            Some(DescError::NotOwned),
            "sent: not ours"
        );
        assert_eq!(r.transmitted(Side::Fabric), vec![b">>hello".to_vec()]);
        let a = r.accounting();
        assert_eq!((a.free, a.in_app, a.in_tx), (256, 0, [0, 0]));
        assert!(r.audit());
        assert_eq!(r.counters().frames, crate::FrameErrors::default());
    }

    #[test]
    fn full_rings_refuse_and_count_like_the_kernel() {
        let mut r = rings();
        for _ in 0..64 {
            assert!(r.inject(Side::Fabric, &[0; 60]));
        }
        assert!(!r.inject(Side::Fabric, &[0; 60]));
        assert!(!r.inject(Side::Guest, &[0; 2048]), "larger than a frame");
        let stats = r.stats(Side::Fabric).expect("stats");
        assert_eq!(stats.rx_ring_full, 1);
        assert_eq!(r.stats(Side::Guest).expect("stats").rx_dropped, 1);
        let mut rx = [Desc::default(); 64];
        assert_eq!(r.recv(Side::Fabric, &mut rx), 64);
        // TX takes what its ring has room for; the rest stays the caller's.
        assert_eq!(r.tx_room(Side::Guest), 64);
        assert_eq!(r.send(Side::Guest, &rx[..40]), 40);
        assert_eq!(r.send(Side::Guest, &rx[40..]), 24);
        assert_eq!(r.tx_room(Side::Guest), 0);
        assert_eq!(r.complete(Side::Guest, 10), 10);
        assert_eq!(r.tx_room(Side::Guest), 10);
        assert!(r.audit());
    }

    #[test]
    fn a_source_keeps_the_rx_ring_full_and_drains_tx() {
        let mut r = rings();
        r.set_source(Side::Guest, vec![b"a".to_vec(), b"b".to_vec()]);
        r.service();
        assert_eq!(r.rx_pending(Side::Guest), 64);
        let mut rx = [Desc::default(); 3];
        assert_eq!(r.recv(Side::Guest, &mut rx), 3);
        let first: Vec<_> = rx
            .iter()
            .map(|d| r.frame(*d).expect("held").data().to_vec())
            .collect();
        assert_eq!(first, [b"a".to_vec(), b"b".to_vec(), b"a".to_vec()]);
        assert_eq!(r.send(Side::Fabric, &rx), 3);
        r.service();
        assert_eq!(
            (r.tx_pending(Side::Fabric), r.rx_pending(Side::Guest)),
            (0, 64)
        );
        assert!(r.audit());
        assert_eq!(r.accounting().in_fill, [64, 0]);
    }

    #[test]
    fn a_leak_and_a_double_release_are_visible() {
        let mut r = rings();
        assert!(r.inject(Side::Guest, b"x"));
        assert!(r.inject(Side::Guest, b"y"));
        let mut rx = [Desc::default(); 2];
        assert_eq!(r.recv(Side::Guest, &mut rx), 2);
        r.release(rx[0].addr);
        r.release(rx[0].addr);
        assert_eq!(r.counters().frames.release_unowned, 1);
        // The second frame is leaked: still the application's.
        assert_eq!(r.accounting().in_app, 1);
        assert_eq!(r.send(Side::Fabric, &rx[..1]), 0, "released: not sendable");
        assert_eq!(r.counters().frames.send_rejected, 1);
        assert!(r.audit(), "a leak balances: only in_app shows it");
    }
}
