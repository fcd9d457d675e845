//! The ingress pipeline: one VXLAN frame from the fabric in, one verdict out.
//!
//! Validate the outer headers, check that the VNI is our guest's and that the sender's
//! underlay address really owns the inner source (reverse mapping check), then strip the
//! outer headers by moving the frame start: the inner frame is not copied.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::counters::{Counters, DropReason};
use crate::frame::Frame;
use crate::model::MacAddr;
use crate::pipeline::{Context, Verdict};
use crate::table::{Lookup, MappingTable};
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

impl IngressPrepared {
    /// Does the frame take the fast path? (The pipeline fixtures record which frames must.)
    pub fn is_fast(&self) -> bool {
        self.0.is_some()
    }
}

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
            return count(counters, Ok(()), frame);
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
    let result = decapsulate(ctx, table, now_ms, frame);
    count(counters, result, frame)
}

/// Count an outcome (both paths).
#[inline(always)]
fn count(counters: &mut Counters, result: Result<(), DropReason>, frame: &Frame<'_>) -> Verdict {
    match result {
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

// ---------------------------------------------------------------------------------------
// The ingress policy: one function per check of the ingress table in docs/ARCHITECTURE.md
// ("Policy", rows I*), each used by the full path and the fast path alike. The fast path
// only checks a frame's shape and takes a frame when every check passes; anything else goes
// to the full path, which applies the same functions to find the drop reason.

/// I4: the outer IPv4 header checksum verifies.
#[inline(always)]
fn check_outer_ip_checksum(header_ok: bool) -> Result<(), DropReason> {
    match header_ok {
        true => Ok(()),
        false => Err(OuterBadIpChecksum),
    }
}

/// I5: VXLAN is never fragmented on our fabric.
#[inline(always)]
fn check_outer_fragment(is_fragment: bool) -> Result<(), DropReason> {
    match is_fragment {
        false => Ok(()),
        true => Err(OuterFragment),
    }
}

/// I6: the outer destination is our IPv4 underlay address.
#[inline(always)]
fn check_outer_dst_v4(ctx: &Context<'_>, dst: Ipv4Addr) -> Result<(), DropReason> {
    match ctx.fabric.underlay_ipv4 == Some(dst) {
        true => Ok(()),
        false => Err(OuterNotForUs),
    }
}

/// I6: the outer destination is our IPv6 underlay address.
#[inline(always)]
fn check_outer_dst_v6(ctx: &Context<'_>, dst: Ipv6Addr) -> Result<(), DropReason> {
    match ctx.fabric.underlay_ipv6 == Some(dst) {
        true => Ok(()),
        false => Err(OuterNotForUs),
    }
}

/// I7: UDP (any other protocol is not VXLAN).
#[inline(always)]
fn check_outer_udp(protocol: u8) -> Result<(), DropReason> {
    match protocol == IpProtocol::UDP {
        true => Ok(()),
        false => Err(OuterNotVxlan),
    }
}

/// I9: UDP to our VXLAN port.
#[inline(always)]
fn check_vxlan_port(ctx: &Context<'_>, dst_port: u16) -> Result<(), DropReason> {
    match dst_port == ctx.fabric.vxlan_port {
        true => Ok(()),
        false => Err(OuterNotVxlan),
    }
}

/// I10: the outer UDP checksum. Zero means "no checksum": always allowed over IPv4 (RFC
/// 7348), over IPv6 only where the operator opted in (RFC 6935/6936). A non-zero checksum is
/// always verified (`verify` runs only then).
#[inline(always)]
fn check_udp_checksum(
    ctx: &Context<'_>,
    over_v6: bool,
    checksum: u16,
    verify: impl FnOnce() -> bool,
) -> Result<(), DropReason> {
    match (over_v6, checksum) {
        (false, 0) => Ok(()),
        (true, 0) if ctx.fabric.udp6_zero_checksum_rx => Ok(()),
        (true, 0) => Err(OuterZeroUdp6Checksum),
        _ if verify() => Ok(()),
        _ => Err(OuterBadUdpChecksum),
    }
}

/// I12: a VXLAN header with a VNI, and the VNI is our guest's.
#[inline(always)]
fn check_vni(ctx: &Context<'_>, vxlan: &VxlanPacket<&[u8]>) -> Result<(), DropReason> {
    if !vxlan.has_vni() {
        return Err(VxlanNoVni);
    }
    match vxlan.vni() == ctx.guest.vni.get() {
        true => Ok(()),
        false => Err(UnknownVni),
    }
}

/// I14: the inner frame is for our guest's MAC.
#[inline(always)]
fn check_inner_mac(ctx: &Context<'_>, dst: MacAddr) -> Result<(), DropReason> {
    match dst == ctx.guest.mac {
        true => Ok(()),
        false => Err(InnerWrongDestination),
    }
}

/// I17: the inner IPv4 destination is one of our guest's addresses.
#[inline(always)]
fn check_inner_dst_v4(ctx: &Context<'_>, dst: Ipv4Addr) -> Result<(), DropReason> {
    match ctx.guest.ipv4.contains(&dst) {
        true => Ok(()),
        false => Err(InnerWrongDestination),
    }
}

/// I17: the inner IPv6 destination is one of our guest's addresses.
#[inline(always)]
fn check_inner_dst_v6(ctx: &Context<'_>, dst: Ipv6Addr) -> Result<(), DropReason> {
    match ctx.guest.ipv6.contains(&dst) {
        true => Ok(()),
        false => Err(InnerWrongDestination),
    }
}

/// I18: the inner source is mapped, to the outer sender's underlay address and the inner
/// source MAC (reverse mapping check).
#[inline(always)]
fn check_sender(lookup: Lookup<'_>, sender: IpAddr, src_mac: MacAddr) -> Result<(), DropReason> {
    match lookup {
        Lookup::Hit(entry) if entry.underlay_ip == sender && entry.overlay_mac == src_mac => Ok(()),
        Lookup::Hit(_) => Err(SpoofedUnderlay),
        Lookup::Absent | Lookup::Negative | Lookup::Pending => Err(UnknownSource),
    }
}

// ---------------------------------------------------------------------------------------
// The fast path: the shape of the common case, then the policy above.

/// The common case at fixed offsets: an outer IPv4 header without options (not a fragment),
/// or an outer IPv6 header without extension headers, then UDP and VXLAN, carrying an inner
/// IPv4 (20-byte header) or IPv6 packet whose lengths fit: where the inner frame is and how
/// long (the shape: I1–I3, I8, I11, I13, I15, I16), if every other check of the ingress policy
/// passes, through the functions the full path uses. Anything else (`None`) takes the full
/// path from the start, which finds the drop reason. The pipeline fixtures record which frames
/// must take it, and a differential property test holds both paths to the same bytes and
/// counters.
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
    fast_inner(ctx, table, now_ms, inner, sender)?;
    Some((inner_at, inner_len))
}

/// Outer IPv4 + UDP + VXLAN at fixed offsets: where the inner frame is, its length, the sender.
#[inline(always)]
fn fast_outer_v4(ctx: &Context<'_>, data: &[u8]) -> Option<(usize, usize, IpAddr)> {
    const UDP_AT: usize = ETH_LEN + 20;
    let head = data.first_chunk::<{ UDP_AT + UDP_VXLAN_LEN }>()?;
    let ip = Ipv4Packet::new_unchecked(&head[ETH_LEN..UDP_AT]);
    let ip_len = usize::from(ip.total_len());
    // Shape: version 4 with a 20-byte header, room for UDP and VXLAN, inside the frame.
    if head[ETH_LEN] != 0x45 || ip_len < 20 + UDP_VXLAN_LEN || ETH_LEN + ip_len > data.len() {
        return None;
    }
    let udp = UdpPacket::new_unchecked(&head[UDP_AT..UDP_AT + 8]);
    let udp_len = usize::from(udp.len());
    if !(UDP_VXLAN_LEN..=ip_len - 20).contains(&udp_len) {
        return None;
    }
    // The header is exactly 20 bytes here: a fixed-length sum the compiler unrolls.
    let header_ok = checksum::fold(checksum::sum(&head[ETH_LEN..UDP_AT])) == 0xFFFF;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    check_outer_ip_checksum(header_ok).ok()?;
    check_outer_fragment(ip.is_fragment()).ok()?;
    check_outer_dst_v4(ctx, dst).ok()?;
    check_outer_udp(ip.protocol()).ok()?;
    check_vxlan_port(ctx, udp.dst_port()).ok()?;
    check_udp_checksum(ctx, false, udp.checksum(), || {
        data.get(UDP_AT..UDP_AT + udp_len)
            .is_some_and(|datagram| UdpPacket::new_unchecked(datagram).verify_checksum_v4(src, dst))
    })
    .ok()?;
    check_vni(ctx, &VxlanPacket::new_unchecked(&head[UDP_AT + 8..])).ok()?;
    Some((
        UDP_AT + UDP_VXLAN_LEN,
        udp_len - UDP_VXLAN_LEN,
        IpAddr::V4(src),
    ))
}

/// Outer IPv6 + UDP + VXLAN at fixed offsets (see [`fast_outer_v4`]).
#[inline(always)]
fn fast_outer_v6(ctx: &Context<'_>, data: &[u8]) -> Option<(usize, usize, IpAddr)> {
    const UDP_AT: usize = ETH_LEN + 40;
    let head = data.first_chunk::<{ UDP_AT + UDP_VXLAN_LEN }>()?;
    let ip = Ipv6Packet::new_unchecked(&head[ETH_LEN..UDP_AT]);
    // Shape: version 6, UDP right after the fixed header (no extension headers), and a UDP
    // datagram with room for VXLAN inside the IP payload, inside the frame.
    if head[ETH_LEN] >> 4 != 6 || ip.next_header() != IpProtocol::UDP {
        return None;
    }
    let payload_len = usize::from(ip.payload_len());
    let udp = UdpPacket::new_checked(data.get(UDP_AT..UDP_AT + payload_len)?).ok()?;
    let udp_len = usize::from(udp.len());
    if udp_len < UDP_VXLAN_LEN {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    check_outer_dst_v6(ctx, dst).ok()?;
    check_vxlan_port(ctx, udp.dst_port()).ok()?;
    check_udp_checksum(ctx, true, udp.checksum(), || {
        udp.verify_checksum_v6(&src, &dst)
    })
    .ok()?;
    check_vni(ctx, &VxlanPacket::new_unchecked(&head[UDP_AT + 8..])).ok()?;
    Some((
        UDP_AT + UDP_VXLAN_LEN,
        udp_len - UDP_VXLAN_LEN,
        IpAddr::V6(src),
    ))
}

/// The inner frame at fixed offsets: IPv4 with a 20-byte header or IPv6, whose lengths fit,
/// for our guest, from its mapped `sender`.
#[inline(always)]
fn fast_inner(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    inner: &[u8],
    sender: IpAddr,
) -> Option<()> {
    let guest = ctx.guest;
    let eth = EthernetFrame::new_unchecked(&inner.first_chunk::<ETH_LEN>()?[..]);
    check_inner_mac(ctx, eth.dst_addr()).ok()?;
    let ip_room = inner.len() - ETH_LEN;
    let lookup = match eth.ethertype() {
        EtherType::IPV4 => {
            // Shape: a 20-byte header (options take the full path), a total length that fits.
            let header = inner[ETH_LEN..].first_chunk::<20>()?;
            let ip = Ipv4Packet::new_unchecked(&header[..]);
            let total_len = usize::from(ip.total_len());
            if header[0] != 0x45 || !(20..=ip_room).contains(&total_len) {
                return None;
            }
            check_inner_dst_v4(ctx, ip.dst_addr()).ok()?;
            table.lookup_v4(guest.vni, ip.src_addr(), now_ms)
        }
        EtherType::IPV6 => {
            let header = inner[ETH_LEN..].first_chunk::<40>()?;
            let ip = Ipv6Packet::new_unchecked(&header[..]);
            if header[0] >> 4 != 6 || 40 + usize::from(ip.payload_len()) > ip_room {
                return None;
            }
            check_inner_dst_v6(ctx, ip.dst_addr()).ok()?;
            table.lookup_v6(guest.vni, ip.src_addr(), now_ms)
        }
        _ => return None,
    };
    check_sender(lookup, sender, eth.src_addr()).ok()
}

// ---------------------------------------------------------------------------------------
// The full path: every frame, every row of the table.

/// Where the outer UDP header is, where the IP packet ends, and who sent it.
struct Outer {
    udp_at: usize,
    ip_end: usize,
    protocol: u8,
    src: IpAddr,
    dst: IpAddr,
}

fn outer_ip(ctx: &Context<'_>, data: &[u8]) -> Result<Outer, DropReason> {
    let eth = EthernetFrame::new_checked(data).map_err(|_| OuterMalformed)?;
    match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(&data[ETH_LEN..]).map_err(|_| OuterMalformed)?;
            check_outer_ip_checksum(ip.verify_checksum())?;
            check_outer_fragment(ip.is_fragment())?;
            check_outer_dst_v4(ctx, ip.dst_addr())?;
            Ok(Outer {
                udp_at: ETH_LEN + ip.header_len(),
                ip_end: ETH_LEN + usize::from(ip.total_len()),
                protocol: ip.protocol(),
                src: IpAddr::V4(ip.src_addr()),
                dst: IpAddr::V4(ip.dst_addr()),
            })
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(&data[ETH_LEN..]).map_err(|_| OuterMalformed)?;
            check_outer_dst_v6(ctx, ip.dst_addr())?;
            let upper = ip.upper_layer().map_err(|_| OuterMalformed)?;
            check_outer_fragment(upper.is_fragment)?;
            Ok(Outer {
                udp_at: ETH_LEN + upper.offset,
                ip_end: ETH_LEN + 40 + usize::from(ip.payload_len()),
                protocol: upper.protocol,
                src: IpAddr::V6(ip.src_addr()),
                dst: IpAddr::V6(ip.dst_addr()),
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
    check_outer_udp(outer.protocol)?;
    let udp =
        UdpPacket::new_checked(&data[outer.udp_at..outer.ip_end]).map_err(|_| OuterMalformed)?;
    check_vxlan_port(ctx, udp.dst_port())?;
    let verify = || match (outer.src, outer.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => udp.verify_checksum_v4(src, dst),
        (IpAddr::V6(src), IpAddr::V6(dst)) => udp.verify_checksum_v6(&src, &dst),
        _ => false,
    };
    check_udp_checksum(ctx, outer.src.is_ipv6(), udp.checksum(), verify)?;
    let vxlan = VxlanPacket::new_checked(udp.payload()).map_err(|_| OuterMalformed)?;
    check_vni(ctx, &vxlan)?;
    let inner_at = outer.udp_at + UDP_VXLAN_LEN;
    let inner_len = usize::from(udp.len()) - UDP_VXLAN_LEN;
    let inner = &data[inner_at..inner_at + inner_len];
    let eth = EthernetFrame::new_checked(inner).map_err(|_| InnerMalformed)?;
    check_inner_mac(ctx, eth.dst_addr())?;
    let guest = ctx.guest;
    let lookup = match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(&inner[ETH_LEN..]).map_err(|_| InnerMalformed)?;
            check_inner_dst_v4(ctx, ip.dst_addr())?;
            table.lookup_v4(guest.vni, ip.src_addr(), now_ms)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(&inner[ETH_LEN..]).map_err(|_| InnerMalformed)?;
            check_inner_dst_v6(ctx, ip.dst_addr())?;
            table.lookup_v6(guest.vni, ip.src_addr(), now_ms)
        }
        _ => return Err(InnerNotIp),
    };
    check_sender(lookup, outer.src, eth.src_addr())?;
    frame
        .set_bounds(frame.start() + inner_at, inner_len)
        .map_err(|_| InnerMalformed)
}
