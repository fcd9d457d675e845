// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xvpc_fabric: attached to the fabric (underlay) port.
 *
 * Steers VXLAN (UDP to the configured port) addressed to one of our underlay addresses to
 * the AF_XDP socket of the RX queue; everything else goes to the host kernel stack
 * (XDP_PASS), so the host's own ARP, ND, ping, SSH and management traffic keep working.
 * Frames with truncated or invalid headers are passed too (and counted as malformed): only
 * traffic proven to be VXLAN for us is taken away from the kernel, which then applies its
 * own checks and counters to the rest.
 *
 * Configuration is in read-only globals set by the loader before the program is loaded, so
 * the verifier sees constants and the per-packet path needs no map lookup. Addresses and
 * port are in network byte order.
 */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#include "xvpc_xdp.h"

volatile const __u32 cfg_flags = 0;
volatile const __u32 cfg_underlay_v4 = 0;
volatile const __u32 cfg_underlay_v6[4] = {0, 0, 0, 0};
volatile const __u16 cfg_vxlan_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FABRIC_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Verdicts of the parser. */
enum verdict { NOT_OURS, OURS, MALFORMED };

static __always_inline int pass(__u32 counter)
{
	xvpc_count(&counters, counter);
	return XDP_PASS;
}

static __always_inline enum verdict udp_to_vxlan_port(void *udp_start, void *data_end)
{
	struct udphdr *udp = udp_start;

	if ((void *)(udp + 1) > data_end)
		return MALFORMED;
	return udp->dest == cfg_vxlan_port ? OURS : NOT_OURS;
}

static __always_inline enum verdict parse_ipv4(void *l3, void *data_end)
{
	struct iphdr *ip = l3;
	__u32 ihl_bytes;

	if ((void *)(ip + 1) > data_end)
		return MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return MALFORMED;
	if (!(cfg_flags & XVPC_CFG_V4) || ip->protocol != IPPROTO_UDP ||
	    ip->daddr != cfg_underlay_v4)
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
	if (!(cfg_flags & XVPC_CFG_V6) || ip6->nexthdr != IPPROTO_UDP)
		return NOT_OURS;
	if (ip6->daddr.in6_u.u6_addr32[0] != cfg_underlay_v6[0] ||
	    ip6->daddr.in6_u.u6_addr32[1] != cfg_underlay_v6[1] ||
	    ip6->daddr.in6_u.u6_addr32[2] != cfg_underlay_v6[2] ||
	    ip6->daddr.in6_u.u6_addr32[3] != cfg_underlay_v6[3])
		return NOT_OURS;
	return udp_to_vxlan_port(ip6 + 1, data_end);
}

SEC("xdp")
int xvpc_fabric(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	enum verdict v;
	long act;

	if ((void *)(eth + 1) > data_end)
		return pass(FABRIC_MALFORMED);

	if (eth->h_proto == bpf_htons(ETH_P_IP))
		v = parse_ipv4(eth + 1, data_end);
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		v = parse_ipv6(eth + 1, data_end);
	else
		v = NOT_OURS; /* ARP, VLAN-tagged, LLDP, ...: the host's business */

	if (v == MALFORMED)
		return pass(FABRIC_MALFORMED);
	if (v == NOT_OURS)
		return pass(FABRIC_PASSED);

	act = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_DROP);
	if (act == XDP_REDIRECT) {
		xvpc_count(&counters, FABRIC_STEERED);
		return XDP_REDIRECT;
	}
	/* VXLAN for us while the dataplane has no socket on this queue: the kernel has no
	 * business with it either (it would answer with ICMP port unreachable). */
	xvpc_count(&counters, FABRIC_DROPPED_NO_SOCKET);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
