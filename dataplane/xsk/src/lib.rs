//! AF_XDP sockets, UMEM and rings: the only crate of xvpc with unsafe code.
//!
//! [`QueuePair`] binds one queue of a guest port and of a fabric port to two AF_XDP sockets
//! sharing one UMEM, so a frame received on one port is transmitted on the other without a
//! copy. [`Port`] is the single-socket variant (generators, sinks). [`Rings`] is what a
//! worker needs of a queue pair; with feature `test-utils`, `MemRings` implements it over
//! plain memory for tests; [`QueuePair::export`], [`QueuePair::adopt`] and [`handover`] move a
//! live queue pair to another process. Unsafe code lives only in `sys` (syscalls, mmap, SCM_RIGHTS), `ring` (shared
//! ring memory), `umem` (frame slices), `testrun` (BPF_PROG_TEST_RUN) and, for tests only,
//! `counting` (a counting global allocator); every other module forbids it. See
//! `docs/AF_XDP.md`.

mod config;
mod engine;
mod error;
mod frame;
mod frames;
mod port;
mod queue_pair;
mod ring;
mod rings;
mod sys;
mod umem;

pub mod handover;
pub mod testrun;

/// In-memory rings and an allocation counter for tests and benchmarks.
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils {
    pub use crate::counting::{allocations, CountingAllocator};
    pub use crate::mem::MemRings;
}
#[cfg(any(test, feature = "test-utils"))]
mod counting;
#[cfg(any(test, feature = "test-utils"))]
mod mem;

pub use config::{
    BindMode, BusyPoll, Side, SocketOptions, UmemConfig, MIN_DATA_ROOM, MIN_HEADROOM,
    XDP_PACKET_HEADROOM,
};
pub use engine::{XskCounters, XskStats};
pub use error::{DescError, HandoverError, XskError};
pub use frame::{Desc, FrameMut};
pub use frames::{FrameAccounting, FrameErrors};
pub use port::Port;
pub use queue_pair::{HandoverFds, QueuePair, QueueState};
pub use rings::Rings;

/// How often the calling thread has been preempted so far (involuntary context switches):
/// a worker that was preempted while it spun shares its core with work that needs it.
pub fn involuntary_switches() -> std::io::Result<u64> {
    sys::involuntary_switches()
}

#[cfg(test)]
mod tests {
    /// Workers are handed their queue pair from the thread that opened it.
    #[test]
    fn queue_pair_and_port_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<crate::QueuePair>();
        assert_send::<crate::Port>();
    }
}
