// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xvpc_fabric_fast: the fabric port with the XDP fast path (dataplane.fast_path = "xdp").
 *
 * Every decision of xvpc_fabric (ebpf/fabric.bpf.c) is kept, with the same parser
 * (ebpf/fabric_steer.h) and the same counters: the host's own traffic and malformed frames go to the kernel (XDP_PASS),
 * VXLAN for us to the AF_XDP socket of the RX queue, and is dropped when there is none.
 *
 * Of the VXLAN for us, the common case is finished here, as the Rust ingress fast path
 * (dataplane/core/src/ingress.rs, fast_inner_bounds) finishes it, with its checks in its
 * order: an outer IPv4 header of 20 bytes with a valid checksum or an outer IPv6 fixed header,
 * UDP and VXLAN whose lengths fit, a UDP checksum that is zero (IPv4, or IPv6 with
 * fabric.udp6_zero_checksum_rx) or verifies, the I flag and our VNI, an inner IPv4 (20-byte
 * header) or IPv6 packet to the guest's MAC and one of its addresses, from a source whose live
 * mapping names the outer source as its underlay address and the inner source MAC as its MAC
 * (the reverse mapping check, in the `mappings` map xvpc_guest_fast uses). The outer headers
 * are stripped (bpf_xdp_adjust_head), anything after the inner frame trimmed, and the inner
 * frame redirected unchanged to the guest port: the bytes the workers send it.
 *
 * Frames of that shape that fail the VNI, inner destination or reverse mapping check are
 * dropped with the workers' drop reason, in the `drops` map shared with xvpc_guest_fast.
 * Everything else goes to the workers exactly as xvpc_fabric sends it.
 */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#include "xvpc_xdp.h"

/* Defined here rather than in xvpc_xdp.h: a change of that header changes every object that
 * includes it (its checksum is in the debug info), and so every program's version. Mirrored
 * in dataplane/xdp/src/fabric_fast.rs, which checks them against this file. */

/* Counters of xvpc_fabric_fast besides those it shares with xvpc_fabric (`counters`, same
 * indices) and the drop reasons (`drops`, shared with xvpc_guest_fast). */
enum xvpc_ingress_counter {
	INGRESS_DECAPSULATED = 0, /* decapsulated in XDP and redirected to the guest port */
	INGRESS_ABORTED = 1,      /* stripped, then the guest port could not take it: dropped */
	INGRESS_BYTES = 2,        /* inner bytes of the decapsulated frames (ingress_bytes) */
	INGRESS_COUNTER_MAX = 3,
};

/* One more bit of `struct xvpc_fast_cfg`'s flags, read by this program only. */
#define XVPC_FAST_UDP6_ZERO_RX (1u << 5) /* fabric.udp6_zero_checksum_rx */

#define ETH_LEN 14
#define UDP_VXLAN_LEN 16
#define OUTER_V4_LEN (ETH_LEN + 20 + UDP_VXLAN_LEN)
#define OUTER_V6_LEN (ETH_LEN + 40 + UDP_VXLAN_LEN)
/* The largest UDP datagram taken: what one page holds in driver-mode XDP. Larger ones go to
 * the workers; it also bounds the checksum loop for the verifier. */
#define FAST_MAX_UDP 3520
#define CSUM_MAX_WORDS (FAST_MAX_UDP / 4)

/* The loader sets it with the udp6_zero_checksum_rx flag; the underlay addresses and the
 * VXLAN port are those xvpc_fabric is configured with. */
volatile const struct xvpc_fast_cfg cfg = {};

/* Shared with xvpc_fabric (same indices): the counters survive a switch of tier. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FABRIC_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, INGRESS_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ingress_counters SEC(".maps");

/* The next three are xvpc_guest_fast's maps (the loader points them at its pins), so the
 * control path writes one table and `xvpc stats` reads one set of drops. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVPC_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct xvpc_map_key);
	__type(value, struct xvpc_map_val);
} mappings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} generation SEC(".maps");

/* Slot 0: the guest port. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} tx_port SEC(".maps");

/* ---- xvpc_fabric's steering (the shared parser), configured from `cfg` ---- */

#define STEER_V4_ON (cfg.flags & XVPC_FAST_SRC_V4)
#define STEER_V6_ON (cfg.flags & XVPC_FAST_SRC_V6)
#define STEER_UNDERLAY_V4 cfg.src_v4
#define STEER_UNDERLAY_V6 cfg.src_v6
#define STEER_VXLAN_PORT cfg.vxlan_port
#include "fabric_steer.h"

static __always_inline int v6_eq(const __u32 *a, const volatile __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int pass(__u32 counter)
{
	xvpc_count(&counters, counter);
	return XDP_PASS;
}

/* ---- the fast path ---- */

enum decision { TO_WORKERS, FAST, DROP };

struct target {
	__u32 inner_at;
	__u32 inner_len;
	__u32 reason; /* DROP only */
};

static __always_inline enum decision drop_for(struct target *t, __u32 reason)
{
	t->reason = reason;
	return DROP;
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

/* Adds `len` bytes at `p` to `acc`, summed as stored (RFC 1071: byte order does not matter
 * until the fold). 0, or -1 when they are not all in the packet or beyond FAST_MAX_UDP. */
static __always_inline int sum_bytes(__u8 *p, __u32 len, void *data_end, __u64 *acc)
{
	for (int i = 0; i < CSUM_MAX_WORDS; i++) {
		if (len < 4)
			break;
		/* Opaque to the compiler: it can prove from the callers' length checks that p + 4
		 * is inside the packet and would drop the comparison the verifier needs. */
		asm volatile("" : "+r"(p));
		if ((void *)(p + 4) > data_end)
			return -1;
		*acc += *(__u32 *)p;
		p += 4;
		len -= 4;
	}
	if (len >= 4)
		return -1;
	asm volatile("" : "+r"(p));
	if (len >= 2) {
		if ((void *)(p + 2) > data_end)
			return -1;
		*acc += *(__u16 *)p;
		p += 2;
		len -= 2;
	}
	asm volatile("" : "+r"(p));
	if (len) {
		if ((void *)(p + 1) > data_end)
			return -1;
		*acc += *p; /* the odd last byte is the high byte of a word padded with zero */
	}
	return 0;
}

/* Does the UDP datagram of `udp_len` bytes at `udp` verify over the pseudo-header whose
 * addresses sum to `addr_sum`? (A zero checksum is the caller's to judge.) */
static __always_inline int udp_verifies(__u8 *udp, __u32 udp_len, void *data_end, __u64 addr_sum)
{
	__u64 acc = addr_sum + bpf_htons(IPPROTO_UDP) + bpf_htons((__u16)udp_len);

	if (sum_bytes(udp, udp_len, data_end, &acc))
		return 0;
	return fold(acc) == 0xffff;
}

static __always_inline int mac_eq(const __u8 *a, const volatile __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

static __always_inline int mac_eq_plain(const __u8 *a, const __u8 *b)
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

static __always_inline int guest_has_v6(const __u32 *a)
{
	for (int i = 0; i < XVPC_FAST_MAX_V6; i++)
		if (i < cfg.n_v6 && v6_eq(a, cfg.guest_v6[i]))
			return 1;
	return 0;
}

/* The live mapping of `key`, or NULL (see xvpc_guest_fast): the workers decide. */
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

/* check_vni, then the inner frame (fast_inner of ingress.rs): the guest's MAC, an IPv4
 * (20-byte header) or IPv6 packet whose lengths fit, to one of the guest's addresses, from a
 * source mapped to the outer `sender` (family 4: sender[0]) and to the inner source MAC. */
static __always_inline enum decision vxlan_and_inner(void *data, void *data_end, __u32 family,
						     const __u32 *sender, struct target *t)
{
	__u8 *vx = data + t->inner_at - 8;
	struct xvpc_map_key key = {};
	struct xvpc_map_val *m;
	struct ethhdr *eth;
	__u32 ip_room, vni;

	if ((void *)(vx + 8) > data_end)
		return TO_WORKERS;
	if (!(vx[0] & 0x08))
		return drop_for(t, XVPC_DROP_VXLAN_NO_VNI);
	vni = ((__u32)vx[4] << 16) | ((__u32)vx[5] << 8) | vx[6];
	if (vni != cfg.vni)
		return drop_for(t, XVPC_DROP_UNKNOWN_VNI);
	if (t->inner_len < ETH_LEN)
		return TO_WORKERS;
	eth = (void *)(vx + 8);
	if ((void *)(eth + 1) > data_end)
		return TO_WORKERS;
	if (!mac_eq(eth->h_dest, cfg.guest_mac))
		return drop_for(t, XVPC_DROP_INNER_WRONG_DESTINATION);
	ip_room = t->inner_len - ETH_LEN;
	key.vni = cfg.vni;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 total;

		if (ip_room < 20 || (void *)(ip + 1) > data_end)
			return TO_WORKERS;
		if (*(__u8 *)ip != 0x45)
			return TO_WORKERS;
		total = bpf_ntohs(ip->tot_len);
		if (total < 20 || total > ip_room)
			return TO_WORKERS;
		if (!guest_has_v4(ip->daddr))
			return drop_for(t, XVPC_DROP_INNER_WRONG_DESTINATION);
		key.family = 4;
		key.addr[0] = ip->saddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u32 dst[4];

		if (ip_room < 40 || (void *)(ip6 + 1) > data_end)
			return TO_WORKERS;
		if ((*(__u8 *)ip6 >> 4) != 6 || 40 + (__u32)bpf_ntohs(ip6->payload_len) > ip_room)
			return TO_WORKERS;
		__builtin_memcpy(dst, &ip6->daddr, 16);
		if (!guest_has_v6(dst))
			return drop_for(t, XVPC_DROP_INNER_WRONG_DESTINATION);
		key.family = 6;
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
	} else {
		return TO_WORKERS; /* ARP, tagged, ...: inner_not_ip for the workers */
	}
	m = live_mapping(&key);
	if (!m)
		return TO_WORKERS; /* absent, negative or pending: the workers' table knows */
	if (m->family != family || m->underlay[0] != sender[0] ||
	    (family == 6 && (m->underlay[1] != sender[1] || m->underlay[2] != sender[2] ||
			     m->underlay[3] != sender[3])) ||
	    !mac_eq_plain(m->mac, eth->h_source))
		return drop_for(t, XVPC_DROP_SPOOFED_UNDERLAY);
	return FAST;
}

/* fast_outer_v4 of ingress.rs. Steering already proved: version 4, not a fragment, our
 * address, UDP, our port. */
static __always_inline enum decision outer_v4(void *data, void *data_end, struct target *t)
{
	struct iphdr *ip = data + ETH_LEN;
	__u8 *udp = (void *)(ip + 1);
	__u32 len = data_end - data, ip_len, udp_len, sender[4] = {};
	__u64 acc = 0;

	if ((void *)(udp + UDP_VXLAN_LEN) > data_end)
		return TO_WORKERS;
	/* Options: the workers' parser. */
	if (*(__u8 *)ip != 0x45)
		return TO_WORKERS;
	ip_len = bpf_ntohs(ip->tot_len);
	if (ip_len < 20 + UDP_VXLAN_LEN || ETH_LEN + ip_len > len)
		return TO_WORKERS;
	udp_len = bpf_ntohs(((struct udphdr *)udp)->len);
	if (udp_len < UDP_VXLAN_LEN || udp_len > ip_len - 20)
		return TO_WORKERS;
	for (int i = 0; i < 10; i++)
		acc += ((__u16 *)ip)[i];
	if (fold(acc) != 0xffff)
		return TO_WORKERS; /* outer_bad_ip_checksum */
	if (((struct udphdr *)udp)->check &&
	    !udp_verifies(udp, udp_len, data_end, (__u64)ip->saddr + ip->daddr))
		return TO_WORKERS; /* outer_bad_udp_checksum, or too long to verify here */
	t->inner_at = OUTER_V4_LEN;
	t->inner_len = udp_len - UDP_VXLAN_LEN;
	sender[0] = ip->saddr;
	return vxlan_and_inner(data, data_end, 4, sender, t);
}

/* fast_outer_v6 of ingress.rs. Steering already proved: version 6, UDP next header, our
 * address, our port. */
static __always_inline enum decision outer_v6(void *data, void *data_end, struct target *t)
{
	struct ipv6hdr *ip6 = data + ETH_LEN;
	__u8 *udp = (void *)(ip6 + 1);
	__u32 len = data_end - data, payload_len, udp_len, sender[4];
	__u64 addr_sum = 0;

	if ((void *)(udp + UDP_VXLAN_LEN) > data_end)
		return TO_WORKERS;
	payload_len = bpf_ntohs(ip6->payload_len);
	udp_len = bpf_ntohs(((struct udphdr *)udp)->len);
	if (ETH_LEN + 40 + payload_len > len || udp_len < UDP_VXLAN_LEN || udp_len > payload_len)
		return TO_WORKERS;
	__builtin_memcpy(sender, &ip6->saddr, 16);
	if (((struct udphdr *)udp)->check == 0) {
		if (!(cfg.flags & XVPC_FAST_UDP6_ZERO_RX))
			return TO_WORKERS; /* outer_zero_udp6_checksum */
	} else {
		for (int i = 0; i < 4; i++)
			addr_sum += (__u64)sender[i] + ip6->daddr.in6_u.u6_addr32[i];
		if (!udp_verifies(udp, udp_len, data_end, addr_sum))
			return TO_WORKERS;
	}
	t->inner_at = OUTER_V6_LEN;
	t->inner_len = udp_len - UDP_VXLAN_LEN;
	return vxlan_and_inner(data, data_end, 6, sender, t);
}

static __always_inline enum decision classify(struct xdp_md *ctx, struct target *t)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return TO_WORKERS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return outer_v4(data, data_end, t);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return outer_v6(data, data_end, t);
	return TO_WORKERS;
}

static __always_inline int to_workers(struct xdp_md *ctx)
{
	/* The low bits of the flags are the action when the slot is empty. */
	long act = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_DROP);

	if (act == XDP_REDIRECT) {
		xvpc_count(&counters, FABRIC_STEERED);
		return XDP_REDIRECT;
	}
	/* VXLAN for us while the dataplane has no socket on this queue: the kernel has no
	 * business with it either (it would answer with ICMP port unreachable). */
	xvpc_count(&counters, FABRIC_DROPPED_NO_SOCKET);
	return XDP_DROP;
}

/* Strips the outer headers and whatever follows the inner frame. 0 when the frame may go to
 * the guest; -1 when nothing changed; -2 when it was changed and then could not be finished. */
static __always_inline int decapsulate(struct xdp_md *ctx, struct target *t)
{
	__u32 len = ctx->data_end - ctx->data;
	__u32 tail = len - t->inner_at - t->inner_len; /* classify: inner frame inside it */

	if (bpf_xdp_adjust_head(ctx, (int)t->inner_at))
		return -1;
	if (tail > 0 && bpf_xdp_adjust_tail(ctx, -(int)tail))
		return -2;
	return 0;
}

SEC("xdp")
int xvpc_fabric_fast(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct target t = {};
	__u32 queue = ctx->rx_queue_index;
	__u32 zero = 0, bytes_idx = INGRESS_BYTES;
	__u64 *bytes;
	enum verdict v;
	int r;

	v = steer_frame(data, data_end);
	if (v == MALFORMED)
		return pass(FABRIC_MALFORMED);
	if (v == NOT_OURS)
		return pass(FABRIC_PASSED);

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
	/* No guest port registered (yet): the workers deliver it. */
	if (!bpf_map_lookup_elem(&tx_port, &zero))
		return to_workers(ctx);
	r = decapsulate(ctx, &t);
	if (r == -1)
		return to_workers(ctx);
	if (r == 0 && bpf_redirect_map(&tx_port, 0, 0) == XDP_REDIRECT) {
		bytes = bpf_map_lookup_elem(&ingress_counters, &bytes_idx);
		if (bytes)
			*bytes += ctx->data_end - ctx->data;
		xvpc_count(&ingress_counters, INGRESS_DECAPSULATED);
		return XDP_REDIRECT;
	}
	xvpc_count(&ingress_counters, INGRESS_ABORTED);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
