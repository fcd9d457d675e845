// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xvpc_guest: attached to the guest-facing port.
 *
 * Every frame from the guest goes to the AF_XDP socket bound to its RX queue. The program
 * fails closed: with no socket registered for the queue the frame is dropped, never passed,
 * so a guest can never reach the host's kernel stack, whatever the dataplane's state.
 */
#include "xvpc_xdp.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GUEST_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

SEC("xdp")
int xvpc_guest(struct xdp_md *ctx)
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
