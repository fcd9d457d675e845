use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use xvpc_model::{MacAddr, Vni};

use super::*;

fn vni(v: u32) -> Vni {
    Vni::new(v).expect("test VNI fits in 24 bits")
}

fn mapping_v4() -> Mapping {
    Mapping {
        vni: vni(100),
        overlay_ip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        underlay_ip: IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1)),
        overlay_mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
    }
}

/// Hello: variant 0, version 1 (varint), role Agent (variant 0), instance 5 (varint).
const HELLO_BYTES: [u8; 8] = [0, 0, 0, 4, 0x00, 0x01, 0x00, 0x05];

/// Upsert: variant 4, vni 100 (varint 0x64), V4 (variant 0) 198.18.0.1, V4 198.19.0.1, mac.
const UPSERT_BYTES: [u8; 22] = [
    0, 0, 0, 18, 0x04, 0x64, 0x00, 198, 18, 0, 1, 0x00, 198, 19, 0, 1, 0x02, 0, 0, 0, 0, 0x01,
];

/// Delete: variant 5, vni 300 (varint ac 02), V6 (variant 1) 2001:2::1.
const DELETE_BYTES: [u8; 24] = [
    0, 0, 0, 20, 0x05, 0xac, 0x02, 0x01, 0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x01,
];

fn delete_v6() -> Message {
    Message::Delete(MappingKey {
        vni: vni(300),
        overlay_ip: IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)),
    })
}

#[test]
fn hello_bytes() {
    let m = Message::Hello {
        version: PROTOCOL_VERSION,
        role: Role::Agent,
        instance: 5,
    };
    let mut buf = Vec::new();
    encode_into(&mut buf, &m).expect("encode hello");
    assert_eq!(buf, HELLO_BYTES);
    assert_eq!(
        read_message(&mut Cursor::new(&HELLO_BYTES[..])).expect("decode hello"),
        m
    );
}

#[test]
fn upsert_bytes() {
    let m = Message::Upsert(mapping_v4());
    let mut buf = Vec::new();
    write_message(&mut buf, &m).expect("write upsert");
    assert_eq!(buf, UPSERT_BYTES);
    assert_eq!(
        read_message(&mut Cursor::new(&UPSERT_BYTES[..])).expect("decode upsert"),
        m
    );
}

#[test]
fn delete_bytes() {
    let mut buf = Vec::new();
    encode_into(&mut buf, &delete_v6()).expect("encode delete");
    assert_eq!(buf, DELETE_BYTES);
    assert_eq!(
        read_message(&mut Cursor::new(&DELETE_BYTES[..])).expect("decode delete"),
        delete_v6()
    );
}

#[test]
fn frames_follow_each_other() {
    let mut stream = Vec::new();
    stream.extend_from_slice(&HELLO_BYTES);
    stream.extend_from_slice(&UPSERT_BYTES);
    let mut r = Cursor::new(stream);
    let mut buf = Vec::new();
    assert!(matches!(
        read_message_with(&mut r, &mut buf),
        Ok(Message::Hello { .. })
    ));
    assert!(matches!(
        read_message_with(&mut r, &mut buf),
        Ok(Message::Upsert(_))
    ));
    assert!(matches!(
        read_message_with(&mut r, &mut buf),
        Err(ControlError::Closed)
    ));
}

#[test]
fn eof_at_boundary_is_closed() {
    assert!(matches!(
        read_message(&mut Cursor::new(Vec::new())),
        Err(ControlError::Closed)
    ));
}

#[test]
fn every_truncation_is_a_clear_error() {
    for cut in 1..UPSERT_BYTES.len() {
        let err = read_message(&mut Cursor::new(&UPSERT_BYTES[..cut]))
            .expect_err("truncated frame must fail");
        match err {
            ControlError::Truncated { expected, got } => {
                if cut < LEN_PREFIX {
                    assert_eq!((expected, got), (LEN_PREFIX, cut));
                } else {
                    assert_eq!((expected, got), (18, cut - LEN_PREFIX));
                }
            }
            other => panic!("cut at {cut}: expected Truncated, got {other}"),
        }
    }
}

#[test]
fn oversized_frame_is_refused_before_allocating() {
    let mut frame = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[0; 16]);
    let err = read_message(&mut Cursor::new(frame)).expect_err("oversized frame must fail");
    assert!(
        matches!(err, ControlError::FrameTooLarge { len, max } if len == MAX_FRAME_LEN + 1 && max == MAX_FRAME_LEN)
    );
    let err = read_message(&mut Cursor::new(u32::MAX.to_be_bytes().to_vec()))
        .expect_err("4 GiB frame must fail");
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
}

#[test]
fn oversized_message_is_refused_on_encode() {
    let m = Message::Error {
        reason: "x".repeat(MAX_FRAME_LEN),
    };
    let mut buf = vec![7u8];
    let err = encode_into(&mut buf, &m).expect_err("too large to send");
    assert!(matches!(err, ControlError::FrameTooLarge { .. }));
    assert_eq!(buf, [7u8], "a failed encode leaves the buffer as it was");
}

#[test]
fn garbage_payloads_are_errors() {
    // Unknown variant 200.
    let err = read_message(&mut Cursor::new(vec![0, 0, 0, 1, 200])).expect_err("unknown variant");
    assert!(matches!(err, ControlError::Decode(_)), "{err}");
    // A VNI that does not fit in 24 bits (varint 0x01000000) is refused by the model type.
    let frame = vec![0, 0, 0, 7, 0x05, 0x80, 0x80, 0x80, 0x08, 0x00, 198];
    assert!(matches!(
        read_message(&mut Cursor::new(frame)),
        Err(ControlError::Decode(_))
    ));
    // Trailing bytes after a valid message.
    let frame = vec![0, 0, 0, 2, 0x08, 0x00];
    assert!(matches!(
        read_message(&mut Cursor::new(frame)),
        Err(ControlError::TrailingBytes(1))
    ));
    // Empty payload.
    assert!(matches!(
        read_message(&mut Cursor::new(vec![0, 0, 0, 0])),
        Err(ControlError::Decode(_))
    ));
}

#[test]
fn hello_checks() {
    let ok = Message::hello(Role::Dataplane, 9);
    assert_eq!(check_hello(&ok, Role::Dataplane).expect("good hello"), 9);
    let old = Message::Hello {
        version: PROTOCOL_VERSION + 1,
        role: Role::Dataplane,
        instance: 1,
    };
    assert!(matches!(
        check_hello(&old, Role::Dataplane),
        Err(ControlError::VersionMismatch { .. })
    ));
    assert!(matches!(
        check_hello(&ok, Role::Agent),
        Err(ControlError::WrongRole { .. })
    ));
    assert!(matches!(
        check_hello(&Message::StatsRequest, Role::Agent),
        Err(ControlError::Unexpected { .. })
    ));
}

#[test]
fn handshake_over_a_socket_pair() {
    let (mut a, mut b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let t = std::thread::spawn(move || handshake(&mut b, Role::Dataplane, 22));
    assert_eq!(handshake(&mut a, Role::Agent, 11).expect("agent side"), 22);
    assert_eq!(t.join().expect("join").expect("dataplane side"), 11);
}

#[test]
fn handshake_version_mismatch_sends_error() {
    let (mut a, mut b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    write_message(
        &mut b,
        &Message::Hello {
            version: 99,
            role: Role::Dataplane,
            instance: 1,
        },
    )
    .expect("write");
    let err = handshake(&mut a, Role::Agent, 11).expect_err("mismatch");
    assert!(matches!(
        err,
        ControlError::VersionMismatch {
            ours: 1,
            theirs: 99
        }
    ));
    assert!(matches!(read_message(&mut b), Ok(Message::Hello { .. })));
    match read_message(&mut b) {
        Ok(Message::Error { reason }) => assert!(reason.contains("version mismatch"), "{reason}"),
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn full_sync_chunks_and_assembles() {
    let all: Vec<Mapping> = (0..10_000u32)
        .map(|i| Mapping {
            vni: vni(i % 7),
            overlay_ip: IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i)),
            ..mapping_v4()
        })
        .collect();
    let msgs: Vec<Message> = sync_messages(3, &all).collect();
    assert_eq!(msgs.len(), 2 + 3, "10,000 mappings make 3 chunks of ≤ 4096");
    let mut wire = Vec::new();
    for m in &msgs {
        encode_into(&mut wire, m).expect("encode");
    }
    let mut r = Cursor::new(wire);
    let mut asm = SyncAssembler::new();
    let table = loop {
        match read_message(&mut r).expect("read") {
            Message::SyncBegin { epoch } => asm.begin(epoch),
            Message::SyncChunk { mappings } => asm.chunk(mappings).expect("chunk"),
            Message::SyncEnd { epoch, count } => break asm.end(epoch, count).expect("end"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(table, all);
}

#[test]
fn assembler_rejects_bad_sequences() {
    let mut asm = SyncAssembler::new();
    assert!(
        asm.chunk(vec![mapping_v4()]).is_err(),
        "chunk without begin"
    );
    assert!(asm.end(1, 0).is_err(), "end without begin");
    asm.begin(1);
    asm.chunk(vec![mapping_v4()]).expect("chunk");
    assert!(
        matches!(asm.end(1, 2), Err(ControlError::BadSync { .. })),
        "count mismatch"
    );
    asm.begin(2);
    assert!(
        matches!(asm.end(3, 0), Err(ControlError::BadSync { .. })),
        "epoch mismatch"
    );
    asm.begin(4);
    assert!(
        asm.chunk(vec![mapping_v4(); MAX_CHUNK + 1]).is_err(),
        "oversized chunk"
    );
    assert!(!asm.in_progress());
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ]
}

fn arb_mapping() -> impl Strategy<Value = Mapping> {
    (0..=Vni::MAX, arb_ip(), arb_ip(), any::<[u8; 6]>()).prop_map(|(v, o, u, mac)| Mapping {
        vni: vni(v),
        overlay_ip: o,
        underlay_ip: u,
        overlay_mac: MacAddr(mac),
    })
}

fn arb_message() -> impl Strategy<Value = Message> {
    let stats =
        (any::<[u64; 8]>(), prop::collection::vec(any::<u64>(), 0..8)).prop_map(|(f, w)| {
            Message::Stats(StatsReport {
                epoch: f[0],
                mappings: f[1],
                worker_entries: w,
                negative_entries: f[2],
                full_syncs: f[3],
                upserts: f[4],
                deletes: f[5],
                misses: f[6],
                misses_rate_limited: f[7],
                source_up: 1,
                ..StatsReport::default()
            })
        });
    prop_oneof![
        (any::<u16>(), any::<bool>(), any::<u64>()).prop_map(|(version, a, instance)| {
            Message::Hello {
                version,
                role: if a { Role::Agent } else { Role::Dataplane },
                instance,
            }
        }),
        any::<u64>().prop_map(|epoch| Message::SyncBegin { epoch }),
        prop::collection::vec(arb_mapping(), 0..64)
            .prop_map(|mappings| Message::SyncChunk { mappings }),
        (any::<u64>(), any::<u64>()).prop_map(|(epoch, count)| Message::SyncEnd { epoch, count }),
        arb_mapping().prop_map(Message::Upsert),
        arb_mapping().prop_map(|m| Message::Delete(m.key())),
        arb_mapping().prop_map(|m| Message::Miss { key: m.key() }),
        (arb_mapping(), any::<u32>()).prop_map(|(m, ttl_ms)| Message::NotFound {
            key: m.key(),
            ttl_ms
        }),
        Just(Message::StatsRequest),
        stats,
        ".{0,64}".prop_map(|reason| Message::Error { reason }),
    ]
}

proptest! {
    #[test]
    fn round_trip(msgs in prop::collection::vec(arb_message(), 1..8)) {
        let mut wire = Vec::new();
        for m in &msgs {
            encode_into(&mut wire, m).expect("encode");
        }
        let mut r = Cursor::new(wire);
        for m in &msgs {
            prop_assert_eq!(&read_message(&mut r).expect("decode"), m);
        }
        prop_assert!(matches!(read_message(&mut r), Err(ControlError::Closed)));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // Any outcome is fine except a panic; a well-formed length prefix makes it decode.
        let _ = read_message(&mut Cursor::new(bytes.clone()));
        let mut framed = (bytes.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        let _ = read_message(&mut Cursor::new(framed));
    }

    #[test]
    fn truncated_round_trip_is_error(m in arb_message(), cut in any::<prop::sample::Index>()) {
        let mut wire = Vec::new();
        encode_into(&mut wire, &m).expect("encode");
        let cut = 1 + cut.index(wire.len() - 1);
        let res = read_message(&mut Cursor::new(&wire[..cut]));
        prop_assert!(matches!(res, Err(ControlError::Truncated { .. })), "cut {} of {}: {:?}", cut, wire.len(), res);
    }
}
