//! What a poll-mode worker needs from its two ports, as a trait: [`crate::QueuePair`] drives
//! real AF_XDP sockets, and `MemRings` (feature `test-utils`) the same frame book over plain
//! memory, so the worker's loop runs in `cargo test` without namespaces or privileges.
#![forbid(unsafe_code)]

use std::time::Duration;

use crate::config::Side;
use crate::engine::{XskCounters, XskStats};
use crate::error::{DescError, XskError};
use crate::frame::{Desc, FrameMut};
use crate::frames::FrameAccounting;
use crate::queue_pair::QueuePair;

/// A guest and a fabric port sharing one pool of frames.
///
/// The hot path is `tx_room`, `recv`, `frame`, `send` and `release` (none may allocate);
/// `service` and `wait` run once per loop iteration; the rest is read for stats. Every frame
/// returned by `recv` is the caller's until it is sent or released.
pub trait Rings {
    /// Free slots on `side`'s TX ring right now (what a `send` would take).
    fn tx_room(&mut self, side: Side) -> usize;
    /// Takes up to `out.len()` received frames from `side`; returns how many.
    fn recv(&mut self, side: Side, out: &mut [Desc]) -> usize;
    /// The chunk of a frame the caller holds.
    fn frame(&mut self, desc: Desc) -> Result<FrameMut<'_>, DescError>;
    /// Queues frames on `side`'s TX ring in order; returns how many were queued (those not
    /// queued stay the caller's).
    fn send(&mut self, side: Side, descs: &[Desc]) -> usize;
    /// Returns a frame the caller holds to the free list (any address inside its chunk).
    fn release(&mut self, addr: u64);
    /// Reaps completions and refills what receives; once per loop iteration.
    fn service(&mut self);
    /// Sleeps until there may be work or `timeout` passes; true if there is work now.
    fn wait(&mut self, timeout: Duration) -> Result<bool, XskError>;
    /// Where every frame is (the book's running totals: balanced by construction).
    fn accounting(&self) -> FrameAccounting;
    /// The running totals balance and match a full recount of who owns each frame
    /// (O(frame_count): at exit, in tests and diagnostics).
    fn audit(&self) -> bool;
    /// User-space counters (kicks, wakeups, refused frame operations).
    fn counters(&self) -> XskCounters;
    /// The receive and transmit counters of `side`'s socket.
    fn stats(&self, side: Side) -> Result<XskStats, XskError>;
}

impl Rings for QueuePair {
    #[inline]
    fn tx_room(&mut self, side: Side) -> usize {
        QueuePair::tx_room(self, side)
    }
    #[inline]
    fn recv(&mut self, side: Side, out: &mut [Desc]) -> usize {
        QueuePair::recv(self, side, out)
    }
    #[inline]
    fn frame(&mut self, desc: Desc) -> Result<FrameMut<'_>, DescError> {
        QueuePair::frame(self, desc)
    }
    #[inline]
    fn send(&mut self, side: Side, descs: &[Desc]) -> usize {
        QueuePair::send(self, side, descs)
    }
    #[inline]
    fn release(&mut self, addr: u64) {
        QueuePair::release(self, addr)
    }
    #[inline]
    fn service(&mut self) {
        QueuePair::service(self)
    }
    fn wait(&mut self, timeout: Duration) -> Result<bool, XskError> {
        QueuePair::wait(self, timeout)
    }
    fn accounting(&self) -> FrameAccounting {
        QueuePair::accounting(self)
    }
    fn audit(&self) -> bool {
        QueuePair::audit(self)
    }
    fn counters(&self) -> XskCounters {
        QueuePair::counters(self)
    }
    fn stats(&self, side: Side) -> Result<XskStats, XskError> {
        QueuePair::stats(self, side)
    }
}
