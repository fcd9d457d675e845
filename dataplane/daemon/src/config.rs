//! The daemon's TOML configuration: parsed once, validated into typed values at start-up.
//! Bad config fails fast with a message naming the key. Every key is documented in
//! docs/CONFIGURATION.md.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use xvpc_control::metrics::MetricsConfig;
use xvpc_core::model::{Fabric, Gateway, Guest, MacAddr, Mapping, Vni};
use xvpc_core::table::Compiler;

pub use xvpc_control::config::ConfigError;
use xvpc_control::config::{invalid, DEFAULT_CONTROL_SOCKET};

/// How AF_XDP sockets bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BindModeConfig {
    /// Zero-copy if the driver supports it, copy mode otherwise.
    #[default]
    Auto,
    /// Zero-copy only (fails on veth).
    ZeroCopy,
    /// Copy mode only.
    Copy,
}

/// How XDP programs attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AttachModeConfig {
    /// Native (driver) XDP; generic if the driver has none.
    #[default]
    Auto,
    /// Native (driver) XDP only.
    Driver,
    /// Generic (SKB) XDP: slow, for testing only.
    Generic,
}

/// The XDP tier's map is preallocated (120 bytes a slot, measured): 16 Mi slots are 2 GiB.
const MAX_FAST_PATH_CAPACITY: u32 = 1 << 24;

/// Which tier finishes the common case (`dataplane.fast_path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FastPathConfig {
    /// The AF_XDP workers handle every frame (best on zero-copy NICs).
    #[default]
    Afxdp,
    /// The XDP programs encapsulate the common case in the kernel and hand the rest to the
    /// workers (for copy-mode NICs: veth, virtio-net, ENA; docs/XDP.md).
    Xdp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    guest: RawGuest,
    gateway: RawGateway,
    fabric: RawFabric,
    #[serde(default)]
    dataplane: RawDataplane,
    #[serde(default)]
    mappings: Vec<Mapping>,
    metrics: Option<MetricsConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuest {
    interface: String,
    vni: u32,
    mac: MacAddr,
    #[serde(default)]
    ipv4: Vec<Ipv4Addr>,
    #[serde(default)]
    ipv6: Vec<Ipv6Addr>,
    #[serde(default = "default_mtu")]
    mtu: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    mac: MacAddr,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFabric {
    interface: String,
    underlay_ipv4: Option<Ipv4Addr>,
    underlay_ipv6: Option<Ipv6Addr>,
    local_mac: Option<MacAddr>,
    next_hop_mac: Option<MacAddr>,
    next_hop_ip: Option<IpAddr>,
    #[serde(default = "default_vxlan_port")]
    vxlan_port: u16,
    mtu: Option<u16>,
    #[serde(default)]
    udp6_zero_checksum_tx: bool,
    #[serde(default)]
    udp6_zero_checksum_rx: bool,
}

/// Empty iterations a worker spins before sleeping, by default (a few microseconds).
pub const DEFAULT_IDLE_SPINS: u32 = 32;
/// Most idle spins accepted: about a second of spinning on an idle worker.
const MAX_IDLE_SPINS: u32 = 1 << 20;
/// How long a worker keeps spinning after its last frame, while nothing else wants its core,
/// by default: off. 1000 µs cut the unsteered p99 (0.3 against 2.4 ms at 128 B) but cost
/// 0.77–0.81× of the steered rate in three of four cells, where a preemption does not come
/// soon enough to stop the spin (docs/PERFORMANCE.md, "What was tried"); see `SpinWindow`.
pub const DEFAULT_IDLE_SPIN_US: u32 = 0;
/// Longest spin window accepted (one second).
const MAX_IDLE_SPIN_US: u32 = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDataplane {
    queues: Vec<u32>,
    cores: Vec<usize>,
    bind_mode: BindModeConfig,
    attach_mode: AttachModeConfig,
    fast_path: FastPathConfig,
    fast_path_capacity: u32,
    batch_size: usize,
    idle_spins: u32,
    idle_spin_us: u32,
    frame_count: u32,
    frame_size: u32,
    ring_size: u32,
    control_socket: PathBuf,
    stats_socket: PathBuf,
    /// Default: `takeover.sock` next to `stats_socket`.
    takeover_socket: Option<PathBuf>,
    pin_dir: PathBuf,
    miss_limit_per_sec: u32,
    pending_timeout_ms: u32,
    miss_hold_frames: usize,
    tx_budget: u32,
    busy_poll_usecs: u32,
    busy_poll_budget: u32,
}

impl Default for RawDataplane {
    fn default() -> Self {
        RawDataplane {
            queues: vec![0],
            cores: Vec::new(),
            bind_mode: BindModeConfig::Auto,
            attach_mode: AttachModeConfig::Auto,
            fast_path: FastPathConfig::Afxdp,
            fast_path_capacity: 1 << 20,
            batch_size: 64,
            idle_spins: DEFAULT_IDLE_SPINS,
            idle_spin_us: DEFAULT_IDLE_SPIN_US,
            frame_count: 8192,
            frame_size: 2048,
            ring_size: 2048,
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            stats_socket: PathBuf::from("/run/xvpc/stats.sock"),
            takeover_socket: None,
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            miss_limit_per_sec: 1000,
            pending_timeout_ms: 500,
            miss_hold_frames: 64,
            tx_budget: 0,
            busy_poll_usecs: 0,
            busy_poll_budget: 64,
        }
    }
}

/// The CPUs the kernel has online. Not this process's affinity: a daemon started on the
/// housekeeping CPUs (systemd `CPUAffinity=`, `isolcpus=`, a cpuset shield) pins its workers
/// onto the isolated ones.
const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

/// Whether a kernel CPU list ("0-3,8,10-11") holds `cpu`; an unreadable list holds nothing.
fn cpu_list_has(list: &str, cpu: usize) -> bool {
    list.split(',').any(|part| {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        match (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) {
            (Ok(lo), Ok(hi)) => (lo..=hi).contains(&cpu),
            _ => false,
        }
    })
}

/// Where the pins go unless `dataplane.pin_dir` says otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/xvpc";

fn default_mtu() -> u16 {
    1500
}
fn default_vxlan_port() -> u16 {
    Fabric::VXLAN_PORT
}

/// How the fabric next hop's MAC is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Given in the config.
    Mac(MacAddr),
    /// To be read from the kernel's neighbour table at start-up.
    Resolve(IpAddr),
}

/// Per-queue worker settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneSettings {
    /// (queue id, core to pin its worker to, if any).
    pub queues: Vec<(u32, Option<usize>)>,
    /// AF_XDP bind mode.
    pub bind_mode: BindModeConfig,
    /// XDP attach mode.
    pub attach_mode: AttachModeConfig,
    /// Which tier finishes the common case.
    pub fast_path: FastPathConfig,
    /// Live mappings the XDP tier's BPF map holds (preallocated; `fast_path = "xdp"` only).
    pub fast_path_capacity: u32,
    /// Frames per receive batch.
    pub batch_size: usize,
    /// Empty iterations a worker spins before it sleeps on its rings.
    pub idle_spins: u32,
    /// How long a worker keeps spinning after its last frame while it is not preempted.
    pub idle_spin_us: u32,
    /// UMEM frames per queue pair.
    pub frame_count: u32,
    /// UMEM frame size.
    pub frame_size: u32,
    /// Descriptors per ring.
    pub ring_size: u32,
    /// Where the mapping agent connects.
    pub control_socket: PathBuf,
    /// Where `xvpc stats` connects.
    pub stats_socket: PathBuf,
    /// Where `xvpc run --takeover` connects to take this daemon's queues over.
    pub takeover_socket: PathBuf,
    /// bpffs directory where the XDP programs, links and maps are pinned (one directory per
    /// interface below it), so they outlive the daemon.
    pub pin_dir: PathBuf,
    /// Misses each worker may report per second.
    pub miss_limit_per_sec: u32,
    /// How long a reported miss suppresses further reports of the same key (and how long a
    /// missed frame is held waiting for the answer).
    pub pending_timeout_ms: u32,
    /// Missed frames each worker holds until their mapping arrives.
    pub miss_hold_frames: usize,
    /// Copy mode: frames one TX kick may send (0: the kernel's default of 32).
    pub tx_budget: u32,
    /// SO_BUSY_POLL microseconds (0 = off).
    pub busy_poll_usecs: u32,
    /// SO_BUSY_POLL_BUDGET.
    pub busy_poll_budget: u32,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The guest port's interface.
    pub guest_interface: String,
    /// The guest behind it.
    pub guest: Guest,
    /// Its virtual gateway.
    pub gateway: Gateway,
    /// The fabric port's interface.
    pub fabric_interface: String,
    /// The fabric, with `local_mac`/`next_hop_mac`/`mtu` possibly still to resolve.
    pub fabric: Fabric,
    /// Is `fabric.local_mac` to be read from the interface?
    pub local_mac_from_interface: bool,
    /// How to learn the next hop's MAC.
    pub next_hop: NextHop,
    /// Is `fabric.mtu` to be read from the interface?
    pub mtu_from_interface: bool,
    /// Worker settings.
    pub dataplane: DataplaneSettings,
    /// Static mappings (used until a mapping agent syncs).
    pub mappings: Vec<Mapping>,
    /// The Prometheus listener (`[metrics]`), off when absent.
    pub metrics: Option<MetricsConfig>,
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parse and validate config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        validate(raw)
    }

    /// The compiler for this host's fabric (after resolution).
    pub fn compiler(&self) -> Compiler {
        Compiler::new(self.fabric.clone())
    }
}

fn check_interface(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
        return Err(invalid(
            key,
            format!("{name:?} is not a valid interface name (1–15 chars)"),
        ));
    }
    Ok(())
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let RawConfig {
        guest,
        gateway,
        fabric,
        dataplane,
        mappings,
        metrics,
    } = raw;
    let (guest_interface, guest) = guest.validate()?;
    let gateway = gateway.validate(&guest)?;
    let f = fabric.validate(&guest_interface)?;
    let dataplane = dataplane.validate()?;
    check_mappings(&mappings, &f.fabric, guest.vni)?;
    if let Some(m) = &metrics {
        let guest_side: Vec<IpAddr> = (gateway.ipv4.iter().chain(&guest.ipv4))
            .map(|a| IpAddr::V4(*a))
            .chain(
                gateway
                    .ipv6
                    .iter()
                    .chain(&guest.ipv6)
                    .map(|a| IpAddr::V6(*a)),
            )
            .collect();
        m.validate(&guest_side).map_err(|e| match e {
            xvpc_control::metrics::MetricsError::Invalid { key, reason } => {
                invalid(format!("metrics.{key}"), reason)
            }
            other => invalid("metrics", other.to_string()),
        })?;
    }
    Ok(Config {
        guest_interface,
        guest,
        gateway,
        fabric_interface: f.interface,
        local_mac_from_interface: f.local_mac_from_interface,
        mtu_from_interface: f.mtu_from_interface,
        fabric: f.fabric,
        next_hop: f.next_hop,
        dataplane,
        mappings,
        metrics,
    })
}

impl RawGuest {
    /// `[guest]`: its interface and the guest behind it.
    fn validate(self) -> Result<(String, Guest), ConfigError> {
        let g = self;
        check_interface("guest.interface", &g.interface)?;
        let vni = Vni::new(g.vni).map_err(|e| invalid("guest.vni", e.to_string()))?;
        if !g.mac.is_unicast() {
            return Err(invalid(
                "guest.mac",
                format!("{} is not a unicast MAC", g.mac),
            ));
        }
        if g.ipv4.is_empty() && g.ipv6.is_empty() {
            return Err(invalid(
                "guest.ipv4",
                "the guest needs at least one address (guest.ipv4 or guest.ipv6)",
            ));
        }
        if !(576..=9000).contains(&g.mtu) {
            return Err(invalid(
                "guest.mtu",
                format!("{} is outside 576..=9000", g.mtu),
            ));
        }
        let guest = Guest {
            vni,
            mac: g.mac,
            ipv4: g.ipv4,
            ipv6: g.ipv6,
            mtu: g.mtu,
        };
        Ok((g.interface, guest))
    }
}

impl RawGateway {
    /// `[gateway]`: it must serve every address family the guest has, apart from the guest.
    fn validate(self, g: &Guest) -> Result<Gateway, ConfigError> {
        let gw = self;
        if !gw.mac.is_unicast() || gw.mac == g.mac {
            return Err(invalid(
                "gateway.mac",
                "must be a unicast MAC different from guest.mac",
            ));
        }
        if !g.ipv4.is_empty() && gw.ipv4.is_none() {
            return Err(invalid(
                "gateway.ipv4",
                "required when the guest has IPv4 addresses",
            ));
        }
        if !g.ipv6.is_empty() && gw.ipv6.is_none() {
            return Err(invalid(
                "gateway.ipv6",
                "required when the guest has IPv6 addresses",
            ));
        }
        if gw.ipv4.is_some_and(|ip| g.ipv4.contains(&ip))
            || gw.ipv6.is_some_and(|ip| g.ipv6.contains(&ip))
        {
            return Err(invalid(
                "gateway",
                "the gateway address must not be one of the guest's",
            ));
        }
        Ok(Gateway {
            mac: gw.mac,
            ipv4: gw.ipv4,
            ipv6: gw.ipv6,
        })
    }
}

/// The validated `[fabric]` section.
struct FabricSection {
    interface: String,
    fabric: Fabric,
    next_hop: NextHop,
    local_mac_from_interface: bool,
    mtu_from_interface: bool,
}

impl RawFabric {
    /// `[fabric]`: our side of the underlay, with what is left to read from the interface.
    fn validate(self, guest_interface: &str) -> Result<FabricSection, ConfigError> {
        let f = self;
        check_interface("fabric.interface", &f.interface)?;
        if f.interface == guest_interface {
            return Err(invalid(
                "fabric.interface",
                "must differ from guest.interface",
            ));
        }
        if f.underlay_ipv4.is_none() && f.underlay_ipv6.is_none() {
            return Err(invalid(
                "fabric.underlay_ipv4",
                "at least one underlay address is required",
            ));
        }
        if f.vxlan_port == 0 {
            return Err(invalid("fabric.vxlan_port", "must not be 0"));
        }
        for (set, key) in [
            (f.udp6_zero_checksum_tx, "fabric.udp6_zero_checksum_tx"),
            (f.udp6_zero_checksum_rx, "fabric.udp6_zero_checksum_rx"),
        ] {
            if set && f.underlay_ipv6.is_none() {
                return Err(invalid(
                    key,
                    "applies to an IPv6 underlay: set fabric.underlay_ipv6",
                ));
            }
        }
        let next_hop = match (f.next_hop_mac, f.next_hop_ip) {
            (Some(mac), None) if mac.is_unicast() => NextHop::Mac(mac),
            (Some(mac), None) => {
                return Err(invalid(
                    "fabric.next_hop_mac",
                    format!("{mac} is not unicast"),
                ))
            }
            (None, Some(ip)) => NextHop::Resolve(ip),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "fabric.next_hop_ip",
                    "give next_hop_mac or next_hop_ip, not both",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "fabric.next_hop_mac",
                    "required (or fabric.next_hop_ip to resolve it)",
                ))
            }
        };
        if let Some(mtu) = f.mtu {
            check_fabric_mtu(mtu, f.underlay_ipv6.is_some())?;
        }
        let fabric = Fabric {
            underlay_ipv4: f.underlay_ipv4,
            underlay_ipv6: f.underlay_ipv6,
            local_mac: f.local_mac.unwrap_or(MacAddr::ZERO),
            next_hop_mac: match next_hop {
                NextHop::Mac(mac) => mac,
                NextHop::Resolve(_) => MacAddr::ZERO,
            },
            vxlan_port: f.vxlan_port,
            mtu: f.mtu.unwrap_or(1500),
            udp6_zero_checksum_tx: f.udp6_zero_checksum_tx,
            udp6_zero_checksum_rx: f.udp6_zero_checksum_rx,
        };
        Ok(FabricSection {
            interface: f.interface,
            fabric,
            next_hop,
            local_mac_from_interface: f.local_mac.is_none(),
            mtu_from_interface: f.mtu.is_none(),
        })
    }
}

impl RawDataplane {
    /// `[dataplane]`: queues, cores, UMEM and ring sizes, sockets and miss handling.
    fn validate(self) -> Result<DataplaneSettings, ConfigError> {
        let d = self;
        if d.queues.is_empty() {
            return Err(invalid("dataplane.queues", "at least one queue"));
        }
        if !d.cores.is_empty() && d.cores.len() != d.queues.len() {
            return Err(invalid(
                "dataplane.cores",
                "one core per queue (or leave empty for no pinning)",
            ));
        }
        let online = std::fs::read_to_string(ONLINE_CPUS).unwrap_or_default();
        let online = online.trim();
        if let Some(core) = d.cores.iter().find(|&&c| !cpu_list_has(online, c)) {
            return Err(invalid(
                "dataplane.cores",
                format!("core {core} is not an online CPU (online: {online:?}, {ONLINE_CPUS})"),
            ));
        }
        if !(1..=MAX_FAST_PATH_CAPACITY).contains(&d.fast_path_capacity) {
            return Err(invalid(
                "dataplane.fast_path_capacity",
                format!("must be within 1..={MAX_FAST_PATH_CAPACITY}"),
            ));
        }
        if !(1..=256).contains(&d.batch_size) {
            return Err(invalid("dataplane.batch_size", "must be within 1..=256"));
        }
        if d.idle_spins > MAX_IDLE_SPINS {
            return Err(invalid(
                "dataplane.idle_spins",
                format!("must be within 0..={MAX_IDLE_SPINS}"),
            ));
        }
        if d.idle_spin_us > MAX_IDLE_SPIN_US {
            return Err(invalid(
                "dataplane.idle_spin_us",
                format!("must be within 0..={MAX_IDLE_SPIN_US}"),
            ));
        }
        if !d.pin_dir.is_absolute() || d.pin_dir.parent().is_none() {
            return Err(invalid(
                "dataplane.pin_dir",
                "must be an absolute directory on bpffs (default /sys/fs/bpf/xvpc)",
            ));
        }
        if !matches!(d.frame_size, 2048 | 4096) {
            return Err(invalid("dataplane.frame_size", "must be 2048 or 4096"));
        }
        if d.miss_hold_frames > crate::worker::MAX_HOLD {
            return Err(invalid(
                "dataplane.miss_hold_frames",
                format!("at most {}", crate::worker::MAX_HOLD),
            ));
        }
        if d.tx_budget != 0 && !(32..=d.ring_size).contains(&d.tx_budget) {
            return Err(invalid(
                "dataplane.tx_budget",
                format!("0 (kernel default) or 32..={} (the ring size)", d.ring_size),
            ));
        }
        if !d.ring_size.is_power_of_two() || d.ring_size < 64 {
            return Err(invalid(
                "dataplane.ring_size",
                "must be a power of two ≥ 64",
            ));
        }
        if d.frame_count < 2 * d.ring_size || !d.frame_count.is_power_of_two() {
            return Err(invalid(
                "dataplane.frame_count",
                "must be a power of two ≥ 2 × ring_size",
            ));
        }
        let queues = d
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| (*q, d.cores.get(i).copied()))
            .collect();
        Ok(DataplaneSettings {
            queues,
            bind_mode: d.bind_mode,
            attach_mode: d.attach_mode,
            fast_path: d.fast_path,
            fast_path_capacity: d.fast_path_capacity,
            batch_size: d.batch_size,
            idle_spins: d.idle_spins,
            idle_spin_us: d.idle_spin_us,
            frame_count: d.frame_count,
            frame_size: d.frame_size,
            ring_size: d.ring_size,
            control_socket: d.control_socket,
            takeover_socket: d
                .takeover_socket
                .unwrap_or_else(|| d.stats_socket.with_file_name("takeover.sock")),
            stats_socket: d.stats_socket,
            pin_dir: d.pin_dir,
            miss_limit_per_sec: d.miss_limit_per_sec,
            pending_timeout_ms: d.pending_timeout_ms,
            miss_hold_frames: d.miss_hold_frames,
            tx_budget: d.tx_budget,
            busy_poll_usecs: d.busy_poll_usecs,
            busy_poll_budget: d.busy_poll_budget,
        })
    }
}

/// `[[mappings]]`: each must compile for our fabric and belong to the guest's VNI.
fn check_mappings(mappings: &[Mapping], fabric: &Fabric, vni: Vni) -> Result<(), ConfigError> {
    let compiler = Compiler::new(fabric.clone());
    for (i, m) in mappings.iter().enumerate() {
        compiler
            .compile(m)
            .map_err(|e| invalid(format!("mappings[{i}]"), e.to_string()))?;
        if m.vni != vni {
            return Err(invalid(
                format!("mappings[{i}].vni"),
                format!("{} is not the guest's VNI {vni}", m.vni),
            ));
        }
    }
    Ok(())
}

/// The fabric MTU must leave room for a 1280-byte inner IPv6 packet (RFC 8200) under the
/// largest outer header, so a "packet too big" never asks for less than the IPv6 minimum.
pub fn check_fabric_mtu(mtu: u16, ipv6_underlay: bool) -> Result<(), ConfigError> {
    let outer = if ipv6_underlay {
        xvpc_core::table::OUTER_V6_LEN
    } else {
        xvpc_core::table::OUTER_V4_LEN
    };
    let min = 1280 + outer as u16;
    if mtu < min {
        return Err(invalid("fabric.mtu", format!("{mtu} is too small: VXLAN needs at least {min} so inner IPv6 keeps its 1280-byte minimum")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = include_str!("../../../docs/example-config.toml");

    #[test]
    fn example_config_is_valid() {
        let config = Config::parse(EXAMPLE).expect("docs/example-config.toml must be valid");
        assert_eq!(config.guest.vni.get(), 100);
        assert_eq!(config.fabric.vxlan_port, 4789);
        assert!(!config.mappings.is_empty());
        // Each section lands in its own fields.
        assert_eq!(
            (config.guest_interface.as_str(), config.guest.mtu),
            ("xg0", 1500)
        );
        assert_eq!(config.gateway.ipv4, Some(Ipv4Addr::new(198, 18, 10, 1)));
        assert_eq!(config.fabric_interface, "xf0");
        assert!(config.local_mac_from_interface && !config.mtu_from_interface);
        assert_eq!(
            config.next_hop,
            NextHop::Mac(MacAddr([2, 0, 0, 0, 0x0f, 1]))
        );
        assert_eq!(config.fabric.next_hop_mac, MacAddr([2, 0, 0, 0, 0x0f, 1]));
        assert_eq!(config.dataplane.queues, vec![(0, Some(1))]);
        assert_eq!(config.dataplane.pin_dir, PathBuf::from(DEFAULT_PIN_DIR));
        let unset = with("control_socket = \"/run/xvpc/control.sock\"\n", "");
        let config = Config::parse(&unset).expect("control_socket is optional");
        assert_eq!(
            config.dataplane.control_socket,
            PathBuf::from(DEFAULT_CONTROL_SOCKET)
        );
        // The takeover socket defaults to the stats socket's directory, or is named.
        assert_eq!(
            config.dataplane.takeover_socket,
            config
                .dataplane
                .stats_socket
                .with_file_name("takeover.sock")
        );
        let named = with(
            "control_socket = \"/run/xvpc/control.sock\"\n",
            "control_socket = \"/run/xvpc/control.sock\"\ntakeover_socket = \"/tmp/t.sock\"\n",
        );
        let config = Config::parse(&named).expect("takeover_socket parses");
        assert_eq!(
            config.dataplane.takeover_socket,
            PathBuf::from("/tmp/t.sock")
        );
        // RFC 8200: IPv6 underlay checksums stay on unless asked otherwise.
        assert!(!config.fabric.udp6_zero_checksum_tx && !config.fabric.udp6_zero_checksum_rx);
        let zero = with(
            "vxlan_port = 4789",
            "vxlan_port = 4789\nudp6_zero_checksum_tx = true\nudp6_zero_checksum_rx = true",
        );
        let config = Config::parse(&zero).expect("zero-checksum opt-in parses");
        assert!(config.fabric.udp6_zero_checksum_tx && config.fabric.udp6_zero_checksum_rx);
    }

    #[test]
    fn fast_path_defaults_to_afxdp_and_xdp_is_opt_in() {
        let config = Config::parse(EXAMPLE).expect("example parses");
        assert_eq!(config.dataplane.fast_path, FastPathConfig::Afxdp);
        let xdp = with("batch_size = 64", "batch_size = 64\nfast_path = \"xdp\"");
        let config = Config::parse(&xdp).expect("fast_path = xdp parses");
        assert_eq!(config.dataplane.fast_path, FastPathConfig::Xdp);
        let bad = with("batch_size = 64", "batch_size = 64\nfast_path = \"dpdk\"");
        let err = Config::parse(&bad).expect_err("unknown tier").to_string();
        assert!(
            err.contains("fast_path"),
            "error {err:?} should name fast_path"
        );
        assert_eq!(config_capacity(None), Ok(1 << 20));
        assert_eq!(config_capacity(Some(4096)), Ok(4096));
        for bad in [0, MAX_FAST_PATH_CAPACITY + 1] {
            let err = config_capacity(Some(bad)).expect_err("out of range");
            assert!(err.contains("dataplane.fast_path_capacity"), "{err}");
        }
    }

    #[test]
    fn idle_spins_default_to_a_few_and_zero_sleeps_at_once() {
        let config = Config::parse(EXAMPLE).expect("example parses");
        assert_eq!(config.dataplane.idle_spins, DEFAULT_IDLE_SPINS);
        let zero = with("batch_size = 64", "batch_size = 64\nidle_spins = 0");
        let config = Config::parse(&zero).expect("idle_spins = 0 parses");
        assert_eq!(config.dataplane.idle_spins, 0);
        assert_eq!(config.dataplane.idle_spin_us, DEFAULT_IDLE_SPIN_US);
        let on = with("batch_size = 64", "batch_size = 64\nidle_spin_us = 1000");
        let config = Config::parse(&on).expect("idle_spin_us = 1000 parses");
        assert_eq!(config.dataplane.idle_spin_us, 1000);
    }

    fn config_capacity(capacity: Option<u32>) -> Result<u32, String> {
        let line = capacity.map_or(String::new(), |c| format!("\nfast_path_capacity = {c}"));
        let text = with("batch_size = 64", &format!("batch_size = 64{line}"));
        Config::parse(&text)
            .map(|c| c.dataplane.fast_path_capacity)
            .map_err(|e| e.to_string())
    }

    fn with(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "example lacks {from:?}");
        EXAMPLE.replacen(from, to, 1)
    }

    #[test]
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert!(cpu_list_has("0-3,8,10-11", 2) && cpu_list_has("0-3,8,10-11", 8));
        assert!(cpu_list_has("0-3,8,10-11", 11) && !cpu_list_has("0-3,8,10-11", 9));
        assert!(cpu_list_has("0", 0) && !cpu_list_has("0", 1));
        assert!(!cpu_list_has("", 0) && !cpu_list_has("x-y", 0));
    }

    /// A daemon confined to other CPUs (systemd `CPUAffinity=`, `isolcpus=`) may still pin
    /// its workers onto an online core; a core that is not online is refused by name.
    #[test]
    fn cores_are_checked_against_the_online_cpus_not_our_affinity() {
        let online = std::fs::read_to_string(ONLINE_CPUS).expect("online CPUs");
        assert!(
            cpu_list_has(online.trim(), 1),
            "needs CPU 1 online (the example pins its worker there): {online}"
        );
        assert!(core_affinity::set_for_current(core_affinity::CoreId {
            id: 0
        }));
        let config = Config::parse(EXAMPLE).expect("core 1 is online");
        assert_eq!(config.dataplane.queues, vec![(0, Some(1))]);
        let e = Config::parse(&with("cores = [1]", "cores = [4095]"))
            .expect_err("core 4095 is not online")
            .to_string();
        assert!(
            e.contains("dataplane.cores") && e.contains("core 4095 is not an online CPU"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (with("vni = 100", "vni = 16777216"), "guest.vni"),
            (with("vni = 100", "vni = 100\nbogus = 1"), "unknown field"),
            (with("mtu = 1500\n", "mtu = 100\n"), "guest.mtu"),
            (
                with("vxlan_port = 4789", "vxlan_port = 0"),
                "fabric.vxlan_port",
            ),
            (
                with(
                    "underlay_ipv6 = \"2001:2::2\"",
                    "udp6_zero_checksum_rx = true",
                ),
                "fabric.udp6_zero_checksum_rx",
            ),
            (
                with("mac = \"02:00:00:00:00:01\"", "mac = \"02:00:00:00:01:01\""),
                "gateway.mac",
            ),
            (
                with("interface = \"xf0\"", "interface = \"xg0\""),
                "fabric.interface",
            ),
            (
                with(
                    "ring_size = 2048",
                    "ring_size = 2048\npin_dir = \"bpf/xvpc\"",
                ),
                "dataplane.pin_dir",
            ),
            (
                with("vni = 100\noverlay_ip", "vni = 101\noverlay_ip"),
                "mappings[0].vni",
            ),
            (
                with("batch_size = 64", "batch_size = 64\nidle_spins = 2000000"),
                "dataplane.idle_spins",
            ),
            (
                with("batch_size = 64", "batch_size = 64\nidle_spin_us = 1000001"),
                "dataplane.idle_spin_us",
            ),
            (
                with("batch_size = 64", "batch_size = 0"),
                "dataplane.batch_size",
            ),
            (
                with("frame_size = 2048", "frame_size = 3000"),
                "dataplane.frame_size",
            ),
            (
                with(
                    "overlay_mac = \"02:00:00:00:02:02\"",
                    "overlay_mac = \"01:00:00:00:02:02\"",
                ),
                "mappings[0]",
            ),
        ];
        for (text, key) in cases {
            let err = Config::parse(&text).expect_err(key).to_string();
            assert!(err.contains(key), "error {err:?} should name {key:?}");
        }
    }
}
