//! The egress pipeline: one frame from the guest in, one verdict out.
//!
//! Anti-spoofing first; ARP and neighbor solicitations are answered in place; IPv4/IPv6
//! unicast is looked up and encapsulated in the frame's headroom without moving the payload.
//! Packets that would exceed the fabric MTU after encapsulation are never fragmented: the
//! guest gets an ICMP "fragmentation needed" / ICMPv6 "packet too big" built in place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::counters::{Counters, DropReason};
use crate::frame::Frame;
use crate::model::{MacAddr, MappingKey};
use crate::pipeline::{flow_hash, flow_hash_bits, flow_source_port, Context, Verdict};
use crate::table::{CompiledEntry, Lookup, MappingTable};
use crate::wire::arp::{ArpOperation, ArpPacket};
use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::icmpv4::{self, Icmpv4Packet};
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ip::IpProtocol;
use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};

const ETH_LEN: usize = 14;
/// RFC 1812 4.3.2.3: an ICMPv4 error carries as much of the packet as fits in 576 bytes.
const ICMPV4_ERROR_MAX: usize = 576;
/// RFC 4443 2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU.
const ICMPV6_ERROR_MAX: usize = 1280;
/// Neighbor advertisement: IPv6 header + NA (24) + target link-layer address option (8).
const NA_FRAME_LEN: usize = ETH_LEN + 40 + 24 + 8;

use DropReason::*;

/// Run the egress pipeline on one frame from the guest, at worker time `now_ms`.
pub fn egress(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    let prepared = egress_prepare(ctx, table, now_ms, frame);
    egress_prepared(ctx, table, now_ms, prepared, frame, counters)
}

/// What [`egress_prepare`] found out about a frame without changing it: the mapping the
/// fast path encapsulates it with, or that it takes the full path.
#[derive(Clone, Copy, Debug, Default)]
pub struct EgressPrepared<'t>(Option<FastTarget<'t>>);

impl EgressPrepared<'_> {
    /// Does the frame take the fast path? (The pipeline fixtures record which frames must.)
    pub fn is_fast(&self) -> bool {
        self.0.is_some()
    }
}

/// The first half of [`egress`]: parse `frame` and look its destination up, writing nothing.
/// A worker prepares a whole batch before finishing any frame of it, so that the lookups'
/// cache misses overlap instead of queueing one behind the other.
#[inline]
pub fn egress_prepare<'t>(
    ctx: &Context<'_>,
    table: &'t MappingTable,
    now_ms: u64,
    frame: &Frame<'_>,
) -> EgressPrepared<'t> {
    EgressPrepared(fast_target(ctx, table, now_ms, frame))
}

/// The second half of [`egress`]: finish `frame` with what [`egress_prepare`] found when
/// given the same frame, unchanged since. A frame the fast path cannot take goes through the
/// full parser, which finds its verdict.
#[inline]
pub fn egress_prepared(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    prepared: EgressPrepared<'_>,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    counters.guest_rx_packets += 1;
    if let EgressPrepared(Some(target)) = prepared {
        // Drop Ethernet padding: the fabric carries exactly the IP packet.
        let fits = frame.set_bounds(frame.start(), ETH_LEN + target.ip_len);
        let src_port = flow_source_port(target.hash);
        if fits.is_ok() && encapsulate(ctx, frame, target.entry, src_port) == Verdict::ToFabric {
            return count(counters, Verdict::ToFabric, frame);
        }
    }
    full_path(ctx, table, now_ms, frame, counters)
}

/// [`egress`] with every frame through the full parser, never the fast path: the reference
/// the fast path is tested against (same verdicts, bytes and counters on every input).
pub fn egress_full_path(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    counters.guest_rx_packets += 1;
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
    let verdict = classify(ctx, table, now_ms, frame, counters);
    count(counters, verdict, frame)
}

/// Count a verdict (both paths; replies built in place count themselves).
#[inline(always)]
fn count(counters: &mut Counters, verdict: Verdict, frame: &Frame<'_>) -> Verdict {
    match verdict {
        Verdict::ToFabric => {
            counters.egress_packets += 1;
            counters.egress_bytes += frame.len() as u64;
        }
        Verdict::Miss(_) => counters.misses += 1,
        Verdict::Drop(reason) => counters.drop(reason),
        Verdict::ToGuest => {}
    }
    verdict
}

// ---------------------------------------------------------------------------------------
// The egress policy: one function per check of the egress table in docs/ARCHITECTURE.md
// ("Policy", rows E*), each used by the full path and the fast path alike. The fast path
// only checks a frame's shape and takes a frame when every check it meets passes; anything
// else goes to the full path, which applies the same functions to find the verdict.

/// E3: the guest sends from its own MAC only (also the ARP sender's hardware address, A3,
/// and a neighbor solicitation's source link-layer option, N4).
#[inline(always)]
fn check_source_mac(ctx: &Context<'_>, mac: MacAddr) -> Result<(), DropReason> {
    match mac == ctx.guest.mac {
        true => Ok(()),
        false => Err(SpoofedSourceMac),
    }
}

/// E6: IP to a group MAC is dropped (only ARP requests and neighbor solicitations are
/// answered, before this check).
#[inline(always)]
fn check_unicast_mac(mac: MacAddr) -> Result<(), DropReason> {
    match (mac.is_multicast(), mac == MacAddr::BROADCAST) {
        (false, _) => Ok(()),
        (true, true) => Err(Broadcast),
        (true, false) => Err(Multicast),
    }
}

/// E7 (and A5): the guest sends from its own IPv4 addresses only.
#[inline(always)]
fn check_source_v4(ctx: &Context<'_>, src: Ipv4Addr) -> Result<(), DropReason> {
    match ctx.guest.ipv4.contains(&src) {
        true => Ok(()),
        false => Err(SpoofedSourceIp),
    }
}

/// E7 (and N3 for a source that is not link-local): the guest sends from its own IPv6
/// addresses only.
#[inline(always)]
fn check_source_v6(ctx: &Context<'_>, src: Ipv6Addr) -> Result<(), DropReason> {
    match ctx.guest.ipv6.contains(&src) {
        true => Ok(()),
        false => Err(SpoofedSourceIp),
    }
}

/// E8: no IPv4 broadcast or multicast leaves the guest port.
#[inline(always)]
fn check_unicast_v4(dst: Ipv4Addr) -> Result<(), DropReason> {
    match (dst.is_broadcast(), dst.is_multicast()) {
        (false, false) => Ok(()),
        (true, _) => Err(Broadcast),
        (false, true) => Err(Multicast),
    }
}

/// E8: no IPv6 multicast leaves the guest port.
#[inline(always)]
fn check_unicast_v6(dst: Ipv6Addr) -> Result<(), DropReason> {
    match dst.is_multicast() {
        false => Ok(()),
        true => Err(Multicast),
    }
}

/// Where a unicast IP packet from the guest goes.
#[derive(Clone, Copy, Debug)]
enum Route<'t> {
    /// To the gateway itself: answered (echo) or dropped (E9).
    Gateway,
    /// To a mapped overlay address: encapsulated if it fits (E11–E13).
    Mapped(&'t CompiledEntry),
    /// No live mapping: the worker asks the agent (E10).
    Miss,
}

/// E9–E10 for IPv4: the gateway, or the destination's mapping.
#[inline(always)]
fn route_v4<'t>(
    ctx: &Context<'_>,
    table: &'t MappingTable,
    now_ms: u64,
    dst: Ipv4Addr,
) -> Result<Route<'t>, DropReason> {
    if ctx.gateway.ipv4 == Some(dst) {
        return Ok(Route::Gateway);
    }
    resolve(table.lookup_v4(ctx.guest.vni, dst, now_ms), NegativeEntry)
}

/// E9–E10 for IPv6 (see [`route_v4`]).
#[inline(always)]
fn route_v6<'t>(
    ctx: &Context<'_>,
    table: &'t MappingTable,
    now_ms: u64,
    dst: Ipv6Addr,
) -> Result<Route<'t>, DropReason> {
    if ctx.gateway.ipv6 == Some(dst) {
        return Ok(Route::Gateway);
    }
    resolve(table.lookup_v6(ctx.guest.vni, dst, now_ms), NegativeEntry)
}

/// E10 (and A7, N5): what a lookup means for a frame that needs the mapping. Pending: the
/// agent was asked already; the worker holds or drops the frame.
#[inline(always)]
fn resolve(lookup: Lookup<'_>, negative: DropReason) -> Result<Route<'_>, DropReason> {
    match lookup {
        Lookup::Hit(entry) => Ok(Route::Mapped(entry)),
        Lookup::Absent | Lookup::Pending => Ok(Route::Miss),
        Lookup::Negative => Err(negative),
    }
}

/// E11: the IP packet fits the fabric MTU once encapsulated; if not, the largest that does.
#[inline(always)]
fn check_fabric_mtu(ctx: &Context<'_>, entry: &CompiledEntry, ip_len: usize) -> Result<(), usize> {
    let max_ip_len = usize::from(ctx.fabric.mtu).saturating_sub(entry.outer_len());
    match ip_len <= max_ip_len {
        true => Ok(()),
        false => Err(max_ip_len),
    }
}

/// E12: an oversized IPv4 packet gets "fragmentation needed" only with DF, and never when
/// it is an ICMP error itself.
#[inline(always)]
fn check_too_big_v4(dont_frag: bool, icmp_type: Option<u8>) -> Result<(), DropReason> {
    match (dont_frag, icmp_type) {
        (false, _) => Err(TooBigNoDf),
        (true, Some(t)) if icmpv4::is_error(t) => Err(TooBigIcmpError),
        (true, _) => Ok(()),
    }
}

/// E12: an oversized IPv6 packet gets "packet too big" unless it is an ICMPv6 error itself.
#[inline(always)]
fn check_too_big_v6(icmp_type: Option<u8>) -> Result<(), DropReason> {
    match icmp_type {
        Some(t) if icmpv6::is_error(t) => Err(TooBigIcmpError),
        _ => Ok(()),
    }
}

/// E13: the fabric has a source address of the mapping's underlay family, and the frame
/// room for the outer headers in front of it.
#[inline(always)]
fn check_encap_room(
    ctx: &Context<'_>,
    entry: &CompiledEntry,
    headroom: usize,
) -> Result<(), DropReason> {
    if !entry.has_source_in(ctx.fabric) {
        return Err(NoLocalUnderlay);
    }
    match headroom >= entry.outer_len() {
        true => Ok(()),
        false => Err(NoHeadroom),
    }
}

// ---------------------------------------------------------------------------------------
// The fast path: the shape of the common case, then the policy above.

/// The common case at fixed offsets, after one length check per layer: an untagged IPv4
/// (20-byte header, not a fragment) or IPv6 (no extension headers) TCP or UDP packet, the
/// ports inside it and the IP packet inside the frame: E1, E2, E4 and E5 hold, and no ARP or
/// ND row applies. It is taken when every other check it meets (E3, E6–E11, E13) passes,
/// through the functions the full path uses; E12 (too big) is left to the full path. Anything else
/// (`None`) takes the full path from the start. The pipeline fixtures record which frames
/// must take it, and a differential property test holds both paths to the same bytes and
/// counters.
///
/// Addresses stay concrete (`Ipv4Addr`/`Ipv6Addr`, never `IpAddr` or `MappingKey`): enums
/// assembled field by field in memory and read back whole stall on store forwarding.
#[inline(always)]
fn fast_target<'t>(
    ctx: &Context<'_>,
    table: &'t MappingTable,
    now_ms: u64,
    frame: &Frame<'_>,
) -> Option<FastTarget<'t>> {
    let data = frame.data();
    let head = data.first_chunk::<ETH_LEN>()?;
    let eth = EthernetFrame::new_unchecked(&head[..]);
    check_source_mac(ctx, eth.src_addr()).ok()?;
    check_unicast_mac(eth.dst_addr()).ok()?;
    let target = match eth.ethertype() {
        EtherType::IPV4 => fast_ipv4(ctx, table, now_ms, data),
        EtherType::IPV6 => fast_ipv6(ctx, table, now_ms, data),
        _ => None,
    }?;
    check_fabric_mtu(ctx, target.entry, target.ip_len).ok()?;
    check_encap_room(ctx, target.entry, frame.headroom()).ok()?;
    Some(target)
}

/// What the fast path found: the mapping, the IP packet's length and the flow hash.
#[derive(Clone, Copy, Debug)]
struct FastTarget<'t> {
    entry: &'t CompiledEntry,
    ip_len: usize,
    hash: u32,
}

#[inline(always)]
fn fast_ipv4<'t>(
    ctx: &Context<'_>,
    table: &'t MappingTable,
    now_ms: u64,
    data: &[u8],
) -> Option<FastTarget<'t>> {
    let head = data.first_chunk::<{ ETH_LEN + 20 }>()?;
    let ip = Ipv4Packet::new_unchecked(&head[ETH_LEN..]);
    // Shape: version 4 with a 20-byte header, and neither More Fragments nor an offset.
    if head[ETH_LEN] != 0x45 || ip.is_fragment() {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    check_source_v4(ctx, src).ok()?;
    check_unicast_v4(dst).ok()?;
    let ip_len = usize::from(ip.total_len());
    let protocol = ip.protocol();
    let ports = fast_ports(data, 20, ip_len, protocol)?;
    let Ok(Route::Mapped(entry)) = route_v4(ctx, table, now_ms, dst) else {
        return None;
    };
    let (src, dst) = (u128::from(u32::from(src)), u128::from(u32::from(dst)));
    let hash = flow_hash_bits(src, dst, protocol, ports);
    Some(FastTarget {
        entry,
        ip_len,
        hash,
    })
}

#[inline(always)]
fn fast_ipv6<'t>(
    ctx: &Context<'_>,
    table: &'t MappingTable,
    now_ms: u64,
    data: &[u8],
) -> Option<FastTarget<'t>> {
    let head = data.first_chunk::<{ ETH_LEN + 40 }>()?;
    let ip = Ipv6Packet::new_unchecked(&head[ETH_LEN..]);
    if head[ETH_LEN] >> 4 != 6 {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    check_unicast_v6(dst).ok()?;
    check_source_v6(ctx, src).ok()?;
    let ip_len = 40 + usize::from(ip.payload_len());
    let protocol = ip.next_header();
    let ports = fast_ports(data, 40, ip_len, protocol)?;
    let Ok(Route::Mapped(entry)) = route_v6(ctx, table, now_ms, dst) else {
        return None;
    };
    let hash = flow_hash_bits(u128::from(src), u128::from(dst), protocol, ports);
    Some(FastTarget {
        entry,
        ip_len,
        hash,
    })
}

/// Shape: the ports of a TCP or UDP header right after an `header_len`-byte IP header, if the
/// IP packet holds them and fits the frame.
#[inline(always)]
fn fast_ports(data: &[u8], header_len: usize, ip_len: usize, protocol: u8) -> Option<u32> {
    if !(protocol == IpProtocol::TCP || protocol == IpProtocol::UDP)
        || ip_len < header_len + 4
        || ETH_LEN + ip_len > data.len()
    {
        return None;
    }
    let ports = data.get(ETH_LEN + header_len..)?.first_chunk::<4>()?;
    Some(u32::from_be_bytes(*ports))
}

// ---------------------------------------------------------------------------------------
// The full path: every frame, every row of the table.

fn classify(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    let Ok(eth) = EthernetFrame::new_checked(frame.data()) else {
        return Verdict::Drop(GuestMalformed);
    };
    let ethertype = eth.ethertype();
    if ethertype == EtherType::VLAN || ethertype == EtherType::QINQ {
        return Verdict::Drop(GuestVlanTagged);
    }
    if let Err(reason) = check_source_mac(ctx, eth.src_addr()) {
        return Verdict::Drop(reason);
    }
    let dst_mac = eth.dst_addr();
    match ethertype {
        EtherType::ARP => arp_request(ctx, table, now_ms, frame, counters),
        EtherType::IPV4 => match check_unicast_mac(dst_mac) {
            Ok(()) => ipv4(ctx, table, now_ms, frame, counters),
            Err(reason) => Verdict::Drop(reason),
        },
        EtherType::IPV6 => ipv6(ctx, table, now_ms, frame, dst_mac, counters),
        _ => Verdict::Drop(UnsupportedEthertype),
    }
}

/// The key a miss asks the agent for.
fn miss_key(ctx: &Context<'_>, overlay_ip: IpAddr) -> Verdict {
    Verdict::Miss(MappingKey {
        vni: ctx.guest.vni,
        overlay_ip,
    })
}

fn arp_request(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    let guest = ctx.guest;
    let Ok(arp) = ArpPacket::new_checked(&frame.data()[ETH_LEN..]) else {
        return Verdict::Drop(GuestMalformed);
    };
    if arp.operation() != ArpOperation::REQUEST {
        return Verdict::Drop(ArpNotRequest);
    }
    if let Err(reason) = check_source_mac(ctx, arp.sender_hw_addr()) {
        return Verdict::Drop(reason);
    }
    let (sender_ip, target_ip) = (arp.sender_ip(), arp.target_ip());
    if sender_ip.is_unspecified() || sender_ip == target_ip {
        return Verdict::Drop(ArpGratuitous);
    }
    if let Err(reason) = check_source_v4(ctx, sender_ip) {
        return Verdict::Drop(reason);
    }
    let answer = if ctx.gateway.ipv4 == Some(target_ip) {
        ctx.gateway.mac
    } else if guest.ipv4.contains(&target_ip) {
        return Verdict::Drop(ArpUnknownTarget);
    } else {
        let lookup = table.lookup_v4(guest.vni, target_ip, now_ms);
        match resolve(lookup, ArpUnknownTarget) {
            Ok(Route::Mapped(entry)) => entry.overlay_mac,
            Ok(_) => return miss_key(ctx, IpAddr::V4(target_ip)),
            Err(reason) => return Verdict::Drop(reason),
        }
    };
    let data = frame.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *data);
    eth.set_dst_addr(guest.mac);
    eth.set_src_addr(answer);
    let mut arp = ArpPacket::new_unchecked(&mut data[ETH_LEN..]);
    arp.set_operation(ArpOperation::REPLY);
    arp.set_sender_hw_addr(answer);
    arp.set_sender_ip(target_ip);
    arp.set_target_hw_addr(guest.mac);
    arp.set_target_ip(sender_ip);
    counters.arp_replies += 1;
    Verdict::ToGuest
}

/// The first four bytes of a TCP/UDP/SCTP header (both ports) for the flow hash.
fn l4_ports(protocol: u8, l4: &[u8]) -> u32 {
    match (protocol, l4) {
        (IpProtocol::TCP | IpProtocol::UDP | IpProtocol::SCTP, [a, b, c, d, ..]) => {
            u32::from_be_bytes([*a, *b, *c, *d])
        }
        _ => 0,
    }
}

fn ipv4(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    counters: &mut Counters,
) -> Verdict {
    let Ok(ip) = Ipv4Packet::new_checked(&frame.data()[ETH_LEN..]) else {
        return Verdict::Drop(GuestMalformed);
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if let Err(reason) = check_source_v4(ctx, src).and(check_unicast_v4(dst)) {
        return Verdict::Drop(reason);
    }
    let ip_len = usize::from(ip.total_len());
    let protocol = ip.protocol();
    let ports = if ip.is_fragment() {
        0
    } else {
        l4_ports(protocol, ip.payload())
    };
    let dont_frag = ip.dont_frag();
    let icmp_type = (protocol == IpProtocol::ICMP)
        .then(|| ip.payload().first().copied())
        .flatten();
    // Drop Ethernet padding: the fabric carries exactly the IP packet.
    if frame.set_bounds(frame.start(), ETH_LEN + ip_len).is_err() {
        return Verdict::Drop(GuestMalformed);
    }
    let entry = match route_v4(ctx, table, now_ms, dst) {
        Ok(Route::Mapped(entry)) => entry,
        Ok(Route::Gateway) => return gateway_echo_v4(ctx, frame, icmp_type, counters),
        Ok(Route::Miss) => return miss_key(ctx, IpAddr::V4(dst)),
        Err(reason) => return Verdict::Drop(reason),
    };
    if let Err(max_ip_len) = check_fabric_mtu(ctx, entry, ip_len) {
        return match check_too_big_v4(dont_frag, icmp_type) {
            Ok(()) => frag_needed(ctx, frame, src, max_ip_len, counters),
            Err(reason) => Verdict::Drop(reason),
        };
    }
    let hash = flow_hash(IpAddr::V4(src), IpAddr::V4(dst), protocol, ports);
    encapsulate(ctx, frame, entry, flow_source_port(hash))
}

fn ipv6(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    dst_mac: MacAddr,
    counters: &mut Counters,
) -> Verdict {
    let Ok(ip) = Ipv6Packet::new_checked(&frame.data()[ETH_LEN..]) else {
        return Verdict::Drop(GuestMalformed);
    };
    let Ok(upper) = ip.upper_layer() else {
        return Verdict::Drop(GuestMalformed);
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let ip_len = 40 + usize::from(ip.payload_len());
    let l4 = &frame.data()[ETH_LEN + upper.offset..ETH_LEN + ip_len];
    let icmp_type = (upper.protocol == IpProtocol::IPV6_ICMP && !upper.is_fragment)
        .then(|| l4.first().copied())
        .flatten();
    if icmp_type == Some(icmpv6::NEIGHBOR_SOLICIT) {
        let hop_limit = ip.hop_limit();
        let l4_at = ETH_LEN + upper.offset;
        return neighbor_solicit(
            ctx,
            table,
            now_ms,
            frame,
            src,
            hop_limit,
            l4_at,
            ETH_LEN + ip_len,
            counters,
        );
    }
    let admitted = check_unicast_mac(dst_mac)
        .and(check_unicast_v6(dst))
        .and(check_source_v6(ctx, src));
    if let Err(reason) = admitted {
        return Verdict::Drop(reason);
    }
    let ports = if upper.is_fragment {
        0
    } else {
        l4_ports(upper.protocol, l4)
    };
    let protocol = upper.protocol;
    if frame.set_bounds(frame.start(), ETH_LEN + ip_len).is_err() {
        return Verdict::Drop(GuestMalformed);
    }
    let entry = match route_v6(ctx, table, now_ms, dst) {
        Ok(Route::Mapped(entry)) => entry,
        Ok(Route::Gateway) => {
            let l4_at = ETH_LEN + upper.offset;
            return gateway_echo_v6(ctx, frame, icmp_type, l4_at, counters);
        }
        Ok(Route::Miss) => return miss_key(ctx, IpAddr::V6(dst)),
        Err(reason) => return Verdict::Drop(reason),
    };
    if let Err(max_ip_len) = check_fabric_mtu(ctx, entry, ip_len) {
        return match check_too_big_v6(icmp_type) {
            Ok(()) => packet_too_big(ctx, frame, src, max_ip_len, counters),
            Err(reason) => Verdict::Drop(reason),
        };
    }
    let hash = flow_hash(IpAddr::V6(src), IpAddr::V6(dst), protocol, ports);
    encapsulate(ctx, frame, entry, flow_source_port(hash))
}

/// Rewrite the inner destination MAC and prepend the outer headers in the headroom.
#[inline]
fn encapsulate(
    ctx: &Context<'_>,
    frame: &mut Frame<'_>,
    entry: &CompiledEntry,
    src_port: u16,
) -> Verdict {
    if let Err(reason) = check_encap_room(ctx, entry, frame.headroom()) {
        return Verdict::Drop(reason);
    }
    let outer_len = entry.outer_len();
    let inner_len = frame.len();
    let Some(start) = frame.start().checked_sub(outer_len) else {
        return Verdict::Drop(NoHeadroom);
    };
    EthernetFrame::new_unchecked(frame.data_mut()).set_dst_addr(entry.overlay_mac);
    if frame.set_bounds(start, outer_len + inner_len).is_err() {
        return Verdict::Drop(NoHeadroom);
    }
    let vni = ctx.guest.vni;
    if !entry.write_outer(ctx.fabric, vni, frame.data_mut(), inner_len, src_port) {
        // Unreachable: the source and the room were checked above.
        return Verdict::Drop(NoHeadroom);
    }
    Verdict::ToFabric
}
/// Reframe `frame` as Ethernet + an `ip_header_len` IP header + an 8-byte ICMP header in
/// front of the original IP packet (which is not moved), quoted up to `max_ip_len` bytes of
/// error packet. Returns the quoted length.
fn make_icmp_error_room(
    frame: &mut Frame<'_>,
    ip_header_len: usize,
    max_ip_len: usize,
) -> Result<usize, Verdict> {
    let headers = ETH_LEN + ip_header_len + 8;
    let quote_len = (frame.len() - ETH_LEN).min(max_ip_len - ip_header_len - 8);
    let start = (frame.start() + ETH_LEN)
        .checked_sub(headers)
        .ok_or(Verdict::Drop(NoHeadroom))?;
    frame
        .set_bounds(start, headers + quote_len)
        .map_err(|_| Verdict::Drop(NoHeadroom))?;
    Ok(quote_len)
}

/// Build an ICMP "fragmentation needed" (RFC 1191) to the guest, quoting its packet in place:
/// the new headers go in front of the original IP header, which is not moved.
fn frag_needed(
    ctx: &Context<'_>,
    frame: &mut Frame<'_>,
    guest_ip: Ipv4Addr,
    mtu: usize,
    counters: &mut Counters,
) -> Verdict {
    let Some(gateway_ip) = ctx.gateway.ipv4 else {
        return Verdict::Drop(TooBigNoDf);
    };
    let quote_len = match make_icmp_error_room(frame, 20, ICMPV4_ERROR_MAX) {
        Ok(quote_len) => quote_len,
        Err(verdict) => return verdict,
    };
    let data = frame.data_mut();
    reply_ethernet(data, ctx, EtherType::IPV4);
    let repr = Ipv4Repr {
        src_addr: gateway_ip,
        dst_addr: guest_ip,
        protocol: IpProtocol::ICMP,
        payload_len: 8 + quote_len,
        ttl: 64,
        dont_frag: false,
    };
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut data[ETH_LEN..]));
    let mut icmp = Icmpv4Packet::new_unchecked(&mut data[ETH_LEN + 20..]);
    icmp.set_msg_type(icmpv4::DEST_UNREACHABLE);
    icmp.set_code(icmpv4::FRAG_NEEDED);
    icmp.set_echo_ident(0);
    icmp.set_next_hop_mtu(mtu as u16);
    icmp.fill_checksum();
    counters.icmp_errors += 1;
    Verdict::ToGuest
}

/// Build an ICMPv6 "packet too big" (RFC 4443 3.2) to the guest, quoting its packet in place.
fn packet_too_big(
    ctx: &Context<'_>,
    frame: &mut Frame<'_>,
    guest_ip: Ipv6Addr,
    mtu: usize,
    counters: &mut Counters,
) -> Verdict {
    let Some(gateway_ip) = ctx.gateway.ipv6 else {
        return Verdict::Drop(TooBigNoDf);
    };
    let quote_len = match make_icmp_error_room(frame, 40, ICMPV6_ERROR_MAX) {
        Ok(quote_len) => quote_len,
        Err(verdict) => return verdict,
    };
    let data = frame.data_mut();
    reply_ethernet(data, ctx, EtherType::IPV6);
    let repr = Ipv6Repr {
        src_addr: gateway_ip,
        dst_addr: guest_ip,
        next_header: IpProtocol::IPV6_ICMP,
        payload_len: 8 + quote_len,
        hop_limit: 64,
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut data[ETH_LEN..]));
    let mut icmp = Icmpv6Packet::new_unchecked(&mut data[ETH_LEN + 40..]);
    icmp.set_msg_type(icmpv6::PKT_TOO_BIG);
    icmp.set_code(0);
    icmp.set_pkt_too_big_mtu(mtu as u32);
    icmp.fill_checksum(&gateway_ip, &guest_ip);
    counters.icmp_errors += 1;
    Verdict::ToGuest
}

fn reply_ethernet(data: &mut [u8], ctx: &Context<'_>, ethertype: EtherType) {
    let mut eth = EthernetFrame::new_unchecked(data);
    eth.set_dst_addr(ctx.guest.mac);
    eth.set_src_addr(ctx.gateway.mac);
    eth.set_ethertype(ethertype);
}

/// Answer a neighbor solicitation (RFC 4861 7.2.4) with an advertisement built in place.
#[allow(clippy::too_many_arguments)]
fn neighbor_solicit(
    ctx: &Context<'_>,
    table: &MappingTable,
    now_ms: u64,
    frame: &mut Frame<'_>,
    src: Ipv6Addr,
    hop_limit: u8,
    l4_at: usize,
    ip_end: usize,
    counters: &mut Counters,
) -> Verdict {
    let guest = ctx.guest;
    let Ok(ns) = Icmpv6Packet::new_checked(&frame.data()[l4_at..ip_end]) else {
        return Verdict::Drop(NdInvalid);
    };
    let dst = Ipv6Packet::new_unchecked(&frame.data()[ETH_LEN..]).dst_addr();
    if hop_limit != 255 || ns.code() != 0 || !ns.verify_checksum(&src, &dst) {
        return Verdict::Drop(NdInvalid);
    }
    if src.is_unspecified() {
        return Verdict::Drop(NdDad);
    }
    let link_local = (src.segments()[0] & 0xffc0) == 0xfe80;
    if !link_local {
        if let Err(reason) = check_source_v6(ctx, src) {
            return Verdict::Drop(reason);
        }
    }
    if let Some(Err(reason)) = ns.source_lladdr().map(|mac| check_source_mac(ctx, mac)) {
        return Verdict::Drop(reason);
    }
    let target = ns.target_addr();
    let (answer, router) = if ctx.gateway.ipv6 == Some(target) {
        (ctx.gateway.mac, true)
    } else if guest.ipv6.contains(&target) {
        return Verdict::Drop(NdUnknownTarget);
    } else {
        let lookup = table.lookup_v6(guest.vni, target, now_ms);
        match resolve(lookup, NdUnknownTarget) {
            Ok(Route::Mapped(entry)) => (entry.overlay_mac, false),
            Ok(_) => return miss_key(ctx, IpAddr::V6(target)),
            Err(reason) => return Verdict::Drop(reason),
        }
    };
    if frame.set_bounds(frame.start(), NA_FRAME_LEN).is_err() {
        return Verdict::Drop(NoHeadroom);
    }
    let data = frame.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *data);
    eth.set_dst_addr(guest.mac);
    eth.set_src_addr(answer);
    eth.set_ethertype(EtherType::IPV6);
    let repr = Ipv6Repr {
        src_addr: target,
        dst_addr: src,
        next_header: IpProtocol::IPV6_ICMP,
        payload_len: 32,
        hop_limit: 255,
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut data[ETH_LEN..]));
    let mut na = Icmpv6Packet::new_unchecked(&mut data[ETH_LEN + 40..]);
    na.set_msg_type(icmpv6::NEIGHBOR_ADVERT);
    na.set_code(0);
    na.set_na_flags(router, true, true);
    na.set_target_addr(target);
    na.set_target_lladdr_option(answer);
    na.fill_checksum(&target, &src);
    counters.nd_replies += 1;
    Verdict::ToGuest
}

/// The gateway answers ICMP echo requests (so `ping <gateway>` works) and nothing else.
fn gateway_echo_v4(
    ctx: &Context<'_>,
    frame: &mut Frame<'_>,
    icmp_type: Option<u8>,
    counters: &mut Counters,
) -> Verdict {
    if icmp_type != Some(icmpv4::ECHO_REQUEST) {
        return Verdict::Drop(ToGateway);
    }
    let data = frame.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut data[ETH_LEN..]);
    if ip.is_fragment() {
        return Verdict::Drop(ToGateway);
    }
    let header_len = ip.header_len();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(64);
    ip.fill_checksum();
    let Ok(mut icmp) = Icmpv4Packet::new_checked(&mut data[ETH_LEN + header_len..]) else {
        return Verdict::Drop(GuestMalformed);
    };
    if icmp.code() != 0 {
        return Verdict::Drop(ToGateway);
    }
    let old = icmp.checksum();
    icmp.set_msg_type(icmpv4::ECHO_REPLY);
    icmp.set_checksum(checksum::update_u16(
        old,
        u16::from(icmpv4::ECHO_REQUEST) << 8,
        0,
    ));
    reply_ethernet(data, ctx, EtherType::IPV4);
    counters.gateway_echo_replies += 1;
    Verdict::ToGuest
}

fn gateway_echo_v6(
    ctx: &Context<'_>,
    frame: &mut Frame<'_>,
    icmp_type: Option<u8>,
    l4_at: usize,
    counters: &mut Counters,
) -> Verdict {
    if icmp_type != Some(icmpv6::ECHO_REQUEST) {
        return Verdict::Drop(ToGateway);
    }
    let data = frame.data_mut();
    let mut ip = Ipv6Packet::new_unchecked(&mut data[ETH_LEN..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_hop_limit(64);
    let Ok(mut icmp) = Icmpv6Packet::new_checked(&mut data[l4_at..]) else {
        return Verdict::Drop(GuestMalformed);
    };
    if icmp.code() != 0 {
        return Verdict::Drop(ToGateway);
    }
    // Swapping source and destination leaves the pseudo-header sum unchanged.
    let old = icmp.checksum();
    icmp.set_msg_type(icmpv6::ECHO_REPLY);
    icmp.set_checksum(checksum::update_u16(
        old,
        u16::from(icmpv6::ECHO_REQUEST) << 8,
        u16::from(icmpv6::ECHO_REPLY) << 8,
    ));
    reply_ethernet(data, ctx, EtherType::IPV6);
    counters.gateway_echo_replies += 1;
    Verdict::ToGuest
}
