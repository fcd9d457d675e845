//! Criterion micro-benchmarks of the xvpc pipelines and tables: the setup they share.
//!
//! The context is the one of the pipeline fixtures (`dataplane/core/tests/fixtures`): guest
//! 198.18.10.2 in VNI 100, gateway 198.18.10.1, our underlay 198.18.0.2 / 2001:2::2. Tables hold
//! `n` mappings; the benchmarks send frames to (egress) or from (ingress) mapped addresses drawn
//! at random.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvpc_core::counters::DropReason;
use xvpc_core::frame::Frame;
use xvpc_core::model::{Fabric, Gateway, Guest, MacAddr, Mapping, Vni};
use xvpc_core::pipeline::{Verdict, PREPARE_AHEAD};
use xvpc_core::table::{Compiler, MappingTable};
use xvpc_core::wire::ipv4::Ipv4Packet;

/// Headroom before every frame (as in the AF_XDP UMEM frames).
pub const HEADROOM: usize = 256;
/// Tailroom after every frame.
pub const TAILROOM: usize = 512;
/// How many distinct frames each benchmark cycles through.
pub const FRAMES: usize = 4096;

/// Our guest's VNI.
pub const VNI: u32 = 100;
/// Our guest's MAC.
pub const GUEST_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
/// Our guest's address.
pub const GUEST4: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 2);
/// The gateway's MAC.
pub const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
/// Our IPv4 underlay address.
pub const UNDERLAY4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Our IPv6 underlay address.
pub const UNDERLAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// IPv4 addresses in 198.18.0.0/15 (131,072): tables larger than that spread over VNIs
/// 100, 101, …, so that a million mappings fit in the benchmark address range.
const ADDRS_PER_VNI: usize = 1 << 17;

/// The guest, gateway and fabric every benchmark runs against.
pub struct Setup {
    /// Our guest.
    pub guest: Guest,
    /// Its gateway.
    pub gateway: Gateway,
    /// Our fabric side.
    pub fabric: Fabric,
}

impl Setup {
    /// The fixture context.
    pub fn new() -> Self {
        Setup {
            guest: Guest {
                vni: vni(VNI),
                mac: GUEST_MAC,
                ipv4: vec![GUEST4],
                ipv6: vec![Ipv6Addr::new(0x2001, 2, 0, 0x10, 0, 0, 0, 2)],
                mtu: 1500,
            },
            gateway: Gateway {
                mac: GW_MAC,
                ipv4: Some(Ipv4Addr::new(198, 18, 10, 1)),
                ipv6: Some(Ipv6Addr::new(0x2001, 2, 0, 0x10, 0, 0, 0, 1)),
            },
            fabric: Fabric {
                underlay_ipv4: Some(UNDERLAY4),
                underlay_ipv6: Some(UNDERLAY6),
                local_mac: MacAddr([2, 0, 0, 0, 0x0f, 2]),
                next_hop_mac: MacAddr([2, 0, 0, 0, 0x0f, 1]),
                vxlan_port: 4789,
                mtu: 1500,
                udp6_zero_checksum_tx: false,
                udp6_zero_checksum_rx: false,
            },
        }
    }

    /// [`Setup::new`] with RFC 6935 zero IPv6 UDP checksums opted in, both directions.
    pub fn with_udp6_zero_checksum() -> Self {
        let mut setup = Self::new();
        setup.fabric.udp6_zero_checksum_tx = true;
        setup.fabric.udp6_zero_checksum_rx = true;
        setup
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

fn vni(v: u32) -> Vni {
    match Vni::new(v) {
        Ok(v) => v,
        Err(e) => panic!("benchmark VNI: {e}"),
    }
}

/// A small deterministic PRNG (xorshift64*), so every run draws the same destinations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The `i`-th benchmark mapping: overlay IPv4 `198.18.0.0 + (i % 2^17)` in VNI
/// `100 + i / 2^17`, with an underlay in 198.19.0.0/16 (or 2001:2:1::/64 when `v6_underlay`).
/// The guest's and gateway's own addresses are mapped too but never used as destinations
/// (see [`is_reserved`]).
pub fn mapping(i: usize, v6_underlay: bool) -> Mapping {
    let host = (i % ADDRS_PER_VNI) as u32;
    let overlay = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + host);
    let n = (i % 60_000) as u32 + 1;
    let underlay = if v6_underlay {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            2,
            1,
            0,
            0,
            0,
            (n >> 16) as u16,
            n as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 19, (n >> 8) as u8, n as u8))
    };
    Mapping {
        vni: vni(VNI + (i / ADDRS_PER_VNI) as u32),
        overlay_ip: IpAddr::V4(overlay),
        underlay_ip: underlay,
        overlay_mac: MacAddr([
            2,
            0x10,
            (i >> 24) as u8,
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
        ]),
    }
}

/// Is mapping `i` one of our guest's or gateway's own addresses (never a destination)?
pub fn is_reserved(i: usize, setup: &Setup) -> bool {
    let m = mapping(i, false);
    m.vni == setup.guest.vni
        && (m.overlay_ip == IpAddr::V4(GUEST4)
            || Some(m.overlay_ip) == setup.gateway.ipv4.map(IpAddr::V4))
}

/// A table of `n` mappings.
pub fn table(setup: &Setup, n: usize, v6_underlay: bool) -> MappingTable {
    let compiler = Compiler::new(setup.fabric.clone());
    let mut table = MappingTable::with_capacity(1, n);
    for i in 0..n {
        let m = mapping(i, v6_underlay);
        match compiler.compile(&m) {
            Ok(entry) => table.upsert(m.key(), entry),
            Err(e) => panic!("benchmark mapping {i}: {e}"),
        }
    }
    table
}

/// Indices of `count` random mappings of our guest's VNI among the first `n`.
pub fn destinations(setup: &Setup, n: usize, count: usize, seed: u64) -> Vec<usize> {
    let in_vni = n.min(ADDRS_PER_VNI);
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let i = rng.below(in_vni);
        if !is_reserved(i, setup) {
            out.push(i);
        }
    }
    out
}

/// A guest frame of exactly `frame_len` bytes (≥ 42): IPv4/UDP from our guest to `dst`.
pub fn guest_frame(dst: Ipv4Addr, frame_len: usize, sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; frame_len];
    f[..6].copy_from_slice(&GW_MAC.0);
    f[6..12].copy_from_slice(&GUEST_MAC.0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4_udp(&mut f[14..], GUEST4, dst, sport, 4000);
    f
}

/// Write an IPv4/UDP header filling `buf` (UDP checksum 0).
fn ipv4_udp(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) {
    let total = buf.len() as u16;
    buf[..12].copy_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    buf[12..16].copy_from_slice(&src.octets());
    buf[16..20].copy_from_slice(&dst.octets());
    let udp_len = total - 20;
    buf[20..22].copy_from_slice(&sport.to_be_bytes());
    buf[22..24].copy_from_slice(&dport.to_be_bytes());
    buf[24..26].copy_from_slice(&udp_len.to_be_bytes());
    for (i, b) in buf[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    Ipv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
}

/// A VXLAN frame from mapping `i`'s host to our guest, `inner_len` bytes of inner frame,
/// built with the remote host's own compiled entry (as its egress would).
pub fn fabric_frame(setup: &Setup, i: usize, inner_len: usize, v6_underlay: bool) -> Vec<u8> {
    let m = mapping(i, v6_underlay);
    let IpAddr::V4(src) = m.overlay_ip else {
        unreachable!("benchmark overlays are IPv4")
    };
    let remote = Fabric {
        underlay_ipv4: match m.underlay_ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        },
        underlay_ipv6: match m.underlay_ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        },
        local_mac: setup.fabric.next_hop_mac,
        next_hop_mac: setup.fabric.local_mac,
        vxlan_port: setup.fabric.vxlan_port,
        mtu: setup.fabric.mtu,
        // Sends what our side accepts.
        udp6_zero_checksum_tx: setup.fabric.udp6_zero_checksum_rx,
        udp6_zero_checksum_rx: false,
    };
    let back = Mapping {
        vni: setup.guest.vni,
        overlay_ip: IpAddr::V4(GUEST4),
        underlay_ip: if v6_underlay {
            IpAddr::V6(UNDERLAY6)
        } else {
            IpAddr::V4(UNDERLAY4)
        },
        overlay_mac: GUEST_MAC,
    };
    let entry = match Compiler::new(remote.clone()).compile(&back) {
        Ok(e) => e,
        Err(e) => panic!("remote template: {e}"),
    };
    let outer = entry.outer_len();
    let mut f = vec![0u8; outer + inner_len];
    {
        let inner = &mut f[outer..];
        inner[..6].copy_from_slice(&GUEST_MAC.0);
        inner[6..12].copy_from_slice(&m.overlay_mac.0);
        inner[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        ipv4_udp(&mut inner[14..], src, GUEST4, 4000, 5000);
    }
    let vni = setup.guest.vni;
    if !entry.write_outer(
        &remote,
        vni,
        &mut f,
        inner_len,
        0xC000 | (i as u16 & 0x3FFF),
    ) {
        panic!("remote template: no room for the outer headers");
    }
    f
}

/// Frames a worker takes from a receive ring at once (the daemon's default
/// `dataplane.batch_size`); the benchmarks process frames in batches of this size.
pub const BATCH: usize = 64;
const _: () = assert!(FRAMES.is_multiple_of(BATCH) && BATCH.is_multiple_of(PREPARE_AHEAD));

/// How many bytes of a benchmark frame the pipelines rewrite: egress rewrites the inner
/// destination MAC and writes the outer headers into the headroom; ingress only moves the
/// frame's start. [`Ring::payloads_intact`] checks after a run that nothing else changed.
pub const HEADER_BYTES: usize = 14;

/// How many frames ahead of the batch being processed [`Ring::run_batch`] restores.
pub const RESTORE_LEAD: usize = 2 * BATCH;

/// Frames and the buffers they are processed in: one region of equal slots (headroom, frame,
/// tailroom), like UMEM frames.
pub struct Ring {
    /// The original frames.
    pub inputs: Vec<Vec<u8>>,
    region: Vec<u8>,
    /// Where the first slot starts in `region`: on a 4 KiB boundary, as a UMEM does.
    base: usize,
    /// Distance between consecutive slots' pages (or slots).
    stride: usize,
    /// Bytes per slot.
    slot_len: usize,
    /// Slot `j` starts `(j % colours) × 64` bytes into its stride.
    colours: usize,
}

impl Ring {
    /// Buffers for these frames, each slot rounded up to whole cache lines (as separate heap
    /// buffers would be, which is how the benchmarks laid frames out before).
    pub fn new(inputs: Vec<Vec<u8>>) -> Self {
        let longest = inputs.iter().map(Vec::len).max().unwrap_or(0);
        let stride = (HEADROOM + longest + TAILROOM).next_multiple_of(64);
        Self::with_stride(inputs, stride)
    }

    /// Buffers `stride` bytes apart: 2048 or 4096 puts frames where a UMEM with that frame
    /// size does, every frame at the same offset from a power of two (see
    /// docs/PERFORMANCE.md on what that does to the cache).
    pub fn with_stride(inputs: Vec<Vec<u8>>, stride: usize) -> Self {
        Self::with_layout(inputs, stride, stride, 1)
    }

    /// Buffers where the daemon's UMEM puts 2048-byte frames (`xvpc_xsk`'s coloured layout):
    /// one per 4 KiB page, frame `j` starting `(j % 32) × 64` bytes into it.
    pub fn coloured(inputs: Vec<Vec<u8>>) -> Self {
        Self::with_layout(inputs, 4096, 2048, 32)
    }

    fn with_layout(inputs: Vec<Vec<u8>>, stride: usize, slot_len: usize, colours: usize) -> Self {
        let longest = inputs.iter().map(Vec::len).max().unwrap_or(0);
        assert!(
            slot_len >= HEADROOM + longest && slot_len + (colours - 1) * 64 <= stride,
            "a {slot_len}-byte slot cannot hold a {longest}-byte frame"
        );
        let region = vec![0u8; inputs.len() * stride + 4096];
        let base = region.as_ptr().align_offset(4096).min(4096);
        let mut ring = Ring {
            inputs,
            region,
            base,
            stride,
            slot_len,
            colours,
        };
        for j in 0..ring.inputs.len() {
            let slot = ring.slot(j);
            let f = &ring.inputs[j];
            ring.region[slot][HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
        }
        ring
    }

    /// Where frame `j`'s slot lies in `region`.
    #[inline]
    fn slot(&self, j: usize) -> std::ops::Range<usize> {
        let at = self.base + j * self.stride + j % self.colours * 64;
        at..at + self.slot_len
    }

    #[inline]
    fn buffer(&self, j: usize) -> &[u8] {
        &self.region[self.slot(j)]
    }

    #[inline]
    fn buffer_mut(&mut self, j: usize) -> &mut [u8] {
        let slot = self.slot(j);
        &mut self.region[slot]
    }

    /// Restore the Ethernet header of frame `j` (egress rewrites it in place).
    #[inline]
    pub fn restore(&mut self, j: usize) {
        let slot = self.slot(j);
        let (Some(input), Some(buf)) = (
            self.inputs[j].first_chunk::<HEADER_BYTES>(),
            self.region[slot]
                .get_mut(HEADROOM..)
                .and_then(|b| b.first_chunk_mut::<HEADER_BYTES>()),
        ) else {
            panic!("benchmark frames are longer than an Ethernet header");
        };
        *buf = *input;
    }

    /// Run batch number `batch` (frames `batch * BATCH ..` modulo the ring) the way a worker
    /// runs a received batch: in groups of [`PREPARE_AHEAD`], `prepare` every frame of the
    /// group (parse and look up, no writes), then `finish` every frame of it. First the headers of the frames [`RESTORE_LEAD`] ahead are
    /// restored, so that a frame was written long before it is processed, as a NIC or the
    /// kernel writes a frame well before the worker reads it (processing a frame right after
    /// writing it would measure store-forwarding stalls no receive path has). Returns how many
    /// verdicts were not `want`.
    #[inline]
    pub fn run_batch<P: Copy + Default>(
        &mut self,
        batch: usize,
        prepare: impl Fn(&Frame<'_>) -> P,
        mut finish: impl FnMut(P, &mut Frame<'_>) -> Verdict,
        want: Verdict,
    ) -> u64 {
        let first = (batch * BATCH) % self.inputs.len();
        for j in first..first + BATCH {
            self.restore((j + RESTORE_LEAD) % self.inputs.len());
        }
        let mut wrong = 0;
        for group in (first..first + BATCH).step_by(PREPARE_AHEAD) {
            let mut prepared = [P::default(); PREPARE_AHEAD];
            for (j, p) in (group..).zip(prepared.iter_mut()) {
                let len = self.inputs[j].len();
                if let Ok(frame) = Frame::new(self.buffer_mut(j), HEADROOM, len) {
                    *p = prepare(&frame);
                }
            }
            for (j, p) in (group..).zip(prepared) {
                let len = self.inputs[j].len();
                let verdict = match Frame::new(self.buffer_mut(j), HEADROOM, len) {
                    Ok(mut frame) => finish(p, &mut frame),
                    Err(_) => Verdict::Drop(DropReason::InvalidDescriptor),
                };
                wrong += u64::from(verdict != want);
            }
        }
        wrong
    }

    /// Did every frame stay as it was past [`HEADER_BYTES`]? If not, restoring only the
    /// Ethernet header would have fed the pipelines different frames.
    pub fn payloads_intact(&self) -> bool {
        self.inputs.iter().enumerate().all(|(j, input)| {
            let (buf, n) = (self.buffer(j), input.len().min(HEADER_BYTES));
            buf[HEADROOM + n..HEADROOM + input.len()] == input[n..]
        })
    }
}
