//! The template frame and the generator program's configuration, byte for byte as
//! `ebpf/bench/bench.h` lays them out.
//!
//! The XDP program copies the header stack from the config on every frame, sets the UDP source
//! port of the flow, writes the marker and finishes the UDP checksum incrementally from
//! `csum_base`. [`udp_checksum_for`] does the same arithmetic here so it can be tested against a
//! checksum computed from scratch.

use std::net::{IpAddr, Ipv4Addr};

/// Ethernet + IPv4 + UDP header bytes.
pub const HDR_V4: usize = 42;
/// Ethernet + IPv6 + UDP header bytes.
pub const HDR_V6: usize = 62;
/// Marker written after the UDP header: magic, sequence, timestamp.
pub const MARKER_LEN: usize = 16;
/// `BENCH_MAGIC` ("XVPG"), written in network order.
pub const MAGIC: u32 = 0x5856_5047;
/// Smallest IPv4 frame that holds the marker.
pub const MIN_FRAME_V4: u16 = (HDR_V4 + MARKER_LEN) as u16;
/// Smallest IPv6 frame that holds the marker.
pub const MIN_FRAME_V6: u16 = (HDR_V6 + MARKER_LEN) as u16;
/// Outer Ethernet + IPv4 + UDP + VXLAN in front of the inner frame (`GEN_VXLAN_OUTER`).
pub const VXLAN_OUTER: usize = 50;
/// `GEN_OUTER_SPORT_OFF`: the outer UDP source port inside a VXLAN frame.
const OUTER_SPORT_OFF: usize = 34;
/// Size of `struct gen_config`.
pub const GEN_CONFIG_LEN: usize = 148;
/// `GEN_HDR_MAX`: bytes reserved for the header template.
const GEN_HDR_MAX: usize = 128;
/// Offsets of the fields after the header template in `struct gen_config`.
const CFG_HDR_LEN: usize = GEN_HDR_MAX;
const CFG_FLOWS: usize = GEN_HDR_MAX + 4;
const CFG_CSUM_BASE: usize = GEN_HDR_MAX + 8;
const CFG_SPORT: usize = GEN_HDR_MAX + 12;
const CFG_TS_MASK: usize = GEN_HDR_MAX + 16;

/// Where a marker sits in a frame for each kind of frame the benchmarks produce: plain UDP over
/// IPv4 / IPv6, and the same inside VXLAN over an IPv4 (50-byte) or IPv6 (70-byte) underlay.
pub const MARKER_OFFSETS: [u32; 6] = [
    HDR_V4 as u32,
    HDR_V6 as u32,
    (50 + HDR_V4) as u32,
    (50 + HDR_V6) as u32,
    (70 + HDR_V4) as u32,
    (70 + HDR_V6) as u32,
];

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `aa:bb:cc:dd:ee:ff`.
    pub fn parse(s: &str) -> Option<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(out))
    }
}

/// What one generated frame looks like.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameSpec {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP source (same family as `dst_ip`).
    pub src_ip: IpAddr,
    /// IP destination.
    pub dst_ip: IpAddr,
    /// UDP source port of flow 0.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Frame length without FCS.
    pub size: u16,
    /// Flow count, ≥ 1.
    pub flows: u32,
    /// Timestamp one frame in this many (a power of two; the others carry timestamp 0).
    pub ts_every: u32,
    /// Wrap the frame above in VXLAN over IPv4 (then `size` is the whole outer frame).
    pub vxlan: Option<VxlanOuter>,
}

/// The outer headers of a VXLAN-wrapped frame (RFC 7348 over an IPv4 underlay). The outer
/// UDP checksum is 0 (allowed over IPv4) and the outer source port follows the inner flow.
#[derive(Clone, Debug, PartialEq)]
pub struct VxlanOuter {
    /// Outer Ethernet source.
    pub src_mac: MacAddr,
    /// Outer Ethernet destination.
    pub dst_mac: MacAddr,
    /// Underlay source (the sending VTEP).
    pub src_ip: Ipv4Addr,
    /// Underlay destination (the receiving VTEP).
    pub dst_ip: Ipv4Addr,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// Outer UDP destination port (4789).
    pub port: u16,
}

/// Errors from building a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Source and destination families differ.
    #[error("source and destination addresses are not the same IP version")]
    MixedFamilies,
    /// The frame cannot hold headers and marker, or exceeds what the kernel accepts.
    #[error("frame size {0} cannot hold the headers and marker")]
    Size(u16),
    /// A VNI wider than 24 bits.
    #[error("VNI {0} does not fit in 24 bits")]
    Vni(u32),
}

/// A template frame plus the matching `struct gen_config`.
#[derive(Clone, Debug)]
pub struct Template {
    /// The full frame for flow 0 with sequence and timestamp zero (checksums valid).
    pub frame: Vec<u8>,
    /// `struct gen_config` bytes for the `gen_config` map.
    pub config: [u8; GEN_CONFIG_LEN],
    /// Header length: 42 or 62, plus [`VXLAN_OUTER`] for a VXLAN frame.
    pub hdr_len: usize,
}

impl Template {
    fn cfg_u32(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.config[at..at + 4]);
        u32::from_ne_bytes(b)
    }

    /// Whether frame `n` carries a timestamp (one in `ts_every`).
    pub fn is_sampled(&self, n: u64) -> bool {
        n & u64::from(self.cfg_u32(CFG_TS_MASK)) == 0
    }

    /// Writes frame number `n` into `out` (at least `self.frame.len()` bytes) exactly as
    /// `gen.bpf.c` builds it: the template, flow `n % flows` in the UDP source port (and the
    /// outer one of a VXLAN frame), the marker (magic, sequence `n`, `ts`) and the UDP
    /// checksum. `ts` should be 0 unless [`Self::is_sampled`]. Returns the frame length.
    pub fn write_frame(&self, n: u64, ts: u64, out: &mut [u8]) -> usize {
        let len = self.frame.len().min(out.len());
        out[..len].copy_from_slice(&self.frame[..len]);
        if len < self.hdr_len + MARKER_LEN {
            return len;
        }
        let flows = u64::from(self.cfg_u32(CFG_FLOWS).max(1));
        let base = u16::from_be_bytes([self.config[CFG_SPORT], self.config[CFG_SPORT + 1]]);
        let sport = base.wrapping_add((n % flows) as u16);
        let udp = self.hdr_len - 8;
        out[udp..udp + 2].copy_from_slice(&sport.to_be_bytes());
        if self.hdr_len > HDR_V6 {
            out[OUTER_SPORT_OFF..OUTER_SPORT_OFF + 2].copy_from_slice(&sport.to_be_bytes());
        }
        let m = self.hdr_len;
        out[m..m + 4].copy_from_slice(&MAGIC.to_be_bytes());
        // Sequence and timestamp in host order, as the program writes them.
        out[m + 4..m + 8].copy_from_slice(&(n as u32).to_ne_bytes());
        out[m + 8..m + 16].copy_from_slice(&ts.to_ne_bytes());
        let csum = udp_checksum_for(self.cfg_u32(CFG_CSUM_BASE), sport, n as u32, ts);
        out[udp + 6..udp + 8].copy_from_slice(&csum.to_be_bytes());
        len
    }
}

/// Ones' complement sum of `bytes` as memory-order 16-bit words (odd tail padded with zero),
/// not folded. Byte order does not matter as long as every part of a sum uses the same one.
fn sum16(bytes: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_ne_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(u16::from_ne_bytes([*last, 0])));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Big-endian internet checksum of `bytes` (a straightforward second implementation used to
/// check the incremental one).
pub fn inet_checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u64;
    for c in bytes.chunks(2) {
        let hi = u64::from(c[0]) << 8;
        let lo = c.get(1).map_or(0, |b| u64::from(*b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The UDP checksum the XDP program writes for source port `sport` (host order), sequence `seq`
/// and timestamp `ts`, given the template's `csum_base`. Mirrors `build()` in gen.bpf.c.
pub fn udp_checksum_for(csum_base: u32, sport: u16, seq: u32, ts: u64) -> u16 {
    let mut var = [0u8; 14];
    var[..2].copy_from_slice(&sport.to_be_bytes());
    var[2..6].copy_from_slice(&seq.to_ne_bytes());
    var[6..].copy_from_slice(&ts.to_ne_bytes());
    let c = !fold(csum_base.wrapping_add(sum16(&var)));
    // The checksum field itself is stored in memory order: convert to a big-endian value.
    let c = u16::from_be_bytes(c.to_ne_bytes());
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// Builds the template frame and generator config for `spec`.
pub fn build(spec: &FrameSpec) -> Result<Template, FrameError> {
    let Some(outer) = &spec.vxlan else {
        return build_plain(spec);
    };
    if outer.vni >= 1 << 24 {
        return Err(FrameError::Vni(outer.vni));
    }
    let inner_size = spec
        .size
        .checked_sub(VXLAN_OUTER as u16)
        .ok_or(FrameError::Size(spec.size))?;
    let inner = build_plain(&FrameSpec {
        size: inner_size,
        vxlan: None,
        ..spec.clone()
    })
    .map_err(|e| match e {
        FrameError::Size(_) => FrameError::Size(spec.size),
        e => e,
    })?;
    let size = usize::from(spec.size);
    let mut f = vec![0u8; VXLAN_OUTER];
    f[0..6].copy_from_slice(&outer.dst_mac.0);
    f[6..12].copy_from_slice(&outer.src_mac.0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    {
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((size - 14) as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF, as VTEPs send
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&outer.src_ip.octets());
        ip[16..20].copy_from_slice(&outer.dst_ip.octets());
        let c = inet_checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    f[34..36].copy_from_slice(&spec.src_port.to_be_bytes());
    f[36..38].copy_from_slice(&outer.port.to_be_bytes());
    f[38..40].copy_from_slice(&((size - 34) as u16).to_be_bytes());
    // Outer UDP checksum 0: allowed for VXLAN over IPv4 (RFC 7348 section 5).
    f[42] = 0x08; // I flag: the VNI is valid
    f[46..49].copy_from_slice(&outer.vni.to_be_bytes()[1..]);
    f.extend_from_slice(&inner.frame);
    let hdr_len = VXLAN_OUTER + inner.hdr_len;
    let mut config = inner.config;
    config[..hdr_len].copy_from_slice(&f[..hdr_len]);
    config[CFG_HDR_LEN..CFG_HDR_LEN + 4].copy_from_slice(&(hdr_len as u32).to_ne_bytes());
    Ok(Template {
        frame: f,
        config,
        hdr_len,
    })
}

/// A plain Ethernet/IP/UDP frame (the inner frame of a VXLAN one).
fn build_plain(spec: &FrameSpec) -> Result<Template, FrameError> {
    let size = usize::from(spec.size);
    let v6 = match (spec.src_ip, spec.dst_ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(FrameError::MixedFamilies),
    };
    let hdr_len = if v6 { HDR_V6 } else { HDR_V4 };
    if size < hdr_len + MARKER_LEN || size > xvpc_xsk::testrun::MAX_FRAME {
        return Err(FrameError::Size(spec.size));
    }
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&spec.dst_mac.0);
    f[6..12].copy_from_slice(&spec.src_mac.0);
    let l4 = hdr_len - 8;
    let udp_len = (size - l4) as u16;
    // The pseudo-header sum (addresses, protocol, UDP length).
    let mut pseudo = Vec::with_capacity(40);
    match (spec.src_ip, spec.dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut f[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((size - 14) as u16).to_be_bytes());
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = inet_checksum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 17]);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let ip = &mut f[14..54];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
            ip[6] = 17;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 17]);
        }
        _ => return Err(FrameError::MixedFamilies),
    }
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    f[l4 + 2..l4 + 4].copy_from_slice(&spec.dst_port.to_be_bytes());
    f[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
    f[hdr_len..hdr_len + 4].copy_from_slice(&MAGIC.to_be_bytes());
    // csum_base: pseudo-header + UDP (source port and checksum 0) + payload (seq/ts 0).
    let csum_base = sum16(&pseudo).wrapping_add(sum16(&f[l4..]));
    f[l4..l4 + 2].copy_from_slice(&spec.src_port.to_be_bytes());
    let c = udp_checksum_for(csum_base, spec.src_port, 0, 0);
    f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());

    let mut config = [0u8; GEN_CONFIG_LEN];
    config[..hdr_len].copy_from_slice(&f[..hdr_len]);
    config[CFG_HDR_LEN..CFG_HDR_LEN + 4].copy_from_slice(&(hdr_len as u32).to_ne_bytes());
    config[CFG_FLOWS..CFG_FLOWS + 4].copy_from_slice(&spec.flows.max(1).to_ne_bytes());
    config[CFG_CSUM_BASE..CFG_CSUM_BASE + 4].copy_from_slice(&csum_base.to_ne_bytes());
    config[CFG_SPORT..CFG_SPORT + 2].copy_from_slice(&spec.src_port.to_be_bytes());
    let ts_mask = spec.ts_every.max(1).next_power_of_two() - 1;
    config[CFG_TS_MASK..CFG_TS_MASK + 4].copy_from_slice(&ts_mask.to_ne_bytes());
    Ok(Template {
        frame: f,
        config,
        hdr_len,
    })
}

/// Full UDP checksum of a frame built by [`build`] (or rewritten by the XDP program),
/// computed from scratch over the pseudo-header and the stored checksum: `Some(0)` when the
/// checksum is right, `None` if the frame is not UDP over IPv4/IPv6 or is truncated.
pub fn verify_udp_checksum(frame: &[u8]) -> Option<u16> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let (mut pseudo, l4) = match ethertype {
        0x0800 => {
            let ip = frame.get(14..34)?;
            let mut p = ip[12..20].to_vec();
            p.extend_from_slice(&[0, 17]);
            (p, 34)
        }
        0x86dd => {
            let ip = frame.get(14..54)?;
            let mut p = ip[8..40].to_vec();
            p.extend_from_slice(&[0, 17]);
            (p, 54)
        }
        _ => return None,
    };
    let udp = frame.get(l4..)?;
    pseudo.extend_from_slice(udp.get(4..6)?);
    pseudo.extend_from_slice(udp);
    Some(inet_checksum(&pseudo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(src: &str, dst: &str, size: u16) -> FrameSpec {
        FrameSpec {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_ip: src.parse().expect("literal"),
            dst_ip: dst.parse().expect("literal"),
            src_port: 1024,
            dst_port: 9,
            size,
            flows: 4,
            ts_every: 16,
            vxlan: None,
        }
    }

    fn vxlan(mut s: FrameSpec, vni: u32) -> FrameSpec {
        s.vxlan = Some(VxlanOuter {
            src_mac: MacAddr([2, 0, 0, 0, 0xf, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0xf, 2]),
            src_ip: "198.19.0.2".parse().expect("literal"),
            dst_ip: "198.19.0.1".parse().expect("literal"),
            vni,
            port: 4789,
        });
        s
    }

    #[test]
    fn vxlan_template_bytes() {
        let t = build(&vxlan(spec("198.18.2.2", "198.18.1.2", 114), 100)).expect("template");
        assert_eq!(t.frame.len(), 114);
        assert_eq!(t.hdr_len, 92);
        #[rustfmt::skip]
        let outer: [u8; 50] = [
            2, 0, 0, 0, 0xf, 2, 2, 0, 0, 0, 0xf, 1, 0x08, 0x00,
            0x45, 0, 0, 100, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 19, 0, 2, 198, 19, 0, 1,
            0x04, 0x00, 0x12, 0xb5, 0, 80, 0, 0,
            0x08, 0, 0, 0, 0, 0, 100, 0,
        ];
        let mut got = t.frame[..50].to_vec();
        got[24..26].copy_from_slice(&[0, 0]);
        assert_eq!(got, outer);
        assert_eq!(inet_checksum(&t.frame[14..34]), 0, "outer IPv4 checksum");
        // The inner frame is exactly the plain 64-byte frame.
        let plain = build(&spec("198.18.2.2", "198.18.1.2", 64)).expect("plain");
        assert_eq!(&t.frame[50..], &plain.frame[..]);
        assert_eq!(&t.config[..92], &t.frame[..92]);
        assert_eq!(&t.config[128..132], &92u32.to_ne_bytes());
        assert_eq!(
            &t.config[136..140],
            &plain.config[136..140],
            "inner csum base"
        );
        let v6 = build(&vxlan(spec("2001:2::1", "2001:2::2", 128), 7)).expect("v6 inner");
        assert_eq!(v6.hdr_len, 112);
        assert_eq!(&v6.frame[46..50], &[0, 0, 7, 0]);
        assert_eq!(&v6.frame[16..18], &114u16.to_be_bytes());
    }

    #[test]
    fn vxlan_bad_specs_are_errors() {
        assert_eq!(
            build(&vxlan(spec("198.18.2.2", "198.18.1.2", 107), 1)).err(),
            Some(FrameError::Size(107))
        );
        assert_eq!(
            build(&vxlan(spec("198.18.2.2", "198.18.1.2", 40), 1)).err(),
            Some(FrameError::Size(40))
        );
        assert_eq!(
            build(&vxlan(spec("198.18.2.2", "198.18.1.2", 200), 1 << 24)).err(),
            Some(FrameError::Vni(1 << 24))
        );
    }

    #[test]
    fn ipv4_template_bytes() {
        let t = build(&spec("198.18.0.1", "198.19.0.2", 64)).expect("template");
        assert_eq!(t.frame.len(), 64);
        assert_eq!(t.hdr_len, 42);
        #[rustfmt::skip]
        let expect_hdr: [u8; 42] = [
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,
            0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 2,
            0x04, 0x00, 0, 9, 0, 30, 0, 0,
        ];
        // Everything but the two checksums is fixed.
        let mut got = t.frame[..42].to_vec();
        got[24..26].copy_from_slice(&[0, 0]);
        got[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(got, expect_hdr);
        assert_eq!(&t.frame[42..46], b"XVPG");
        assert!(t.frame[46..].iter().all(|b| *b == 0));
        // IPv4 header checksum verifies to zero, UDP checksum verifies to zero.
        assert_eq!(inet_checksum(&t.frame[14..34]), 0);
        assert_eq!(verify_udp_checksum(&t.frame), Some(0));
        // Config: header copy, header length, flows, sport, ts mask.
        assert_eq!(&t.config[..42], &t.frame[..42]);
        assert_eq!(&t.config[128..132], &42u32.to_ne_bytes());
        assert_eq!(&t.config[132..136], &4u32.to_ne_bytes());
        assert_eq!(&t.config[140..142], &[0x04, 0x00]);
        assert_eq!(&t.config[144..148], &15u32.to_ne_bytes());
    }

    #[test]
    fn ipv6_template_bytes() {
        let t = build(&spec("2001:2::1", "2001:2::2", 128)).expect("template");
        assert_eq!(t.hdr_len, 62);
        assert_eq!(&t.frame[12..14], &[0x86, 0xdd]);
        assert_eq!(t.frame[14], 0x60);
        assert_eq!(&t.frame[18..20], &74u16.to_be_bytes()); // payload length
        assert_eq!(t.frame[20], 17);
        assert_eq!(t.frame[21], 64);
        assert_eq!(&t.frame[58..60], &74u16.to_be_bytes()); // UDP length
        assert_eq!(&t.frame[62..66], b"XVPG");
        assert_eq!(&t.config[128..132], &62u32.to_ne_bytes());
        assert_eq!(verify_udp_checksum(&t.frame), Some(0));
    }

    /// What the XDP program does to a frame, done here on the template.
    fn rewrite(t: &Template, sport: u16, seq: u32, ts: u64) -> Vec<u8> {
        let mut f = t.frame.clone();
        let h = t.hdr_len;
        let base = u32::from_ne_bytes(t.config[136..140].try_into().expect("4 bytes"));
        f[h - 8..h - 6].copy_from_slice(&sport.to_be_bytes());
        if t.hdr_len > HDR_V6 {
            f[34..36].copy_from_slice(&sport.to_be_bytes());
        }
        f[h + 4..h + 8].copy_from_slice(&seq.to_ne_bytes());
        f[h + 8..h + 16].copy_from_slice(&ts.to_ne_bytes());
        let c = udp_checksum_for(base, sport, seq, ts);
        f[h - 2..h].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn incremental_checksum_matches_full_recompute() {
        for (src, dst, size) in [
            ("198.18.0.1", "198.19.0.2", 64),
            ("198.18.0.1", "198.19.0.2", 65),
            ("198.18.255.1", "198.18.0.200", 1500),
            ("2001:2::1", "2001:2:0:1::2", 78),
            ("2001:2::ffff", "2001:2::2", 1401),
        ] {
            let t = build(&spec(src, dst, size)).expect("template");
            for (sport, seq, ts) in [
                (1024, 0, 0),
                (1027, 1, 1),
                (65535, u32::MAX, u64::MAX),
                (2000, 0xdead_beef, 0x0123_4567_89ab_cdef),
            ] {
                let f = rewrite(&t, sport, seq, ts);
                assert_eq!(
                    verify_udp_checksum(&f),
                    Some(0),
                    "{src}->{dst} size {size} sport {sport} seq {seq} ts {ts}"
                );
                let tv = build(&vxlan(spec(src, dst, size + 50), 100)).expect("vxlan");
                let fv = rewrite(&tv, sport, seq, ts);
                assert_eq!(&fv[50..], &f[..], "inner frame of the VXLAN rewrite");
                assert_eq!(&fv[34..36], &sport.to_be_bytes(), "outer source port");
            }
        }
    }

    #[test]
    fn bad_specs_are_errors() {
        assert_eq!(
            build(&spec("198.18.0.1", "2001:2::2", 100)).err(),
            Some(FrameError::MixedFamilies)
        );
        assert_eq!(
            build(&spec("2001:2::1", "2001:2::2", 70)).err(),
            Some(FrameError::Size(70))
        );
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            MacAddr::parse("02:aa:0:1:ff:10"),
            Some(MacAddr([2, 0xaa, 0, 1, 0xff, 0x10]))
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "0g:00:00:00:00:00",
            "002:0:0:0:0:0",
        ] {
            assert_eq!(MacAddr::parse(bad), None, "{bad}");
        }
    }
}
