//! The ingress pipeline: one VXLAN frame from the fabric in, one verdict out.
//!
//! Validate the outer headers, check that the VNI is our guest's and that the sender's
//! underlay address really owns the inner source (reverse mapping check), then strip the
//! outer headers by moving the frame start: the inner frame is not copied.

use std::net::IpAddr;

use crate::counters::{Counters, DropReason};
use crate::frame::Frame;
use crate::model::MappingKey;
use crate::pipeline::{Context, Verdict};
use crate::table::{CompiledEntry, Lookup, MappingTable};
use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ip::IpProtocol;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::udp::UdpPacket;
use crate::wire::vxlan::VxlanPacket;

use DropReason::*;

const ETH_LEN: usize = 14;
const UDP_VXLAN_LEN: usize = 8 + 8;

/// Run the ingress pipeline on one frame from the fabric, at worker time `now_ms`.
pub fn ingress(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    let prepared = ingress_prepare(ctx, table, now_ms, frame);
    ingress_prepared(ctx, table, now_ms, prepared, frame, counters)
}

/// What [`ingress_prepare`] found out about a frame without changing it: where the inner
/// frame of a valid VXLAN packet from the mapped sender is, or that it takes the full path.
#[derive(Clone, Copy, Debug, Default)]
pub struct IngressPrepared(Option<(usize, usize)>);

/// The first half of [`ingress`]: validate `frame` and check its sender, writing nothing
/// (see [`egress_prepare`](crate::egress::egress_prepare) for why it is separate).
#[inline]
pub fn ingress_prepare(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &Frame<'_>,
) -> IngressPrepared {
    IngressPrepared(fast_inner_bounds(ctx, table, now_ms, frame.data()))
}

/// The second half of [`ingress`]: finish `frame` with what [`ingress_prepare`] found when
/// given the same frame, unchanged since. A frame the fast path cannot take goes through the
/// full parser, which finds its verdict or drop reason.
#[inline]
pub fn ingress_prepared(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    prepared: IngressPrepared,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    counters.fabric_rx_packets += 1;
    if let IngressPrepared(Some((inner_at, inner_len))) = prepared {
        if frame
            .set_bounds(frame.start() + inner_at, inner_len)
            .is_ok()
        {
            counters.ingress_packets += 1;
            counters.ingress_bytes += frame.len() as u64;
            return Verdict::ToGuest;
        }
    }
    full_path(ctx, table, now_ms, frame, counters)
}

/// [`ingress`] with every frame through the full parser, never the fast path: the reference
/// the fast path is tested against (same verdicts, bytes and counters on every input).
pub fn ingress_full_path(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    counters.fabric_rx_packets += 1;
    full_path(ctx, table, now_ms, frame, counters)
}

#[inline(never)]
fn full_path(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    match decapsulate(ctx, table, now_ms, frame) {
        Ok(()) => {
            counters.ingress_packets += 1;
            counters.ingress_bytes += frame.len() as u64;
            Verdict::ToGuest
        }
        Err(reason) => {
            counters.drop(reason);
            Verdict::Drop(reason)
        }
    }
}

/// The common case at fixed offsets: an outer IPv4 header without options and a zero UDP
/// checksum (what IPv4 VTEPs send), or an outer IPv6 header without extension headers, carrying
/// an inner IPv4 or IPv6 packet for our guest from the mapped sender: where the inner frame
/// is and how long. Anything else (`None`) takes the full path from the start, which finds the
/// drop reason. The pipeline fixtures and a differential property test hold both paths to the
/// same bytes and counters.
///
/// Lookups take concrete addresses (never a `MappingKey` in memory): a key assembled field by
/// field and read back whole by the probe stalls on store forwarding.
#[inline(always)]
fn fast_inner_bounds(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    data: &[u8],
) -> Option<(usize, usize)> {
    let head = data.first_chunk::<ETH_LEN>()?;
    let (inner_at, inner_len, sender) = match EthernetFrame::new_unchecked(&head[..]).ethertype() {
        EtherType::IPV4 => fast_outer_v4(ctx, data),
        EtherType::IPV6 => fast_outer_v6(ctx, data),
        _ => None,
    }?;
    let inner = data.get(inner_at..inner_at + inner_len)?;
    let entry = fast_inner(ctx, table, now_ms, inner)?;
    (entry.underlay_ip == sender).then_some((inner_at, inner_len))
}

/// Outer IPv4 + UDP + VXLAN at fixed offsets: where the inner frame is, its length, the sender.
#[inline(always)]
fn fast_outer_v4(ctx: &Context<'_>, data: &[u8]) -> Option<(usize, usize, IpAddr)> {
    const UDP_AT: usize = ETH_LEN + 20;
    let head = data.first_chunk::<{ UDP_AT + UDP_VXLAN_LEN }>()?;
    let ip = Ipv4Packet::new_unchecked(&head[ETH_LEN..UDP_AT]);
    // Version 4 with a 20-byte header, not a fragment, UDP to our underlay address.
    if head[ETH_LEN] != 0x45
        || ip.is_fragment()
        || ip.protocol() != IpProtocol::UDP
        || ctx.fabric.underlay_ipv4 != Some(ip.dst_addr())
    {
        return None;
    }
    let ip_len = usize::from(ip.total_len());
    // The header is exactly 20 bytes here: a fixed-length sum the compiler unrolls.
    let header_ok = checksum::fold(checksum::sum(&head[ETH_LEN..UDP_AT])) == 0xFFFF;
    if ETH_LEN + ip_len > data.len() || !header_ok {
        return None;
    }
    let udp = UdpPacket::new_unchecked(&head[UDP_AT..UDP_AT + 8]);
    let udp_len = usize::from(udp.len());
    // A non-zero checksum must be verified: the full path does that.
    if udp.dst_port() != ctx.fabric.vxlan_port
        || udp.checksum() != 0
        || udp_len < UDP_VXLAN_LEN
        || udp_len > ip_len - 20
    {
        return None;
    }
    fast_vxlan(ctx, &head[UDP_AT + 8..])?;
    let sender = IpAddr::V4(ip.src_addr());
    Some((UDP_AT + UDP_VXLAN_LEN, udp_len - UDP_VXLAN_LEN, sender))
}

/// Outer IPv6 + UDP + VXLAN at fixed offsets (see [`fast_outer_v4`]).
#[inline(always)]
fn fast_outer_v6(ctx: &Context<'_>, data: &[u8]) -> Option<(usize, usize, IpAddr)> {
    const UDP_AT: usize = ETH_LEN + 40;
    let head = data.first_chunk::<{ UDP_AT + UDP_VXLAN_LEN }>()?;
    let ip = Ipv6Packet::new_unchecked(&head[ETH_LEN..UDP_AT]);
    if head[ETH_LEN] >> 4 != 6
        || ip.next_header() != IpProtocol::UDP
        || ctx.fabric.underlay_ipv6 != Some(ip.dst_addr())
    {
        return None;
    }
    let payload_len = usize::from(ip.payload_len());
    let udp_bytes = data.get(UDP_AT..UDP_AT + payload_len)?;
    let udp = UdpPacket::new_checked(udp_bytes).ok()?;
    let udp_len = usize::from(udp.len());
    let checksum_ok = match udp.checksum() {
        0 => ctx.fabric.udp6_zero_checksum_rx,
        _ => udp.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()),
    };
    if udp.dst_port() != ctx.fabric.vxlan_port || udp_len < UDP_VXLAN_LEN || !checksum_ok {
        return None;
    }
    fast_vxlan(ctx, &head[UDP_AT + 8..])?;
    let sender = IpAddr::V6(ip.src_addr());
    Some((UDP_AT + UDP_VXLAN_LEN, udp_len - UDP_VXLAN_LEN, sender))
}

/// A VXLAN header with a VNI, and the VNI is our guest's.
#[inline(always)]
fn fast_vxlan(ctx: &Context<'_>, header: &[u8]) -> Option<()> {
    let vxlan = VxlanPacket::new_unchecked(header);
    (vxlan.has_vni() && vxlan.vni() == ctx.guest.vni.get()).then_some(())
}

/// The inner frame is for our guest, and its source's mapping (whose underlay the caller
/// checks) has the sender's MAC.
#[inline(always)]
fn fast_inner<'t>(
    ctx: &Context<'_>,
    table: &'t MappingTable,
    now_ms: u64,
    inner: &[u8],
) -> Option<&'t CompiledEntry> {
    let guest = ctx.guest;
    let eth = EthernetFrame::new_unchecked(&inner.first_chunk::<ETH_LEN>()?[..]);
    if eth.dst_addr() != guest.mac {
        return None;
    }
    let ip_room = inner.len() - ETH_LEN;
    let lookup = match eth.ethertype() {
        EtherType::IPV4 => {
            // A 20-byte header (options take the full path) and a total length that fits.
            let header = inner[ETH_LEN..].first_chunk::<20>()?;
            let ip = Ipv4Packet::new_unchecked(&header[..]);
            let total_len = usize::from(ip.total_len());
            if header[0] != 0x45
                || !(20..=ip_room).contains(&total_len)
                || !guest.ipv4.contains(&ip.dst_addr())
            {
                return None;
            }
            table.lookup_v4(guest.vni, ip.src_addr(), now_ms)
        }
        EtherType::IPV6 => {
            let header = inner[ETH_LEN..].first_chunk::<40>()?;
            let ip = Ipv6Packet::new_unchecked(&header[..]);
            if header[0] >> 4 != 6
                || 40 + usize::from(ip.payload_len()) > ip_room
                || !guest.ipv6.contains(&ip.dst_addr())
            {
                return None;
            }
            table.lookup_v6(guest.vni, ip.src_addr(), now_ms)
        }
        _ => return None,
    };
    match lookup {
        Lookup::Hit(entry) if entry.overlay_mac == eth.src_addr() => Some(entry),
        _ => None,
    }
}

/// Where the outer UDP header is, where the IP packet ends, and who sent it.
struct Outer {
    udp_at: usize,
    ip_end: usize,
    src: IpAddr,
}

fn outer_ip(ctx: &Context<'_>, data: &[u8]) -> Result<Outer, DropReason> {
    let eth = EthernetFrame::new_checked(data).map_err(|_| OuterMalformed)?;
    match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(&data[ETH_LEN..]).map_err(|_| OuterMalformed)?;
            if !ip.verify_checksum() {
                return Err(OuterBadIpChecksum);
            }
            if ip.is_fragment() {
                return Err(OuterFragment);
            }
            if ctx.fabric.underlay_ipv4 != Some(ip.dst_addr()) {
                return Err(OuterNotForUs);
            }
            if ip.protocol() != IpProtocol::UDP {
                return Err(OuterNotVxlan);
            }
            Ok(Outer {
                udp_at: ETH_LEN + ip.header_len(),
                ip_end: ETH_LEN + usize::from(ip.total_len()),
                src: IpAddr::V4(ip.src_addr()),
            })
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(&data[ETH_LEN..]).map_err(|_| OuterMalformed)?;
            if ctx.fabric.underlay_ipv6 != Some(ip.dst_addr()) {
                return Err(OuterNotForUs);
            }
            let upper = ip.upper_layer().map_err(|_| OuterMalformed)?;
            if upper.is_fragment {
                return Err(OuterFragment);
            }
            if upper.protocol != IpProtocol::UDP {
                return Err(OuterNotVxlan);
            }
            Ok(Outer {
                udp_at: ETH_LEN + upper.offset,
                ip_end: ETH_LEN + 40 + usize::from(ip.payload_len()),
                src: IpAddr::V6(ip.src_addr()),
            })
        }
        _ => Err(OuterNotVxlan),
    }
}

fn decapsulate(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
) -> Result<(), DropReason> {
    let data = frame.data();
    let outer = outer_ip(ctx, data)?;
    let udp =
        UdpPacket::new_checked(&data[outer.udp_at..outer.ip_end]).map_err(|_| OuterMalformed)?;
    if udp.dst_port() != ctx.fabric.vxlan_port {
        return Err(OuterNotVxlan);
    }
    // Zero means "no checksum": always allowed over IPv4 (RFC 7348), over IPv6 only where
    // the operator opted in (RFC 6935/6936). A non-zero checksum is always verified.
    let checksum_ok = match (outer.src, udp.checksum()) {
        (IpAddr::V4(_), 0) => true,
        (IpAddr::V6(_), 0) if ctx.fabric.udp6_zero_checksum_rx => true,
        (IpAddr::V6(_), 0) => return Err(OuterZeroUdp6Checksum),
        (IpAddr::V4(src), _) => {
            let dst = Ipv4Packet::new_unchecked(&data[ETH_LEN..]).dst_addr();
            udp.verify_checksum_v4(src, dst)
        }
        (IpAddr::V6(src), _) => {
            let dst = Ipv6Packet::new_unchecked(&data[ETH_LEN..]).dst_addr();
            udp.verify_checksum_v6(&src, &dst)
        }
    };
    if !checksum_ok {
        return Err(OuterBadUdpChecksum);
    }
    let vxlan = VxlanPacket::new_checked(udp.payload()).map_err(|_| OuterMalformed)?;
    if !vxlan.has_vni() {
        return Err(VxlanNoVni);
    }
    let guest = ctx.guest;
    if vxlan.vni() != guest.vni.get() {
        return Err(UnknownVni);
    }
    let inner_at = outer.udp_at + UDP_VXLAN_LEN;
    let inner_len = usize::from(udp.len()) - UDP_VXLAN_LEN;
    let inner = &data[inner_at..inner_at + inner_len];
    let eth = EthernetFrame::new_checked(inner).map_err(|_| InnerMalformed)?;
    if eth.dst_addr() != guest.mac {
        return Err(InnerWrongDestination);
    }
    let inner_src = match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(&inner[ETH_LEN..]).map_err(|_| InnerMalformed)?;
            if !guest.ipv4.contains(&ip.dst_addr()) {
                return Err(InnerWrongDestination);
            }
            IpAddr::V4(ip.src_addr())
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(&inner[ETH_LEN..]).map_err(|_| InnerMalformed)?;
            if !guest.ipv6.contains(&ip.dst_addr()) {
                return Err(InnerWrongDestination);
            }
            IpAddr::V6(ip.src_addr())
        }
        _ => return Err(InnerNotIp),
    };
    let key = MappingKey {
        vni: guest.vni,
        overlay_ip: inner_src,
    };
    match table.lookup(&key, now_ms) {
        Lookup::Hit(entry) => {
            if entry.underlay_ip != outer.src || entry.overlay_mac != eth.src_addr() {
                return Err(SpoofedUnderlay);
            }
        }
        Lookup::Absent | Lookup::Negative | Lookup::Pending => return Err(UnknownSource),
    }
    frame
        .set_bounds(frame.start() + inner_at, inner_len)
        .map_err(|_| InnerMalformed)
}
