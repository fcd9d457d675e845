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
use crate::table::{Lookup, MappingTable};
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
    counters.fabric_rx_packets += 1;
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
    let checksum_ok = match (outer.src, data[ETH_LEN..].first()) {
        (IpAddr::V4(src), _) => {
            let dst = Ipv4Packet::new_unchecked(&data[ETH_LEN..]).dst_addr();
            udp.checksum() == 0 || udp.verify_checksum_v4(src, dst)
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
