//! A guest port and a fabric port sharing one UMEM: a frame received on one port is
//! transmitted on the other without a copy.
#![forbid(unsafe_code)]

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{BindMode, Side, SocketOptions, UmemConfig};
use crate::engine::{Engine, EngineState, XskCounters, XskStats};
use crate::error::{DescError, XskError};
use crate::frame::{Desc, FrameMut};
use crate::frames::FrameAccounting;

/// What a process taking over a [`QueuePair`] needs besides its descriptors
/// ([`HandoverFds`]): plain data, to send next to them over a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    /// Guest interface (for messages; the socket is already bound).
    pub guest_if: String,
    /// Fabric interface (for messages).
    pub fabric_if: String,
    /// Queue id both sockets are bound to.
    pub queue: u32,
    /// Layout of the UMEM and size of every ring.
    pub umem: UmemConfig,
    /// Bound in zero-copy mode (checked against the kernel on adoption).
    pub zero_copy: bool,
    /// Where each frame is, one byte per frame: 0 free, 1/2 given to the guest/fabric fill
    /// ring, 3/4 on the guest/fabric TX ring.
    pub frames: Vec<u8>,
}

/// The descriptors of an exported [`QueuePair`], borrowed from it: send them (SCM_RIGHTS
/// duplicates them), then drop the pair once the new owner has adopted them.
#[derive(Debug, Clone, Copy)]
pub struct HandoverFds<'a> {
    /// The UMEM's memory file (memfd).
    pub umem: BorrowedFd<'a>,
    /// The guest socket (owner of the UMEM registration).
    pub guest: BorrowedFd<'a>,
    /// The fabric socket.
    pub fabric: BorrowedFd<'a>,
}

impl<'a> HandoverFds<'a> {
    /// In the order [`QueuePair::adopt`] takes them: UMEM, guest, fabric.
    pub fn to_array(self) -> [BorrowedFd<'a>; 3] {
        [self.umem, self.guest, self.fabric]
    }
}

/// One queue id on the guest and the fabric interface, two AF_XDP sockets, one UMEM.
///
/// Owned by a single worker thread (`Send`, not `Sync`). Hot-path calls take `&mut self`,
/// allocate nothing and make syscalls only for wakeups the kernel asks for.
pub struct QueuePair {
    engine: Engine<2>,
}

impl QueuePair {
    /// Opens sockets on `guest_if` and `fabric_if` at `queue`. The guest socket owns the
    /// UMEM; the fabric socket shares it (and inherits its bind mode). The fill rings are
    /// filled before this returns.
    pub fn new(
        guest_if: &str,
        fabric_if: &str,
        queue: u32,
        umem: UmemConfig,
        mode: BindMode,
        opts: &SocketOptions,
    ) -> Result<Self, XskError> {
        Ok(Self {
            engine: Engine::new([guest_if, fabric_if], queue, umem, mode, opts)?,
        })
    }

    /// Exports this pair for a takeover by another process (upgrade without loss): its
    /// state and its descriptors. Call between batches, with no frame held (sent or
    /// released): `HandoverError::FramesHeld` otherwise. The kernel goes on receiving into
    /// the RX rings and completing TX until the new owner picks them up; stop using this
    /// pair after exporting it (the new owner's book would disagree).
    pub fn export(&self) -> Result<(QueueState, HandoverFds<'_>), XskError> {
        let (st, umem, [guest, fabric]) = self.engine.export()?;
        let [guest_if, fabric_if] = st.ifnames;
        Ok((
            QueueState {
                guest_if,
                fabric_if,
                queue: st.queue,
                umem: st.cfg,
                zero_copy: st.zero_copy,
                frames: st.owners,
            },
            HandoverFds {
                umem,
                guest,
                fabric,
            },
        ))
    }

    /// Takes over a pair another process exported as `state`, from the descriptors it sent
    /// (UMEM file, guest socket, fabric socket): maps the UMEM and the rings again, binds
    /// nothing, and goes on where the old owner stopped. The XDP programs' socket maps
    /// still point at these sockets.
    pub fn adopt(
        state: &QueueState,
        umem: OwnedFd,
        guest: OwnedFd,
        fabric: OwnedFd,
    ) -> Result<Self, XskError> {
        let st = EngineState {
            ifnames: [state.guest_if.clone(), state.fabric_if.clone()],
            queue: state.queue,
            cfg: state.umem,
            zero_copy: state.zero_copy,
            owners: state.frames.clone(),
        };
        Ok(Self {
            engine: Engine::adopt(&st, umem, [guest, fabric])?,
        })
    }

    /// The mode the sockets are bound in: `ZeroCopy` or `Copy` (never `Auto`).
    pub fn bind_mode(&self) -> BindMode {
        self.engine.bind_mode()
    }

    /// The socket of `side`, for registration in an XSKMAP.
    pub fn fd(&self, side: Side) -> BorrowedFd<'_> {
        self.engine.fd(side.index())
    }

    /// Free slots on `side`'s TX ring right now (what a `send` would take).
    pub fn tx_room(&mut self, side: Side) -> usize {
        self.engine.tx_room(side.index())
    }

    /// Takes up to `out.len()` received frames from `side`'s RX ring; returns how many.
    /// The frames are the caller's until sent or released.
    pub fn recv(&mut self, side: Side, out: &mut [Desc]) -> usize {
        self.engine.recv(side.index(), out)
    }

    /// The chunk of a frame the caller holds, to read, edit, prepend or strip headers.
    pub fn frame(&mut self, desc: Desc) -> Result<FrameMut<'_>, DescError> {
        self.engine.frame(desc)
    }

    /// Takes a free frame for the caller (e.g. an ARP reply built from scratch); returns
    /// the chunk base. Use with `Desc::from_chunk` and [`QueuePair::frame`].
    pub fn alloc(&mut self) -> Option<u64> {
        self.engine.alloc()
    }

    /// Queues frames on `side`'s TX ring in order; returns how many were queued. It stops at
    /// a full ring or at the first descriptor the caller does not own (counted in
    /// `counters().frames.send_rejected`). Frames not queued stay the caller's.
    pub fn send(&mut self, side: Side, descs: &[Desc]) -> usize {
        self.engine.send(side.index(), descs)
    }

    /// Returns a frame the caller holds to the free list (any address inside its chunk).
    pub fn release(&mut self, addr: u64) {
        self.engine.release(addr)
    }

    /// Reaps both completion rings, refills both fill rings from the free list in turns,
    /// and makes the wakeup syscalls the kernel asks for. Call once per loop iteration.
    pub fn service(&mut self) {
        self.engine.service()
    }

    /// Sleeps in `poll()` on both sockets until a frame arrives or `timeout` passes; returns
    /// at once (true) if RX or completion entries are waiting or TX needs kicking.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, XskError> {
        self.engine.wait(timeout)
    }

    /// Where every frame is.
    pub fn accounting(&self) -> FrameAccounting {
        self.engine.accounting()
    }

    /// Balanced accounting that also matches a full recount of the ownership table
    /// (O(frame_count); for tests and diagnostics).
    pub fn audit(&self) -> bool {
        self.engine.audit()
    }

    /// User-space counters (kicks, wakeups, refused operations).
    pub fn counters(&self) -> XskCounters {
        self.engine.counters()
    }

    /// Copy mode: how many frames one TX kick may transmit (`XDP_MAX_TX_SKB_BUDGET`, Linux ≥
    /// 6.17; the kernel default is 32 and it accepts 32..=TX ring size). Fewer kicks per
    /// frame; errors on older kernels.
    pub fn set_tx_budget(&mut self, side: Side, budget: u32) -> Result<(), XskError> {
        self.engine.set_tx_budget(side.index(), budget)
    }

    /// Kernel counters of `side`'s socket.
    pub fn stats(&self, side: Side) -> Result<XskStats, XskError> {
        self.engine.stats(side.index())
    }
}
