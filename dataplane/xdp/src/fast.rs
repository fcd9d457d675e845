//! The XDP fast path of the guest port (`dataplane.fast_path = "xdp"`): `xvpc_guest_fast`
//! (`ebpf/guest_fast.bpf.c`) encapsulates the common case in the kernel and hands the rest to
//! the AF_XDP socket as `xvpc_guest` does. See `docs/XDP.md`, "The XDP fast path".
//!
//! Its configuration (guest, gateway, fabric) is one read-only global: another configuration
//! is another program version, swapped in atomically like any other. Its maps (`mappings`,
//! `drops`, `fast_counters`, `tx_port`) are pinned beside `xsks_map` and `counters`, which it
//! shares with `xvpc_guest` (same layout), so the counters survive a change of tier.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use aya::maps::{Array, DevMap, HashMap, Map, MapData, PerCpuArray};
use aya::EbpfLoader;
use xvpc_core::counters::DropReason;
use xvpc_core::model::{Mapping, MappingKey};
use xvpc_core::pipeline::Context;

use crate::{
    AttachMode, Attached, GuestCounters, PinDir, ProgramSpec, Unattached, XdpError, GUEST_FAST_OBJ,
};

/// `XVPC_FAST_MAX_V4` / `XVPC_FAST_MAX_V6` in `ebpf/xvpc_xdp.h`.
pub(crate) const MAX_V4: usize = 8;
pub(crate) const MAX_V6: usize = 8;
/// `XVPC_FAST_CFG_SIZE`, `XVPC_MAP_KEY_SIZE`, `XVPC_MAP_VAL_SIZE`.
pub(crate) const CFG_SIZE: usize = 240;
pub(crate) const KEY_SIZE: usize = 24;
pub(crate) const VAL_SIZE: usize = 28;

/// Bits of `struct xvpc_fast_cfg`'s flags (`XVPC_FAST_*`).
pub(crate) mod flag {
    pub const GW_V4: u32 = 1 << 0;
    pub const GW_V6: u32 = 1 << 1;
    pub const SRC_V4: u32 = 1 << 2;
    pub const SRC_V6: u32 = 1 << 3;
    pub const UDP6_ZERO: u32 = 1 << 4;
}

/// Indices of `fast_counters` (`enum xvpc_fast_counter`).
pub(crate) mod fast_idx {
    pub const ENCAPSULATED: u32 = 0;
    pub const ABORTED: u32 = 1;
    pub const EGRESS_BYTES: u32 = 2;
}

const PROGRAM: &str = "xvpc_guest_fast";
const EXTRA_MAPS: &[crate::ExtraMap] = &[
    ("mappings", Map::HashMap),
    ("drops", Map::PerCpuArray),
    ("fast_counters", Map::PerCpuArray),
    ("tx_port", Map::DevMap),
    ("generation", Map::Array),
];

/// What the fast path is built for.
#[derive(Clone, Copy, Debug)]
pub struct FastPathSpec<'a> {
    /// The guest, its gateway and the fabric: what the workers run against too.
    pub ctx: Context<'a>,
    /// Live mappings the BPF map holds (its `max_entries`, preallocated). Fixed for a
    /// pinned map's lifetime: a larger capacity needs a detach.
    pub capacity: u32,
}

/// `struct xvpc_fast_cfg` as the program reads it.
pub(crate) fn config_bytes(spec: &FastPathSpec<'_>) -> Result<Vec<u8>, XdpError> {
    let (guest, gateway, fabric) = (spec.ctx.guest, spec.ctx.gateway, spec.ctx.fabric);
    if guest.ipv4.len() > MAX_V4 || guest.ipv6.len() > MAX_V6 {
        return Err(XdpError::InvalidFastPath(format!(
            "the guest has {} IPv4 and {} IPv6 addresses; the XDP program knows at most \
             {MAX_V4} of each (use dataplane.fast_path = \"afxdp\")",
            guest.ipv4.len(),
            guest.ipv6.len()
        )));
    }
    if spec.capacity == 0 {
        return Err(XdpError::InvalidFastPath(
            "a mapping map of capacity 0".into(),
        ));
    }
    let mut flags = 0;
    let mut b = vec![0u8; CFG_SIZE];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(4, &guest.vni.get().to_ne_bytes());
    put(8, &(guest.ipv4.len() as u32).to_ne_bytes());
    put(12, &(guest.ipv6.len() as u32).to_ne_bytes());
    for (i, a) in guest.ipv4.iter().enumerate() {
        put(16 + 4 * i, &a.octets());
    }
    for (i, a) in guest.ipv6.iter().enumerate() {
        put(48 + 16 * i, &a.octets());
    }
    if let Some(a) = gateway.ipv4 {
        flags |= flag::GW_V4;
        put(176, &a.octets());
    }
    if let Some(a) = gateway.ipv6 {
        flags |= flag::GW_V6;
        put(180, &a.octets());
    }
    if let Some(a) = fabric.underlay_ipv4 {
        flags |= flag::SRC_V4;
        put(196, &a.octets());
    }
    if let Some(a) = fabric.underlay_ipv6 {
        flags |= flag::SRC_V6;
        put(200, &a.octets());
    }
    if fabric.udp6_zero_checksum_tx {
        flags |= flag::UDP6_ZERO;
    }
    put(216, &guest.mac.0);
    put(222, &fabric.local_mac.0);
    put(228, &fabric.next_hop_mac.0);
    put(234, &fabric.vxlan_port.to_be_bytes());
    put(236, &fabric.mtu.to_ne_bytes());
    put(0, &flags.to_ne_bytes());
    Ok(b)
}

/// `struct xvpc_map_key` of a mapping key.
fn map_key(key: &MappingKey) -> [u8; KEY_SIZE] {
    let mut k = [0u8; KEY_SIZE];
    k[..4].copy_from_slice(&key.vni.get().to_ne_bytes());
    let (family, addr) = family_and_octets(key.overlay_ip);
    k[4..8].copy_from_slice(&family.to_ne_bytes());
    k[8..24].copy_from_slice(&addr);
    k
}

fn family_and_octets(ip: IpAddr) -> (u32, [u8; 16]) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (4, out)
        }
        IpAddr::V6(a) => (6, a.octets()),
    }
}

/// `struct xvpc_map_val` of a mapping, live while `generation` is the map's.
fn map_value(m: &Mapping, generation: u32) -> [u8; VAL_SIZE] {
    let mut v = [0u8; VAL_SIZE];
    v[..6].copy_from_slice(&m.overlay_mac.0);
    let (family, addr) = family_and_octets(m.underlay_ip);
    v[6..8].copy_from_slice(&(family as u16).to_ne_bytes());
    v[8..24].copy_from_slice(&addr);
    v[24..28].copy_from_slice(&generation.to_ne_bytes());
    v
}

fn generation_of(value: &[u8; VAL_SIZE]) -> u32 {
    u32::from_ne_bytes([value[24], value[25], value[26], value[27]])
}

/// A full sync written under the next generation, not yet live ([`FastMaps::publish`]).
#[derive(Debug)]
#[must_use = "a staged sync is invisible to XDP until it is published"]
pub struct Staged(FullSync);

/// What a full sync wrote into the BPF map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FullSync {
    /// The generation now live.
    pub generation: u32,
    /// Mappings written (live in XDP).
    pub written: usize,
    /// Mappings the map had no room for: they miss in XDP and the workers forward them.
    pub no_room: usize,
    /// Entries of earlier generations removed.
    pub removed: usize,
}

/// Counters of the fast path itself, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastCounters {
    /// Encapsulated in XDP and redirected to the fabric port.
    pub encapsulated: u64,
    /// Rewritten, then the fabric port could not take it: dropped.
    pub aborted: u64,
    /// Outer bytes of the encapsulated frames.
    pub egress_bytes: u64,
}

/// The fast path's own maps: the mapping table, the drop reasons, its counters and the
/// fabric port.
pub struct FastMaps {
    ifname: String,
    mappings: HashMap<MapData, [u8; KEY_SIZE], [u8; VAL_SIZE]>,
    drops: PerCpuArray<MapData, u64>,
    fast: PerCpuArray<MapData, u64>,
    tx_port: DevMap<MapData>,
    generation: Array<MapData, u32>,
    /// What `generation` holds: only this process writes it.
    live: u32,
    /// The map holds no entry of generation `live + 1`: true after a publish (which removed
    /// every other generation), false at start (a process killed between a stage and its
    /// publish left its entries in the pinned map) and after a failed stage.
    next_is_clean: bool,
}

impl std::fmt::Debug for FastMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastMaps")
            .field("ifname", &self.ifname)
            .finish_non_exhaustive()
    }
}

impl FastMaps {
    /// From the maps in [`EXTRA_MAPS`] order.
    fn new(ifname: &str, maps: Vec<Map>) -> Result<Self, XdpError> {
        let err = |what| {
            move |source| XdpError::Map {
                ifname: ifname.to_string(),
                what,
                source: Box::new(source),
            }
        };
        let mut it = maps.into_iter();
        let mut next = |name| {
            it.next().ok_or_else(|| XdpError::Missing {
                ifname: ifname.to_string(),
                kind: "map",
                name,
            })
        };
        FastMaps {
            ifname: ifname.to_string(),
            mappings: HashMap::try_from(next("mappings")?)
                .map_err(err("mappings is not a hash map of 24-byte keys and values"))?,
            drops: PerCpuArray::try_from(next("drops")?)
                .map_err(err("drops is not a per-CPU array"))?,
            fast: PerCpuArray::try_from(next("fast_counters")?)
                .map_err(err("fast_counters is not a per-CPU array"))?,
            tx_port: DevMap::try_from(next("tx_port")?).map_err(err("tx_port is not a DEVMAP"))?,
            generation: Array::try_from(next("generation")?)
                .map_err(err("generation is not an array of u32"))?,
            live: 0,
            next_is_clean: false,
        }
        .read_generation()
    }

    /// A pinned map keeps the generation its last writer made live.
    fn read_generation(mut self) -> Result<Self, XdpError> {
        self.live = self
            .generation
            .get(&0, 0)
            .map_err(self.map_error("reading generation"))?;
        Ok(self)
    }

    fn map_error(&self, what: &'static str) -> impl FnOnce(aya::maps::MapError) -> XdpError + '_ {
        move |source| XdpError::Map {
            ifname: self.ifname.clone(),
            what,
            source: Box::new(source),
        }
    }

    /// Sends encapsulated frames to the interface `ifindex` (the fabric port).
    pub fn set_fabric_port(&mut self, ifindex: u32) -> Result<(), XdpError> {
        self.tx_port
            .set(0, ifindex, None, 0)
            .map_err(|e| XdpError::FabricPort {
                ifname: self.ifname.clone(),
                ifindex,
                reason: crate::pins::chain(&e),
            })
    }

    /// Inserts or replaces a live mapping. Only the control path calls this.
    pub fn upsert(&mut self, mapping: &Mapping) -> Result<(), XdpError> {
        let r = self
            .mappings
            .insert(map_key(&mapping.key()), map_value(mapping, self.live), 0);
        r.map_err(self.map_error("inserting into mappings"))
    }

    /// Replaces the whole table with `mappings`, never showing XDP a half-written one:
    /// [`FastMaps::stage`] then [`FastMaps::publish`]. The map must have room for the union
    /// of the old and the new table; a mapping it has no room for is counted in
    /// [`FullSync::no_room`] and left to the workers.
    pub fn replace_all<'m>(
        &mut self,
        mappings: impl IntoIterator<Item = &'m Mapping>,
    ) -> Result<FullSync, XdpError> {
        let staged = self.stage(mappings)?;
        self.publish(staged)
    }

    /// The first half of a full sync: writes `mappings` under the next generation. XDP still
    /// uses the live one; an entry rewritten here misses until [`FastMaps::publish`] (the
    /// workers forward it meanwhile).
    pub fn stage<'m>(
        &mut self,
        mappings: impl IntoIterator<Item = &'m Mapping>,
    ) -> Result<Staged, XdpError> {
        let next = self.live.wrapping_add(1);
        let mut sync = FullSync {
            generation: next,
            ..FullSync::default()
        };
        if !self.next_is_clean {
            // Left by an interrupted stage: publishing `next` would make them live.
            let live = self.live;
            sync.removed += self.remove_generations(|g| g != live)?;
        }
        self.next_is_clean = false;
        for mapping in mappings {
            match self
                .mappings
                .insert(map_key(&mapping.key()), map_value(mapping, next), 0)
            {
                Ok(()) => sync.written += 1,
                // E2BIG: the preallocated map is full. Nothing else is expected here.
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.kind() == std::io::ErrorKind::ArgumentListTooLong =>
                {
                    sync.no_room += 1
                }
                Err(e) => return Err(self.map_error("inserting into mappings")(e)),
            }
        }
        Ok(Staged(sync))
    }

    /// The second half: makes the staged generation live with one word (every CPU sees the
    /// new table from its next lookup), then removes the entries of earlier generations.
    pub fn publish(&mut self, staged: Staged) -> Result<FullSync, XdpError> {
        let mut sync = staged.0;
        let next = sync.generation;
        self.generation
            .set(0, next, 0)
            .map_err(self.map_error("writing generation"))?;
        self.live = next;
        sync.removed += self.remove_generations(|g| g != next)?;
        self.next_is_clean = true;
        Ok(sync)
    }

    /// Removes every entry whose generation `stale` picks; returns how many.
    fn remove_generations(&mut self, stale: impl Fn(u32) -> bool) -> Result<usize, XdpError> {
        // Collected first: deleting while walking a BPF hash restarts the walk.
        let keys: Vec<[u8; KEY_SIZE]> = self
            .mappings
            .iter()
            .filter_map(|kv| match kv {
                Ok((k, v)) if stale(generation_of(&v)) => Some(Ok(k)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(self.map_error("walking mappings"))?;
        for key in &keys {
            match self.mappings.remove(key) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(self.map_error("removing from mappings")(e)),
            }
        }
        Ok(keys.len())
    }

    /// The generation XDP treats as live.
    pub fn generation(&self) -> u32 {
        self.live
    }

    /// Entries in the map, live or not (walks the map: for tests and tools).
    pub fn len(&self) -> Result<usize, XdpError> {
        let mut n = 0;
        for key in self.mappings.keys() {
            key.map_err(self.map_error("walking mappings"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Is the map empty (see [`FastMaps::len`])?
    pub fn is_empty(&self) -> Result<bool, XdpError> {
        Ok(self.len()? == 0)
    }

    /// Removes a mapping (absent is fine).
    pub fn remove(&mut self, key: &MappingKey) -> Result<(), XdpError> {
        match self.mappings.remove(&map_key(key)) {
            Ok(()) => Ok(()),
            Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(self.map_error("removing from mappings")(e)),
        }
    }

    /// Does the map hold a live mapping for `key`?
    pub fn contains(&self, key: &MappingKey) -> Result<bool, XdpError> {
        match self.mappings.get(&map_key(key), 0) {
            Ok(v) => Ok(generation_of(&v) == self.live),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(self.map_error("looking up mappings")(e)),
        }
    }

    /// The fast path's counters, summed over CPUs.
    pub fn counters(&self) -> Result<FastCounters, XdpError> {
        Ok(FastCounters {
            encapsulated: sum(&self.fast, fast_idx::ENCAPSULATED, self)?,
            aborted: sum(&self.fast, fast_idx::ABORTED, self)?,
            egress_bytes: sum(&self.fast, fast_idx::EGRESS_BYTES, self)?,
        })
    }

    /// Frames dropped in XDP, per reason (summed over CPUs), in [`DropReason::ALL`] order.
    pub fn drops(&self) -> Result<[u64; DropReason::COUNT], XdpError> {
        let mut out = [0u64; DropReason::COUNT];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = sum(&self.drops, i as u32, self)?;
        }
        Ok(out)
    }
}

fn sum(arr: &PerCpuArray<MapData, u64>, idx: u32, maps: &FastMaps) -> Result<u64, XdpError> {
    let values = arr
        .get(&idx, 0)
        .map_err(maps.map_error("reading counters"))?;
    Ok(values.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
}

fn spec_of<'a>(config: &'a [u8]) -> ProgramSpec<'a> {
    ProgramSpec {
        obj: GUEST_FAST_OBJ,
        program: PROGRAM,
        config,
        extra_maps: EXTRA_MAPS,
        shared: None,
    }
}

/// Sets the configuration and the table's capacity on a loader.
fn configure<'a>(loader: &mut EbpfLoader<'a>, config: &'a [u8], capacity: u32) {
    loader
        .override_global("cfg", config, true)
        .map_max_entries("mappings", capacity);
}

/// `xvpc_guest_fast` loaded but attached nowhere: for `BPF_PROG_TEST_RUN` (the oracle tests,
/// benchmarks). Dropping it unloads it.
pub struct FastPathProgram {
    prog: Unattached,
    maps: FastMaps,
}

impl std::fmt::Debug for FastPathProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPathProgram").finish_non_exhaustive()
    }
}

impl FastPathProgram {
    /// Loads the program for `spec` (verifier included) without attaching it.
    pub fn load(spec: &FastPathSpec<'_>) -> Result<Self, XdpError> {
        Self::load_sharing(spec, None)
    }

    /// [`FastPathProgram::load`], and with `shared_dir` (a directory on bpffs) pins the maps
    /// `xvpc_fabric_fast` shares (`mappings`, `generation`, `drops`) there, for a
    /// [`crate::FabricFastProgram`] to load against.
    pub fn load_sharing(
        spec: &FastPathSpec<'_>,
        shared_dir: Option<&std::path::Path>,
    ) -> Result<Self, XdpError> {
        let config = config_bytes(spec)?;
        let mut loader = EbpfLoader::new();
        configure(&mut loader, &config, spec.capacity);
        let mut prog = Unattached::load(&mut loader, GUEST_FAST_OBJ, PROGRAM)?;
        if let Some(dir) = shared_dir {
            for name in ["mappings", "generation", "drops"] {
                let path = dir.join(name);
                prog.map(name)?.pin(&path).map_err(|e| XdpError::Pin {
                    ifname: crate::UNATTACHED.into(),
                    path,
                    reason: format!("cannot pin: {}", crate::pins::chain(&e)),
                })?;
            }
        }
        let maps = FastMaps::new(crate::UNATTACHED, prog.take_maps(EXTRA_MAPS)?)?;
        Ok(FastPathProgram { prog, maps })
    }

    /// The program, for `BPF_PROG_TEST_RUN`.
    pub fn program_fd(&self) -> Result<BorrowedFd<'_>, XdpError> {
        self.prog.program_fd()
    }

    /// Its maps.
    pub fn maps(&mut self) -> &mut FastMaps {
        &mut self.maps
    }

    /// Its maps, to read.
    pub fn maps_ref(&self) -> &FastMaps {
        &self.maps
    }

    /// Registers the AF_XDP socket `fd` for RX `queue`, as the daemon's workers do: without
    /// one the program forwards nothing (fail closed).
    pub fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.prog.register_socket(queue, fd)
    }

    /// The counters it shares with `xvpc_guest` (`counters`).
    pub fn guest_counters(&self) -> Result<GuestCounters, XdpError> {
        Ok(GuestCounters {
            redirected: self.prog.counter(crate::guest_idx::REDIRECTED)?,
            dropped_no_socket: self.prog.counter(crate::guest_idx::DROPPED_NO_SOCKET)?,
        })
    }
}

/// `xvpc_guest_fast` attached to the guest-facing port, the tier `dataplane.fast_path = "xdp"`
/// selects: [`crate::GuestSteering`] plus the fast path. Pinned like it, and a switch between
/// the two is an atomic program upgrade of the same link.
#[derive(Debug)]
pub struct GuestFastPath {
    inner: Attached,
    maps: FastMaps,
}

impl GuestFastPath {
    /// Loads `xvpc_guest_fast` for `spec` and attaches it to `ifname` (see
    /// [`crate::GuestSteering::attach`]); encapsulated frames go to `fabric_ifindex`.
    pub fn attach(
        ifname: &str,
        mode: AttachMode,
        spec: &FastPathSpec<'_>,
        fabric_ifindex: u32,
        pins: Option<&PinDir>,
    ) -> Result<Self, XdpError> {
        let config = config_bytes(spec)?;
        let capacity = spec.capacity;
        // The version covers the capacity too; the program reads only the first CFG_SIZE.
        let mut version_input = config.clone();
        version_input.extend_from_slice(&capacity.to_ne_bytes());
        let mut inner = Attached::load(spec_of(&version_input), ifname, mode, pins, |loader| {
            configure(loader, &config, capacity)
        })?;
        let mut maps = FastMaps::new(ifname, std::mem::take(&mut inner.extra))?;
        maps.set_fabric_port(fabric_ifindex)?;
        Ok(GuestFastPath { inner, maps })
    }

    /// How the program came to be attached.
    pub fn adoption(&self) -> &crate::Adoption {
        &self.inner.adoption
    }

    /// See [`crate::GuestSteering::register_socket`].
    pub fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.inner.register(queue, fd)
    }

    /// See [`crate::GuestSteering::unregister_socket`].
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        self.inner.unregister(queue)
    }

    /// What went to the workers' sockets (or was dropped for want of one).
    pub fn counters(&self) -> Result<GuestCounters, XdpError> {
        Ok(GuestCounters {
            redirected: self.inner.counter(crate::guest_idx::REDIRECTED)?,
            dropped_no_socket: self.inner.counter(crate::guest_idx::DROPPED_NO_SOCKET)?,
        })
    }

    /// The mapping table, the drop reasons and the fast path's counters.
    pub fn maps(&mut self) -> &mut FastMaps {
        &mut self.maps
    }

    /// Its maps, to read (counters, drops).
    pub fn maps_ref(&self) -> &FastMaps {
        &self.maps
    }

    /// The mode actually used.
    pub fn mode(&self) -> AttachMode {
        self.inner.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = include_str!("../../../ebpf/xvpc_xdp.h");

    /// The number after `NAME = ` or `#define NAME ` in the header.
    fn c_number(name: &str) -> Option<u64> {
        HEADER.lines().find_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix(name)
                .and_then(|r| r.trim_start().strip_prefix('='))
                .or_else(|| line.strip_prefix(&format!("#define {name} ")))?;
            let rest = rest.trim();
            if let Some(shift) = rest.strip_prefix("(1u << ") {
                let n: u32 = shift.split(')').next()?.parse().ok()?;
                return Some(1 << n);
            }
            rest.split_whitespace()
                .next()?
                .trim_end_matches(',')
                .parse()
                .ok()
        })
    }

    #[test]
    fn drop_reasons_match_the_c_header() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let name = format!("XVPC_DROP_{}", reason.name().to_uppercase());
            assert_eq!(
                c_number(&name),
                Some(i as u64),
                "{name} must be {i} in ebpf/xvpc_xdp.h (DropReason order)"
            );
        }
        assert_eq!(c_number("XVPC_DROP_MAX"), Some(DropReason::COUNT as u64));
        // No reason in C that Rust does not have.
        let c_reasons = HEADER
            .lines()
            .filter(|l| l.trim_start().starts_with("XVPC_DROP_"))
            .count();
        assert_eq!(
            c_reasons,
            DropReason::COUNT + 1,
            "reasons plus XVPC_DROP_MAX"
        );
    }

    #[test]
    fn fast_path_constants_match_the_c_header() {
        let n = |name| c_number(name).unwrap_or_else(|| panic!("{name} in ebpf/xvpc_xdp.h"));
        assert_eq!(n("XVPC_FAST_MAX_V4"), MAX_V4 as u64);
        assert_eq!(n("XVPC_FAST_MAX_V6"), MAX_V6 as u64);
        assert_eq!(n("XVPC_FAST_CFG_SIZE"), CFG_SIZE as u64);
        assert_eq!(n("XVPC_MAP_KEY_SIZE"), KEY_SIZE as u64);
        assert_eq!(n("XVPC_MAP_VAL_SIZE"), VAL_SIZE as u64);
        assert_eq!(n("XVPC_FAST_GW_V4"), u64::from(flag::GW_V4));
        assert_eq!(n("XVPC_FAST_GW_V6"), u64::from(flag::GW_V6));
        assert_eq!(n("XVPC_FAST_SRC_V4"), u64::from(flag::SRC_V4));
        assert_eq!(n("XVPC_FAST_SRC_V6"), u64::from(flag::SRC_V6));
        assert_eq!(n("XVPC_FAST_UDP6_ZERO"), u64::from(flag::UDP6_ZERO));
        assert_eq!(n("FAST_ENCAPSULATED"), u64::from(fast_idx::ENCAPSULATED));
        assert_eq!(n("FAST_ABORTED"), u64::from(fast_idx::ABORTED));
        assert_eq!(n("FAST_EGRESS_BYTES"), u64::from(fast_idx::EGRESS_BYTES));
    }
}
