/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The fabric port's steering parser, shared by xvpc_fabric and xvpc_fabric_fast: is this frame
 * VXLAN (UDP to our port) addressed to one of our underlay addresses? Both programs take the
 * same frames from the kernel; only where their configuration lives differs, so the includer
 * defines, before including this file:
 *   STEER_V4_ON, STEER_V6_ON   whether an IPv4 / IPv6 underlay address is configured
 *   STEER_UNDERLAY_V4          our IPv4 underlay address (network order)
 *   STEER_UNDERLAY_V6          our IPv6 underlay address, 4 x __u32 (network order)
 *   STEER_VXLAN_PORT           the VXLAN UDP port (network order)
 */
#ifndef XVPC_FABRIC_STEER_H
#define XVPC_FABRIC_STEER_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

/* Verdicts of the parser. */
enum verdict { NOT_OURS, OURS, MALFORMED };

static __always_inline enum verdict udp_to_vxlan_port(void *udp_start, void *data_end)
{
	struct udphdr *udp = udp_start;

	if ((void *)(udp + 1) > data_end)
		return MALFORMED;
	return udp->dest == STEER_VXLAN_PORT ? OURS : NOT_OURS;
}

static __always_inline enum verdict parse_ipv4(void *l3, void *data_end)
{
	struct iphdr *ip = l3;
	__u32 ihl_bytes;

	if ((void *)(ip + 1) > data_end)
		return MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return MALFORMED;
	if (!(STEER_V4_ON) || ip->protocol != IPPROTO_UDP || ip->daddr != STEER_UNDERLAY_V4)
		return NOT_OURS;
	/* Fragments (MF set or a non-zero offset) are reassembled by the kernel. */
	if (ip->frag_off & bpf_htons(0x3fff))
		return NOT_OURS;
	ihl_bytes = (__u32)ip->ihl * 4; /* 20..60: bounded for the verifier */
	return udp_to_vxlan_port(l3 + ihl_bytes, data_end);
}

static __always_inline enum verdict parse_ipv6(void *l3, void *data_end)
{
	struct ipv6hdr *ip6 = l3;

	if ((void *)(ip6 + 1) > data_end)
		return MALFORMED;
	if (ip6->version != 6)
		return MALFORMED;
	/* Fixed header only: extension headers are not VXLAN we steer. */
	if (!(STEER_V6_ON) || ip6->nexthdr != IPPROTO_UDP)
		return NOT_OURS;
	if (ip6->daddr.in6_u.u6_addr32[0] != STEER_UNDERLAY_V6[0] ||
	    ip6->daddr.in6_u.u6_addr32[1] != STEER_UNDERLAY_V6[1] ||
	    ip6->daddr.in6_u.u6_addr32[2] != STEER_UNDERLAY_V6[2] ||
	    ip6->daddr.in6_u.u6_addr32[3] != STEER_UNDERLAY_V6[3])
		return NOT_OURS;
	return udp_to_vxlan_port(ip6 + 1, data_end);
}

/* The frame from its Ethernet header on: MALFORMED also for a truncated Ethernet header;
 * NOT_OURS for ARP, VLAN-tagged, LLDP, ...: the host's business. */
static __always_inline enum verdict steer_frame(void *data, void *data_end)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return MALFORMED;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(eth + 1, data_end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(eth + 1, data_end);
	return NOT_OURS;
}

#endif
