// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xvpc_guest_fast: the guest-facing port with the XDP fast path (dataplane.fast_path = "xdp").
 *
 * The common case is finished here, as the Rust egress fast path (dataplane/core/src/egress.rs,
 * fast_target) finishes it: an untagged unicast IPv4 (no options, not a fragment) or IPv6 (no
 * extension headers) TCP or UDP packet from the guest's MAC and one of its addresses, to a
 * destination with a live mapping, that fits the fabric MTU once encapsulated. Its inner
 * destination MAC is rewritten, the Ethernet padding trimmed, the outer Ethernet/IP/UDP/VXLAN
 * headers written into the headroom with the same bytes the Rust pipeline writes
 * (dataplane/core/src/table/mod.rs, write_outer), and it is redirected to the fabric port.
 *
 * Frames from a spoofed MAC, or from a spoofed address in a packet the workers would judge
 * the same way, are dropped with the worker's drop reason. Everything else goes to the
 * AF_XDP socket of its queue exactly as xvpc_guest sends it, and is dropped when there is
 * none: a guest frame is never passed to the host's stack.
 */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>

#include "xvpc_xdp.h"

#define ETH_LEN 14
#define OUTER_V4_LEN (14 + 20 + 8 + 8)
#define OUTER_V6_LEN (14 + 40 + 8 + 8)
#define OUTER_TTL 64
/* The largest inner frame taken: what one page holds in driver-mode XDP. Larger frames
 * (jumbo fabrics) go to the workers; it also bounds the checksum loop for the verifier. */
#define FAST_MAX_FRAME 3520
#define CSUM_MAX_WORDS ((FAST_MAX_FRAME + 16) / 4)

volatile const struct xvpc_fast_cfg cfg = {};

/* Shared with xvpc_guest (same indices): the counters survive a switch of tier. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GUEST_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FAST_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} fast_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVPC_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* The loader sets max_entries from its capacity. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct xvpc_map_key);
	__type(value, struct xvpc_map_val);
} mappings SEC(".maps");

/* Slot 0: the generation of the live entries of `mappings` (see struct xvpc_map_val). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} generation SEC(".maps");

/* Slot 0: the fabric port. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} tx_port SEC(".maps");

enum decision { TO_WORKERS, FAST, DROP };

struct target {
	struct xvpc_map_val *m;
	__u32 ip_len;
	__u32 frame_len; /* as received, padding included */
	__u32 hash;
	__u32 reason; /* DROP only */
};

static __always_inline __u64 mix(__u64 h, __u64 v)
{
	h = (h ^ v) * 0x9E3779B97F4A7C15ULL;
	return (h << 31) | (h >> 33);
}

/* flow_hash_bits of dataplane/core/src/pipeline.rs; an address as a 128-bit big-endian number
 * split in (low, high) 64-bit halves, IPv4 in the low 32 bits. */
static __always_inline __u32 flow_hash(__u64 src_lo, __u64 src_hi, __u64 dst_lo, __u64 dst_hi,
				       __u8 protocol, __u32 ports)
{
	__u64 h = mix(0x517CC1B727220AULL, src_lo);

	h = mix(h, src_hi);
	h = mix(h, dst_lo);
	h = mix(h, dst_hi);
	h = mix(h, ((__u64)protocol << 32) | ports);
	return (__u32)(h ^ (h >> 32));
}

static __always_inline __u64 be64_at(const void *p)
{
	__u64 v;

	__builtin_memcpy(&v, p, 8);
	return bpf_be64_to_cpu(v);
}

static __always_inline int mac_eq(const __u8 *a, const volatile __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

static __always_inline int guest_has_v4(__u32 a)
{
	for (int i = 0; i < XVPC_FAST_MAX_V4; i++)
		if (i < cfg.n_v4 && cfg.guest_v4[i] == a)
			return 1;
	return 0;
}

static __always_inline int v6_eq(const __u32 *a, const volatile __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int guest_has_v6(const __u32 *a)
{
	for (int i = 0; i < XVPC_FAST_MAX_V6; i++)
		if (i < cfg.n_v6 && v6_eq(a, cfg.guest_v6[i]))
			return 1;
	return 0;
}

/* The live mapping of `key`, or NULL: absent, or left from another generation (a full sync
 * being written, or the remains of one replaced): the workers decide. */
static __always_inline struct xvpc_map_val *live_mapping(struct xvpc_map_key *key)
{
	struct xvpc_map_val *m = bpf_map_lookup_elem(&mappings, key);
	__u32 zero = 0, *gen;

	if (!m)
		return NULL;
	gen = bpf_map_lookup_elem(&generation, &zero);
	if (!gen || m->generation != *gen)
		return NULL;
	return m;
}

static __always_inline enum decision drop_for(struct target *t, __u32 reason)
{
	t->reason = reason;
	return DROP;
}

/* Has the fabric a local address of the mapping's underlay family, and does the packet fit
 * the fabric MTU under that family's outer header? */
static __always_inline int fits(const struct xvpc_map_val *m, __u32 ip_len)
{
	__u32 outer;

	if (m->family == 4) {
		if (!(cfg.flags & XVPC_FAST_SRC_V4))
			return 0;
		outer = OUTER_V4_LEN;
	} else if (m->family == 6) {
		if (!(cfg.flags & XVPC_FAST_SRC_V6))
			return 0;
		outer = OUTER_V6_LEN;
	} else {
		return 0;
	}
	return cfg.fabric_mtu >= outer && ip_len <= cfg.fabric_mtu - outer;
}

static __always_inline enum decision ipv4(void *data, void *data_end, __u32 len,
					  int unicast_mac, struct target *t)
{
	struct iphdr *ip = data + ETH_LEN;
	struct xvpc_map_key key = {};
	__u32 ip_len, ports;

	if ((void *)(ip + 1) > data_end)
		return TO_WORKERS;
	/* Options (IHL > 5), other versions: the workers' parser. */
	if (*(__u8 *)ip != 0x45)
		return TO_WORKERS;
	ip_len = bpf_ntohs(ip->tot_len);
	/* The workers check the group MAC first, and the lengths (Ipv4Packet::check_len) before
	 * the source: only a packet they would judge on its source is judged here. */
	if (!unicast_mac || ip_len < 20 || ETH_LEN + ip_len > len)
		return TO_WORKERS;
	if (!guest_has_v4(ip->saddr))
		return drop_for(t, XVPC_DROP_SPOOFED_SOURCE_IP);
	if (ip->frag_off & bpf_htons(0x3fff))
		return TO_WORKERS;
	if (ip->daddr == 0xffffffff || (bpf_ntohl(ip->daddr) >> 28) == 0xe)
		return TO_WORKERS;
	if ((cfg.flags & XVPC_FAST_GW_V4) && ip->daddr == cfg.gw_v4)
		return TO_WORKERS;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return TO_WORKERS;
	if (ip_len < 24 || ip_len > FAST_MAX_FRAME - ETH_LEN)
		return TO_WORKERS;
	if ((void *)(ip + 1) + 4 > data_end)
		return TO_WORKERS;
	ports = bpf_ntohl(*(__u32 *)(ip + 1));
	key.vni = cfg.vni;
	key.family = 4;
	key.addr[0] = ip->daddr;
	t->m = live_mapping(&key);
	if (!t->m || !fits(t->m, ip_len))
		return TO_WORKERS;
	t->ip_len = ip_len;
	t->hash = flow_hash(bpf_ntohl(ip->saddr), 0, bpf_ntohl(ip->daddr), 0, ip->protocol, ports);
	return FAST;
}

static __always_inline enum decision ipv6(void *data, void *data_end, __u32 len,
					  int unicast_mac, struct target *t)
{
	struct ipv6hdr *ip6 = data + ETH_LEN;
	struct xvpc_map_key key = {};
	__u32 src[4], dst[4], ip_len, ports;
	__u8 nh;

	if ((void *)(ip6 + 1) > data_end)
		return TO_WORKERS;
	if ((*(__u8 *)ip6 >> 4) != 6)
		return TO_WORKERS;
	__builtin_memcpy(src, &ip6->saddr, 16);
	__builtin_memcpy(dst, &ip6->daddr, 16);
	ip_len = 40 + bpf_ntohs(ip6->payload_len);
	nh = ip6->nexthdr;
	/* Extension headers, ICMPv6 (neighbor discovery among it): the workers. */
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP)
		return TO_WORKERS;
	/* The workers check lengths, the group MAC and a group destination before the source. */
	if (ETH_LEN + ip_len > len || !unicast_mac || ip6->daddr.in6_u.u6_addr8[0] == 0xff)
		return TO_WORKERS;
	if (!guest_has_v6(src))
		return drop_for(t, XVPC_DROP_SPOOFED_SOURCE_IP);
	if ((cfg.flags & XVPC_FAST_GW_V6) && v6_eq(dst, cfg.gw_v6))
		return TO_WORKERS;
	if (ip_len < 44 || ip_len > FAST_MAX_FRAME - ETH_LEN)
		return TO_WORKERS;
	if ((void *)(ip6 + 1) + 4 > data_end)
		return TO_WORKERS;
	ports = bpf_ntohl(*(__u32 *)(ip6 + 1));
	key.vni = cfg.vni;
	key.family = 6;
	__builtin_memcpy(key.addr, dst, 16);
	t->m = live_mapping(&key);
	if (!t->m || !fits(t->m, ip_len))
		return TO_WORKERS;
	t->ip_len = ip_len;
	t->hash = flow_hash(be64_at(&ip6->saddr.in6_u.u6_addr8[8]), be64_at(&ip6->saddr),
			    be64_at(&ip6->daddr.in6_u.u6_addr8[8]), be64_at(&ip6->daddr), nh, ports);
	return FAST;
}

static __always_inline enum decision classify(struct xdp_md *ctx, struct target *t)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 len = data_end - data;
	int unicast_mac;

	if ((void *)(eth + 1) > data_end)
		return TO_WORKERS;
	t->frame_len = len;
	/* The workers count tagged frames before they look at the source MAC. */
	if (eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD))
		return TO_WORKERS;
	if (!mac_eq(eth->h_source, cfg.guest_mac))
		return drop_for(t, XVPC_DROP_SPOOFED_SOURCE_MAC);
	unicast_mac = !(eth->h_dest[0] & 1);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return ipv4(data, data_end, len, unicast_mac, t);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return ipv6(data, data_end, len, unicast_mac, t);
	return TO_WORKERS;
}

static __always_inline __u16 fold(__u64 acc)
{
	acc = (acc & 0xffffffff) + (acc >> 32);
	acc = (acc & 0xffffffff) + (acc >> 32);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return (__u16)acc;
}

static __always_inline void write_eth(struct ethhdr *eth, __u16 proto)
{
	for (int i = 0; i < 6; i++) {
		eth->h_dest[i] = cfg.next_hop_mac[i];
		eth->h_source[i] = cfg.local_mac[i];
	}
	eth->h_proto = bpf_htons(proto);
}

/* UDP (checksum 0) and VXLAN (I flag, the VNI): 16 bytes. */
static __always_inline void write_udp_vxlan(__u8 *p, __u16 src_port, __u16 udp_len)
{
	__u32 vni = cfg.vni;

	*(__u16 *)p = bpf_htons(src_port);
	*(__u16 *)(p + 2) = cfg.vxlan_port;
	*(__u16 *)(p + 4) = bpf_htons(udp_len);
	*(__u16 *)(p + 6) = 0;
	p[8] = 0x08;
	p[9] = 0;
	p[10] = 0;
	p[11] = 0;
	p[12] = vni >> 16;
	p[13] = vni >> 8;
	p[14] = vni;
	p[15] = 0;
}

/* Trims the padding, prepends and writes the outer headers. 0 when the frame may go to the
 * fabric; -1 when the headroom was short (nothing changed); -2 when it was changed and then
 * could not be finished. */
static __always_inline int encapsulate(struct xdp_md *ctx, struct target *t)
{
	__u32 family = t->m->family;
	__u32 outer = family == 4 ? OUTER_V4_LEN : OUTER_V6_LEN;
	__u32 inner_len = ETH_LEN + t->ip_len;
	__u16 udp_len = inner_len + 16;
	__u16 src_port = 0xC000 | (t->hash & 0x3FFF);
	__u8 mac[6], under[16];
	void *data, *data_end;
	__u32 tail = t->frame_len - inner_len; /* classify: inner_len <= frame_len */

	/* Copied out: the map value pointer is not trusted across the helpers below. */
	__builtin_memcpy(mac, t->m->mac, 6);
	__builtin_memcpy(under, t->m->underlay, 16);

	if (bpf_xdp_adjust_head(ctx, -(int)outer))
		return -1;
	/* Drop Ethernet padding: the fabric carries exactly the IP packet. */
	if (tail > 0 && bpf_xdp_adjust_tail(ctx, -(int)tail))
		return -2;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;

	if (family == 4) {
		struct iphdr *ip;
		__u8 *inner;
		__u64 acc = 0;

		if (data + OUTER_V4_LEN + ETH_LEN > data_end)
			return -2;
		inner = data + OUTER_V4_LEN;
		__builtin_memcpy(inner, mac, 6);
		write_eth(data, ETH_P_IP);
		ip = data + ETH_LEN;
		*(__u8 *)ip = 0x45;
		ip->tos = 0;
		ip->tot_len = bpf_htons(udp_len + 20);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000); /* DF: never fragmented on the fabric */
		ip->ttl = OUTER_TTL;
		ip->protocol = IPPROTO_UDP;
		ip->check = 0;
		ip->saddr = cfg.src_v4;
		__builtin_memcpy(&ip->daddr, under, 4);
		for (int i = 0; i < 10; i++)
			acc += ((__u16 *)ip)[i];
		ip->check = ~fold(acc);
		write_udp_vxlan((__u8 *)(ip + 1), src_port, udp_len);
		return 0;
	}

	struct ipv6hdr *ip6;
	__u8 *inner, *p;
	__u64 acc = 0;
	__u16 sum;

	if (data + OUTER_V6_LEN + ETH_LEN > data_end)
		return -2;
	inner = data + OUTER_V6_LEN;
	__builtin_memcpy(inner, mac, 6);
	write_eth(data, ETH_P_IPV6);
	ip6 = data + ETH_LEN;
	*(__u32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(udp_len);
	ip6->nexthdr = IPPROTO_UDP;
	ip6->hop_limit = OUTER_TTL;
	for (int i = 0; i < 4; i++)
		ip6->saddr.in6_u.u6_addr32[i] = cfg.src_v6[i];
	__builtin_memcpy(&ip6->daddr, under, 16);
	p = (__u8 *)(ip6 + 1);
	write_udp_vxlan(p, src_port, udp_len);
	if (cfg.flags & XVPC_FAST_UDP6_ZERO)
		return 0; /* RFC 6935: written as 0 */

	/* The pseudo-header, then UDP, VXLAN and the inner frame to the end of the packet,
	 * summed as stored (RFC 1071: byte order does not matter until the fold). */
	for (int i = 0; i < 4; i++)
		acc += (__u64)cfg.src_v6[i] + ip6->daddr.in6_u.u6_addr32[i];
	acc += bpf_htons(IPPROTO_UDP) + bpf_htons(udp_len);
	for (int i = 0; i < CSUM_MAX_WORDS; i++) {
		if ((void *)(p + 4) > data_end)
			break;
		acc += *(__u32 *)p;
		p += 4;
	}
	if ((void *)(p + 2) <= data_end) {
		acc += *(__u16 *)p;
		p += 2;
	}
	if ((void *)(p + 1) <= data_end)
		acc += *p; /* the odd last byte is the high byte of a word padded with zero */
	sum = ~fold(acc);
	if ((void *)(ip6 + 1) + 8 > data_end)
		return -2;
	*(__u16 *)((__u8 *)(ip6 + 1) + 6) = sum ? sum : 0xffff;
	return 0;
}

static __always_inline int to_workers(struct xdp_md *ctx)
{
	/* The low bits of the flags are the action when the slot is empty. */
	long act = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_DROP);

	if (act == XDP_REDIRECT) {
		xvpc_count(&counters, GUEST_REDIRECTED);
		return XDP_REDIRECT;
	}
	xvpc_count(&counters, GUEST_DROPPED_NO_SOCKET);
	return XDP_DROP;
}

SEC("xdp")
int xvpc_guest_fast(struct xdp_md *ctx)
{
	struct target t = {};
	__u32 zero = 0;
	__u32 queue = ctx->rx_queue_index;
	int r;

	/* Fail closed: with no dataplane there is no AF_XDP socket on this queue (the kernel
	 * removes a dead process's sockets from the map), and then this tier forwards nothing
	 * either, even from its pinned table: to_workers drops and counts it. */
	if (!bpf_map_lookup_elem(&xsks_map, &queue))
		return to_workers(ctx);

	switch (classify(ctx, &t)) {
	case DROP:
		xvpc_count(&drops, t.reason);
		return XDP_DROP;
	case TO_WORKERS:
		return to_workers(ctx);
	case FAST:
		break;
	}
	/* No fabric port registered (yet): the workers send it. */
	if (!bpf_map_lookup_elem(&tx_port, &zero))
		return to_workers(ctx);
	r = encapsulate(ctx, &t);
	if (r == -1)
		return to_workers(ctx);
	if (r == 0 && bpf_redirect_map(&tx_port, 0, 0) == XDP_REDIRECT) {
		__u32 bytes_idx = FAST_EGRESS_BYTES;
		__u64 *bytes = bpf_map_lookup_elem(&fast_counters, &bytes_idx);

		if (bytes)
			*bytes += ctx->data_end - ctx->data;
		xvpc_count(&fast_counters, FAST_ENCAPSULATED);
		return XDP_REDIRECT;
	}
	xvpc_count(&fast_counters, FAST_ABORTED);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
