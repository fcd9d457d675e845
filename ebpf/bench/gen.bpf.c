// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* Traffic generator program for BPF_PROG_TEST_RUN live-frames mode.
 *
 * The kernel recycles its frame pages without restoring them, and a peer that edits frames in
 * place (a forwarder rewriting MACs or TTL) changes what later runs see. So every run writes the
 * whole header stack from the config template, picks the flow, writes the marker and fixes the
 * UDP checksum, then returns XDP_TX: the frame leaves through the test-run's ingress device. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "bench.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_config);
	__uint(max_entries, 1);
} gen_config SEC(".maps");

/* Frames built per CPU: the sequence source, and the exact "sent" count for user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} gen_count SEC(".maps");

static __always_inline __u32 add16(__u32 sum, const __u16 *w, int n)
{
#pragma unroll
	for (int i = 0; i < n; i++)
		sum += w[i];
	return sum;
}

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline int build(void *data, void *data_end, const struct gen_config *cfg,
				 __u64 n, const int hdr_len)
{
	/* Constant sizes so the verifier can check the bounds once. */
	if (data + hdr_len + MARKER_LEN > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, cfg->hdr, hdr_len);

	__u32 flows = cfg->flows ? cfg->flows : 1;
	__u16 sport = bpf_htons(bpf_ntohs(cfg->sport) + (__u16)(n % flows));
	__u16 *udp = data + hdr_len - 8;
	udp[0] = sport;
	/* VXLAN: the outer source port carries the flow too (RFC 7348 entropy), as a VTEP
	 * hashing the inner flow would. The outer UDP checksum is 0, IPv4 header unchanged. */
	if (hdr_len > GEN_HDR_V6)
		*(__u16 *)(data + GEN_OUTER_SPORT_OFF) = sport;

	struct {
		__u32 magic;
		__u32 seq;
		__u64 ts;
	} m = {
		.magic = bpf_htonl(BENCH_MAGIC),
		.seq = (__u32)n,
		.ts = (n & cfg->ts_mask) ? 0 : bpf_ktime_get_ns(),
	};
	__builtin_memcpy(data + hdr_len, &m, MARKER_LEN);

	/* Incremental UDP checksum: the template sum plus the fields that vary. The magic is in
	 * csum_base already. */
	__u32 sum = cfg->csum_base + sport;
	sum = add16(sum, (const __u16 *)&m.seq, 6);
	__u16 c = ~fold(sum);
	udp[3] = c ? c : 0xffff;
	return XDP_TX;
}

SEC("xdp")
int xvpc_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;

	struct gen_config *cfg = bpf_map_lookup_elem(&gen_config, &key);
	__u64 *cnt = bpf_map_lookup_elem(&gen_count, &key);
	if (!cfg || !cnt)
		return XDP_ABORTED;
	__u64 n = (*cnt)++;

	switch (cfg->hdr_len) {
	case GEN_HDR_V4:
		return build(data, data_end, cfg, n, GEN_HDR_V4);
	case GEN_HDR_V6:
		return build(data, data_end, cfg, n, GEN_HDR_V6);
	case GEN_HDR_VX_V4:
		return build(data, data_end, cfg, n, GEN_HDR_VX_V4);
	case GEN_HDR_VX_V6:
		return build(data, data_end, cfg, n, GEN_HDR_VX_V6);
	default:
		return XDP_ABORTED;
	}
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
