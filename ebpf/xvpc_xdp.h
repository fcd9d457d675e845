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
