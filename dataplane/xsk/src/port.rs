//! A single AF_XDP socket with its own UMEM: traffic generators, sinks and tests.
#![forbid(unsafe_code)]

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::config::{BindMode, SocketOptions, UmemConfig};
use crate::engine::{Engine, XskCounters, XskStats};
use crate::error::{DescError, XskError};
use crate::frame::{Desc, FrameMut};
use crate::frames::FrameAccounting;

/// One AF_XDP socket on `(interface, queue)` owning its UMEM. Same hot-path API as
/// [`crate::QueuePair`] without the side argument; accounting uses index 0 of the
/// per-side arrays.
pub struct Port {
    engine: Engine<1>,
}

impl Port {
    /// Opens and binds the socket; the fill ring is filled before this returns.
    pub fn new(
        ifname: &str,
        queue: u32,
        umem: UmemConfig,
        mode: BindMode,
        opts: &SocketOptions,
    ) -> Result<Self, XskError> {
        Ok(Self {
            engine: Engine::new([ifname], queue, umem, mode, opts)?,
        })
    }

    /// `ZeroCopy` or `Copy`.
    pub fn bind_mode(&self) -> BindMode {
        self.engine.bind_mode()
    }

    /// The socket, for registration in an XSKMAP.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.engine.fd(0)
    }

    /// Takes up to `out.len()` received frames.
    pub fn recv(&mut self, out: &mut [Desc]) -> usize {
        self.engine.recv(0, out)
    }

    /// The chunk of a frame the caller holds.
    pub fn frame(&mut self, desc: Desc) -> Result<FrameMut<'_>, DescError> {
        self.engine.frame(desc)
    }

    /// Takes a free frame; returns its chunk base.
    pub fn alloc(&mut self) -> Option<u64> {
        self.engine.alloc()
    }

    /// Queues frames for transmission; returns how many.
    pub fn send(&mut self, descs: &[Desc]) -> usize {
        self.engine.send(0, descs)
    }

    /// Returns a held frame to the free list.
    pub fn release(&mut self, addr: u64) {
        self.engine.release(addr)
    }

    /// Reaps completions, refills the fill ring, makes requested wakeups.
    pub fn service(&mut self) {
        self.engine.service()
    }

    /// Sleeps until a frame arrives or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, XskError> {
        self.engine.wait(timeout)
    }

    /// Where every frame is.
    pub fn accounting(&self) -> FrameAccounting {
        self.engine.accounting()
    }

    /// Balanced and consistent with a full recount.
    pub fn audit(&self) -> bool {
        self.engine.audit()
    }

    /// User-space counters.
    pub fn counters(&self) -> XskCounters {
        self.engine.counters()
    }

    /// Copy mode: frames per TX kick (`XDP_MAX_TX_SKB_BUDGET`), see
    /// [`crate::QueuePair::set_tx_budget`].
    pub fn set_tx_budget(&mut self, budget: u32) -> Result<(), XskError> {
        self.engine.set_tx_budget(0, budget)
    }

    /// Kernel counters.
    pub fn stats(&self) -> Result<XskStats, XskError> {
        self.engine.stats(0)
    }
}
