//! Every fixture of the scapy oracle (`tests/oracle/gen_fixtures.py`) through the pipelines:
//! the verdict, the exact output bytes and exactly which counters moved.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::process::Command;

use common::{Case, Direction, Env, Path};
use xvpc_core::counters::{Counters, DropReason};
use xvpc_core::frame::Frame;
use xvpc_core::model::MappingKey;
use xvpc_core::pipeline::Verdict;

/// Fixtures on which our pipeline is known to disagree with the oracle (the RFC), each with
/// the reason. They must still disagree: when a bug is fixed this test fails until the entry
/// is removed, so the list cannot go stale.
const KNOWN_BUGS: &[(&str, &str)] = &[];

/// What one fixture produced.
struct Outcome {
    verdict: Verdict,
    output: Vec<u8>,
    moved: Vec<(String, u64)>,
}

/// Run a fixture in its environment (see [`common::env_for`]).
fn run_case(case: &Case) -> Outcome {
    let input = case.input_bytes();
    let headroom = case.headroom.unwrap_or(common::HEADROOM);
    let tailroom = case.tailroom.unwrap_or(common::TAILROOM);
    let mut buf = common::buffer_with(&input, headroom, tailroom);
    let mut frame = Frame::new(&mut buf, headroom, input.len()).expect("frame fits its buffer");
    let before = Counters::default();
    let mut counters = before.clone();
    let verdict = common::env_for(case).run(case.direction, &mut frame, &mut counters);
    Outcome {
        verdict,
        output: frame.data().to_vec(),
        moved: common::moved(&before, &counters),
    }
}

/// Everything wrong with one outcome, or nothing.
fn check(env: &Env, case: &Case, got: &Outcome) -> Vec<String> {
    let mut errors = Vec::new();
    let verdict = common::verdict_name(&got.verdict);
    if verdict != case.verdict {
        errors.push(format!("verdict {verdict}, want {}", case.verdict));
    }
    if let Verdict::Miss(key) = got.verdict {
        let want = case.miss_key.map(|ip| MappingKey {
            vni: env.guest.vni,
            overlay_ip: ip,
        });
        if Some(key) != want {
            errors.push(format!("miss key {key:?}, want {want:?}"));
        }
    }
    if let Some(want) = case.output_bytes() {
        if got.output != want {
            errors.push(format!(
                "output differs:\n{}",
                common::hex_diff(&got.output, &want)
            ));
        }
    }
    let mut want_moved = vec![(
        match case.direction {
            Direction::Egress => "guest_rx_packets",
            Direction::Ingress => "fabric_rx_packets",
        }
        .to_string(),
        1,
    )];
    want_moved.push((case.counter.clone(), 1));
    match case.counter.as_str() {
        "egress_packets" => want_moved.push(("egress_bytes".into(), got.output.len() as u64)),
        "ingress_packets" => want_moved.push(("ingress_bytes".into(), got.output.len() as u64)),
        _ => {}
    }
    let sorted = |v: &[(String, u64)]| v.iter().cloned().collect::<BTreeSet<_>>();
    if sorted(&got.moved) != sorted(&want_moved) {
        errors.push(format!(
            "counters moved {:?}, want {:?}",
            got.moved, want_moved
        ));
    }
    errors
}

#[test]
fn fixtures_match_the_oracle() {
    let (env, cases) = common::load();
    assert!(cases.len() >= 40, "only {} fixtures", cases.len());
    let mut failures = Vec::new();
    let mut still_broken = BTreeSet::new();
    for case in &cases {
        let got = run_case(case);
        let errors = check(&env, case, &got);
        let known = KNOWN_BUGS.iter().find(|(name, _)| *name == case.name);
        match (errors.is_empty(), known) {
            (true, None) => {}
            (true, Some((name, why))) => failures.push(format!(
                "{name}: listed in KNOWN_BUGS ({why}) but now matches the oracle: remove it from the list"
            )),
            (false, Some((name, _))) => {
                still_broken.insert(*name);
            }
            (false, None) => failures.push(format!(
                "{} ({:?}: {}):\n  {}\n  input {}",
                case.name,
                case.direction,
                case.description,
                errors.join("\n  "),
                case.input
            )),
        }
    }
    for (name, _) in KNOWN_BUGS {
        if !cases.iter().any(|c| c.name == *name) {
            failures.push(format!("KNOWN_BUGS names {name}, which is not a fixture"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} fixtures match; known bugs still present: {still_broken:?}",
        cases.len() - still_broken.len()
    );
}

/// Every fixture takes the path it records, as Katran's fixtures record theirs: the fast path
/// for the common shape when every check of the policy passes (docs/ARCHITECTURE.md,
/// "Policy"), the full path for everything else. Fails if the fast path stops being taken
/// (disabled, or narrowed) and if it starts taking frames the fixtures say it must not.
#[test]
fn fixtures_take_their_recorded_path() {
    let (_, cases) = common::load();
    let mut wrong = Vec::new();
    for case in &cases {
        let headroom = case.headroom.unwrap_or(common::HEADROOM);
        let path = common::env_for(case).path(case.direction, &case.input_bytes(), headroom);
        if path != case.path {
            wrong.push(format!(
                "{}: took the {path:?} path, want {:?}",
                case.name, case.path
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for direction in [Direction::Egress, Direction::Ingress] {
        let fast = cases
            .iter()
            .filter(|c| c.direction == direction && c.path == Path::Fast)
            .count();
        assert!(
            fast >= 5,
            "only {fast} {direction:?} fixtures marked for the fast path"
        );
    }
    for case in cases.iter().filter(|c| c.path == Path::Fast) {
        assert!(
            matches!(case.verdict.as_str(), "ToFabric" | "ToGuest"),
            "{}: the fast path only forwards, yet the fixture says {}",
            case.name,
            case.verdict
        );
    }
}

/// The policy table of docs/ARCHITECTURE.md, written once for the full path, the fast path and
/// the XDP tier.
const ARCHITECTURE: &str = include_str!("../../../docs/ARCHITECTURE.md");
/// The pipelines whose functions the table names.
const PIPELINES: [&str; 2] = [
    include_str!("../src/egress.rs"),
    include_str!("../src/ingress.rs"),
];

/// The rows of the policy table: the cells of every table line whose first cell is a row id
/// (`E3`, `A5`, `N1`, `I10`).
fn policy_rows() -> Vec<Vec<String>> {
    let section = ARCHITECTURE
        .split("\n## Policy\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/ARCHITECTURE.md has a \"## Policy\" section");
    section
        .lines()
        .filter_map(|line| line.strip_prefix('|'))
        .map(|line| {
            line.split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.first().is_some_and(|id| is_row_id(id)))
        .collect()
}

fn is_row_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('E' | 'A' | 'N' | 'I'))
        && !chars.as_str().is_empty()
        && chars.all(|c| c.is_ascii_digit())
}

/// The `backticked` names in a table cell.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The table and the code name the same checks: every drop reason and function in the table
/// exists, every drop reason a packet can cause is in it, and every row the code cites
/// (`/// E3: ...`) is a row of the table.
#[test]
fn policy_table_matches_the_code() {
    let rows = policy_rows();
    assert!(rows.len() >= 40, "only {} policy rows", rows.len());
    let ids: BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "duplicate policy row ids");
    let mut reasons = BTreeSet::new();
    for row in &rows {
        assert!(row.len() >= 4, "{}: too few cells", row[0]);
        for name in ticked(&row[2]) {
            let reason = common::reason_named(name)
                .unwrap_or_else(|| panic!("{}: {name:?} is not a drop reason", row[0]));
            reasons.insert(reason as usize);
        }
        for function in ticked(&row[3]) {
            let defined = PIPELINES.iter().any(|src| {
                src.contains(&format!("fn {function}(")) || src.contains(&format!("fn {function}<"))
            });
            assert!(
                defined,
                "{}: no function {function} in the pipelines",
                row[0]
            );
        }
    }
    let worker_level = [
        DropReason::TxRingFull,
        DropReason::InvalidDescriptor,
        DropReason::MissRateLimited,
        DropReason::Miss,
    ];
    let missing: Vec<_> = DropReason::ALL
        .into_iter()
        .filter(|r| !worker_level.contains(r) && !reasons.contains(&(*r as usize)))
        .map(|r| r.name())
        .collect();
    assert!(
        missing.is_empty(),
        "drop reasons missing from the policy table: {missing:?}"
    );
    for src in PIPELINES {
        for line in src.lines() {
            let Some((head, _)) = line
                .trim()
                .strip_prefix("/// ")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            for id in head.split(|c: char| !c.is_ascii_alphanumeric()) {
                assert!(
                    !is_row_id(id) || ids.contains(id),
                    "the code cites policy row {id}, which the table lacks: {line}"
                );
            }
        }
    }
}

/// Every drop reason the pipelines can produce, and every verdict, has a fixture.
#[test]
fn fixtures_cover_every_verdict_and_drop_reason() {
    let (_, cases) = common::load();
    let worker_level = [
        DropReason::TxRingFull,
        DropReason::InvalidDescriptor,
        DropReason::MissRateLimited,
        // A table compiled for another fabric, never a packet's doing: tested below
        // (`mapping_without_a_local_underlay_of_its_family_is_dropped`).
        DropReason::NoLocalUnderlay,
        // The pipeline returns `Miss`; the worker drops only when it cannot hold the frame.
        DropReason::Miss,
    ];
    let mut covered = BTreeSet::new();
    for case in &cases {
        if let Some(name) = case.verdict.strip_prefix("Drop:") {
            let reason = common::reason_named(name)
                .unwrap_or_else(|| panic!("{}: unknown drop reason {name:?}", case.name));
            covered.insert(reason as usize);
        }
    }
    let missing: Vec<_> = DropReason::ALL
        .into_iter()
        .filter(|r| !worker_level.contains(r) && !covered.contains(&(*r as usize)))
        .map(|r| r.name())
        .collect();
    assert!(
        missing.is_empty(),
        "no fixture for drop reasons {missing:?}"
    );
    for (verdict, direction) in [
        ("ToFabric", Direction::Egress),
        ("ToGuest", Direction::Egress),
        ("Miss", Direction::Egress),
        ("ToGuest", Direction::Ingress),
    ] {
        assert!(
            cases
                .iter()
                .any(|c| c.verdict == verdict && c.direction == direction),
            "no {direction:?} fixture with verdict {verdict}"
        );
    }
    for counter in [
        "arp_replies",
        "nd_replies",
        "icmp_errors",
        "gateway_echo_replies",
        "misses",
    ] {
        assert!(
            cases.iter().any(|c| c.counter == counter),
            "no fixture moves {counter}"
        );
    }
}

/// A fixture file edited by hand would no longer be what the oracle writes; CI runs
/// `gen_fixtures.py --check` for that. Here: the names are unique and the file parses.
#[test]
fn fixture_names_are_unique() {
    let (_, cases) = common::load();
    let names: BTreeSet<_> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "duplicate fixture names");
}

/// Write frames as a classic pcap (LINKTYPE_ETHERNET): 24-byte file header, 16 bytes a record.
fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    let mut file = std::fs::File::create(path).expect("create pcap in the temp dir");
    file.write_all(&out).expect("write pcap");
}

/// Someone else's dissector agrees with our encapsulation: tshark sees VXLAN with our VNI,
/// the inner addresses, and good IPv4 header and UDP checksums.
#[test]
fn tshark_dissects_our_vxlan() {
    let (env, cases) = common::load();
    let mut frames = Vec::new();
    let mut inner_dsts = Vec::new();
    let mut zero_csum = Vec::new();
    for case in cases.iter().filter(|c| c.verdict == "ToFabric") {
        let got = run_case(case);
        assert_eq!(got.verdict, Verdict::ToFabric, "{}", case.name);
        frames.push(got.output);
        zero_csum.push(case.udp6_zero_checksum);
        let input = case.input_bytes();
        let dst = match u16::from_be_bytes([input[12], input[13]]) {
            0x0800 => IpAddr::from(<[u8; 4]>::try_from(&input[30..34]).expect("4 bytes")),
            _ => IpAddr::from(<[u8; 16]>::try_from(&input[38..54]).expect("16 bytes")),
        };
        inner_dsts.push(dst);
    }
    let dir = std::env::temp_dir().join(format!("xvpc-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pcap = dir.join("egress.pcap");
    write_pcap(&pcap, &frames);
    let result = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap)
        .args([
            "-d",
            "udp.port==4789,vxlan",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "vxlan.vni",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "udp.checksum",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "eth.dst",
            "-e",
            "_ws.expert",
        ])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let output = match result {
        Ok(o) => o,
        Err(e) => panic!("cannot run tshark ({e}): install it (apt-get install -y tshark)"),
    };
    assert!(
        output.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), frames.len(), "tshark output:\n{text}");
    for (i, line) in lines.iter().enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 8, "line {i}: {line}");
        assert_eq!(
            f[0],
            env.guest.vni.get().to_string(),
            "frame {i}: VNI; {line}"
        );
        // Status values: 0 bad, 1 good, 2 unverified, 4 illegal. Every IPv4 header (outer and
        // inner) must verify; no UDP checksum may be bad, and the outer one over IPv6 must be
        // good, or zero where the fabric opted in (which tshark calls illegal, per RFC 8200).
        for status in f[1].split(',').filter(|s| !s.is_empty()) {
            assert_eq!(
                status, "1",
                "frame {i}: IPv4 header checksum status; {line}"
            );
        }
        let udp: Vec<&str> = f[2].split(',').collect();
        assert!(!udp.contains(&"0"), "frame {i}: bad UDP checksum; {line}");
        let outer_v6 = !f[5].is_empty() && frames[i][12..14] == [0x86, 0xdd];
        if outer_v6 && zero_csum[i] {
            assert_eq!(
                (udp[0], f[3].split(',').next()),
                ("4", Some("0x0000")),
                "frame {i}: outer UDP checksum over IPv6 is 0 (RFC 6935 opt-in); {line}"
            );
        } else if outer_v6 {
            assert_eq!(
                udp[0], "1",
                "frame {i}: outer UDP checksum over IPv6; {line}"
            );
        } else {
            assert_eq!(
                f[3].split(',').next(),
                Some("0x0000"),
                "frame {i}: outer UDP checksum over IPv4 is 0; {line}"
            );
        }
        let dsts: Vec<&str> = f[4].split(',').chain(f[5].split(',')).collect();
        assert!(
            dsts.contains(&inner_dsts[i].to_string().as_str()),
            "frame {i}: inner destination {} not seen; {line}",
            inner_dsts[i]
        );
        let macs: Vec<&str> = f[6].split(',').collect();
        assert_eq!(
            macs.first(),
            Some(&"02:00:00:00:0f:01"),
            "frame {i}: outer destination MAC; {line}"
        );
        assert!(
            macs.get(1)
                .is_some_and(|m| m.starts_with("02:00:00:00:02:0")),
            "frame {i}: inner destination MAC is the mapping's; {line}"
        );
    }
}

/// A table compiled for another fabric (one with an IPv6 underlay address this one lacks): the
/// frame is dropped and counted, never sent from a missing source address.
#[test]
fn mapping_without_a_local_underlay_of_its_family_is_dropped() {
    let (env, cases) = common::load();
    let case = cases
        .iter()
        .find(|c| {
            c.direction == Direction::Egress
                && c.verdict == "ToFabric"
                && c.output_bytes()
                    .is_some_and(|o| o.get(12..14) == Some(&[0x86, 0xdd]))
        })
        .expect("a fixture encapsulating over IPv6");
    let mut fabric = env.fabric.clone();
    fabric.underlay_ipv6 = None;
    let ctx = xvpc_core::pipeline::Context {
        guest: &env.guest,
        gateway: &env.gateway,
        fabric: &fabric,
    };
    let input = case.input_bytes();
    let (headroom, tailroom) = (case.headroom.unwrap_or(256), case.tailroom.unwrap_or(512));
    let mut buf = common::buffer_with(&input, headroom, tailroom);
    let mut frame = Frame::new(&mut buf, headroom, input.len()).expect("frame fits");
    let mut counters = Counters::default();
    let verdict =
        xvpc_core::egress::egress(&ctx, &env.table, env.now_ms, &mut frame, &mut counters);
    assert_eq!(
        verdict,
        Verdict::Drop(DropReason::NoLocalUnderlay),
        "{}",
        case.name
    );
    assert_eq!(counters.drops[DropReason::NoLocalUnderlay as usize], 1);
}

/// `DropReason::is_ingress` (how the XDP tier's one drop map is split between the ports in
/// the totals) agrees with the fixtures: every reason an ingress fixture drops with is an
/// ingress reason, every reason an egress fixture drops with is not.
#[test]
fn drop_reasons_know_their_direction() {
    let (_, cases) = common::shared();
    let mut seen = 0;
    for case in cases {
        let Some(reason) = case
            .verdict
            .strip_prefix("Drop:")
            .and_then(common::reason_named)
        else {
            continue;
        };
        assert_eq!(
            reason.is_ingress(),
            case.direction == Direction::Ingress,
            "{}: {}",
            case.name,
            reason.name()
        );
        seen += 1;
    }
    assert!(seen > 40, "only {seen} drop fixtures");
}
