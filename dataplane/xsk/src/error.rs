//! Errors of the AF_XDP layer.
#![forbid(unsafe_code)]

use std::io;

/// Everything that can go wrong while setting up or driving AF_XDP sockets.
///
/// Each variant names the operation, and where it applies the interface and queue, so a
/// message such as "bind AF_XDP socket on veth0 queue 0 in zero-copy mode: Operation not
/// supported (os error 95)" tells the operator what to change.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The UMEM or ring configuration is unusable.
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),
    /// The interface name does not resolve to an interface in this network namespace.
    #[error("interface {ifname:?} not found: {source}")]
    NoSuchInterface {
        /// Interface name as given.
        ifname: String,
        /// The errno from if_nametoindex.
        source: io::Error,
    },
    /// Allocating or mapping memory (UMEM area or a ring) failed.
    #[error("mmap {what} for {ifname} queue {queue}: {source}")]
    Mmap {
        /// Which mapping (UMEM, fill ring, RX ring...).
        what: &'static str,
        /// Interface the mapping belongs to.
        ifname: String,
        /// Queue id.
        queue: u32,
        /// The errno.
        source: io::Error,
    },
    /// A socket syscall (socket, setsockopt, getsockopt) failed.
    #[error("{op} on AF_XDP socket for {ifname} queue {queue}: {source}")]
    Sys {
        /// The syscall and option, e.g. "setsockopt(XDP_UMEM_REG)".
        op: &'static str,
        /// Interface the socket is for.
        ifname: String,
        /// Queue id.
        queue: u32,
        /// The errno.
        source: io::Error,
    },
    /// bind(2) failed; the mode says which kind of bind was attempted.
    #[error("bind AF_XDP socket on {ifname} queue {queue} in {mode} mode: {source}")]
    Bind {
        /// Interface.
        ifname: String,
        /// Queue id.
        queue: u32,
        /// "zero-copy", "copy", "driver-chosen" or "shared-UMEM".
        mode: &'static str,
        /// The errno.
        source: io::Error,
    },
    /// A busy-poll socket option was refused.
    #[error("setsockopt({option}) on AF_XDP socket for {ifname} queue {queue}: {source}")]
    BusyPoll {
        /// SO_BUSY_POLL, SO_PREFER_BUSY_POLL or SO_BUSY_POLL_BUDGET.
        option: &'static str,
        /// Interface.
        ifname: String,
        /// Queue id.
        queue: u32,
        /// The errno.
        source: io::Error,
    },
    /// A queue pair cannot be handed over or taken over.
    #[error("AF_XDP takeover: {0}")]
    Handover(HandoverError),
    /// poll(2) on the sockets failed.
    #[error("poll on AF_XDP sockets: {0}")]
    Poll(io::Error),
}

/// A descriptor handed to [`crate::QueuePair::frame`] or `send` that does not describe a
/// frame the application owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DescError {
    /// The address lies beyond the end of the UMEM.
    #[error("descriptor address outside the UMEM")]
    OutOfUmem,
    /// Data start plus length runs past the end of the chunk.
    #[error("descriptor data runs past the end of its chunk")]
    CrossesChunk,
    /// The chunk is not held by the application (it is free, in a fill ring or in flight).
    #[error("descriptor refers to a frame the application does not own")]
    NotOwned,
}

/// Why a queue pair cannot be exported to, or adopted by, another process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoverError {
    /// The application still holds frames; send or release them before exporting.
    #[error("the application holds {0} frames (send or release them before the handover)")]
    FramesHeld(u32),
    /// The frame table does not have one valid entry per frame of the UMEM layout.
    #[error("the handed-over frame table does not match the UMEM layout")]
    FrameTable,
    /// The handed-over UMEM file is not as long as the layout needs.
    #[error("the handed-over UMEM file has {actual} bytes, the layout needs {expected}")]
    UmemSize {
        /// Bytes the layout needs.
        expected: u64,
        /// Bytes the file has.
        actual: u64,
    },
    /// The kernel bound a handed-over socket in another mode than the state says.
    #[error("the handed-over socket for {ifname} is not in the recorded bind mode")]
    Mode {
        /// Interface of the socket.
        ifname: String,
    },
}
