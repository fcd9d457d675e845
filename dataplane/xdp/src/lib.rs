//! Loads and attaches the xvpc XDP steering programs (C in `ebpf/`, built by `build.rs` with
//! `clang -target bpf` and embedded in this crate).
//!
//! * [`GuestSteering`] puts `xvpc_guest` on the guest-facing port: every frame goes to the
//!   AF_XDP socket of its RX queue, and is dropped (fail closed) when there is none.
//! * [`FabricSteering`] puts `xvpc_fabric` on the fabric port: VXLAN to our underlay
//!   address goes to the AF_XDP socket, everything else to the host's kernel stack.
//! * [`GuestFastPath`] and [`FabricFastPath`] are the tier `dataplane.fast_path = "xdp"`
//!   selects instead: the same, plus the common egress and ingress case finished in XDP.
//!
//! Both attach through a bpf_link. With a [`PinDir`] (what the daemon uses) the link, the
//! program and its maps are pinned in bpffs and outlive the process: a crash, `kill -9` or a
//! stop leaves the programs attached, and with no AF_XDP socket registered they drop what the
//! dataplane would have handled (fail closed). The next start adopts the pins, or swaps a
//! changed program in with `bpf_link_update` (atomic); [`detach_pinned`] is the only way out.
//! Without a pin directory the returned value owns the link and dropping it detaches the
//! program (tests and tools). See `docs/XDP.md`.
#![forbid(unsafe_code)]

mod fabric_fast;
mod fast;
mod pins;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::links::FdLink;
use aya::programs::xdp::XdpLink;
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::util::KernelVersion;
use aya::{Ebpf, EbpfError, EbpfLoader};

pub use fabric_fast::{FabricFastPath, FabricFastProgram, IngressCounters};
pub use fast::{
    FastCounters, FastMaps, FastPathProgram, FastPathSpec, FullSync, GuestFastPath, Staged,
};
pub use pins::{detach_pinned, pinned_state, Detached, PinDir, PinnedState};

/// The `xvpc_guest` object file, compiled from `ebpf/guest.bpf.c`.
static GUEST_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guest.bpf.o"));
/// The `xvpc_guest_fast` object file, compiled from `ebpf/guest_fast.bpf.c`.
static GUEST_FAST_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guest_fast.bpf.o"));
/// The `xvpc_fabric` object file, compiled from `ebpf/fabric.bpf.c`.
static FABRIC_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fabric.bpf.o"));
/// The `xvpc_fabric_fast` object file, compiled from `ebpf/fabric_fast.bpf.c`.
static FABRIC_FAST_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fabric_fast.bpf.o"));

/// Number of XSKMAP slots (`XVPC_MAX_QUEUES` in `ebpf/xvpc_xdp.h`): RX queues 0..64 can
/// have a socket.
pub const MAX_QUEUES: u32 = 64;

/// Counter indices of `xvpc_guest` (`enum xvpc_guest_counter` in `ebpf/xvpc_xdp.h`).
mod guest_idx {
    pub const REDIRECTED: u32 = 0;
    pub const DROPPED_NO_SOCKET: u32 = 1;
}

/// Counter indices of `xvpc_fabric` (`enum xvpc_fabric_counter` in `ebpf/xvpc_xdp.h`).
mod fabric_idx {
    pub const STEERED: u32 = 0;
    pub const PASSED: u32 = 1;
    pub const DROPPED_NO_SOCKET: u32 = 2;
    pub const MALFORMED: u32 = 3;
}

/// Bits of the fabric program's `cfg_flags` (`XVPC_CFG_*` in `ebpf/xvpc_xdp.h`).
const CFG_V4: u32 = 1 << 0;
const CFG_V6: u32 = 1 << 1;

/// bpf_link for XDP appeared in Linux 5.9; before that aya would attach through netlink,
/// which outlives a crashed process.
const BPF_LINK_XDP: KernelVersion = KernelVersion::new(5, 9, 0);

/// Errors from loading, attaching and driving the XDP programs.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The embedded object could not be loaded (bad object, map creation failed, missing
    /// privileges).
    #[error("{ifname}: loading the {program} XDP object failed: {source}")]
    Load {
        /// Interface the program was meant for.
        ifname: String,
        /// Program name.
        program: &'static str,
        /// aya's error (boxed: it is large).
        source: Box<EbpfError>,
    },
    /// The object lacks a program or map this crate expects (object and crate out of step).
    #[error("{ifname}: the XDP object has no {kind} named {name}")]
    Missing {
        /// Interface the program was meant for.
        ifname: String,
        /// "program" or "map".
        kind: &'static str,
        /// The missing name.
        name: &'static str,
    },
    /// The kernel refused the program (the verifier log is in the source).
    #[error("{ifname}: loading program {program} into the kernel failed: {source}")]
    Verify {
        /// Interface the program was meant for.
        ifname: String,
        /// Program name.
        program: &'static str,
        /// aya's error, with the verifier output (boxed: it is large).
        source: Box<ProgramError>,
    },
    /// Attaching to the interface failed (no such interface, unsupported mode, busy).
    #[error("{ifname}: attaching {program} in {mode} mode failed: {source}")]
    Attach {
        /// The interface.
        ifname: String,
        /// Program name.
        program: &'static str,
        /// The mode tried last.
        mode: AttachMode,
        /// aya's error (boxed: it is large).
        source: Box<ProgramError>,
    },
    /// The kernel is too old for XDP bpf_links, so a crash would leave the program attached.
    #[error("{ifname}: kernel {kernel} has no XDP bpf_link (needs >= 5.9)")]
    NoBpfLink {
        /// The interface.
        ifname: String,
        /// The running kernel version (or why it is unknown).
        kernel: String,
    },
    /// A map operation failed.
    #[error("{ifname}: {what}: {source}")]
    Map {
        /// The interface.
        ifname: String,
        /// What was being done.
        what: &'static str,
        /// aya's error (boxed: it is large).
        source: Box<MapError>,
    },
    /// A queue index beyond the XSKMAP's size.
    #[error("{ifname}: queue {queue} is beyond the {MAX_QUEUES} queues the XDP program serves")]
    QueueOutOfRange {
        /// The interface.
        ifname: String,
        /// The rejected queue.
        queue: u32,
    },
    /// The fabric filter cannot match anything.
    #[error("invalid fabric filter: {0}")]
    InvalidFilter(&'static str),
    /// The XDP fast path cannot serve this configuration.
    #[error("the XDP fast path cannot serve this configuration: {0}")]
    InvalidFastPath(String),
    /// The fabric port could not be set as the fast path's redirect target.
    #[error("{ifname}: the fabric port (ifindex {ifindex}) cannot be a redirect target: {reason}")]
    FabricPort {
        /// The guest interface.
        ifname: String,
        /// The fabric port's interface index.
        ifindex: u32,
        /// What failed.
        reason: String,
    },
    /// The guest port could not be set as the ingress fast path's redirect target.
    #[error("{ifname}: the guest port (ifindex {ifindex}) cannot be a redirect target: {reason}")]
    GuestPort {
        /// The fabric interface.
        ifname: String,
        /// The guest port's interface index.
        ifindex: u32,
        /// What failed.
        reason: String,
    },
    /// bpffs is not mounted where the pins go and could not be mounted there.
    #[error("bpffs at {path}: {reason} (the XDP programs must be pinned to outlive the daemon; mount it with `mount -t bpf bpf {path}` or set dataplane.pin_dir)")]
    BpfFs {
        /// The mount point or pin directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A pin could not be created, opened or removed.
    #[error("{ifname}: pin {path}: {reason}")]
    Pin {
        /// The interface.
        ifname: String,
        /// The pin.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// How [`GuestSteering::attach`] / [`FabricSteering::attach`] found the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adoption {
    /// Nothing was pinned: the program was attached now.
    Fresh,
    /// The same program version was pinned and attached: reused as it was.
    Reused {
        /// The program version (hash of the object and its configuration).
        version: String,
    },
    /// A different version was attached: the new one replaced it atomically.
    Upgraded {
        /// The version that was attached before.
        from: String,
        /// The version attached now.
        to: String,
    },
    /// Not pinned: the program lives as long as the returned value.
    Unpinned,
}

/// How to attach an XDP program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) XDP; fails if the driver has none.
    Driver,
    /// Generic (SKB) XDP: works on any device, slower.
    Generic,
    /// Driver mode, falling back to generic when the driver refuses.
    Auto,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Driver => "driver",
            AttachMode::Generic => "generic",
            AttachMode::Auto => "auto",
        })
    }
}

/// Counters of `xvpc_guest`, summed over CPUs. Every frame is in exactly one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestCounters {
    /// Handed to the AF_XDP socket of the frame's RX queue.
    pub redirected: u64,
    /// No socket registered for the queue: dropped (fail closed).
    pub dropped_no_socket: u64,
}

/// Counters of `xvpc_fabric`, summed over CPUs. Every frame is in exactly one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FabricCounters {
    /// VXLAN to our underlay address and port: handed to the AF_XDP socket.
    pub steered: u64,
    /// Not ours (ARP, ND, other IP traffic, fragments): passed to the kernel stack.
    pub passed: u64,
    /// VXLAN for us, but no socket registered for the queue: dropped.
    pub dropped_no_socket: u64,
    /// Truncated or invalid Ethernet/IP/UDP header: passed to the kernel, which drops and
    /// counts it by its own rules.
    pub malformed: u64,
}

/// What the fabric program steers: UDP to `vxlan_port` at either underlay address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FabricFilter {
    /// Our IPv4 underlay address, if we terminate VXLAN over IPv4.
    pub underlay_ipv4: Option<Ipv4Addr>,
    /// Our IPv6 underlay address, if we terminate VXLAN over IPv6.
    pub underlay_ipv6: Option<Ipv6Addr>,
    /// The VXLAN UDP destination port (4789 by IANA).
    pub vxlan_port: u16,
}

/// A loaded program attached to one interface through a bpf_link, with its maps.
struct Attached {
    // Declared first so it is dropped first: closing the link fd detaches an unpinned program.
    link: FdLink,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    ifname: String,
    mode: AttachMode,
    adoption: Adoption,
    /// The program's own maps beyond the two every program has ([`ProgramSpec::extra_maps`]),
    /// in that order.
    extra: Vec<Map>,
    // Keeps the program and the rest of the object alive (none when reused from the pins).
    _ebpf: Option<Ebpf>,
}

/// The environment variable whose value is part of every program version (see
/// `docs/XDP.md`, "Upgrades").
pub const VERSION_SALT_ENV: &str = "XVPC_XDP_VERSION_SALT";

/// A 64-bit FNV-1a hash over the program's name, object and configuration: its version. Any
/// change of program code or of the fabric filter gives another version.
fn program_version(program: &str, obj: &[u8], config: &[u8]) -> String {
    // An operator's (or a test's) way to force a new version of the same code, to rehearse
    // an upgrade: the salt is part of the version.
    let salt = std::env::var(VERSION_SALT_ENV).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [program.as_bytes(), obj, config, salt.as_bytes()] {
        for b in part.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl Attached {
    /// `configure` sets up the loader, which is only made when a program must be loaded:
    /// making one parses the kernel's BTF (2.4 MB here, ~0.4 s in a debug build), which a
    /// restart that reuses its pinned programs does not need.
    fn load<'a>(
        spec: ProgramSpec<'_>,
        ifname: &str,
        mode: AttachMode,
        pins: Option<&PinDir>,
        configure: impl FnOnce(&mut EbpfLoader<'a>),
    ) -> Result<Self, XdpError> {
        let ProgramSpec {
            obj,
            program,
            config,
            extra_maps,
            shared,
        } = spec;
        match KernelVersion::current() {
            Ok(v) if v >= BPF_LINK_XDP => {}
            Ok(v) => {
                return Err(XdpError::NoBpfLink {
                    ifname: ifname.to_string(),
                    kernel: format!("{v:?}"),
                })
            }
            Err(e) => {
                return Err(XdpError::NoBpfLink {
                    ifname: ifname.to_string(),
                    kernel: format!("unknown ({e})"),
                })
            }
        }
        let version = program_version(program, obj, config);
        let port = pins.map(|p| p.port(ifname)).transpose()?;
        let pinned_link = match &port {
            Some(port) => port.open_link()?,
            None => None,
        };
        let current = match (&port, &pinned_link) {
            (Some(port), Some(_)) => port.program_pin()?,
            _ => None,
        };
        if let (Some(port), Some(current)) = (&port, &current) {
            if current.version == version {
                if let Some(link) = pinned_link {
                    let (xsks, counters) = port.open_maps()?;
                    let mut extra: Vec<Map> = extra_maps
                        .iter()
                        .map(|(name, kind)| port.open_map(name).map(kind))
                        .collect::<Result<_, _>>()?;
                    if let Some(shared) = &shared {
                        for (name, kind) in shared.maps {
                            extra.push(kind(shared.open(ifname, name)?));
                        }
                    }
                    tracing::info!(%ifname, program, %version, mode = %current.mode,
                        "pinned XDP program of this version already attached: reused");
                    return Ok(Attached {
                        link: FdLink::from(link),
                        xsks,
                        counters,
                        ifname: ifname.to_string(),
                        mode: current.mode,
                        adoption: Adoption::Reused { version },
                        extra,
                        _ebpf: None,
                    });
                }
            }
        }
        let mut loader = EbpfLoader::new();
        configure(&mut loader);
        if let Some(port) = &port {
            // The maps live on across restarts and upgrades: counters keep counting, and the
            // XSKMAP is the one the attached program already redirects through.
            loader
                .map_pin_path("xsks_map", port.path().join("xsks_map"))
                .map_pin_path("counters", port.path().join("counters"));
            for (name, _) in extra_maps {
                loader.map_pin_path(name, port.path().join(name));
            }
        }
        if let Some(shared) = &shared {
            // Another port's pins: this program uses that program's maps, never new ones.
            for (name, _) in shared.maps {
                let path = shared.dir.join(name);
                if !path.exists() {
                    return Err(XdpError::Pin {
                        ifname: ifname.to_string(),
                        path,
                        reason: "the map this program shares is not pinned (the program \
                                 that owns it must be attached first)"
                            .into(),
                    });
                }
                loader.map_pin_path(name, path);
            }
        }
        let mut ebpf = loader.load(obj).map_err(|source| XdpError::Load {
            ifname: ifname.to_string(),
            program,
            source: Box::new(source),
        })?;
        let missing = |kind, name| XdpError::Missing {
            ifname: ifname.to_string(),
            kind,
            name,
        };
        let map_err = |what| {
            move |source| XdpError::Map {
                ifname: ifname.to_string(),
                what,
                source: Box::new(source),
            }
        };
        let xsks: XskMap<MapData> = ebpf
            .take_map("xsks_map")
            .ok_or_else(|| missing("map", "xsks_map"))?
            .try_into()
            .map_err(map_err("xsks_map is not an XSKMAP"))?;
        let counters: PerCpuArray<MapData, u64> = ebpf
            .take_map("counters")
            .ok_or_else(|| missing("map", "counters"))?
            .try_into()
            .map_err(map_err("counters is not a per-CPU array"))?;
        let extra = extra_maps
            .iter()
            .chain(shared.as_ref().map_or(&[][..], |s| s.maps))
            .map(|(name, _)| ebpf.take_map(name).ok_or_else(|| missing("map", name)))
            .collect::<Result<Vec<_>, _>>()?;
        let prog: &mut Xdp = ebpf
            .program_mut(program)
            .ok_or_else(|| missing("program", program))?
            .try_into()
            .map_err(|source| XdpError::Verify {
                ifname: ifname.to_string(),
                program,
                source: Box::new(source),
            })?;
        prog.load().map_err(|source| XdpError::Verify {
            ifname: ifname.to_string(),
            program,
            source: Box::new(source),
        })?;

        let attach = |prog: &mut Xdp, m: AttachMode| {
            let xm = match m {
                AttachMode::Driver => XdpMode::Driver,
                _ => XdpMode::Skb,
            };
            prog.attach(ifname, xm).map_err(|source| XdpError::Attach {
                ifname: ifname.to_string(),
                program,
                mode: m,
                source: Box::new(source),
            })
        };
        if let (Some(port), Some(link)) = (&port, pinned_link) {
            let previous = current;
            let from = previous
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |p| p.version.clone());
            let used = previous.as_ref().map_or(mode, |p| p.mode);
            let xdp_link = XdpLink::try_from(FdLink::from(link)).map_err(|e| {
                port.pin_error("link", format!("the pinned link is not an XDP link: {e}"))
            })?;
            match prog.attach_to_link(xdp_link) {
                Ok(link_id) => {
                    let link = take_fd_link(prog, link_id, ifname, program, used)?;
                    port.pin_program(prog, program, used, &version)?;
                    tracing::info!(%ifname, program, %from, to = %version,
                        "XDP program replaced atomically (bpf_link_update)");
                    return Ok(Attached {
                        link,
                        xsks,
                        counters,
                        ifname: ifname.to_string(),
                        mode: used,
                        adoption: Adoption::Upgraded { from, to: version },
                        extra,
                        _ebpf: Some(ebpf),
                    });
                }
                Err(e) => {
                    // ENOLINK: the interface the link was made for is gone (deleted and
                    // recreated): the pin is stale and nothing is attached.
                    tracing::warn!(%ifname, program, error = %e,
                        "the pinned link is defunct; removing its pins and attaching anew");
                    port.remove_link()?;
                }
            }
        }
        let (link_id, used) = match mode {
            AttachMode::Driver | AttachMode::Generic => (attach(prog, mode)?, mode),
            AttachMode::Auto => match attach(prog, AttachMode::Driver) {
                Ok(id) => (id, AttachMode::Driver),
                Err(e) => {
                    tracing::warn!(%ifname, program, error = %e,
                        "driver-mode XDP refused; falling back to generic (SKB) mode");
                    (attach(prog, AttachMode::Generic)?, AttachMode::Generic)
                }
            },
        };
        tracing::info!(%ifname, program, mode = %used, "XDP program attached via bpf_link");
        let link = take_fd_link(prog, link_id, ifname, program, used)?;
        let (link, adoption) = match &port {
            Some(port) => {
                // Program first, then the link: a crash in between leaves a link-less
                // program pin, which the next start replaces.
                port.pin_program(prog, program, used, &version)?;
                (port.pin_link(link)?, Adoption::Fresh)
            }
            None => (link, Adoption::Unpinned),
        };
        Ok(Attached {
            link,
            xsks,
            counters,
            ifname: ifname.to_string(),
            mode: used,
            adoption,
            extra,
            _ebpf: Some(ebpf),
        })
    }

    fn register(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        if queue >= MAX_QUEUES {
            return Err(XdpError::QueueOutOfRange {
                ifname: self.ifname.clone(),
                queue,
            });
        }
        self.xsks.set(queue, fd, 0).map_err(|source| XdpError::Map {
            ifname: self.ifname.clone(),
            what: "registering the AF_XDP socket in xsks_map",
            source: Box::new(source),
        })
    }

    fn unregister(&mut self, queue: u32) -> Result<(), XdpError> {
        if queue >= MAX_QUEUES {
            return Err(XdpError::QueueOutOfRange {
                ifname: self.ifname.clone(),
                queue,
            });
        }
        self.xsks.unset(queue).map_err(|source| XdpError::Map {
            ifname: self.ifname.clone(),
            what: "removing the AF_XDP socket from xsks_map",
            source: Box::new(source),
        })
    }

    fn counter(&self, idx: u32) -> Result<u64, XdpError> {
        let values = self.counters.get(&idx, 0).map_err(|source| XdpError::Map {
            ifname: self.ifname.clone(),
            what: "reading counters",
            source: Box::new(source),
        })?;
        Ok(values.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
    }
}

/// The bpf_link `link_id` of `prog` as an fd we own. On >= 5.9 aya only falls back to a
/// netlink attach when bpf_link_create says EINVAL; such an attachment is refused: nothing
/// could pin it or swap it atomically.
fn take_fd_link(
    prog: &mut Xdp,
    link_id: aya::programs::xdp::XdpLinkId,
    ifname: &str,
    program: &'static str,
    mode: AttachMode,
) -> Result<FdLink, XdpError> {
    let link = prog.take_link(link_id).map_err(|source| XdpError::Attach {
        ifname: ifname.to_string(),
        program,
        mode,
        source: Box::new(source),
    })?;
    FdLink::try_from(link).map_err(|_| XdpError::NoBpfLink {
        ifname: ifname.to_string(),
        kernel: "the kernel refused bpf_link_create; attached through netlink".to_string(),
    })
}

/// A map a program has beyond `xsks_map` and `counters`: its name, and the [`Map`] kind that
/// wraps it when it is reopened from its pin.
type ExtraMap = (&'static str, fn(MapData) -> Map);

/// The interface name errors give for a program attached nowhere.
const UNATTACHED: &str = "(unattached)";

/// An XDP program loaded (verifier included) but attached nowhere, for `BPF_PROG_TEST_RUN`
/// (the oracle tests, benchmarks): what [`FastPathProgram`] and [`FabricFastProgram`] hold.
/// Dropping it unloads it.
struct Unattached {
    ebpf: Ebpf,
    program: &'static str,
}

impl Unattached {
    /// Loads `obj` with `loader` and `program` in it through the verifier.
    fn load(
        loader: &mut EbpfLoader<'_>,
        obj: &[u8],
        program: &'static str,
    ) -> Result<Self, XdpError> {
        let mut ebpf = loader.load(obj).map_err(|source| XdpError::Load {
            ifname: UNATTACHED.into(),
            program,
            source: Box::new(source),
        })?;
        let prog: &mut Xdp = ebpf
            .program_mut(program)
            .ok_or_else(|| Self::missing("program", program))?
            .try_into()
            .map_err(Self::verify(program))?;
        prog.load().map_err(Self::verify(program))?;
        Ok(Unattached { ebpf, program })
    }

    fn missing(kind: &'static str, name: &'static str) -> XdpError {
        XdpError::Missing {
            ifname: UNATTACHED.into(),
            kind,
            name,
        }
    }

    fn verify(program: &'static str) -> impl Fn(ProgramError) -> XdpError {
        move |source| XdpError::Verify {
            ifname: UNATTACHED.into(),
            program,
            source: Box::new(source),
        }
    }

    fn map_error(what: &'static str) -> impl FnOnce(MapError) -> XdpError {
        move |source| XdpError::Map {
            ifname: UNATTACHED.into(),
            what,
            source: Box::new(source),
        }
    }

    /// Takes `maps` out of the object, in order.
    fn take_maps(&mut self, maps: &[ExtraMap]) -> Result<Vec<Map>, XdpError> {
        maps.iter()
            .map(|(name, _)| {
                self.ebpf
                    .take_map(name)
                    .ok_or_else(|| Self::missing("map", name))
            })
            .collect()
    }

    /// A map still in the object.
    fn map(&self, name: &'static str) -> Result<&Map, XdpError> {
        self.ebpf
            .map(name)
            .ok_or_else(|| Self::missing("map", name))
    }

    /// The program, for `BPF_PROG_TEST_RUN`.
    fn program_fd(&self) -> Result<BorrowedFd<'_>, XdpError> {
        let prog: &Xdp = self
            .ebpf
            .program(self.program)
            .ok_or_else(|| Self::missing("program", self.program))?
            .try_into()
            .map_err(Self::verify(self.program))?;
        Ok(prog.fd().map_err(Self::verify(self.program))?.as_fd())
    }

    /// Registers the AF_XDP socket `fd` for RX `queue` in `xsks_map`, as the daemon's
    /// workers do: without one the program forwards nothing (fail closed).
    fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        let map = self
            .ebpf
            .map_mut("xsks_map")
            .ok_or_else(|| Self::missing("map", "xsks_map"))?;
        let mut xsks: XskMap<&mut MapData> =
            XskMap::try_from(map).map_err(Self::map_error("xsks_map is not an XSKMAP"))?;
        xsks.set(queue, fd, 0)
            .map_err(Self::map_error("registering the AF_XDP socket in xsks_map"))
    }

    /// Counter `idx` of `counters` (the steering counters), summed over CPUs.
    fn counter(&self, idx: u32) -> Result<u64, XdpError> {
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(self.map("counters")?)
            .map_err(Self::map_error("counters is not a per-CPU array"))?;
        let v = arr
            .get(&idx, 0)
            .map_err(Self::map_error("reading counters"))?;
        Ok(v.iter().fold(0u64, |a, x| a.wrapping_add(*x)))
    }
}

/// An embedded program: its object, its name in the object, and the configuration it is
/// loaded with (part of its version).
struct ProgramSpec<'a> {
    obj: &'a [u8],
    program: &'static str,
    config: &'a [u8],
    /// Maps beyond `xsks_map` and `counters`, pinned beside them, each with the kind that
    /// wraps it when it is reopened from its pin.
    extra_maps: &'static [ExtraMap],
    /// Maps of another program, reused from its pins (they follow `extra_maps` in
    /// [`Attached::extra`]).
    shared: Option<SharedMaps<'a>>,
}

/// Maps a program shares with another one, pinned in that one's directory.
struct SharedMaps<'a> {
    /// Where they are pinned.
    dir: &'a Path,
    /// Their names and kinds.
    maps: &'static [ExtraMap],
}

impl SharedMaps<'_> {
    fn open(&self, ifname: &str, name: &str) -> Result<MapData, XdpError> {
        let path = self.dir.join(name);
        MapData::from_pin(&path).map_err(|e| XdpError::Pin {
            ifname: ifname.to_string(),
            path,
            reason: format!("cannot open: {}", pins::chain(&e)),
        })
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("ifname", &self.ifname)
            .field("mode", &self.mode)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// `xvpc_guest` attached to the guest-facing port. Dropping it detaches the program.
#[derive(Debug)]
pub struct GuestSteering {
    inner: Attached,
}

impl GuestSteering {
    /// Loads `xvpc_guest` and attaches it to `ifname` through a bpf_link, pinned under
    /// `pins` (adopting what is pinned there already) or, with `None`, owned by the value.
    pub fn attach(ifname: &str, mode: AttachMode, pins: Option<&PinDir>) -> Result<Self, XdpError> {
        let spec = ProgramSpec {
            obj: GUEST_OBJ,
            program: "xvpc_guest",
            config: &[],
            extra_maps: &[],
            shared: None,
        };
        let inner = Attached::load(spec, ifname, mode, pins, |_| {})?;
        Ok(GuestSteering { inner })
    }

    /// How the program came to be attached.
    pub fn adoption(&self) -> &Adoption {
        &self.inner.adoption
    }

    /// Sends frames received on RX `queue` to the AF_XDP socket `fd` (bound to that queue
    /// of this interface).
    pub fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.inner.register(queue, fd)
    }

    /// Removes the socket of `queue`; its frames are dropped from then on.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        self.inner.unregister(queue)
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<GuestCounters, XdpError> {
        Ok(GuestCounters {
            redirected: self.inner.counter(guest_idx::REDIRECTED)?,
            dropped_no_socket: self.inner.counter(guest_idx::DROPPED_NO_SOCKET)?,
        })
    }

    /// The mode actually used (never [`AttachMode::Auto`]).
    pub fn mode(&self) -> AttachMode {
        self.inner.mode
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.inner.ifname
    }
}

/// `xvpc_fabric` attached to the fabric port. Dropping it detaches the program.
#[derive(Debug)]
pub struct FabricSteering {
    inner: Attached,
    filter: FabricFilter,
}

impl FabricSteering {
    /// Loads `xvpc_fabric` configured with `cfg` and attaches it to `ifname` through a
    /// bpf_link, pinned under `pins` or owned by the value (see [`GuestSteering::attach`]).
    /// The filter is fixed for the program's lifetime (read-only globals): another filter is
    /// another program version.
    pub fn attach(
        ifname: &str,
        mode: AttachMode,
        cfg: &FabricFilter,
        pins: Option<&PinDir>,
    ) -> Result<Self, XdpError> {
        if cfg.underlay_ipv4.is_none() && cfg.underlay_ipv6.is_none() {
            return Err(XdpError::InvalidFilter(
                "neither an IPv4 nor an IPv6 underlay address is set",
            ));
        }
        if cfg.vxlan_port == 0 {
            return Err(XdpError::InvalidFilter("VXLAN port 0"));
        }
        let mut flags = 0u32;
        // The program compares raw header words, so hand it the bytes in network order.
        let v4 = match cfg.underlay_ipv4 {
            Some(a) => {
                flags |= CFG_V4;
                u32::from_ne_bytes(a.octets())
            }
            None => 0,
        };
        let v6: [u32; 4] = match cfg.underlay_ipv6 {
            Some(a) => {
                flags |= CFG_V6;
                let o = a.octets();
                [0, 4, 8, 12].map(|i| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]))
            }
            None => [0; 4],
        };
        let port = u16::from_ne_bytes(cfg.vxlan_port.to_be_bytes());
        let mut config = Vec::with_capacity(26);
        config.extend_from_slice(&flags.to_ne_bytes());
        config.extend_from_slice(&v4.to_ne_bytes());
        v6.iter()
            .for_each(|w| config.extend_from_slice(&w.to_ne_bytes()));
        config.extend_from_slice(&port.to_ne_bytes());
        let spec = ProgramSpec {
            obj: FABRIC_OBJ,
            program: "xvpc_fabric",
            config: &config,
            extra_maps: &[],
            shared: None,
        };
        let inner = Attached::load(spec, ifname, mode, pins, |loader| {
            loader
                .override_global("cfg_flags", &flags, true)
                .override_global("cfg_underlay_v4", &v4, true)
                .override_global("cfg_underlay_v6", &v6, true)
                .override_global("cfg_vxlan_port", &port, true);
        })?;
        Ok(FabricSteering {
            inner,
            filter: *cfg,
        })
    }

    /// How the program came to be attached.
    pub fn adoption(&self) -> &Adoption {
        &self.inner.adoption
    }

    /// Sends VXLAN frames received on RX `queue` to the AF_XDP socket `fd`.
    pub fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.inner.register(queue, fd)
    }

    /// Removes the socket of `queue`; its VXLAN frames are dropped from then on.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        self.inner.unregister(queue)
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<FabricCounters, XdpError> {
        Ok(FabricCounters {
            steered: self.inner.counter(fabric_idx::STEERED)?,
            passed: self.inner.counter(fabric_idx::PASSED)?,
            dropped_no_socket: self.inner.counter(fabric_idx::DROPPED_NO_SOCKET)?,
            malformed: self.inner.counter(fabric_idx::MALFORMED)?,
        })
    }

    /// The mode actually used (never [`AttachMode::Auto`]).
    pub fn mode(&self) -> AttachMode {
        self.inner.mode
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.inner.ifname
    }

    /// The filter the program was loaded with.
    pub fn filter(&self) -> &FabricFilter {
        &self.filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `NAME = <n>` (enum member) or `#define NAME (1u << n)` in the C header.
    fn c_value(header: &str, name: &str) -> u32 {
        for line in header.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix(name) {
                let rest = rest.trim_start();
                if let Some(v) = rest.strip_prefix('=') {
                    let v = v.trim().trim_end_matches(',');
                    let v = v.split_whitespace().next().expect("value");
                    return v.trim_end_matches(',').parse().expect("numeric enum value");
                }
            }
            if let Some(rest) = line.strip_prefix(&format!("#define {name} (1u << ")) {
                let n: u32 = rest
                    .split(')')
                    .next()
                    .expect("shift")
                    .parse()
                    .expect("numeric shift");
                return 1 << n;
            }
        }
        panic!("{name} not found in ebpf/xvpc_xdp.h");
    }

    #[test]
    fn rust_constants_match_the_c_header() {
        let header = include_str!("../../../ebpf/xvpc_xdp.h");
        assert_eq!(c_value(header, "GUEST_REDIRECTED"), guest_idx::REDIRECTED);
        assert_eq!(
            c_value(header, "GUEST_DROPPED_NO_SOCKET"),
            guest_idx::DROPPED_NO_SOCKET
        );
        assert_eq!(c_value(header, "FABRIC_STEERED"), fabric_idx::STEERED);
        assert_eq!(c_value(header, "FABRIC_PASSED"), fabric_idx::PASSED);
        assert_eq!(
            c_value(header, "FABRIC_DROPPED_NO_SOCKET"),
            fabric_idx::DROPPED_NO_SOCKET
        );
        assert_eq!(c_value(header, "FABRIC_MALFORMED"), fabric_idx::MALFORMED);
        assert_eq!(c_value(header, "XVPC_CFG_V4"), CFG_V4);
        assert_eq!(c_value(header, "XVPC_CFG_V6"), CFG_V6);
        let max_queues = header
            .lines()
            .find_map(|l| l.strip_prefix("#define XVPC_MAX_QUEUES "))
            .expect("XVPC_MAX_QUEUES")
            .trim()
            .parse::<u32>()
            .expect("numeric");
        assert_eq!(max_queues, MAX_QUEUES);
    }

    #[test]
    fn versions_follow_code_and_configuration() {
        let v = program_version("xvpc_fabric", b"obj", b"cfg");
        assert_eq!(v.len(), 16);
        assert_eq!(v, program_version("xvpc_fabric", b"obj", b"cfg"));
        assert_ne!(v, program_version("xvpc_fabric", b"obj2", b"cfg"));
        assert_ne!(v, program_version("xvpc_fabric", b"obj", b"cfh"));
        assert_ne!(v, program_version("xvpc_guest", b"obj", b"cfg"));
        // Field boundaries count: moving a byte between parts changes the version.
        assert_ne!(
            program_version("p", b"ab", b"c"),
            program_version("p", b"a", b"bc")
        );
    }

    #[test]
    fn a_filter_that_matches_nothing_is_rejected_before_loading() {
        let none = FabricFilter {
            underlay_ipv4: None,
            underlay_ipv6: None,
            vxlan_port: 4789,
        };
        assert!(matches!(
            FabricSteering::attach("eth0", AttachMode::Auto, &none, None),
            Err(XdpError::InvalidFilter(_))
        ));
        let port0 = FabricFilter {
            underlay_ipv4: Some(Ipv4Addr::new(198, 18, 0, 1)),
            underlay_ipv6: None,
            vxlan_port: 0,
        };
        assert!(matches!(
            FabricSteering::attach("eth0", AttachMode::Auto, &port0, None),
            Err(XdpError::InvalidFilter(_))
        ));
    }
}
