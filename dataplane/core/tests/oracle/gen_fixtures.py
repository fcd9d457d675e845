#!/usr/bin/python3
"""Independent oracle for the xvpc egress/ingress pipelines.

Builds every fixture frame -- inputs AND expected outputs -- with scapy, from the RFCs
(RFC 7348 VXLAN, RFC 826 ARP, RFC 4861 neighbor discovery, RFC 792/1191/1812 ICMP,
RFC 4443 ICMPv6, RFC 8200 IPv6), never from our Rust code. The only piece taken from our
code is the outer UDP source port, a documented function of the inner 5-tuple
(`flow_hash`/`flow_source_port` in dataplane/core/src/pipeline.rs), reimplemented below.

Usage (Debian's interpreter, which has python3-scapy):
    /usr/bin/python3 dataplane/core/tests/oracle/gen_fixtures.py          # write the JSON
    /usr/bin/python3 dataplane/core/tests/oracle/gen_fixtures.py --check  # CI: fail on drift
"""

import ipaddress
import json
import os
import struct
import sys

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Dot1Q, Dot1AD, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "pipeline.json"))

# ---------------------------------------------------------------- the shared context
VNI = 100
GUEST_MAC = "02:00:00:00:01:01"
GUEST4 = "198.18.10.2"
GUEST6 = "2001:2:0:10::2"
GUEST_MTU = 1500
GW_MAC = "02:00:00:00:00:01"
GW4 = "198.18.10.1"
GW6 = "2001:2:0:10::1"
UNDERLAY4 = "198.18.0.2"
UNDERLAY6 = "2001:2::2"
LOCAL_MAC = "02:00:00:00:0f:02"
NEXT_HOP_MAC = "02:00:00:00:0f:01"
VXLAN_PORT = 4789
FABRIC_MTU = 1500
NOW_MS = 1000
EXPIRES_MS = 61000

REMOTE4_U = "198.18.0.1"  # IPv4 underlay of the host holding .3 / ::3
REMOTE6_U = "2001:2::1"  # IPv6 underlay of the host holding .4 / ::4
MAC3 = "02:00:00:00:02:02"
MAC4 = "02:00:00:00:02:04"
MAPPED = {
    "198.18.10.3": (REMOTE4_U, MAC3),
    "2001:2:0:10::3": (REMOTE4_U, MAC3),
    "198.18.10.4": (REMOTE6_U, MAC4),
    "2001:2:0:10::4": (REMOTE6_U, MAC4),
}
NEGATIVE = ["198.18.10.9", "2001:2:0:10::9"]
PENDING = ["198.18.10.8"]
OTHER_MAC = "02:00:00:00:66:66"
LL_GUEST = "fe80::1"

OUTER_V4 = 50
OUTER_V6 = 70

# ---------------------------------------------------------------- flow hash (pipeline.rs)
M64 = (1 << 64) - 1


def _mix(h, v):
    x = ((h ^ v) * 0x9E3779B97F4A7C15) & M64
    return ((x << 31) | (x >> 33)) & M64


def _words(ip):
    a = ipaddress.ip_address(ip)
    v = int(a)
    if a.version == 4:
        return v, 0
    return v & M64, v >> 64


def flow_hash(src, dst, proto, ports):
    s0, s1 = _words(src)
    d0, d1 = _words(dst)
    h = _mix(0x517CC1B727220A, s0)
    h = _mix(h, s1)
    h = _mix(h, d0)
    h = _mix(h, d1)
    h = _mix(h, (proto << 32) | ports)
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def flow_source_port(h):
    return 0xC000 | (h & 0x3FFF)


def inner_flow(pkt):
    """The 5-tuple of an inner frame as RFC 7348 section 5 suggests hashing it: ports are
    zero for ICMP and for every fragment (all fragments of a datagram take one path)."""
    if IP in pkt:
        ip = pkt[IP]
        frag = ip.frag != 0 or (ip.flags & 1) != 0
        src, dst, proto = ip.src, ip.dst, ip.proto
        l4 = bytes(ip.payload)
    else:
        ip6 = pkt[IPv6]
        src, dst = ip6.src, ip6.dst
        frag = IPv6ExtHdrFragment in pkt and (
            pkt[IPv6ExtHdrFragment].offset != 0 or pkt[IPv6ExtHdrFragment].m != 0
        )
        layer = ip6.payload
        while isinstance(layer, (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)):
            proto = layer.nh
            last = layer
            layer = layer.payload
        if layer is ip6.payload:
            proto = ip6.nh
        else:
            proto = last.nh
        l4 = bytes(layer)
    ports = 0
    if not frag and proto in (6, 17, 132) and len(l4) >= 4:
        ports = struct.unpack("!I", l4[:4])[0]
    return src, dst, proto, ports


# ---------------------------------------------------------------- builders


def vxlan_header(vni, flags=0x08, reserved1=b"\0\0\0", reserved2=0):
    return struct.pack("!B3s3sB", flags, reserved1, vni.to_bytes(3, "big"), reserved2)


def outer(underlay_dst, payload, sport, src_mac=LOCAL_MAC, dst_mac=NEXT_HOP_MAC, src=None,
          zero_csum6=False):
    """RFC 7348 section 5 outer headers: DF set, TTL 64, UDP checksum 0 over IPv4; IPv6 hop
    limit 64 with a real UDP checksum (RFC 8200 section 8.1), or 0 where the fabric opted in
    (RFC 6935)."""
    if ":" in underlay_dst:
        ip = IPv6(src=src or UNDERLAY6, dst=underlay_dst, hlim=64, tc=0, fl=0)
        udp = UDP(sport=sport, dport=VXLAN_PORT, chksum=0) if zero_csum6 else UDP(sport=sport, dport=VXLAN_PORT)
    else:
        ip = IP(src=src or UNDERLAY4, dst=underlay_dst, ttl=64, id=0, flags="DF", tos=0)
        udp = UDP(sport=sport, dport=VXLAN_PORT, chksum=0)
    return bytes(Ether(dst=dst_mac, src=src_mac) / ip / udp / Raw(payload))


def encapsulated(inner_pkt, dst_ip, zero_csum6=False):
    """What egress must send for `inner_pkt` (a guest frame) to mapped `dst_ip`."""
    underlay, mac = MAPPED[dst_ip]
    rewritten = inner_pkt.copy()
    rewritten[Ether].dst = mac
    inner = bytes(rewritten)
    sport = flow_source_port(flow_hash(*inner_flow(inner_pkt)))
    return outer(underlay, vxlan_header(VNI) + inner, sport, zero_csum6=zero_csum6)


def g4(dst, l4, mac=GW_MAC, src=GUEST4, **ip):
    return Ether(dst=mac, src=GUEST_MAC) / IP(src=src, dst=dst, **ip) / l4


def g6(dst, l4, mac=GW_MAC, src=GUEST6, **ip):
    return Ether(dst=mac, src=GUEST_MAC) / IPv6(src=src, dst=dst, **ip) / l4


def payload(n, seed=0):
    return Raw(bytes((i * 7 + seed) & 0xFF for i in range(n)))


def pad60(b):
    return b + b"\0" * max(0, 60 - len(b))


def solicited_node(addr):
    a = ipaddress.IPv6Address(addr).packed
    sn = ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + a[13:])
    mac = "33:33:ff:%02x:%02x:%02x" % (a[13], a[14], a[15])
    return str(sn), mac


def arp_req(target, spa=GUEST4, sha=GUEST_MAC, eth_src=GUEST_MAC, op=1, dst="ff:ff:ff:ff:ff:ff"):
    return pad60(
        bytes(
            Ether(dst=dst, src=eth_src)
            / ARP(op=op, hwsrc=sha, psrc=spa, hwdst="00:00:00:00:00:00", pdst=target)
        )
    )


def arp_reply(target, answer, sender=GUEST4):
    """RFC 826: swap, op=reply, sender = the answered address and its hardware address."""
    return pad60(
        bytes(
            Ether(dst=GUEST_MAC, src=answer)
            / ARP(op=2, hwsrc=answer, psrc=target, hwdst=GUEST_MAC, pdst=sender)
        )
    )


def ns(target, src=GUEST6, hlim=255, slla=GUEST_MAC, multicast=True, code=0, eth_dst=None):
    sn, sn_mac = solicited_node(target)
    dst = sn if multicast else target
    mac = eth_dst or (sn_mac if multicast else GW_MAC)
    l4 = ICMPv6ND_NS(tgt=target, code=code)
    if slla:
        l4 = l4 / ICMPv6NDOptSrcLLAddr(lladdr=slla)
    return Ether(dst=mac, src=GUEST_MAC) / IPv6(src=src, dst=dst, hlim=hlim) / l4


def na(target, answer, router, dst=GUEST6):
    """RFC 4861 7.2.4: solicited (S), override (O), router (R) for the gateway, a target
    link-layer address option, hop limit 255, sent to the solicitation's source."""
    return bytes(
        Ether(dst=GUEST_MAC, src=answer)
        / IPv6(src=target, dst=dst, hlim=255)
        / ICMPv6ND_NA(R=int(router), S=1, O=1, tgt=target)
        / ICMPv6NDOptDstLLAddr(lladdr=answer)
    )


def frag_needed(orig_ip_bytes, mtu):
    """RFC 1191 / RFC 792 type 3 code 4 with the next-hop MTU, from the gateway, quoting as
    much of the original datagram as fits in 576 bytes (RFC 1812 4.3.2.3)."""
    quote = orig_ip_bytes[: 576 - 28]
    return bytes(
        Ether(dst=GUEST_MAC, src=GW_MAC)
        / IP(src=GW4, dst=GUEST4, ttl=64, id=0, flags=0, tos=0)
        / ICMP(type=3, code=4, nexthopmtu=mtu)
        / Raw(quote)
    )


def packet_too_big(orig_ip_bytes, mtu):
    """RFC 4443 3.2, quoting as much as fits in 1280 bytes (RFC 4443 2.4(c))."""
    quote = orig_ip_bytes[: 1280 - 48]
    return bytes(
        Ether(dst=GUEST_MAC, src=GW_MAC)
        / IPv6(src=GW6, dst=GUEST6, hlim=64)
        / ICMPv6PacketTooBig(mtu=mtu)
        / Raw(quote)
    )


def ip_bytes(frame):
    return bytes(frame)[14:]


# ---------------------------------------------------------------- cases

CASES = []


def case(name, direction, description, frame, verdict, output=None, counter=None, path="full",
         **extra):
    """One fixture. `path` is the path the pipeline must take: "fast" for the common shape
    every check of the policy passes (docs/ARCHITECTURE.md, "Policy"), "full" otherwise."""
    frame = bytes(frame)
    if path not in ("fast", "full"):
        raise ValueError(f"{name}: path {path!r}")
    if counter is None:
        if verdict.startswith("Drop:"):
            counter = "drop:" + verdict[5:]
        elif verdict == "ToFabric":
            counter = "egress_packets"
        elif verdict == "Miss":
            counter = "misses"
        elif verdict == "ToGuest" and direction == "ingress":
            counter = "ingress_packets"
        else:
            raise ValueError(f"{name}: say which counter a locally built reply moves")
    entry = {
        "name": name,
        "direction": direction,
        "description": description,
        "input": frame.hex(),
        "verdict": verdict,
        "counter": counter,
        "path": path,
    }
    if output is not None:
        entry["output"] = bytes(output).hex()
    entry.update(extra)
    if any(c["name"] == name for c in CASES):
        raise ValueError(f"duplicate case {name}")
    CASES.append(entry)


def flow_path(name):
    """The fast path's shape carries TCP and UDP; ICMP takes the full path."""
    return "full" if name.startswith("icmp") else "fast"


def egress_cases():
    E = "egress"
    mac3, mac4 = MAC3, MAC4

    # ---- encapsulation, every overlay/underlay family combination
    flows = [
        ("udp4_over_v4", g4("198.18.10.3", UDP(sport=5000, dport=53) / payload(100))),
        ("tcp4_over_v4", g4("198.18.10.3", TCP(sport=40000, dport=80, flags="S", seq=1))),
        ("icmp4_over_v4", g4("198.18.10.3", ICMP(type=8, id=7, seq=1) / payload(56))),
        ("udp4_over_v6", g4("198.18.10.4", UDP(sport=5001, dport=4000) / payload(200))),
        ("tcp4_over_v6", g4("198.18.10.4", TCP(sport=40001, dport=443, flags="PA") / payload(300))),
        ("icmp4_over_v6", g4("198.18.10.4", ICMP(type=8, id=9, seq=2) / payload(56))),
        ("udp6_over_v4", g6("2001:2:0:10::3", UDP(sport=5002, dport=53) / payload(100))),
        ("tcp6_over_v4", g6("2001:2:0:10::3", TCP(sport=40002, dport=22, flags="S"))),
        ("icmp6_over_v4", g6("2001:2:0:10::3", ICMPv6EchoRequest(id=3, seq=4, data=b"x" * 56))),
        ("udp6_over_v6", g6("2001:2:0:10::4", UDP(sport=5003, dport=123) / payload(48))),
        ("tcp6_over_v6", g6("2001:2:0:10::4", TCP(sport=40003, dport=80, flags="A") / payload(1000))),
        ("icmp6_over_v6", g6("2001:2:0:10::4", ICMPv6EchoRequest(id=5, seq=6, data=b"y" * 32))),
    ]
    for name, pkt in flows:
        dst = pkt[IP].dst if IP in pkt else pkt[IPv6].dst
        pkt[Ether].dst = GW_MAC
        case(f"egress_{name}", E, f"{name}: encapsulated (RFC 7348) to the mapping of {dst}",
             pkt, "ToFabric", encapsulated(pkt, dst), path=flow_path(name))

    # RFC 6935 zero checksums over IPv6, where the fabric opted in (udp6_zero_checksum_tx).
    for name, pkt in flows:
        if name.endswith("_over_v6"):
            dst = pkt[IP].dst if IP in pkt else pkt[IPv6].dst
            case(f"egress_{name}_zero_csum", E, f"{name}: UDP checksum 0 (RFC 6935 opt-in)",
                 pkt, "ToFabric", encapsulated(pkt, dst, zero_csum6=True), udp6_zero_checksum=True,
                 path=flow_path(name))
    pkt = g4("198.18.10.3", UDP(sport=5000, dport=53) / payload(100))
    case("egress_udp4_over_v4_zero_csum_mode", E, "the IPv6 opt-in leaves IPv4 underlays as they are",
         pkt, "ToFabric", encapsulated(pkt, "198.18.10.3"), udp6_zero_checksum=True, path="fast")

    pkt = g4("198.18.10.3", UDP(sport=7, dport=7) / payload(4))
    case("egress_padded_runt", E, "a 60-byte padded frame: Ethernet padding is not carried",
         pad60(bytes(pkt)), "ToFabric", encapsulated(pkt, "198.18.10.3"), path="fast")
    pkt = g4("198.18.10.3", UDP(sport=9000, dport=9001) / payload(64), options=b"\x01\x01\x01\x00")
    case("egress_ipv4_options", E, "IPv4 with options (IHL 6): ports still hashed",
         pkt, "ToFabric", encapsulated(pkt, "198.18.10.3"))
    pkt = g4("198.18.10.3", UDP(sport=1, dport=2) / payload(64), flags="MF", id=77)
    case("egress_ipv4_first_fragment", E, "first IPv4 fragment: ports excluded from the flow hash",
         pkt, "ToFabric", encapsulated(pkt, "198.18.10.3"))
    pkt = g4("198.18.10.3", Raw(b"\xaa" * 64), frag=185, id=77, proto=17)
    case("egress_ipv4_later_fragment", E, "non-first IPv4 fragment",
         pkt, "ToFabric", encapsulated(pkt, "198.18.10.3"))
    pkt = g6("2001:2:0:10::3", IPv6ExtHdrFragment(m=1, offset=0, id=9) / UDP(sport=1, dport=2) / payload(64))
    case("egress_ipv6_fragment", E, "IPv6 first fragment (fragment header): ports excluded",
         pkt, "ToFabric", encapsulated(pkt, "2001:2:0:10::3"))
    pkt = g6("2001:2:0:10::4", IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(sport=3000, dport=3001) / payload(40))
    case("egress_ipv6_ext_headers", E, "IPv6 hop-by-hop + destination options before UDP",
         pkt, "ToFabric", encapsulated(pkt, "2001:2:0:10::4"))
    pkt = g4("198.18.10.3", UDP(sport=1, dport=2) / payload(1450 - 28), flags="DF")
    case("egress_exactly_fabric_mtu", E, "1450-byte IPv4 + 50 outer = 1500: fits",
         pkt, "ToFabric", encapsulated(pkt, "198.18.10.3"), path="fast")

    # ---- ARP (RFC 826), answered in place
    case("arp_gateway", E, "ARP request for the gateway", arp_req(GW4), "ToGuest",
         arp_reply(GW4, GW_MAC), "arp_replies")
    case("arp_mapped", E, "ARP request for a mapped address (IPv4 underlay)", arp_req("198.18.10.3"),
         "ToGuest", arp_reply("198.18.10.3", mac3), "arp_replies")
    case("arp_mapped_v6_underlay", E, "ARP request for a mapped address (IPv6 underlay)",
         arp_req("198.18.10.4", dst=GW_MAC), "ToGuest", arp_reply("198.18.10.4", mac4), "arp_replies")
    case("arp_unknown", E, "ARP request for an address without mapping: ask the agent",
         arp_req("198.18.10.77"), "Miss", miss_key="198.18.10.77")
    case("arp_negative", E, "ARP request for a known-absent address", arp_req("198.18.10.9"),
         "Drop:arp_unknown_target")
    case("arp_pending", E, "ARP request while the mapping is being asked for (the worker holds it)",
         arp_req("198.18.10.8"), "Miss", miss_key="198.18.10.8")
    case("arp_own_address", E, "ARP request for the guest's own address (not gratuitous)",
         arp_req(GUEST4, spa="198.18.10.2"), "Drop:arp_gratuitous")
    case("arp_gratuitous", E, "gratuitous ARP (sender = target)", arp_req(GUEST4), "Drop:arp_gratuitous")
    case("arp_probe", E, "ARP probe (RFC 5227: sender 0.0.0.0)", arp_req(GUEST4, spa="0.0.0.0"),
         "Drop:arp_gratuitous")
    case("arp_reply_from_guest", E, "ARP reply from the guest", arp_req(GW4, op=2, dst=GW_MAC),
         "Drop:arp_not_request")
    case("arp_spoofed_sender_ip", E, "ARP request with a sender IP that is not the guest's",
         arp_req(GW4, spa="198.18.10.5"), "Drop:spoofed_source_ip")
    case("arp_spoofed_sender_mac", E, "ARP request with a sender MAC that is not the guest's",
         arp_req(GW4, sha=OTHER_MAC), "Drop:spoofed_source_mac")
    case("arp_truncated", E, "ARP header cut short",
         bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC, type=0x0806)) + bytes(ARP(pdst=GW4, psrc=GUEST4, hwsrc=GUEST_MAC))[:20],
         "Drop:guest_malformed")

    # ---- neighbor discovery (RFC 4861)
    case("ns_gateway", E, "NS for the gateway to its solicited-node group", ns(GW6), "ToGuest",
         na(GW6, GW_MAC, True), "nd_replies")
    case("ns_mapped", E, "NS for a mapped address", ns("2001:2:0:10::3"), "ToGuest",
         na("2001:2:0:10::3", mac3, False), "nd_replies")
    case("ns_mapped_v6_underlay", E, "NS for a mapped address (IPv6 underlay)", ns("2001:2:0:10::4"),
         "ToGuest", na("2001:2:0:10::4", mac4, False), "nd_replies")
    case("ns_link_local_source", E, "NS from the guest's link-local address",
         ns(GW6, src=LL_GUEST), "ToGuest", na(GW6, GW_MAC, True, dst=LL_GUEST), "nd_replies")
    case("ns_unicast_no_slla", E, "unicast NS (reachability probe) without an SLLA option",
         ns(GW6, slla=None, multicast=False), "ToGuest", na(GW6, GW_MAC, True), "nd_replies")
    case("ns_unknown", E, "NS for an unmapped address: ask the agent", ns("2001:2:0:10::77"), "Miss",
         miss_key="2001:2:0:10::77")
    case("ns_negative", E, "NS for a known-absent address", ns("2001:2:0:10::9"), "Drop:nd_unknown_target")
    case("ns_own_address", E, "NS for the guest's own address (not DAD)", ns(GUEST6),
         "Drop:nd_unknown_target")
    case("ns_hop_limit", E, "NS with hop limit 64 (RFC 4861 7.1.1: must be 255)", ns(GW6, hlim=64),
         "Drop:nd_invalid")
    case("ns_code", E, "NS with code 1 (RFC 4861 7.1.1: must be 0)", ns(GW6, code=1), "Drop:nd_invalid")
    bad = bytearray(bytes(ns(GW6)))
    bad[56] ^= 0xFF  # ICMPv6 checksum
    case("ns_bad_checksum", E, "NS with a wrong ICMPv6 checksum", bytes(bad), "Drop:nd_invalid")
    case("ns_dad", E, "duplicate address detection (source ::, no SLLA)", ns(GUEST6, src="::", slla=None),
         "Drop:nd_dad")
    case("ns_spoofed_slla", E, "NS whose SLLA option is not the guest's MAC", ns(GW6, slla=OTHER_MAC),
         "Drop:spoofed_source_mac")
    case("ns_spoofed_source", E, "NS from a global address that is not the guest's",
         ns(GW6, src="2001:2:0:10::5"), "Drop:spoofed_source_ip")

    # ---- gateway
    req = g4(GW4, ICMP(type=8, id=0x1234, seq=1) / payload(56), flags="DF", id=4321, ttl=64)
    rep = (Ether(dst=GUEST_MAC, src=GW_MAC) / IP(src=GW4, dst=GUEST4, ttl=64, id=4321, flags="DF")
           / ICMP(type=0, id=0x1234, seq=1) / payload(56))
    case("ping_gateway_v4", E, "echo request to the gateway: RFC 792 echo reply", req, "ToGuest", rep,
         "gateway_echo_replies")
    req = g4(GW4, ICMP(type=8, id=1, seq=9) / payload(8), id=5, ttl=64, options=b"\x01\x01\x01\x00")
    rep = (Ether(dst=GUEST_MAC, src=GW_MAC)
           / IP(src=GW4, dst=GUEST4, ttl=64, id=5, options=b"\x01\x01\x01\x00")
           / ICMP(type=0, id=1, seq=9) / payload(8))
    case("ping_gateway_v4_ip_options", E, "echo request with IPv4 options to the gateway", req, "ToGuest",
         rep, "gateway_echo_replies")
    req = g6(GW6, ICMPv6EchoRequest(id=0x55, seq=2, data=bytes(range(40))), hlim=64)
    rep = (Ether(dst=GUEST_MAC, src=GW_MAC) / IPv6(src=GW6, dst=GUEST6, hlim=64)
           / ICMPv6EchoReply(id=0x55, seq=2, data=bytes(range(40))))
    case("ping_gateway_v6", E, "ICMPv6 echo request to the gateway: RFC 4443 4.2 reply", req, "ToGuest",
         rep, "gateway_echo_replies")
    req = g6(GW6, IPv6ExtHdrDestOpt() / ICMPv6EchoRequest(id=1, seq=1, data=b"z" * 16), hlim=64)
    rep = (Ether(dst=GUEST_MAC, src=GW_MAC) / IPv6(src=GW6, dst=GUEST6, hlim=64) / IPv6ExtHdrDestOpt()
           / ICMPv6EchoReply(id=1, seq=1, data=b"z" * 16))
    case("ping_gateway_v6_ext_header", E, "ICMPv6 echo request with a destination options header",
         req, "ToGuest", rep, "gateway_echo_replies")
    case("udp_to_gateway_v4", E, "UDP to the gateway: not answered", g4(GW4, UDP(sport=1, dport=53) / payload(10)),
         "Drop:to_gateway")
    case("tcp_to_gateway_v6", E, "TCP to the gateway: not answered", g6(GW6, TCP(sport=1, dport=22)),
         "Drop:to_gateway")
    case("icmp_to_gateway_not_echo", E, "ICMP timestamp request to the gateway",
         g4(GW4, ICMP(type=13, ts_ori=0, ts_rx=0, ts_tx=0)), "Drop:to_gateway")

    # ---- too big for the fabric
    big = g4("198.18.10.3", UDP(sport=1, dport=2) / payload(1472 - 28), flags="DF")
    case("too_big_v4_df", E, "1472-byte IPv4 with DF over IPv4 underlay: frag needed, MTU 1450",
         big, "ToGuest", frag_needed(ip_bytes(big), 1450), "icmp_errors")
    big = g4("198.18.10.4", TCP(sport=1, dport=2, flags="A") / payload(1440 - 40), flags="DF")
    case("too_big_v4_df_v6_underlay", E, "1440-byte IPv4 with DF over IPv6 underlay: MTU 1430",
         big, "ToGuest", frag_needed(ip_bytes(big), 1430), "icmp_errors")
    big = g4("198.18.10.3", UDP(sport=1, dport=2) / payload(1472 - 28), flags=0)
    case("too_big_v4_no_df", E, "1472-byte IPv4 without DF: we never fragment", big, "Drop:too_big_no_df")
    big = g4("198.18.10.3", ICMP(type=3, code=1) / payload(1472 - 28), flags="DF")
    case("too_big_icmp_error", E, "oversized ICMP error: no error about an error (RFC 1122)", big,
         "Drop:too_big_icmp_error")
    big = g6("2001:2:0:10::3", UDP(sport=1, dport=2) / payload(1500 - 48))
    case("too_big_v6", E, "1500-byte IPv6 over IPv4 underlay: packet too big, MTU 1450", big, "ToGuest",
         packet_too_big(ip_bytes(big), 1450), "icmp_errors")
    big = g6("2001:2:0:10::4", UDP(sport=1, dport=2) / payload(1440 - 48))
    case("too_big_v6_v6_underlay", E, "1440-byte IPv6 over IPv6 underlay: packet too big, MTU 1430", big,
         "ToGuest", packet_too_big(ip_bytes(big), 1430), "icmp_errors")
    big = g6("2001:2:0:10::3", ICMPv6DestUnreach(code=1) / payload(1500 - 48))
    case("too_big_icmpv6_error", E, "oversized ICMPv6 error: dropped", big, "Drop:too_big_icmp_error")

    # ---- lookups without a mapping
    case("miss_v4", E, "UDP to an unmapped IPv4 address", g4("198.18.10.77", UDP(sport=1, dport=2)),
         "Miss", miss_key="198.18.10.77")
    case("miss_v6", E, "UDP to an unmapped IPv6 address", g6("2001:2:0:10::77", UDP(sport=1, dport=2)),
         "Miss", miss_key="2001:2:0:10::77")
    case("pending_v4", E, "UDP to an address being asked for (the worker holds it)",
         g4("198.18.10.8", UDP(sport=1, dport=2)), "Miss", miss_key="198.18.10.8")
    case("negative_v4", E, "UDP to a known-absent IPv4 address", g4("198.18.10.9", UDP(sport=1, dport=2)),
         "Drop:negative_entry")
    case("negative_v6", E, "TCP to a known-absent IPv6 address", g6("2001:2:0:10::9", TCP(sport=1, dport=2)),
         "Drop:negative_entry")

    # ---- anti-spoofing, groups, malformed
    case("spoofed_mac", E, "source MAC not the guest's",
         Ether(dst=GW_MAC, src=OTHER_MAC) / IP(src=GUEST4, dst="198.18.10.3") / UDP(), "Drop:spoofed_source_mac")
    case("spoofed_ip_v4", E, "IPv4 source not the guest's", g4("198.18.10.3", UDP(), src="198.18.10.5"),
         "Drop:spoofed_source_ip")
    case("spoofed_ip_v6", E, "IPv6 source not the guest's", g6("2001:2:0:10::3", UDP(), src="2001:2:0:10::5"),
         "Drop:spoofed_source_ip")
    case("link_local_unicast_v6", E, "a link-local source is accepted for ND only",
         g6("2001:2:0:10::3", UDP(), src=LL_GUEST), "Drop:spoofed_source_ip")
    case("vlan_tagged", E, "802.1Q-tagged frame",
         Ether(dst=GW_MAC, src=GUEST_MAC) / Dot1Q(vlan=10) / IP(src=GUEST4, dst="198.18.10.3") / UDP(),
         "Drop:guest_vlan_tagged")
    case("qinq_tagged", E, "802.1ad-tagged frame",
         Ether(dst=GW_MAC, src=GUEST_MAC) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP(src=GUEST4, dst="198.18.10.3"),
         "Drop:guest_vlan_tagged")
    case("non_ip_ethertype", E, "local experimental ethertype 0x88b5",
         pad60(bytes(Ether(dst=GW_MAC, src=GUEST_MAC, type=0x88B5) / Raw(b"hello"))), "Drop:unsupported_ethertype")
    case("broadcast_v4", E, "IPv4 limited broadcast (DHCP discover shape)",
         Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src=GUEST4, dst="255.255.255.255") / UDP(sport=68, dport=67),
         "Drop:broadcast")
    case("broadcast_ip_unicast_mac", E, "IPv4 limited broadcast to a unicast MAC",
         g4("255.255.255.255", UDP(sport=1, dport=2)), "Drop:broadcast")
    case("multicast_v4", E, "IPv4 multicast (mDNS)",
         Ether(dst="01:00:5e:00:00:fb", src=GUEST_MAC) / IP(src=GUEST4, dst="224.0.0.251") / UDP(sport=5353, dport=5353),
         "Drop:multicast")
    case("multicast_v6_mld", E, "MLDv2 report",
         Ether(dst="33:33:00:00:00:16", src=GUEST_MAC) / IPv6(src=LL_GUEST, dst="ff02::16", hlim=1) / ICMPv6MLReport2(),
         "Drop:multicast")
    case("multicast_v6_rs", E, "router solicitation to all-routers",
         Ether(dst="33:33:00:00:00:02", src=GUEST_MAC) / IPv6(src=LL_GUEST, dst="ff02::2", hlim=255) / ICMPv6ND_RS(),
         "Drop:multicast")
    case("multicast_v6_unicast_mac", E, "IPv6 multicast destination behind a unicast MAC",
         g6("ff02::1", UDP(sport=1, dport=2)), "Drop:multicast")
    case("truncated_ethernet", E, "10-byte frame", bytes(Ether(dst=GW_MAC, src=GUEST_MAC))[:10],
         "Drop:guest_malformed")
    case("truncated_ipv4", E, "IPv4 header cut at 12 bytes",
         bytes(g4("198.18.10.3", UDP()))[:26], "Drop:guest_malformed")
    case("ipv4_total_len_too_big", E, "IPv4 total length beyond the frame",
         bytes(g4("198.18.10.3", UDP(), len=400)), "Drop:guest_malformed")
    case("truncated_ipv6", E, "IPv6 payload length beyond the frame",
         bytes(g6("2001:2:0:10::3", UDP(), plen=300)), "Drop:guest_malformed")
    case("ipv6_ext_header_overrun", E, "IPv6 destination options header longer than the packet",
         bytes(g6("2001:2:0:10::3", IPv6ExtHdrDestOpt(len=8, autopad=0, options=[]) / Raw(b"\x11\0\0\0\0\0"))),
         "Drop:guest_malformed")

    # ---- buffer space
    pkt = g4("198.18.10.3", UDP(sport=1, dport=2) / payload(20))
    case("no_headroom_encap", E, "no headroom for the outer headers", pkt, "Drop:no_headroom", headroom=0)
    case("no_tailroom_na", E, "NS without SLLA (78 bytes) with no room to grow the 86-byte NA",
         ns(GW6, slla=None, multicast=False), "Drop:no_headroom", tailroom=0)
    big = g4("198.18.10.3", UDP(sport=1, dport=2) / payload(1472 - 28), flags="DF")
    case("no_headroom_frag_needed", E, "no headroom to prepend the ICMP error headers", big,
         "Drop:no_headroom", headroom=0)


def vx(inner, vni=VNI, underlay_src=REMOTE4_U, sport=50000, flags=0x08, r1=b"\0\0\0", r2=0,
       dst=None, chksum=None):
    """A VXLAN frame from the fabric to us."""
    inner = bytes(inner)
    body = vxlan_header(vni, flags, r1, r2) + inner
    if ":" in underlay_src:
        ip = IPv6(src=underlay_src, dst=dst or UNDERLAY6, hlim=64)
    else:
        ip = IP(src=underlay_src, dst=dst or UNDERLAY4, ttl=64, flags="DF")
    udp = UDP(sport=sport, dport=VXLAN_PORT)
    if chksum is not None:
        udp.chksum = chksum
    return bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC) / ip / udp / Raw(body))


def to_guest4(src="198.18.10.3", src_mac=MAC3, dst=GUEST4, dst_mac=GUEST_MAC, n=64):
    return bytes(Ether(dst=dst_mac, src=src_mac) / IP(src=src, dst=dst) / UDP(sport=53, dport=5000) / payload(n))


def to_guest6(src="2001:2:0:10::3", src_mac=MAC3, dst=GUEST6, n=64):
    return bytes(Ether(dst=GUEST_MAC, src=src_mac) / IPv6(src=src, dst=dst) / UDP(sport=53, dport=5000) / payload(n))


def ingress_cases():
    I = "ingress"
    inner = to_guest4()
    case("ingress_v4_zero_csum", I, "VXLAN over IPv4, UDP checksum 0 (RFC 7348)", vx(inner, chksum=0),
         "ToGuest", inner, path="fast")
    case("ingress_v4_with_csum", I, "VXLAN over IPv4 with a correct UDP checksum", vx(inner), "ToGuest", inner, path="fast")
    inner6 = to_guest6()
    case("ingress_v6_inner_v4_underlay", I, "inner IPv6 over IPv4 underlay", vx(inner6, chksum=0),
         "ToGuest", inner6, path="fast")
    inner4b = to_guest4(src="198.18.10.4", src_mac=MAC4, n=1000)
    case("ingress_v4_inner_v6_underlay", I, "inner IPv4 over IPv6 underlay", vx(inner4b, underlay_src=REMOTE6_U),
         "ToGuest", inner4b, path="fast")
    inner6b = to_guest6(src="2001:2:0:10::4", src_mac=MAC4)
    case("ingress_v6_over_v6", I, "inner IPv6 over IPv6 underlay", vx(inner6b, underlay_src=REMOTE6_U),
         "ToGuest", inner6b, path="fast")
    frame = bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC) / IPv6(src=REMOTE6_U, dst=UNDERLAY6, hlim=64)
                  / IPv6ExtHdrDestOpt() / UDP(sport=50000, dport=VXLAN_PORT) / Raw(vxlan_header(VNI) + inner6b))
    case("ingress_v6_ext_header", I, "outer IPv6 with a destination options header", frame, "ToGuest", inner6b)
    case("ingress_reserved_bits", I, "VXLAN reserved bits set: ignored on receipt (RFC 7348 5)",
         vx(inner, flags=0xFF, r1=b"\x12\x34\x56", r2=0x78), "ToGuest", inner, path="fast")
    frame = bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC)
                  / IP(src=REMOTE4_U, dst=UNDERLAY4, options=b"\x01\x01\x01\x00")
                  / UDP(sport=50000, dport=VXLAN_PORT) / Raw(vxlan_header(VNI) + inner))
    case("ingress_outer_ip_options", I, "outer IPv4 with options", frame, "ToGuest", inner)

    bad = bytearray(vx(inner))
    bad[24] ^= 0x01  # outer IPv4 header checksum
    case("ingress_bad_ip_checksum", I, "outer IPv4 header checksum wrong", bytes(bad), "Drop:outer_bad_ip_checksum")
    frame = bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC) / IP(src=REMOTE4_U, dst=UNDERLAY4, flags="MF")
                  / UDP(sport=50000, dport=VXLAN_PORT, chksum=0) / Raw(vxlan_header(VNI) + inner))
    case("ingress_outer_fragment_v4", I, "outer IPv4 first fragment", frame, "Drop:outer_fragment")
    frame = bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC) / IPv6(src=REMOTE6_U, dst=UNDERLAY6)
                  / IPv6ExtHdrFragment(m=1, id=1) / UDP(sport=50000, dport=VXLAN_PORT) / Raw(vxlan_header(VNI) + inner6b))
    case("ingress_outer_fragment_v6", I, "outer IPv6 fragment", frame, "Drop:outer_fragment")
    case("ingress_not_for_us_v4", I, "outer destination is another host", vx(inner, dst="198.18.0.99"),
         "Drop:outer_not_for_us")
    case("ingress_not_for_us_v6", I, "outer IPv6 destination is another host",
         vx(inner6b, underlay_src=REMOTE6_U, dst="2001:2::99"), "Drop:outer_not_for_us")
    frame = bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC) / IP(src=REMOTE4_U, dst=UNDERLAY4)
                  / TCP(sport=50000, dport=VXLAN_PORT) / Raw(vxlan_header(VNI) + inner))
    case("ingress_not_udp", I, "TCP to port 4789", frame, "Drop:outer_not_vxlan")
    frame = bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC) / IP(src=REMOTE4_U, dst=UNDERLAY4)
                  / UDP(sport=50000, dport=8472) / Raw(vxlan_header(VNI) + inner))
    case("ingress_wrong_port", I, "UDP to port 8472 (Linux legacy VXLAN)", frame, "Drop:outer_not_vxlan")
    case("ingress_outer_arp", I, "ARP on the fabric port", arp_req(UNDERLAY4, spa=REMOTE4_U, sha=NEXT_HOP_MAC,
         eth_src=NEXT_HOP_MAC), "Drop:outer_not_vxlan")
    good = vx(inner)
    bad = bytearray(good)
    bad[40] ^= 0x55  # outer UDP checksum
    case("ingress_bad_udp_checksum_v4", I, "wrong non-zero outer UDP checksum over IPv4", bytes(bad),
         "Drop:outer_bad_udp_checksum")
    case("ingress_zero_udp_checksum_v6", I, "zero outer UDP checksum over IPv6 (RFC 8200 8.1)",
         vx(inner6b, underlay_src=REMOTE6_U, chksum=0), "Drop:outer_zero_udp6_checksum")
    case("ingress_zero_udp_checksum_v6_opted_in", I, "zero outer UDP checksum over IPv6, accepted "
         "where the fabric opted in (RFC 6935)", vx(inner6b, underlay_src=REMOTE6_U, chksum=0), "ToGuest",
         inner6b, udp6_zero_checksum=True, path="fast")
    case("ingress_zero_udp_checksum_v6_inner_v4_opted_in", I, "inner IPv4, zero outer UDP checksum "
         "over IPv6, opted in", vx(inner4b, underlay_src=REMOTE6_U, chksum=0), "ToGuest", inner4b,
         udp6_zero_checksum=True, path="fast")
    bad = bytearray(vx(inner6b, underlay_src=REMOTE6_U))
    bad[-1] ^= 0x01  # last payload byte
    case("ingress_bad_udp_checksum_v6", I, "corrupted payload under an IPv6 UDP checksum", bytes(bad),
         "Drop:outer_bad_udp_checksum")
    case("ingress_bad_udp_checksum_v6_opted_in", I, "a non-zero IPv6 UDP checksum is verified even "
         "where zero ones are accepted", bytes(bad), "Drop:outer_bad_udp_checksum", udp6_zero_checksum=True)
    case("ingress_no_i_flag", I, "VXLAN I flag clear", vx(inner, flags=0x00, chksum=0), "Drop:vxlan_no_vni")
    case("ingress_wrong_vni", I, "VNI 101, our guest is in 100", vx(inner, vni=101, chksum=0), "Drop:unknown_vni")
    case("ingress_inner_wrong_mac", I, "inner destination MAC not the guest's",
         vx(to_guest4(dst_mac=OTHER_MAC), chksum=0), "Drop:inner_wrong_destination")
    case("ingress_inner_broadcast_mac", I, "inner broadcast frame",
         vx(to_guest4(dst_mac="ff:ff:ff:ff:ff:ff"), chksum=0), "Drop:inner_wrong_destination")
    case("ingress_inner_wrong_ip", I, "inner destination IP not the guest's",
         vx(to_guest4(dst="198.18.10.50"), chksum=0), "Drop:inner_wrong_destination")
    case("ingress_inner_wrong_ip6", I, "inner IPv6 destination not the guest's",
         vx(to_guest6(dst="2001:2:0:10::50"), chksum=0), "Drop:inner_wrong_destination")
    inner_arp = bytes(Ether(dst=GUEST_MAC, src=MAC3) / ARP(op=1, hwsrc=MAC3, psrc="198.18.10.3", pdst=GUEST4))
    case("ingress_inner_arp", I, "inner ARP", vx(inner_arp, chksum=0), "Drop:inner_not_ip")
    case("ingress_inner_truncated_eth", I, "inner frame of 10 bytes", vx(inner[:10], chksum=0),
         "Drop:inner_malformed")
    case("ingress_inner_truncated_ip", I, "inner IPv4 header cut short", vx(inner[:30], chksum=0),
         "Drop:inner_malformed")
    case("ingress_unknown_source", I, "inner source without a mapping",
         vx(to_guest4(src="198.18.10.77"), chksum=0), "Drop:unknown_source")
    case("ingress_negative_source", I, "inner source known not to exist",
         vx(to_guest4(src="198.18.10.9"), chksum=0), "Drop:unknown_source")
    case("ingress_spoofed_underlay", I, "inner source .3 arriving from another tunnel endpoint",
         vx(inner, underlay_src="198.18.0.5", chksum=0), "Drop:spoofed_underlay")
    case("ingress_spoofed_underlay_family", I, "inner source .3 (IPv4 underlay) arriving over IPv6",
         vx(inner, underlay_src=REMOTE6_U), "Drop:spoofed_underlay")
    case("ingress_inner_mac_mismatch", I, "inner source MAC is not the mapping's",
         vx(to_guest4(src_mac=OTHER_MAC), chksum=0), "Drop:spoofed_underlay")
    case("ingress_truncated_outer", I, "frame ends inside the outer IPv4 header", vx(inner)[:30],
         "Drop:outer_malformed")
    frame = bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC) / IP(src=REMOTE4_U, dst=UNDERLAY4)
                  / UDP(sport=50000, dport=VXLAN_PORT, chksum=0) / Raw(b"\x08\0\0"))
    case("ingress_truncated_vxlan", I, "UDP payload shorter than the VXLAN header", frame, "Drop:outer_malformed")
    frame = bytes(Ether(dst=LOCAL_MAC, src=NEXT_HOP_MAC) / IP(src=REMOTE4_U, dst=UNDERLAY4, len=19)
                  / UDP(sport=50000, dport=VXLAN_PORT, chksum=0) / Raw(vxlan_header(VNI) + inner))
    case("ingress_outer_total_len_short", I, "outer IPv4 total length 19, shorter than its header "
         "(the checksum covers it)", frame, "Drop:outer_malformed")
    frame = bytearray(vx(inner, chksum=0))
    struct.pack_into("!H", frame, 38, len(frame) - 34 + 100)  # UDP length beyond the IP packet
    case("ingress_udp_len_beyond_ip", I, "outer UDP length larger than the IP payload", bytes(frame),
         "Drop:outer_malformed")


def build():
    egress_cases()
    ingress_cases()
    return {
        "comment": "Generated by dataplane/core/tests/oracle/gen_fixtures.py with scapy; do not edit.",
        "context": {
            "now_ms": NOW_MS,
            "guest": {"vni": VNI, "mac": GUEST_MAC, "ipv4": [GUEST4], "ipv6": [GUEST6], "mtu": GUEST_MTU},
            "gateway": {"mac": GW_MAC, "ipv4": GW4, "ipv6": GW6},
            "fabric": {
                "underlay_ipv4": UNDERLAY4,
                "underlay_ipv6": UNDERLAY6,
                "local_mac": LOCAL_MAC,
                "next_hop_mac": NEXT_HOP_MAC,
                "vxlan_port": VXLAN_PORT,
                "mtu": FABRIC_MTU,
            },
            "mappings": [
                {"overlay_ip": ip, "underlay_ip": u, "overlay_mac": m} for ip, (u, m) in MAPPED.items()
            ],
            "negative": [{"overlay_ip": ip, "expires_at_ms": EXPIRES_MS} for ip in NEGATIVE],
            "pending": [{"overlay_ip": ip, "expires_at_ms": EXPIRES_MS} for ip in PENDING],
        },
        "cases": CASES,
    }


def main():
    text = json.dumps(build(), indent=1) + "\n"
    if "--check" in sys.argv[1:]:
        try:
            with open(OUT) as f:
                committed = f.read()
        except FileNotFoundError:
            sys.exit(f"{OUT} is missing: run {sys.argv[0]} to generate it")
        if committed != text:
            sys.exit(f"{OUT} is stale: rerun {sys.argv[0]} and commit the result")
        print(f"{OUT}: up to date ({len(CASES)} cases)")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}: {len(CASES)} cases")


if __name__ == "__main__":
    main()
