//! The ports' XDP programs under either tier (`dataplane.fast_path`): `xvpc_guest` and
//! `xvpc_fabric` (every frame for the dataplane to the workers), or `xvpc_guest_fast` and
//! `xvpc_fabric_fast` (the common egress and ingress case finished in XDP, the rest to the
//! workers). A switch between them is a program upgrade of the same pinned links.
//!
//! Both variants are boxed: the attached programs are large and held once, behind an `Arc`.

use std::sync::{Mutex, MutexGuard};

use xvpc_core::counters::DropReason;
use xvpc_core::model::{Mapping, MappingKey};
use xvpc_core::table::MappingTable;
use xvpc_xdp::{
    Adoption, FabricCounters, FabricFastPath, FabricSteering, FastCounters, FullSync,
    GuestCounters, GuestFastPath, GuestSteering, IngressCounters,
};

/// The guest port's program.
#[derive(Debug)]
pub enum GuestTier {
    /// `fast_path = "afxdp"`.
    Afxdp(Box<GuestSteering>),
    /// `fast_path = "xdp"`: its maps are written by the control path and read by the stats.
    Xdp(Box<Fast>),
}

/// The fast path and its counters when this daemon started.
#[derive(Debug)]
pub struct Fast {
    prog: Mutex<GuestFastPath>,
    base: FastStats,
}

/// The XDP tier's own counters (pinned: they count across restarts, like `counters`).
#[derive(Clone, Copy, Debug)]
pub struct FastStats {
    /// Encapsulated, aborted, bytes.
    pub counters: FastCounters,
    /// Drops per reason, in [`DropReason::ALL`] order.
    pub drops: [u64; DropReason::COUNT],
}

impl FastStats {
    /// What moved since `base` (the numbers when this daemon started).
    pub fn since(&self, base: &FastStats) -> FastStats {
        let mut drops = self.drops;
        for (d, b) in drops.iter_mut().zip(base.drops.iter()) {
            *d = d.wrapping_sub(*b);
        }
        FastStats {
            counters: FastCounters {
                encapsulated: self
                    .counters
                    .encapsulated
                    .wrapping_sub(base.counters.encapsulated),
                aborted: self.counters.aborted.wrapping_sub(base.counters.aborted),
                egress_bytes: self
                    .counters
                    .egress_bytes
                    .wrapping_sub(base.counters.egress_bytes),
            },
            drops,
        }
    }
}

impl GuestTier {
    /// The fast path, with its counters of now as the baseline of this run's totals.
    pub fn xdp(fast: GuestFastPath) -> Result<Self, xvpc_xdp::XdpError> {
        let base = FastStats {
            counters: fast.maps_ref().counters()?,
            drops: fast.maps_ref().drops()?,
        };
        Ok(GuestTier::Xdp(Box::new(Fast {
            prog: Mutex::new(fast),
            base,
        })))
    }

    fn fast(&self) -> Option<MutexGuard<'_, GuestFastPath>> {
        match self {
            GuestTier::Afxdp(_) => None,
            // A panic while writing a map leaves the map as the kernel has it: still whole.
            GuestTier::Xdp(f) => Some(f.prog.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    /// How the program came to be attached.
    pub fn adoption(&self) -> Adoption {
        match self {
            GuestTier::Afxdp(g) => g.adoption().clone(),
            GuestTier::Xdp(f) => f
                .prog
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .adoption()
                .clone(),
        }
    }

    /// Register a worker's socket for its queue.
    pub fn register_socket(
        &mut self,
        queue: u32,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), xvpc_xdp::XdpError> {
        match self {
            GuestTier::Afxdp(g) => g.register_socket(queue, fd),
            GuestTier::Xdp(f) => f
                .prog
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .register_socket(queue, fd),
        }
    }

    /// What went to the workers' sockets (or was dropped for want of one).
    pub fn counters(&self) -> Result<GuestCounters, xvpc_xdp::XdpError> {
        match self {
            GuestTier::Afxdp(g) => g.counters(),
            GuestTier::Xdp(f) => f.prog.lock().unwrap_or_else(|e| e.into_inner()).counters(),
        }
    }

    /// What the XDP tier did since this daemon started (the workers' counters start at zero
    /// too): what `total` merges. `None` under `afxdp`.
    pub fn fast_since_start(&self) -> Option<Result<FastStats, xvpc_xdp::XdpError>> {
        let GuestTier::Xdp(fast) = self else {
            return None;
        };
        Some(self.fast_stats()?.map(|now| now.since(&fast.base)))
    }

    /// The XDP tier's counters and drops as pinned; `None` under `afxdp`.
    pub fn fast_stats(&self) -> Option<Result<FastStats, xvpc_xdp::XdpError>> {
        let f = self.fast()?;
        Some((|| {
            Ok(FastStats {
                counters: f.maps_ref().counters()?,
                drops: f.maps_ref().drops()?,
            })
        })())
    }

    /// Mirror a whole table's live mappings into the XDP map (a full sync, or the static
    /// mappings at start). `None` under `afxdp`.
    pub fn replace_all(
        &self,
        table: &MappingTable,
    ) -> Option<Result<FullSync, xvpc_xdp::XdpError>> {
        let mut f = self.fast()?;
        Some(f.maps().replace_all(&table.to_mappings()))
    }

    /// Mirror one upsert. A mapping that cannot be written is removed instead, so XDP never
    /// forwards by an older value of it (the workers have the new one).
    pub fn upsert(&self, mapping: &Mapping) -> Option<Result<(), xvpc_xdp::XdpError>> {
        let mut f = self.fast()?;
        Some(f.maps().upsert(mapping).or_else(|e| {
            f.maps().remove(&mapping.key())?;
            Err(e)
        }))
    }

    /// Mirror one delete: a stale XDP entry would keep forwarding to a moved VM.
    pub fn delete(&self, key: &MappingKey) -> Option<Result<(), xvpc_xdp::XdpError>> {
        let mut f = self.fast()?;
        Some(f.maps().remove(key))
    }
}

/// The fabric port's program.
#[derive(Debug)]
pub enum FabricTier {
    /// `fast_path = "afxdp"`.
    Afxdp(Box<FabricSteering>),
    /// `fast_path = "xdp"`, with its ingress counters when this daemon started. It shares
    /// the guest tier's mapping table and drop counters, which the guest tier reads.
    Xdp(Box<FabricFastPath>, IngressCounters),
}

impl FabricTier {
    /// The ingress fast path, with its counters of now as the baseline of this run's totals.
    pub fn xdp(fast: FabricFastPath) -> Result<Self, xvpc_xdp::XdpError> {
        let base = fast.ingress_counters()?;
        Ok(FabricTier::Xdp(Box::new(fast), base))
    }

    /// How the program came to be attached.
    pub fn adoption(&self) -> Adoption {
        match self {
            FabricTier::Afxdp(f) => f.adoption().clone(),
            FabricTier::Xdp(f, _) => f.adoption().clone(),
        }
    }

    /// Register a worker's socket for its queue.
    pub fn register_socket(
        &mut self,
        queue: u32,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), xvpc_xdp::XdpError> {
        match self {
            FabricTier::Afxdp(f) => f.register_socket(queue, fd),
            FabricTier::Xdp(f, _) => f.register_socket(queue, fd),
        }
    }

    /// Steered, passed, dropped for want of a socket, malformed (both programs count them
    /// in the same pinned map).
    pub fn counters(&self) -> Result<FabricCounters, xvpc_xdp::XdpError> {
        match self {
            FabricTier::Afxdp(f) => f.counters(),
            FabricTier::Xdp(f, _) => f.counters(),
        }
    }

    /// The ingress fast path's counters as pinned; `None` under `afxdp`.
    pub fn ingress_stats(&self) -> Option<Result<IngressCounters, xvpc_xdp::XdpError>> {
        match self {
            FabricTier::Afxdp(_) => None,
            FabricTier::Xdp(f, _) => Some(f.ingress_counters()),
        }
    }

    /// What the ingress fast path did since this daemon started; `None` under `afxdp`.
    pub fn ingress_since_start(&self) -> Option<Result<IngressCounters, xvpc_xdp::XdpError>> {
        let FabricTier::Xdp(_, base) = self else {
            return None;
        };
        Some(self.ingress_stats()?.map(|now| IngressCounters {
            decapsulated: now.decapsulated.wrapping_sub(base.decapsulated),
            aborted: now.aborted.wrapping_sub(base.aborted),
            ingress_bytes: now.ingress_bytes.wrapping_sub(base.ingress_bytes),
        }))
    }
}
