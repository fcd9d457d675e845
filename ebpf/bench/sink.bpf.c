// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* Traffic sink: counts every frame per CPU, looks for the generator's marker at the configured
 * offsets (plain UDP, or the same frame inside VXLAN), records now - timestamp into a latency
 * histogram and drops the frame. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "bench.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sink_config);
	__uint(max_entries, 1);
} sink_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, SINK_STATS);
} sink_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, HIST_BUCKETS);
} sink_hist SEC(".maps");

static __always_inline void bump(__u32 key, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&sink_stats, &key);
	if (v)
		*v += by;
}

static __always_inline __u32 ilog2(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

/* Must match hist.rs: bucket_of(). */
static __always_inline __u32 bucket_of(__u64 us)
{
	if (us < HIST_LINEAR)
		return (__u32)us;
	__u32 b = HIST_LINEAR + ilog2(us) - 9;
	return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

SEC("xdp")
int xvpc_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;

	bump(SINK_PACKETS, 1);
	bump(SINK_BYTES, (__u64)(data_end - data));

	struct sink_config *cfg = bpf_map_lookup_elem(&sink_config, &key);
	if (!cfg)
		return XDP_DROP;

#pragma unroll
	for (int i = 0; i < SINK_MAX_OFFSETS; i++) {
		if (i >= cfg->n_offsets)
			break;
		__u32 off = cfg->offsets[i] & 0x7ff;
		void *p = data + off;
		if (p + MARKER_LEN > data_end)
			continue;
		struct {
			__u32 magic;
			__u32 seq;
			__u64 ts;
		} m;
		__builtin_memcpy(&m, p, MARKER_LEN);
		if (m.magic != bpf_htonl(BENCH_MAGIC))
			continue;
		bump(SINK_MARKED, 1);
		if (!m.ts)
			break; /* not a timestamp sample */
		__u64 now = bpf_ktime_get_ns();
		if (m.ts > now) {
			bump(SINK_FUTURE, 1);
			break;
		}
		bump(SINK_SAMPLED, 1);
		__u32 b = bucket_of((now - m.ts) / 1000);
		__u64 *h = bpf_map_lookup_elem(&sink_hist, &b);
		if (h)
			*h += 1;
		break;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
