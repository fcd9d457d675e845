//! Command-line arguments and their validation into a [`GenSpec`].
//!
//! Generated traffic may only use the benchmarking ranges 198.18.0.0/15 (RFC 2544) and
//! 2001:2::/48 (RFC 5180): anything else is refused before a frame is built.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use clap::Args;

use crate::frame::{MacAddr, VxlanOuter, MIN_FRAME_V4, MIN_FRAME_V6, VXLAN_OUTER};

/// Largest frame `--size` accepts (bytes handed to the device, without FCS).
pub const MAX_SIZE: u16 = 1500;
/// Smallest frame `--size` accepts.
pub const MIN_SIZE: u16 = 64;

/// Errors from validating generator arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// A required option is missing.
    #[error("--{0} is required")]
    Missing(&'static str),
    /// An address outside the benchmarking ranges.
    #[error("{0} is outside the benchmarking ranges 198.18.0.0/15 and 2001:2::/48: refusing to generate traffic to or from it")]
    AddressOutOfRange(IpAddr),
    /// Source and destination are of different families.
    #[error("--src-ip {0} and --dst-ip {1} are not the same IP version")]
    MixedFamilies(IpAddr, IpAddr),
    /// A MAC address that does not parse.
    #[error("invalid MAC address {0:?}: expected six hex octets like 02:00:00:00:00:01")]
    BadMac(String),
    /// The frame size is outside what we build.
    #[error("--size {size} is outside {min}..={MAX_SIZE} for this IP version (headers and the 16-byte marker need {min})")]
    BadSize {
        /// Requested size.
        size: u16,
        /// Smallest size for the chosen IP version.
        min: u16,
    },
    /// More flows than UDP source ports above the first one.
    #[error("--flows {flows} with --src-port {sport} runs past UDP port 65535 (or is 0)")]
    BadFlows {
        /// Requested flow count.
        flows: u32,
        /// First source port.
        sport: u16,
    },
    /// A zero bound would either send nothing or never stop.
    #[error("--{0} must be greater than 0")]
    Zero(&'static str),
    /// The timestamp sampling interval must be a power of two.
    #[error("--ts-every {0} must be a power of two between 1 and 65536")]
    BadTsEvery(u32),
    /// Batch size outside what the kernel accepts.
    #[error("--batch {0} is outside 1..=256")]
    BadBatch(u32),
    /// A VXLAN underlay option without `--vxlan-vni`, or `--vxlan-vni` without them.
    #[error("--vxlan-vni needs --outer-src-ip and --outer-dst-ip (and they need --vxlan-vni)")]
    VxlanIncomplete,
    /// The VXLAN underlay must be IPv4 (the outer UDP checksum is then 0).
    #[error("--outer-src-ip/--outer-dst-ip {0}: the VXLAN underlay must be IPv4")]
    VxlanUnderlayNotV4(IpAddr),
    /// A VNI wider than 24 bits.
    #[error("--vxlan-vni {0} does not fit in 24 bits")]
    BadVni(u32),
}

/// Options of the generator (`xvpc-pktgen [gen] ...`).
#[derive(Args, Debug, Clone, Default)]
pub struct GenArgs {
    /// Interface the frames are transmitted on.
    #[arg(long)]
    pub dev: Option<String>,
    /// Source MAC address.
    #[arg(long, default_value = "02:00:00:00:00:01")]
    pub src_mac: String,
    /// Destination MAC address.
    #[arg(long, default_value = "02:00:00:00:00:02")]
    pub dst_mac: String,
    /// Source IP (198.18.0.0/15 or 2001:2::/48).
    #[arg(long)]
    pub src_ip: Option<IpAddr>,
    /// Destination IP (198.18.0.0/15 or 2001:2::/48).
    #[arg(long)]
    pub dst_ip: Option<IpAddr>,
    /// First UDP source port; flows use src-port .. src-port + flows - 1.
    #[arg(long, default_value_t = 1024)]
    pub src_port: u16,
    /// UDP destination port.
    #[arg(long, default_value_t = 9)]
    pub dst_port: u16,
    /// Frame size in bytes without FCS (64..=1500).
    #[arg(long, default_value_t = 64)]
    pub size: u16,
    /// Number of flows (distinct UDP source ports).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Stop after this many frames (required bound).
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds (required bound; fractions allowed).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Packets per second over all threads; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Generator threads (each runs its own BPF_PROG_TEST_RUN calls).
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Frames the kernel builds and flushes per batch (1..=256).
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
    /// Timestamp one frame in this many (power of two); reading the clock per frame costs
    /// more than building it on some VMs. 1 = every frame.
    #[arg(long, default_value_t = 16)]
    pub ts_every: u32,
    /// How frames are sent: `live` (XDP live frames, kernel >= 5.18), `afxdp` (frames built in
    /// user space, sent through an AF_XDP socket on queue 0), `auto` (live, else AF_XDP).
    #[arg(long, value_enum, default_value_t = TxMode::Auto)]
    pub tx: TxMode,
    /// Wrap every frame in VXLAN with this VNI (the options above then describe the inner
    /// frame and `--size` the whole outer frame, 50 bytes more).
    #[arg(long)]
    pub vxlan_vni: Option<u32>,
    /// Outer (underlay) source IPv4 address of VXLAN frames.
    #[arg(long)]
    pub outer_src_ip: Option<IpAddr>,
    /// Outer (underlay) destination IPv4 address of VXLAN frames.
    #[arg(long)]
    pub outer_dst_ip: Option<IpAddr>,
    /// Outer source MAC of VXLAN frames.
    #[arg(long, default_value = "02:00:00:00:00:11")]
    pub outer_src_mac: String,
    /// Outer destination MAC of VXLAN frames.
    #[arg(long, default_value = "02:00:00:00:00:12")]
    pub outer_dst_mac: String,
    /// Outer UDP destination port of VXLAN frames.
    #[arg(long, default_value_t = 4789)]
    pub vxlan_port: u16,
}

/// Validated generator parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    /// Egress interface.
    pub dev: String,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source IP (checked against the ranges).
    pub src_ip: IpAddr,
    /// Destination IP (checked against the ranges).
    pub dst_ip: IpAddr,
    /// First UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Frame size.
    pub size: u16,
    /// Number of flows, ≥ 1.
    pub flows: u32,
    /// Frame bound.
    pub count: u64,
    /// Time bound.
    pub duration: Duration,
    /// Packets per second, 0 = unlimited.
    pub rate: u64,
    /// Thread count, ≥ 1.
    pub threads: u32,
    /// Kernel batch size.
    pub batch: u32,
    /// Timestamp sampling interval (power of two).
    pub ts_every: u32,
    /// VXLAN outer headers, if the frames are wrapped.
    pub vxlan: Option<VxlanOuter>,
    /// How frames are sent.
    pub tx: TxMode,
}

/// How the generator transmits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TxMode {
    /// XDP live frames if the kernel has them, otherwise AF_XDP.
    #[default]
    Auto,
    /// XDP live frames (`BPF_PROG_TEST_RUN`), the fast path: the kernel builds the frames.
    Live,
    /// An AF_XDP socket: frames built in user space (kernels without live frames).
    Afxdp,
}

/// True if `ip` lies in 198.18.0.0/15 or 2001:2::/48.
pub fn in_bench_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => in_v4_range(v4),
        IpAddr::V6(v6) => in_v6_range(v6),
    }
}

fn in_v4_range(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 198 && (o[1] & 0xfe) == 18
}

fn in_v6_range(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0
}

/// Refuses an address outside the benchmarking ranges.
pub fn check_addr(ip: IpAddr) -> Result<IpAddr, ArgError> {
    if in_bench_range(ip) {
        Ok(ip)
    } else {
        Err(ArgError::AddressOutOfRange(ip))
    }
}

fn parse_mac(s: &str) -> Result<MacAddr, ArgError> {
    MacAddr::parse(s).ok_or_else(|| ArgError::BadMac(s.to_string()))
}

impl GenArgs {
    /// Checks every option and returns the typed parameters.
    pub fn validate(&self) -> Result<GenSpec, ArgError> {
        let dev = self.dev.clone().ok_or(ArgError::Missing("dev"))?;
        let src_ip = check_addr(self.src_ip.ok_or(ArgError::Missing("src-ip"))?)?;
        let dst_ip = check_addr(self.dst_ip.ok_or(ArgError::Missing("dst-ip"))?)?;
        if src_ip.is_ipv4() != dst_ip.is_ipv4() {
            return Err(ArgError::MixedFamilies(src_ip, dst_ip));
        }
        let vxlan = self.vxlan()?;
        let outer_len = if vxlan.is_some() {
            VXLAN_OUTER as u16
        } else {
            0
        };
        let min = if src_ip.is_ipv4() {
            MIN_FRAME_V4.max(MIN_SIZE) + outer_len
        } else {
            MIN_FRAME_V6.max(MIN_SIZE) + outer_len
        };
        if self.size < min || self.size > MAX_SIZE {
            return Err(ArgError::BadSize {
                size: self.size,
                min,
            });
        }
        if self.flows == 0 || u32::from(self.src_port) + self.flows - 1 > 65535 {
            return Err(ArgError::BadFlows {
                flows: self.flows,
                sport: self.src_port,
            });
        }
        let count = self.count.ok_or(ArgError::Missing("count"))?;
        if count == 0 {
            return Err(ArgError::Zero("count"));
        }
        let secs = self.duration.ok_or(ArgError::Missing("duration"))?;
        // Also rejects NaN and values too large to represent.
        let duration = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(ArgError::Zero("duration"))?;
        if self.threads == 0 {
            return Err(ArgError::Zero("threads"));
        }
        if self.batch == 0 || self.batch > xvpc_xsk::testrun::MAX_BATCH {
            return Err(ArgError::BadBatch(self.batch));
        }
        if !self.ts_every.is_power_of_two() || self.ts_every > 65536 {
            return Err(ArgError::BadTsEvery(self.ts_every));
        }
        Ok(GenSpec {
            dev,
            src_mac: parse_mac(&self.src_mac)?,
            dst_mac: parse_mac(&self.dst_mac)?,
            src_ip,
            dst_ip,
            src_port: self.src_port,
            dst_port: self.dst_port,
            size: self.size,
            flows: self.flows,
            count,
            duration,
            rate: self.rate,
            threads: self.threads,
            batch: self.batch,
            ts_every: self.ts_every,
            vxlan,
            tx: self.tx,
        })
    }

    fn vxlan(&self) -> Result<Option<VxlanOuter>, ArgError> {
        let (vni, src, dst) = match (self.vxlan_vni, self.outer_src_ip, self.outer_dst_ip) {
            (None, None, None) => return Ok(None),
            (Some(vni), Some(src), Some(dst)) => (vni, src, dst),
            _ => return Err(ArgError::VxlanIncomplete),
        };
        if vni >= 1 << 24 {
            return Err(ArgError::BadVni(vni));
        }
        let v4 = |ip: IpAddr| match check_addr(ip)? {
            IpAddr::V4(v4) => Ok(v4),
            IpAddr::V6(_) => Err(ArgError::VxlanUnderlayNotV4(ip)),
        };
        Ok(Some(VxlanOuter {
            src_mac: parse_mac(&self.outer_src_mac)?,
            dst_mac: parse_mac(&self.outer_dst_mac)?,
            src_ip: v4(src)?,
            dst_ip: v4(dst)?,
            vni,
            port: self.vxlan_port,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_args() -> GenArgs {
        GenArgs {
            dev: Some("g0".into()),
            src_mac: "02:00:00:00:00:01".into(),
            dst_mac: "02:00:00:00:00:02".into(),
            src_ip: Some("198.18.0.1".parse().expect("literal")),
            dst_ip: Some("198.19.255.254".parse().expect("literal")),
            src_port: 1024,
            dst_port: 9,
            size: 64,
            flows: 1,
            count: Some(10),
            duration: Some(1.0),
            rate: 0,
            threads: 1,
            batch: 64,
            ts_every: 1,
            tx: TxMode::Auto,
            vxlan_vni: None,
            outer_src_ip: None,
            outer_dst_ip: None,
            outer_src_mac: "02:00:00:00:00:11".into(),
            outer_dst_mac: "02:00:00:00:00:12".into(),
            vxlan_port: 4789,
        }
    }

    #[test]
    fn vxlan_options_are_checked() {
        let mut a = ok_args();
        a.vxlan_vni = Some(100);
        assert_eq!(a.validate(), Err(ArgError::VxlanIncomplete));
        a.outer_src_ip = Some("198.19.0.2".parse().expect("literal"));
        a.outer_dst_ip = Some("198.19.0.1".parse().expect("literal"));
        // 64 bytes cannot hold outer headers, inner headers and the marker.
        assert_eq!(a.validate(), Err(ArgError::BadSize { size: 64, min: 114 }));
        a.size = 114;
        let spec = a.validate().expect("valid VXLAN spec");
        let outer = spec.vxlan.expect("vxlan");
        assert_eq!(outer.vni, 100);
        assert_eq!(outer.port, 4789);
        assert_eq!(
            outer.dst_ip,
            "198.19.0.1".parse::<Ipv4Addr>().expect("literal")
        );
        a.outer_dst_ip = Some("10.1.1.1".parse().expect("literal"));
        assert!(matches!(a.validate(), Err(ArgError::AddressOutOfRange(_))));
        a.outer_dst_ip = Some("2001:2::1".parse().expect("literal"));
        assert!(matches!(a.validate(), Err(ArgError::VxlanUnderlayNotV4(_))));
        a.outer_dst_ip = Some("198.19.0.1".parse().expect("literal"));
        a.vxlan_vni = Some(1 << 24);
        assert_eq!(a.validate(), Err(ArgError::BadVni(1 << 24)));
        let mut b = ok_args();
        b.outer_src_ip = Some("198.19.0.2".parse().expect("literal"));
        assert_eq!(b.validate(), Err(ArgError::VxlanIncomplete));
    }

    #[test]
    fn ranges_are_exactly_the_benchmarking_blocks() {
        for ok in [
            "198.18.0.0",
            "198.18.255.255",
            "198.19.0.1",
            "198.19.255.255",
            "2001:2::",
            "2001:2::1",
            "2001:2:0:ffff::1",
        ] {
            assert!(in_bench_range(ok.parse().expect("literal")), "{ok}");
        }
        for bad in [
            "198.17.255.255",
            "198.20.0.0",
            "10.0.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "8.8.8.8",
            "2001:2:1::1",
            "2001:3::1",
            "2001:db8::1",
            "::1",
            "fe80::1",
            "::ffff:198.18.0.1",
        ] {
            assert!(!in_bench_range(bad.parse().expect("literal")), "{bad}");
        }
    }

    #[test]
    fn valid_arguments_pass() {
        let spec = ok_args().validate().expect("valid");
        assert_eq!(spec.count, 10);
        assert_eq!(spec.duration, Duration::from_secs(1));
        assert_eq!(spec.src_mac.0, [2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn out_of_range_addresses_are_refused() {
        let mut a = ok_args();
        a.dst_ip = Some("10.0.0.1".parse().expect("literal"));
        assert_eq!(
            a.validate(),
            Err(ArgError::AddressOutOfRange(
                "10.0.0.1".parse().expect("literal")
            ))
        );
        let mut a = ok_args();
        a.src_ip = Some("192.168.0.1".parse().expect("literal"));
        assert!(matches!(a.validate(), Err(ArgError::AddressOutOfRange(_))));
        let mut a = ok_args();
        a.src_ip = Some("2001:2::1".parse().expect("literal"));
        assert!(matches!(a.validate(), Err(ArgError::MixedFamilies(..))));
    }

    #[test]
    fn bounds_and_sizes_are_checked() {
        let mut a = ok_args();
        a.count = None;
        assert_eq!(a.validate(), Err(ArgError::Missing("count")));
        let mut a = ok_args();
        a.duration = None;
        assert_eq!(a.validate(), Err(ArgError::Missing("duration")));
        let mut a = ok_args();
        a.duration = Some(f64::NAN);
        assert_eq!(a.validate(), Err(ArgError::Zero("duration")));
        let mut a = ok_args();
        a.count = Some(0);
        assert_eq!(a.validate(), Err(ArgError::Zero("count")));
        let mut a = ok_args();
        a.size = 63;
        assert!(matches!(a.validate(), Err(ArgError::BadSize { .. })));
        a.size = 1501;
        assert!(matches!(a.validate(), Err(ArgError::BadSize { .. })));
        // IPv6 needs 62 bytes of headers plus the marker.
        let mut a = ok_args();
        a.src_ip = Some("2001:2::1".parse().expect("literal"));
        a.dst_ip = Some("2001:2::2".parse().expect("literal"));
        a.size = 64;
        assert_eq!(a.validate(), Err(ArgError::BadSize { size: 64, min: 78 }));
        a.size = 78;
        assert!(a.validate().is_ok());
        let mut a = ok_args();
        a.src_port = 65535;
        a.flows = 2;
        assert!(matches!(a.validate(), Err(ArgError::BadFlows { .. })));
        let mut a = ok_args();
        a.batch = 300;
        assert_eq!(a.validate(), Err(ArgError::BadBatch(300)));
        let mut a = ok_args();
        a.ts_every = 3;
        assert_eq!(a.validate(), Err(ArgError::BadTsEvery(3)));
        a.ts_every = 0;
        assert_eq!(a.validate(), Err(ArgError::BadTsEvery(0)));
        let mut a = ok_args();
        a.src_mac = "zz".into();
        assert!(matches!(a.validate(), Err(ArgError::BadMac(_))));
    }
}
