// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The machine's forwarding ceiling: every frame arriving on the port is redirected, unchanged,
 * to the device in tx_port[0]. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} tx_port SEC(".maps");

SEC("xdp")
int xvpc_redirect(struct xdp_md *ctx)
{
	return bpf_redirect_map(&tx_port, 0, XDP_DROP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
