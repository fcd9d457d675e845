/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0 */
/* Layouts shared by the benchmark XDP programs and xvpc-pktgen (the Rust sources under benches/pktgen/src
 * mirror these byte for byte; change both together). */
#ifndef XVPC_BENCH_H
#define XVPC_BENCH_H

#include <linux/types.h>

/* The 16-byte marker the generator writes right after the UDP header:
 *   magic  u32 network order  "XVPG"
 *   seq    u32 host order     per-CPU frame counter (low 32 bits)
 *   ts     u64 host order     bpf_ktime_get_ns() when the frame was built, or 0 on
 *                              frames that are not sampled (see ts_mask)
 * Host order is fine: generator and sink run on the same machine and clock. */
#define BENCH_MAGIC 0x58565047u /* "XVPG" */
#define MARKER_LEN 16

/* Longest header template: VXLAN over IPv4 (Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8) around
 * Ethernet 14 + IPv6 40 + UDP 8. */
#define GEN_HDR_MAX 128
/* The header stacks the generator builds (gen_config.hdr_len). */
#define GEN_HDR_V4 42          /* Ethernet + IPv4 + UDP */
#define GEN_HDR_V6 62          /* Ethernet + IPv6 + UDP */
#define GEN_VXLAN_OUTER 50     /* Ethernet + IPv4 + UDP + VXLAN in front of the inner frame */
#define GEN_HDR_VX_V4 (GEN_VXLAN_OUTER + GEN_HDR_V4)
#define GEN_HDR_VX_V6 (GEN_VXLAN_OUTER + GEN_HDR_V6)
#define GEN_OUTER_SPORT_OFF 34 /* outer UDP source port inside a VXLAN frame */

struct gen_config {
	__u8 hdr[GEN_HDR_MAX]; /* [outer Ethernet + IPv4 + UDP + VXLAN +] Ethernet + IP + UDP,
	                        * checksums for flow 0 / zero marker */
	__u32 hdr_len;         /* one of GEN_HDR_V4, _V6, _VX_V4, _VX_V6 */
	__u32 flows;           /* UDP source ports used: sport .. sport + flows - 1 (>= 1) */
	__u32 csum_base;       /* ones' complement sum (memory-order u16 words) of the UDP
	                        * pseudo-header, UDP header (checksum 0, source port 0) and
	                        * payload with seq/ts zero; not folded */
	__u16 sport;           /* first UDP source port, network order (inner and, in VXLAN
	                        * frames, outer: the outer checksum is 0, so it needs no fix) */
	__u16 _pad;
	__u32 ts_mask;         /* timestamp frames whose sequence & ts_mask == 0 (2^k - 1); the
	                        * others carry ts 0: reading the clock is the most expensive part
	                        * of a frame on some VMs */
};

/* Sink: where to look for the marker (bytes from the start of the frame). */
#define SINK_MAX_OFFSETS 8
struct sink_config {
	__u32 n_offsets;
	__u32 offsets[SINK_MAX_OFFSETS];
};

/* Sink statistics, one per-CPU u64 each. */
enum sink_stat {
	SINK_PACKETS = 0, /* every frame seen */
	SINK_BYTES = 1,   /* their bytes */
	SINK_MARKED = 2,  /* frames carrying the marker at one of the offsets */
	SINK_FUTURE = 3,  /* marked frames whose timestamp lies in the future (clock bug) */
	SINK_SAMPLED = 4, /* marked frames with a timestamp: the histogram's population */
	SINK_STATS = 5,
};

/* Latency histogram: buckets 0..999 are 1 us wide ([i, i+1) us); bucket 1000 + k - 9 holds
 * [2^k, 2^(k+1)) us for k >= 9 (its lower edge clipped to 1000 us). */
#define HIST_LINEAR 1000
#define HIST_BUCKETS 1056

#endif
