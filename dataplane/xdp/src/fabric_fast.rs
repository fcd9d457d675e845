//! The XDP fast path of the fabric port (`dataplane.fast_path = "xdp"`): `xvpc_fabric_fast`
//! (`ebpf/fabric_fast.bpf.c`) makes every decision `xvpc_fabric` makes and decapsulates the
//! common ingress case in the kernel, redirecting the inner frame to the guest port. See
//! `docs/XDP.md`, "The XDP fast path of the fabric port".
//!
//! It checks senders against the mapping table of `xvpc_guest_fast` and counts its drops in
//! that program's `drops`: the maps are shared through the guest port's pins, so the control
//! path writes one table and `xvpc stats` reads one set of drop counters. Its own maps
//! (`ingress_counters`, `tx_port`) are pinned beside `xsks_map` and `counters`, which have
//! `xvpc_fabric`'s layout, so a switch of tier keeps the fabric counters.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use aya::maps::{DevMap, Map, MapData, PerCpuArray};
use aya::EbpfLoader;

use crate::fast::{config_bytes, FastPathSpec};
use crate::{
    fabric_idx, AttachMode, Attached, FabricCounters, PinDir, ProgramSpec, SharedMaps, XdpError,
    FABRIC_FAST_OBJ,
};

const PROGRAM: &str = "xvpc_fabric_fast";

/// `XVPC_FAST_UDP6_ZERO_RX` in `ebpf/fabric_fast.bpf.c`.
const UDP6_ZERO_RX: u32 = 1 << 5;

/// Indices of `ingress_counters` (`enum xvpc_ingress_counter`).
mod ingress_idx {
    pub const DECAPSULATED: u32 = 0;
    pub const ABORTED: u32 = 1;
    pub const BYTES: u32 = 2;
}

/// Its own maps beyond `xsks_map` and `counters`.
const OWN_MAPS: &[crate::ExtraMap] = &[
    ("ingress_counters", Map::PerCpuArray),
    ("tx_port", Map::DevMap),
];

/// `xvpc_guest_fast`'s maps it uses (pinned in the guest port's directory).
const SHARED_MAPS: &[crate::ExtraMap] = &[
    ("mappings", Map::HashMap),
    ("generation", Map::Array),
    ("drops", Map::PerCpuArray),
];

/// Counters of the ingress fast path, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngressCounters {
    /// Decapsulated in XDP and redirected to the guest port.
    pub decapsulated: u64,
    /// Stripped, then the guest port could not take it: dropped.
    pub aborted: u64,
    /// Inner bytes of the decapsulated frames (what the workers count in `ingress_bytes`).
    pub ingress_bytes: u64,
}

/// The configuration `xvpc_fabric_fast` reads: the fast path's, with the receive-side
/// zero-checksum flag. The steering needs an underlay address and a port, as
/// [`crate::FabricSteering`]'s filter does.
fn fabric_config(spec: &FastPathSpec<'_>) -> Result<Vec<u8>, XdpError> {
    let fabric = spec.ctx.fabric;
    if fabric.underlay_ipv4.is_none() && fabric.underlay_ipv6.is_none() {
        return Err(XdpError::InvalidFilter(
            "neither an IPv4 nor an IPv6 underlay address is set",
        ));
    }
    if fabric.vxlan_port == 0 {
        return Err(XdpError::InvalidFilter("VXLAN port 0"));
    }
    let mut config = config_bytes(spec)?;
    if fabric.udp6_zero_checksum_rx {
        let flags = u32::from_ne_bytes([config[0], config[1], config[2], config[3]]);
        config[..4].copy_from_slice(&(flags | UDP6_ZERO_RX).to_ne_bytes());
    }
    Ok(config)
}

fn map_error(ifname: &str, what: &'static str) -> impl FnOnce(aya::maps::MapError) -> XdpError {
    let ifname = ifname.to_string();
    move |source| XdpError::Map {
        ifname,
        what,
        source: Box::new(source),
    }
}

/// The maps only this program has.
struct OwnMaps {
    ifname: String,
    ingress: PerCpuArray<MapData, u64>,
    tx_port: DevMap<MapData>,
}

impl OwnMaps {
    /// From the maps in [`OWN_MAPS`] order (what follows is the shared maps: dropped here,
    /// the program keeps them alive).
    fn new(ifname: &str, maps: Vec<Map>) -> Result<Self, XdpError> {
        let mut it = maps.into_iter();
        let mut next = |name| {
            it.next().ok_or_else(|| XdpError::Missing {
                ifname: ifname.to_string(),
                kind: "map",
                name,
            })
        };
        Ok(OwnMaps {
            ifname: ifname.to_string(),
            ingress: PerCpuArray::try_from(next("ingress_counters")?)
                .map_err(map_error(ifname, "ingress_counters is not a per-CPU array"))?,
            tx_port: DevMap::try_from(next("tx_port")?)
                .map_err(map_error(ifname, "tx_port is not a DEVMAP"))?,
        })
    }

    fn set_guest_port(&mut self, ifindex: u32) -> Result<(), XdpError> {
        self.tx_port
            .set(0, ifindex, None, 0)
            .map_err(|e| XdpError::GuestPort {
                ifname: self.ifname.clone(),
                ifindex,
                reason: crate::pins::chain(&e),
            })
    }

    fn counters(&self) -> Result<IngressCounters, XdpError> {
        let sum = |idx: u32| -> Result<u64, XdpError> {
            let v = self
                .ingress
                .get(&idx, 0)
                .map_err(map_error(&self.ifname, "reading ingress_counters"))?;
            Ok(v.iter().fold(0u64, |a, x| a.wrapping_add(*x)))
        };
        Ok(IngressCounters {
            decapsulated: sum(ingress_idx::DECAPSULATED)?,
            aborted: sum(ingress_idx::ABORTED)?,
            ingress_bytes: sum(ingress_idx::BYTES)?,
        })
    }
}

/// The ids of the shared maps pinned in `dir`: part of the program's version, so a program
/// still bound to maps of an earlier guest program (its pins removed and made anew) is
/// replaced rather than reused with a table nobody writes any more.
fn shared_map_ids(ifname: &str, dir: &Path) -> Result<Vec<u8>, XdpError> {
    let mut out = Vec::new();
    for (name, _) in SHARED_MAPS {
        let path = dir.join(name);
        let pin_error = |reason: String| XdpError::Pin {
            ifname: ifname.to_string(),
            path: path.clone(),
            reason,
        };
        let map = MapData::from_pin(&path).map_err(|e| {
            pin_error(format!(
                "cannot open the guest fast path's map (attach it first): {}",
                crate::pins::chain(&e)
            ))
        })?;
        let info = map
            .info()
            .map_err(|e| pin_error(format!("cannot read: {}", crate::pins::chain(&e))))?;
        out.extend_from_slice(&info.id().to_ne_bytes());
    }
    Ok(out)
}

/// Sets the configuration and the shared table's capacity on a loader.
fn configure<'a>(loader: &mut EbpfLoader<'a>, config: &'a [u8], capacity: u32) {
    loader
        .override_global("cfg", config, true)
        .map_max_entries("mappings", capacity);
}

/// `xvpc_fabric_fast` attached to the fabric port, the tier `dataplane.fast_path = "xdp"`
/// selects: [`crate::FabricSteering`] plus the ingress fast path. Pinned like it, and a switch
/// between the two is an atomic program upgrade of the same link.
#[derive(Debug)]
pub struct FabricFastPath {
    inner: Attached,
    maps: OwnMapsDebug,
}

/// [`OwnMaps`] behind a Debug that prints nothing of the maps.
struct OwnMapsDebug(OwnMaps);

impl std::fmt::Debug for OwnMapsDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnMaps")
            .field("ifname", &self.0.ifname)
            .finish_non_exhaustive()
    }
}

impl FabricFastPath {
    /// Loads `xvpc_fabric_fast` for `spec` and attaches it to `ifname` (see
    /// [`crate::FabricSteering::attach`]); decapsulated frames go to `guest_ifindex`. It uses
    /// the mapping table and drop counters of the [`crate::GuestFastPath`] attached to
    /// `guest_ifname` under the same `pins`, which must be attached first.
    pub fn attach(
        ifname: &str,
        mode: AttachMode,
        spec: &FastPathSpec<'_>,
        guest_ifname: &str,
        guest_ifindex: u32,
        pins: &PinDir,
    ) -> Result<Self, XdpError> {
        let config = fabric_config(spec)?;
        let capacity = spec.capacity;
        let shared_dir: PathBuf = pins.root().join(guest_ifname);
        // The version covers the capacity and the shared maps too; the program reads only
        // the first CFG_SIZE bytes.
        let mut version_input = config.clone();
        version_input.extend_from_slice(&capacity.to_ne_bytes());
        version_input.extend_from_slice(&shared_map_ids(ifname, &shared_dir)?);
        let program = ProgramSpec {
            obj: FABRIC_FAST_OBJ,
            program: PROGRAM,
            config: &version_input,
            extra_maps: OWN_MAPS,
            shared: Some(SharedMaps {
                dir: &shared_dir,
                maps: SHARED_MAPS,
            }),
        };
        let mut inner = Attached::load(program, ifname, mode, Some(pins), |loader| {
            configure(loader, &config, capacity)
        })?;
        let mut maps = OwnMaps::new(ifname, std::mem::take(&mut inner.extra))?;
        maps.set_guest_port(guest_ifindex)?;
        Ok(FabricFastPath {
            inner,
            maps: OwnMapsDebug(maps),
        })
    }

    /// How the program came to be attached.
    pub fn adoption(&self) -> &crate::Adoption {
        &self.inner.adoption
    }

    /// See [`crate::FabricSteering::register_socket`].
    pub fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.inner.register(queue, fd)
    }

    /// See [`crate::FabricSteering::unregister_socket`].
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        self.inner.unregister(queue)
    }

    /// The counters it shares with `xvpc_fabric`: steered to the workers, passed to the host,
    /// dropped for want of a socket, malformed.
    pub fn counters(&self) -> Result<FabricCounters, XdpError> {
        Ok(FabricCounters {
            steered: self.inner.counter(fabric_idx::STEERED)?,
            passed: self.inner.counter(fabric_idx::PASSED)?,
            dropped_no_socket: self.inner.counter(fabric_idx::DROPPED_NO_SOCKET)?,
            malformed: self.inner.counter(fabric_idx::MALFORMED)?,
        })
    }

    /// The ingress fast path's own counters (its drops are in the guest fast path's).
    pub fn ingress_counters(&self) -> Result<IngressCounters, XdpError> {
        self.maps.0.counters()
    }

    /// The mode actually used.
    pub fn mode(&self) -> AttachMode {
        self.inner.mode
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.inner.ifname
    }
}

/// `xvpc_fabric_fast` loaded but attached nowhere, for `BPF_PROG_TEST_RUN` (the oracle tests,
/// benchmarks), sharing the maps of a [`crate::FastPathProgram`] pinned in a directory
/// ([`crate::FastPathProgram::load_sharing`]). Dropping it unloads it.
pub struct FabricFastProgram {
    prog: crate::Unattached,
    maps: OwnMaps,
}

impl std::fmt::Debug for FabricFastProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FabricFastProgram").finish_non_exhaustive()
    }
}

use crate::UNATTACHED;

impl FabricFastProgram {
    /// Loads the program for `spec` (verifier included) without attaching it, with the
    /// shared maps pinned in `shared_dir`.
    pub fn load(spec: &FastPathSpec<'_>, shared_dir: &Path) -> Result<Self, XdpError> {
        let config = fabric_config(spec)?;
        let mut loader = EbpfLoader::new();
        configure(&mut loader, &config, spec.capacity);
        // Checked first: a missing pin would make aya create a map there.
        shared_map_ids(UNATTACHED, shared_dir)?;
        let paths: Vec<(&str, PathBuf)> = SHARED_MAPS
            .iter()
            .map(|(name, _)| (*name, shared_dir.join(name)))
            .collect();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut prog = crate::Unattached::load(&mut loader, FABRIC_FAST_OBJ, PROGRAM)?;
        let maps = OwnMaps::new(UNATTACHED, prog.take_maps(OWN_MAPS)?)?;
        Ok(FabricFastProgram { prog, maps })
    }

    /// The program, for `BPF_PROG_TEST_RUN`.
    pub fn program_fd(&self) -> Result<BorrowedFd<'_>, XdpError> {
        self.prog.program_fd()
    }

    /// Sends decapsulated frames to the interface `ifindex` (the guest port).
    pub fn set_guest_port(&mut self, ifindex: u32) -> Result<(), XdpError> {
        self.maps.set_guest_port(ifindex)
    }

    /// Registers the AF_XDP socket `fd` for RX `queue`, as the daemon's workers do: without
    /// one the program forwards nothing (fail closed).
    pub fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.prog.register_socket(queue, fd)
    }

    /// The counters it shares with `xvpc_fabric` (`counters`).
    pub fn counters(&self) -> Result<FabricCounters, XdpError> {
        Ok(FabricCounters {
            steered: self.prog.counter(fabric_idx::STEERED)?,
            passed: self.prog.counter(fabric_idx::PASSED)?,
            dropped_no_socket: self.prog.counter(fabric_idx::DROPPED_NO_SOCKET)?,
            malformed: self.prog.counter(fabric_idx::MALFORMED)?,
        })
    }

    /// The ingress fast path's own counters.
    pub fn ingress_counters(&self) -> Result<IngressCounters, XdpError> {
        self.maps.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = include_str!("../../../ebpf/fabric_fast.bpf.c");

    /// The number after `NAME = ` or `#define NAME (1u << n)` in the program's source.
    fn c_number(name: &str) -> Option<u64> {
        SOURCE.lines().find_map(|line| {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix(&format!("#define {name} (1u << ")) {
                let n: u32 = rest.split(')').next()?.parse().ok()?;
                return Some(1 << n);
            }
            let rest = line.strip_prefix(name)?.trim_start().strip_prefix('=')?;
            rest.trim()
                .split(|c: char| c == ',' || c.is_whitespace())
                .next()?
                .parse()
                .ok()
        })
    }

    #[test]
    fn ingress_constants_match_the_c_source() {
        let n = |name| c_number(name).unwrap_or_else(|| panic!("{name} in fabric_fast.bpf.c"));
        assert_eq!(
            n("INGRESS_DECAPSULATED"),
            u64::from(ingress_idx::DECAPSULATED)
        );
        assert_eq!(n("INGRESS_ABORTED"), u64::from(ingress_idx::ABORTED));
        assert_eq!(n("INGRESS_BYTES"), u64::from(ingress_idx::BYTES));
        assert_eq!(n("INGRESS_COUNTER_MAX"), 3);
        assert_eq!(n("XVPC_FAST_UDP6_ZERO_RX"), u64::from(UDP6_ZERO_RX));
        // A bit of its own: not one of the flags xvpc_guest_fast reads.
        for f in [
            crate::fast::flag::GW_V4,
            crate::fast::flag::GW_V6,
            crate::fast::flag::SRC_V4,
            crate::fast::flag::SRC_V6,
            crate::fast::flag::UDP6_ZERO,
        ] {
            assert_eq!(f & UDP6_ZERO_RX, 0);
        }
    }
}
