/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions of the xvpc XDP steering programs.
 *
 * The counter indices below are mirrored in dataplane/xdp/src/lib.rs: keep both in step.
 */
#ifndef XVPC_XDP_H
#define XVPC_XDP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* One XSKMAP slot per RX queue: the programs redirect a frame received on queue q to the
 * AF_XDP socket registered at index q. */
#define XVPC_MAX_QUEUES 64

/* Counters of xvpc_guest. Every frame is counted exactly once. */
enum xvpc_guest_counter {
	GUEST_REDIRECTED = 0,        /* handed to the AF_XDP socket of its queue */
	GUEST_DROPPED_NO_SOCKET = 1, /* no socket on its queue: dropped (fail closed) */
	GUEST_COUNTER_MAX = 2,
};

/* Counters of xvpc_fabric. Every frame is counted exactly once. */
enum xvpc_fabric_counter {
	FABRIC_STEERED = 0,           /* VXLAN to our underlay address: to the AF_XDP socket */
	FABRIC_PASSED = 1,            /* not ours: to the host kernel stack */
	FABRIC_DROPPED_NO_SOCKET = 2, /* VXLAN for us but no socket on its queue: dropped */
	FABRIC_MALFORMED = 3,         /* truncated/invalid L2-L4 header: passed to the kernel */
	FABRIC_COUNTER_MAX = 4,
};

/* Bits of the fabric program's `cfg_flags`. */
#define XVPC_CFG_V4 (1u << 0) /* cfg_underlay_v4 is set: steer IPv4 VXLAN */
#define XVPC_CFG_V6 (1u << 1) /* cfg_underlay_v6 is set: steer IPv6 VXLAN */

/* DropReason of dataplane/core/src/counters.rs, in its order, named after its stable names:
 * the XDP fast path counts its drops in a per-CPU array indexed by these, which `xvpc stats`
 * adds to the workers' counters. A test in dataplane/xdp checks both lists agree. */
enum xvpc_drop_reason {
	XVPC_DROP_GUEST_MALFORMED = 0,
	XVPC_DROP_GUEST_VLAN_TAGGED = 1,
	XVPC_DROP_SPOOFED_SOURCE_MAC = 2,
	XVPC_DROP_SPOOFED_SOURCE_IP = 3,
	XVPC_DROP_BROADCAST = 4,
	XVPC_DROP_MULTICAST = 5,
	XVPC_DROP_UNSUPPORTED_ETHERTYPE = 6,
	XVPC_DROP_ARP_NOT_REQUEST = 7,
	XVPC_DROP_ARP_GRATUITOUS = 8,
	XVPC_DROP_ARP_UNKNOWN_TARGET = 9,
	XVPC_DROP_ND_INVALID = 10,
	XVPC_DROP_ND_UNKNOWN_TARGET = 11,
	XVPC_DROP_ND_DAD = 12,
	XVPC_DROP_TO_GATEWAY = 13,
	XVPC_DROP_NEGATIVE_ENTRY = 14,
	XVPC_DROP_MISS = 15,
	XVPC_DROP_TOO_BIG_NO_DF = 16,
	XVPC_DROP_TOO_BIG_ICMP_ERROR = 17,
	XVPC_DROP_NO_HEADROOM = 18,
	XVPC_DROP_OUTER_MALFORMED = 19,
	XVPC_DROP_OUTER_BAD_IP_CHECKSUM = 20,
	XVPC_DROP_OUTER_FRAGMENT = 21,
	XVPC_DROP_OUTER_NOT_FOR_US = 22,
	XVPC_DROP_OUTER_NOT_VXLAN = 23,
	XVPC_DROP_OUTER_BAD_UDP_CHECKSUM = 24,
	XVPC_DROP_OUTER_ZERO_UDP6_CHECKSUM = 25,
	XVPC_DROP_VXLAN_NO_VNI = 26,
	XVPC_DROP_UNKNOWN_VNI = 27,
	XVPC_DROP_INNER_MALFORMED = 28,
	XVPC_DROP_INNER_WRONG_DESTINATION = 29,
	XVPC_DROP_INNER_NOT_IP = 30,
	XVPC_DROP_UNKNOWN_SOURCE = 31,
	XVPC_DROP_SPOOFED_UNDERLAY = 32,
	XVPC_DROP_NO_LOCAL_UNDERLAY = 33,
	XVPC_DROP_TX_RING_FULL = 34,
	XVPC_DROP_INVALID_DESCRIPTOR = 35,
	XVPC_DROP_MISS_RATE_LIMITED = 36,
	XVPC_DROP_MAX = 37,
};

/* Counters of xvpc_guest_fast besides those it shares with xvpc_guest (`counters`, same
 * indices) and the drop reasons (`drops`). */
enum xvpc_fast_counter {
	FAST_ENCAPSULATED = 0, /* encapsulated in XDP and redirected to the fabric port */
	FAST_ABORTED = 1,      /* rewritten, then the fabric port vanished: dropped */
	FAST_EGRESS_BYTES = 2, /* outer bytes of the encapsulated frames (egress_bytes) */
	FAST_COUNTER_MAX = 3,
};

/* Bits of `struct xvpc_fast_cfg`'s flags. */
#define XVPC_FAST_GW_V4 (1u << 0)     /* gw_v4 is set */
#define XVPC_FAST_GW_V6 (1u << 1)     /* gw_v6 is set */
#define XVPC_FAST_SRC_V4 (1u << 2)    /* src_v4 is set: IPv4 underlay */
#define XVPC_FAST_SRC_V6 (1u << 3)    /* src_v6 is set: IPv6 underlay */
#define XVPC_FAST_UDP6_ZERO (1u << 4) /* fabric.udp6_zero_checksum_tx */

#define XVPC_FAST_MAX_V4 8 /* guest addresses the program knows; more: the loader refuses */
#define XVPC_FAST_MAX_V6 8

/* The fast path's configuration: one read-only global set by the loader (addresses in
 * network byte order; vni and mtu in host order). Every field at its natural alignment, no
 * hidden padding: dataplane/xdp/src/fast.rs writes the same layout. */
struct xvpc_fast_cfg {
	__u32 flags;
	__u32 vni;
	__u32 n_v4;
	__u32 n_v6;
	__u32 guest_v4[XVPC_FAST_MAX_V4];
	__u32 guest_v6[XVPC_FAST_MAX_V6][4];
	__u32 gw_v4;
	__u32 gw_v6[4];
	__u32 src_v4;
	__u32 src_v6[4];
	__u8 guest_mac[6];
	__u8 local_mac[6];
	__u8 next_hop_mac[6];
	__u16 vxlan_port; /* network order */
	__u16 fabric_mtu;
	__u16 pad;
};
#define XVPC_FAST_CFG_SIZE 240
_Static_assert(sizeof(struct xvpc_fast_cfg) == XVPC_FAST_CFG_SIZE, "cfg layout");

/* Key of the mapping map: the guest's VNI and an overlay address (IPv4 in addr[0], the rest
 * zero). Value: the live mapping's overlay MAC and underlay address, and the generation of
 * the full sync that wrote it: an entry is live only while its generation is the one in the
 * `generation` map, so a full sync writes its entries under the next generation and makes
 * them all live at once by writing that one word. Only the control path writes either map;
 * negative and pending entries stay in the workers. */
struct xvpc_map_key {
	__u32 vni;
	__u32 family; /* 4 or 6 */
	__u32 addr[4];
};
struct xvpc_map_val {
	__u8 mac[6];
	__u16 family; /* underlay: 4 or 6 */
	__u32 underlay[4];
	__u32 generation;
};
#define XVPC_MAP_KEY_SIZE 24
#define XVPC_MAP_VAL_SIZE 28
_Static_assert(sizeof(struct xvpc_map_key) == XVPC_MAP_KEY_SIZE, "key layout");
_Static_assert(sizeof(struct xvpc_map_val) == XVPC_MAP_VAL_SIZE, "value layout");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XVPC_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

static __always_inline void xvpc_count(void *map, __u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(map, &idx);

	if (c)
		*c += 1; /* per-CPU slot: no atomic needed */
}

#endif
