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
#include <bpf/bpf_endian.h>

#include "xvpc_xdp.h"

volatile const __u32 cfg_flags = 0;
volatile const __u32 cfg_underlay_v4 = 0;
volatile const __u32 cfg_underlay_v6[4] = {0, 0, 0, 0};
volatile const __u16 cfg_vxlan_port = 0;

#define STEER_V4_ON (cfg_flags & XVPC_CFG_V4)
#define STEER_V6_ON (cfg_flags & XVPC_CFG_V6)
#define STEER_UNDERLAY_V4 cfg_underlay_v4
#define STEER_UNDERLAY_V6 cfg_underlay_v6
#define STEER_VXLAN_PORT cfg_vxlan_port
#include "fabric_steer.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FABRIC_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int pass(__u32 counter)
{
	xvpc_count(&counters, counter);
	return XDP_PASS;
}

SEC("xdp")
int xvpc_fabric(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	enum verdict v;
	long act;

	v = steer_frame(data, data_end);
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
