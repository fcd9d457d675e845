//! Property tests of the two pipelines: no input panics them, encapsulation round-trips
//! through a mirrored host's ingress, and every checksum we write verifies.

mod common;

use std::net::Ipv6Addr;

use common::{
    flow, flow_frame, mapped_v4, mapped_v6, v4_frame, v6_frame, Direction, Env, Path, GUEST4,
    GUEST6, GUEST_MAC, GW4, GW6, GW_MAC, REMOTES,
};
use proptest::prelude::*;
use xvpc_core::counters::Counters;
use xvpc_core::egress::{egress_prepare, egress_prepared};
use xvpc_core::frame::Frame;
use xvpc_core::ingress::{ingress_prepare, ingress_prepared};
use xvpc_core::pipeline::{Verdict, PREPARE_AHEAD};
use xvpc_core::wire::icmpv4::Icmpv4Packet;
use xvpc_core::wire::icmpv6::Icmpv6Packet;
use xvpc_core::wire::ipv4::Ipv4Packet;
use xvpc_core::wire::ipv6::Ipv6Packet;
use xvpc_core::wire::udp::UdpPacket;

/// Run a frame (with the given room around it) through one pipeline: verdict, output bytes
/// and the counters it moved.
fn run(
    env: &Env,
    dir: Direction,
    input: &[u8],
    headroom: usize,
    tailroom: usize,
) -> (Verdict, Vec<u8>, Counters) {
    let mut buf = common::buffer_with(input, headroom, tailroom);
    let mut frame = Frame::new(&mut buf, headroom, input.len()).expect("frame fits its buffer");
    let mut counters = Counters::default();
    let verdict = env.run(dir, &mut frame, &mut counters);
    (verdict, frame.data().to_vec(), counters)
}

/// Whatever the verdict, exactly one outcome was counted.
fn assert_counted_once(dir: Direction, verdict: &Verdict, c: &Counters) {
    let rx = match dir {
        Direction::Egress => c.guest_rx_packets,
        Direction::Ingress => c.fabric_rx_packets,
    };
    let outcomes = c.egress_packets
        + c.ingress_packets
        + c.arp_replies
        + c.nd_replies
        + c.gateway_echo_replies
        + c.icmp_errors
        + c.misses
        + c.total_drops();
    assert_eq!((rx, outcomes), (1, 1), "{verdict:?} counted as {c:?}");
    if let Verdict::Drop(reason) = verdict {
        assert_eq!(
            c.drops_for(*reason),
            1,
            "{verdict:?} not counted under its reason"
        );
    }
}

fn icmpv4_echo(data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0xab, 0xcd, 0, 1];
    m.extend_from_slice(data);
    Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
    m
}

fn icmpv6_msg(msg_type: u8, body: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0];
    m.extend_from_slice(body);
    Icmpv6Packet::new_unchecked(&mut m[..]).fill_checksum(src, dst);
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes with arbitrary room around them never panic either pipeline, and
    /// each frame is counted exactly once.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        headroom in 0usize..300,
        tailroom in 0usize..600,
        ingress in any::<bool>(),
    ) {
        let (env, _) = common::shared();
        let dir = if ingress { Direction::Ingress } else { Direction::Egress };
        let (verdict, _, counters) = run(env, dir, &bytes, headroom, tailroom);
        assert_counted_once(dir, &verdict, &counters);
    }
}

/// A fixture frame with bytes flipped (`(where, xor)`), optionally cut short at `cut`, and
/// its direction, optionally swapped.
fn mutated_fixture(
    cases: &[common::Case],
    index: prop::sample::Index,
    flips: &[(prop::sample::Index, u8)],
    cut: prop::sample::Index,
    truncate: bool,
    swap_direction: bool,
) -> (Direction, Vec<u8>) {
    let case = &cases[index.index(cases.len())];
    let mut bytes = case.input_bytes();
    for (at, xor) in flips {
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
    }
    if truncate {
        bytes.truncate(cut.index(bytes.len() + 1));
    }
    let dir = match (case.direction, swap_direction) {
        (d, false) => d,
        (Direction::Egress, true) => Direction::Ingress,
        (Direction::Ingress, true) => Direction::Egress,
    };
    (dir, bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Valid fixture frames with bytes flipped and cut short, in both pipelines, with any
    /// room around them (including none): no panic, one count.
    #[test]
    fn mutated_fixtures_never_panic(
        index in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        headroom in prop::sample::select(vec![0usize, 1, 13, 27, 41, 49, 50, 69, 70, 256]),
        tailroom in prop::sample::select(vec![0usize, 1, 7, 8, 512]),
        swap_direction in any::<bool>(),
    ) {
        let (env, cases) = common::shared();
        let (dir, bytes) =
            mutated_fixture(cases, index, &flips, cut, truncate, swap_direction);
        let (verdict, _, counters) = run(env, dir, &bytes, headroom, tailroom);
        assert_counted_once(dir, &verdict, &counters);
    }
}

/// Run a frame through both a pipeline and its full parser alone: they must agree on the
/// verdict, the output bytes and every counter.
fn assert_fast_path_agrees(
    env: &Env,
    dir: Direction,
    input: &[u8],
    headroom: usize,
    tailroom: usize,
) {
    let (verdict, output, counters) = run(env, dir, input, headroom, tailroom);
    let mut buf = common::buffer_with(input, headroom, tailroom);
    let mut frame = Frame::new(&mut buf, headroom, input.len()).expect("frame fits its buffer");
    let mut full_counters = Counters::default();
    let full_verdict = env.run_full_path(dir, &mut frame, &mut full_counters);
    assert_eq!(
        verdict, full_verdict,
        "{dir:?}: fast path and full path disagree"
    );
    assert_eq!(output, frame.data(), "{dir:?} {verdict:?}: different bytes");
    assert_eq!(
        counters, full_counters,
        "{dir:?} {verdict:?}: different counters"
    );
}

/// Prepare every frame of a group before finishing any, as the worker does; returns each
/// frame's verdict and bytes, and the group's counters.
fn run_group(
    env: &Env,
    dir: Direction,
    inputs: &[Vec<u8>],
    headroom: usize,
) -> (Vec<(Verdict, Vec<u8>)>, Counters) {
    let mut buffers: Vec<Vec<u8>> = inputs
        .iter()
        .map(|input| common::buffer_with(input, headroom, 512))
        .collect();
    let mut frames: Vec<Frame<'_>> = buffers
        .iter_mut()
        .zip(inputs)
        .map(|(buf, input)| Frame::new(buf, headroom, input.len()).expect("frame fits"))
        .collect();
    let (ctx, table, now) = (env.ctx(), &env.table, env.now_ms);
    let mut counters = Counters::default();
    let verdicts: Vec<Verdict> = match dir {
        Direction::Egress => {
            let prepared: Vec<_> = frames
                .iter()
                .map(|f| egress_prepare(&ctx, table, now, f))
                .collect();
            frames
                .iter_mut()
                .zip(prepared)
                .map(|(f, p)| egress_prepared(&ctx, table, now, p, f, &mut counters))
                .collect()
        }
        Direction::Ingress => {
            let prepared: Vec<_> = frames
                .iter()
                .map(|f| ingress_prepare(&ctx, table, now, f))
                .collect();
            frames
                .iter_mut()
                .zip(prepared)
                .map(|(f, p)| ingress_prepared(&ctx, table, now, p, f, &mut counters))
                .collect()
        }
    };
    let outputs = verdicts
        .into_iter()
        .zip(&frames)
        .map(|(v, f)| (v, f.data().to_vec()))
        .collect();
    (outputs, counters)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// A group of frames prepared before any is finished (how the worker overlaps lookups):
    /// every frame gets the verdict and bytes it gets alone, and the counters add up.
    #[test]
    fn prepared_groups_agree_with_frames_one_at_a_time(
        picks in prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..3),
                any::<prop::sample::Index>(),
                any::<bool>(),
            ),
            1..=PREPARE_AHEAD,
        ),
        egress_side in any::<bool>(),
        headroom in prop::sample::select(vec![0usize, 50, 70, 256]),
    ) {
        let (env, cases) = common::shared();
        let dir = if egress_side { Direction::Egress } else { Direction::Ingress };
        let inputs: Vec<Vec<u8>> = picks
            .iter()
            .map(|(index, flips, cut, truncate)| {
                mutated_fixture(cases, *index, flips, *cut, *truncate, false).1
            })
            .collect();
        let mut alone_counters = Counters::default();
        let mut alone = Vec::new();
        for input in &inputs {
            let (verdict, output, counters) = run(env, dir, input, headroom, 512);
            alone_counters.add(&counters);
            alone.push((verdict, output));
        }
        let (grouped, group_counters) = run_group(env, dir, &inputs, headroom);
        prop_assert_eq!(grouped, alone);
        prop_assert_eq!(group_counters, alone_counters);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// The fast paths change nothing: valid and mutated fixture frames (either direction, any
    /// room) give the same verdict, bytes and counters with and without them.
    #[test]
    fn fast_paths_agree_with_full_parser_on_fixtures(
        index in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        headroom in prop::sample::select(vec![0usize, 49, 50, 69, 70, 256]),
        tailroom in prop::sample::select(vec![0usize, 8, 512]),
        swap_direction in any::<bool>(),
        udp6_zero_checksum in any::<bool>(),
    ) {
        let (_, cases) = common::shared();
        let (dir, bytes) =
            mutated_fixture(cases, index, &flips, cut, truncate, swap_direction);
        assert_fast_path_agrees(common::shared_env(udp6_zero_checksum), dir, &bytes, headroom, tailroom);
    }

    /// The same for flows the fast paths take (TCP, UDP) and the ones they leave (ICMP, GRE,
    /// SCTP), with a byte flipped: egress on our host, then ingress of our output on the
    /// remote host (IPv4 and IPv6 underlays).
    #[test]
    fn fast_paths_agree_with_full_parser_on_flows(
        (remote, v6, protocol, l4) in flow(),
        flip in any::<prop::sample::Index>(),
        xor in 0u8..=255,
        udp6_zero_checksum in any::<bool>(),
    ) {
        let env = common::shared_env(udp6_zero_checksum);
        let remote_env = common::remote_env(env, remote);
        let mut input = flow_frame(remote, v6, protocol, &l4);
        // TCP and UDP with their ports take the fast path; its output does too, remotely.
        let fast = matches!(protocol, 6 | 17) && l4.len() >= 4;
        let want = if fast { Path::Fast } else { Path::Full };
        prop_assert_eq!(env.path(Direction::Egress, &input, 256), want);
        assert_fast_path_agrees(env, Direction::Egress, &input, 256, 512);
        let (_, outer, _) = run(env, Direction::Egress, &input, 256, 512);
        prop_assert_eq!(remote_env.path(Direction::Ingress, &outer, 0), Path::Fast);
        assert_fast_path_agrees(&remote_env, Direction::Ingress, &outer, 0, 0);
        let mut outer = outer;
        let i = flip.index(outer.len());
        outer[i] ^= xor;
        assert_fast_path_agrees(&remote_env, Direction::Ingress, &outer, 0, 0);
        let i = flip.index(input.len());
        input[i] ^= xor;
        assert_fast_path_agrees(env, Direction::Egress, &input, 256, 512);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Encapsulate on our host, decapsulate on the remote host (its mirrored view): the
    /// remote guest receives the original frame with only the destination MAC rewritten.
    #[test]
    fn encapsulation_round_trips(
        (remote, v6, protocol, l4) in flow(),
        udp6_zero_checksum in any::<bool>(),
    ) {
        let env = common::shared_env(udp6_zero_checksum);
        let remote_env = common::remote_env(env, remote);
        let input = flow_frame(remote, v6, protocol, &l4);
        let (verdict, outer, _) = run(env, Direction::Egress, &input, 256, 512);
        prop_assert_eq!(verdict, Verdict::ToFabric);
        let (verdict, inner, counters) = run(&remote_env, Direction::Ingress, &outer, 0, 0);
        prop_assert_eq!(verdict, Verdict::ToGuest, "{:?}", counters);
        let mut want = input.clone();
        want[..6].copy_from_slice(&REMOTES[remote].1);
        prop_assert_eq!(inner, want);
    }

    /// The outer IPv4 header checksum and the outer UDP checksum over IPv6 verify, or the
    /// latter is 0 where the fabric opted in.
    #[test]
    fn outer_checksums_verify(
        (remote, v6, protocol, l4) in flow(),
        udp6_zero_checksum in any::<bool>(),
    ) {
        let env = common::shared_env(udp6_zero_checksum);
        let input = flow_frame(remote, v6, protocol, &l4);
        let (verdict, outer, _) = run(env, Direction::Egress, &input, 256, 512);
        prop_assert_eq!(verdict, Verdict::ToFabric);
        match u16::from_be_bytes([outer[12], outer[13]]) {
            0x0800 => {
                let ip = Ipv4Packet::new_checked(&outer[14..]).expect("outer IPv4 parses");
                prop_assert!(ip.verify_checksum());
                prop_assert_eq!(usize::from(ip.total_len()), outer.len() - 14);
            }
            0x86dd => {
                let ip = Ipv6Packet::new_checked(&outer[14..]).expect("outer IPv6 parses");
                let udp = UdpPacket::new_checked(&outer[54..]).expect("outer UDP parses");
                if udp6_zero_checksum {
                    prop_assert_eq!(udp.checksum(), 0);
                } else {
                    prop_assert!(udp.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()));
                }
                prop_assert_eq!(usize::from(ip.payload_len()), outer.len() - 54);
            }
            other => prop_assert!(false, "outer ethertype {other:#06x}"),
        }
    }

    /// Oversized packets get ICMP "fragmentation needed" / ICMPv6 "packet too big" with
    /// checksums that verify, the next-hop MTU of the tunnel, and at most 576 / 1280 bytes.
    #[test]
    fn icmp_errors_verify(
        remote in 0..REMOTES.len(),
        v6 in any::<bool>(),
        extra in 1usize..8000,
        fill in any::<u8>(),
    ) {
        let (env, _) = common::shared();
        let outer_len = if REMOTES[remote].2.contains(':') { 70 } else { 50 };
        let max_ip = 1500 - outer_len;
        let host = REMOTES[remote].0;
        let l4 = vec![fill; max_ip + extra - if v6 { 40 } else { 20 }];
        let input = if v6 {
            v6_frame(GW_MAC, GUEST6, mapped_v6(host), 17, 64, &l4)
        } else {
            v4_frame(GW_MAC, mapped_v4(host), 17, true, &l4)
        };
        let (verdict, out, counters) = run(env, Direction::Egress, &input, 256, 512);
        prop_assert_eq!(verdict, Verdict::ToGuest);
        prop_assert_eq!(counters.icmp_errors, 1);
        prop_assert_eq!(&out[..6], &GUEST_MAC[..]);
        prop_assert_eq!(&out[6..12], &GW_MAC[..]);
        if v6 {
            prop_assert!(out.len() - 14 <= 1280);
            let ip = Ipv6Packet::new_checked(&out[14..]).expect("reply parses");
            prop_assert_eq!((ip.src_addr(), ip.dst_addr(), ip.hop_limit()), (GW6, GUEST6, 64));
            let icmp = Icmpv6Packet::new_checked(ip.payload()).expect("ICMPv6 parses");
            prop_assert!(icmp.verify_checksum(&GW6, &GUEST6));
            prop_assert_eq!((icmp.msg_type(), icmp.pkt_too_big_mtu()), (2, max_ip as u32));
            prop_assert_eq!(icmp.data(), &input[14..14 + icmp.data().len()]);
        } else {
            prop_assert!(out.len() - 14 <= 576);
            let ip = Ipv4Packet::new_checked(&out[14..]).expect("reply parses");
            prop_assert!(ip.verify_checksum());
            prop_assert_eq!((ip.src_addr(), ip.dst_addr(), ip.ttl()), (GW4, GUEST4, 64));
            let icmp = Icmpv4Packet::new_checked(ip.payload()).expect("ICMP parses");
            prop_assert!(icmp.verify_checksum());
            prop_assert_eq!((icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()), (3, 4, max_ip as u16));
            prop_assert_eq!(icmp.data(), &input[14..14 + icmp.data().len()]);
        }
    }

    /// Echo replies from the gateway and neighbor advertisements carry valid checksums.
    #[test]
    fn reply_checksums_verify(
        data in prop::collection::vec(any::<u8>(), 0..1400),
        target in prop::sample::select(vec![1u8, 3, 4]),
    ) {
        let (env, _) = common::shared();
        // ICMP echo to the IPv4 gateway.
        let input = v4_frame(GW_MAC, GW4, 1, false, &icmpv4_echo(&data));
        let (verdict, out, _) = run(env, Direction::Egress, &input, 256, 512);
        prop_assert_eq!(verdict, Verdict::ToGuest);
        let ip = Ipv4Packet::new_checked(&out[14..]).expect("reply parses");
        prop_assert!(ip.verify_checksum());
        let icmp = Icmpv4Packet::new_checked(ip.payload()).expect("ICMP parses");
        prop_assert!(icmp.verify_checksum());
        prop_assert_eq!((icmp.msg_type(), icmp.data()), (0, &data[..]));
        // ICMPv6 echo to the IPv6 gateway.
        let mut body = vec![0xab, 0xcd, 0, 1];
        body.extend_from_slice(&data);
        let input = v6_frame(GW_MAC, GUEST6, GW6, 58, 64, &icmpv6_msg(128, &body, &GUEST6, &GW6));
        let (verdict, out, _) = run(env, Direction::Egress, &input, 256, 512);
        prop_assert_eq!(verdict, Verdict::ToGuest);
        let ip = Ipv6Packet::new_checked(&out[14..]).expect("reply parses");
        let icmp = Icmpv6Packet::new_checked(ip.payload()).expect("ICMPv6 parses");
        prop_assert!(icmp.verify_checksum(&GW6, &GUEST6));
        prop_assert_eq!((icmp.msg_type(), icmp.data()), (129, &data[..]));
        // Neighbor solicitation for the gateway or a mapped address.
        let tgt = mapped_v6(target);
        let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | (tgt.segments()[6] & 0xff), tgt.segments()[7]);
        let mut ns = vec![0u8; 4];
        ns.extend_from_slice(&tgt.octets());
        ns.extend_from_slice(&[1, 1]);
        ns.extend_from_slice(&GUEST_MAC);
        let o = group.octets();
        let mac = [0x33, 0x33, o[12], o[13], o[14], o[15]];
        let input = v6_frame(mac, GUEST6, group, 58, 255, &icmpv6_msg(135, &ns, &GUEST6, &group));
        let (verdict, out, counters) = run(env, Direction::Egress, &input, 256, 512);
        prop_assert_eq!(verdict, Verdict::ToGuest);
        prop_assert_eq!(counters.nd_replies, 1);
        let ip = Ipv6Packet::new_checked(&out[14..]).expect("NA parses");
        prop_assert_eq!((ip.src_addr(), ip.dst_addr(), ip.hop_limit()), (tgt, GUEST6, 255));
        let na = Icmpv6Packet::new_checked(ip.payload()).expect("NA ICMPv6 parses");
        prop_assert!(na.verify_checksum(&tgt, &GUEST6));
        prop_assert_eq!(na.msg_type(), 136);
        prop_assert_eq!(na.target_addr(), tgt);
        prop_assert_eq!(na.router_flag(), target == 1);
        prop_assert!(na.solicited_flag() && na.override_flag());
        prop_assert_eq!(na.target_lladdr().map(|m| m.0), Some(<[u8; 6]>::try_from(&out[6..12]).expect("6 bytes")));
    }
}
