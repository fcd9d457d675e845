//! The oracle of the XDP fast path: every egress fixture of the Rust pipeline
//! (`dataplane/core/tests/fixtures/pipeline.json`) through `xvpc_guest_fast`, and every
//! ingress fixture through `xvpc_fabric_fast`, with plain `BPF_PROG_TEST_RUN`, against the
//! Rust pipeline run on the same frame. Where XDP encapsulates or decapsulates, the bytes must
//! be the Rust pipeline's; where it drops, the reason must be the Rust pipeline's; everything
//! else must reach the workers (or, on the fabric, the host, as `xvpc_fabric` decides)
//! unchanged. The property tests' generated flows go through both programs the same way.
//! Privileged (root).
//!
//! It lives with xvpc-xsk's tests, like `steered.rs`, because the plain test run
//! (`xvpc_xsk::testrun`, a syscall: unsafe code stays in this crate) is here and xvpc-xdp
//! may not dev-depend on xvpc-xsk, which dev-depends on it.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::os::fd::BorrowedFd;

use common::{Case, Direction, Env};
use xvpc_core::counters::{Counters, DropReason};
use xvpc_core::frame::Frame;
use xvpc_core::model::Mapping;
use xvpc_core::pipeline::Verdict;
use xvpc_testbed::{require_root, veth_pair, Netns};
use xvpc_xdp::{FabricFastProgram, FastPathProgram, FastPathSpec};
use xvpc_xsk::{BindMode, Port, SocketOptions, UmemConfig};

/// `XDP_PACKET_HEADROOM`: what the kernel leaves in front of every frame, test runs included.
const XDP_HEADROOM: usize = 256;
const XDP_DROP: u32 = 1;
const XDP_REDIRECT: u32 = 4;
/// The loopback device: a devmap target that exists in every namespace. A plain test run
/// returns the verdict without redirecting anything.
const LO_IFINDEX: u32 = 1;

/// The one place this test runs a program (the wrapper may move to another crate).
fn test_run(prog: BorrowedFd<'_>, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + XDP_HEADROOM];
    let (verdict, n) = xvpc_xsk::testrun::xdp_test_run(prog, frame, 0, &mut out)
        .expect("BPF_PROG_TEST_RUN of xvpc_guest_fast");
    out.truncate(n);
    (verdict, out)
}

/// The fixture mappings as the control path would mirror them into the BPF map.
fn mappings(env: &Env) -> Vec<Mapping> {
    common::fixtures()
        .context
        .mappings
        .iter()
        .map(|m| Mapping {
            vni: env.guest.vni,
            overlay_ip: m.overlay_ip,
            underlay_ip: m.underlay_ip,
            overlay_mac: m.overlay_mac,
        })
        .collect()
}

/// A dataplane's AF_XDP socket: one bound to a veth of a namespace of our own, registered at
/// queue 0 (plain test runs come in on queue 0). The program forwards only while one is
/// there, as it forwards only while a daemon runs.
struct Dataplane {
    // Declared first, so the socket closes before its namespace goes.
    _port: Port,
    _ns: Netns,
}

fn with_dataplane(prog: &mut FastPathProgram) -> Dataplane {
    let dataplane = dataplane();
    prog.register_socket(0, dataplane._port.fd())
        .expect("registering the socket in xsks_map");
    dataplane
}

/// A dataplane's socket, registered nowhere yet.
fn dataplane() -> Dataplane {
    let ns = Netns::new("xfo").expect("netns");
    veth_pair((&ns, "xo0"), (&ns, "xo1")).expect("veth pair");
    ns.link_up("xo0").expect("xo0 up");
    ns.link_up("xo1").expect("xo1 up");
    let umem = UmemConfig {
        frame_count: 256,
        ring_size: 64,
        ..UmemConfig::default()
    };
    let port = ns.run_in(|| {
        Port::new("xo0", 0, umem, BindMode::Auto, &SocketOptions::default())
            .expect("an AF_XDP socket on xo0")
    });
    Dataplane {
        _port: port,
        _ns: ns,
    }
}

/// The fixture named `name`.
fn fixture(name: &str) -> &'static Case {
    let (_, cases) = common::shared();
    cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("fixture {name}"))
}

/// The program for `env`, with empty maps and no socket registered.
fn load_bare(env: &Env) -> FastPathProgram {
    let spec = FastPathSpec {
        ctx: env.ctx(),
        capacity: 64,
    };
    FastPathProgram::load(&spec).expect("xvpc_guest_fast loads and verifies")
}

/// The program for `env` with the fixtures' mappings, `lo` as its fabric port and a
/// dataplane's socket registered.
fn load(env: &Env) -> (FastPathProgram, Dataplane) {
    let mut prog = load_bare(env);
    prog.maps()
        .set_fabric_port(LO_IFINDEX)
        .expect("lo as the fabric port");
    for m in mappings(env) {
        prog.maps().upsert(&m).expect("mapping into the BPF map");
    }
    let dataplane = with_dataplane(&mut prog);
    (prog, dataplane)
}

/// What XDP did with one frame, told by the one counter that moved.
#[derive(Debug, PartialEq, Eq)]
enum XdpOutcome {
    Encapsulated(Vec<u8>),
    ToWorkers,
    Dropped(DropReason),
}

fn run_xdp(prog: &FastPathProgram, frame: &[u8]) -> XdpOutcome {
    let snapshot = |p: &FastPathProgram| {
        let m = p.maps_ref();
        (
            m.counters().expect("fast counters"),
            m.drops().expect("drop counters"),
            p.guest_counters().expect("guest counters"),
        )
    };
    let (fast0, drops0, guest0) = snapshot(prog);
    let (verdict, out) = test_run(prog.program_fd().expect("program fd"), frame);
    let (fast1, drops1, guest1) = snapshot(prog);
    let moved_drops: Vec<DropReason> = DropReason::ALL
        .into_iter()
        .zip(drops0.iter().zip(drops1.iter()))
        .filter(|(_, (a, b))| a != b)
        .map(|(r, _)| r)
        .collect();
    let encapsulated = fast1.encapsulated - fast0.encapsulated;
    let to_socket = (guest1.redirected + guest1.dropped_no_socket)
        - (guest0.redirected + guest0.dropped_no_socket);
    assert_eq!(fast1.aborted, fast0.aborted, "aborted moved");
    assert_eq!(
        encapsulated + to_socket + moved_drops.len() as u64,
        1,
        "exactly one counter moves per frame (verdict {verdict})"
    );
    if encapsulated == 1 {
        assert_eq!(
            verdict, XDP_REDIRECT,
            "encapsulated frames go to the devmap"
        );
        return XdpOutcome::Encapsulated(out);
    }
    if to_socket == 1 {
        // To the workers' socket, or dropped as `no socket` when no dataplane is registered.
        let redirected = guest1.redirected - guest0.redirected == 1;
        let want = if redirected { XDP_REDIRECT } else { XDP_DROP };
        assert_eq!(
            verdict, want,
            "a frame for the workers (redirected: {redirected})"
        );
        assert_eq!(out, frame, "a frame for the workers reaches them unchanged");
        return XdpOutcome::ToWorkers;
    }
    assert_eq!(verdict, XDP_DROP);
    XdpOutcome::Dropped(moved_drops[0])
}

/// The Rust pipeline on the same frame, with the headroom XDP has.
fn run_rust(env: &Env, case: &Case) -> (Verdict, Vec<u8>) {
    let tailroom = case.tailroom.unwrap_or(common::TAILROOM);
    rust_on(env, Direction::Egress, &case.input_bytes(), tailroom)
}

/// One pipeline of `env` on `input`, with XDP's headroom: its verdict and output bytes.
fn rust_on(env: &Env, dir: Direction, input: &[u8], tailroom: usize) -> (Verdict, Vec<u8>) {
    let mut buf = common::buffer_with(input, XDP_HEADROOM, tailroom);
    let mut frame = Frame::new(&mut buf, XDP_HEADROOM, input.len()).expect("frame fits");
    let mut counters = Counters::default();
    let verdict = env.run(dir, &mut frame, &mut counters);
    (verdict, frame.data().to_vec())
}

/// Fixtures the XDP fast path must finish itself: TCP and UDP to mapped destinations, no
/// IPv4 options, fragments or IPv6 extension headers. `no_headroom_encap` is among them: the
/// worker's buffer in that fixture has no headroom, XDP always has 256 bytes.
const MUST_BE_FAST: &[&str] = &[
    "egress_udp4_over_v4",
    "egress_tcp4_over_v4",
    "egress_udp4_over_v6",
    "egress_tcp4_over_v6",
    "egress_udp6_over_v4",
    "egress_tcp6_over_v4",
    "egress_udp6_over_v6",
    "egress_tcp6_over_v6",
    "egress_udp4_over_v6_zero_csum",
    "egress_tcp4_over_v6_zero_csum",
    "egress_udp6_over_v6_zero_csum",
    "egress_tcp6_over_v6_zero_csum",
    "egress_udp4_over_v4_zero_csum_mode",
    "egress_padded_runt",
    "egress_exactly_fabric_mtu",
    "no_headroom_encap",
];

/// Fixtures XDP must drop itself, as spoofed.
const MUST_DROP_SPOOFED: &[&str] = &["spoofed_mac", "spoofed_ip_v4", "spoofed_ip_v6"];

#[test]
fn every_egress_fixture_agrees_with_the_rust_pipeline() {
    require_root();
    let (_, cases) = common::shared();
    let (plain, _plain_dataplane) = load(common::shared_env(false));
    let (zero, _zero_dataplane) = load(common::shared_env(true));
    let mut fast = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    let mut errors = Vec::new();
    let mut egress = 0;
    let mut runts = Vec::new();
    for case in cases.iter().filter(|c| c.direction == Direction::Egress) {
        egress += 1;
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header; the kernel's
        // receive path does not hand such runts to XDP either.
        if case.input_bytes().len() < xvpc_xsk::testrun::MIN_FRAME {
            runts.push(case.name.as_str());
            continue;
        }
        let env = common::env_for(case);
        let prog = if case.udp6_zero_checksum {
            &zero
        } else {
            &plain
        };
        let (rust_verdict, rust_out) = run_rust(env, case);
        match run_xdp(prog, &case.input_bytes()) {
            XdpOutcome::Encapsulated(out) => {
                fast.insert(case.name.clone());
                if rust_verdict != Verdict::ToFabric {
                    errors.push(format!(
                        "{}: XDP encapsulated, Rust says {}",
                        case.name,
                        common::verdict_name(&rust_verdict)
                    ));
                } else if out != rust_out {
                    errors.push(format!(
                        "{}: bytes differ (got XDP, want Rust):\n{}",
                        case.name,
                        common::hex_diff(&out, &rust_out)
                    ));
                }
            }
            XdpOutcome::Dropped(reason) => {
                dropped.insert(case.name.clone());
                if rust_verdict != Verdict::Drop(reason) {
                    errors.push(format!(
                        "{}: XDP dropped as {}, Rust says {}",
                        case.name,
                        reason.name(),
                        common::verdict_name(&rust_verdict)
                    ));
                }
            }
            XdpOutcome::ToWorkers => {}
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(runts, ["truncated_ethernet"]);
    assert!(egress >= 90, "only {egress} egress fixtures");
    let want: BTreeSet<String> = MUST_BE_FAST.iter().map(|s| s.to_string()).collect();
    assert_eq!(fast, want, "fixtures XDP encapsulated");
    let want: BTreeSet<String> = MUST_DROP_SPOOFED.iter().map(|s| s.to_string()).collect();
    assert!(
        want.is_subset(&dropped),
        "XDP dropped {dropped:?}, must drop {want:?}"
    );
}

/// A dead fast path (everything handed to the workers) would satisfy the oracle above but
/// for its list; this checks one fixture end to end on its own.
#[test]
fn a_udp_fixture_takes_the_fast_path_and_matches_the_fixture_bytes() {
    require_root();
    let case = fixture("egress_udp4_over_v6");
    let (prog, _dataplane) = load(common::env_for(case));
    let fd = prog.program_fd().expect("program fd");
    let (verdict, out) = test_run(fd, &case.input_bytes());
    assert_eq!(verdict, XDP_REDIRECT, "redirected to the fabric devmap");
    let want = case.output_bytes().expect("fixture has output bytes");
    assert_eq!(out, want, "{}", common::hex_diff(&out, &want));
    let c = prog.maps_ref().counters().expect("fast counters");
    assert_eq!(c.encapsulated, 1);
}

/// Without a fabric port in the devmap, the fast path hands frames to the workers instead of
/// losing them.
#[test]
fn without_a_fabric_port_fast_path_frames_go_to_the_workers() {
    require_root();
    let case = fixture("egress_udp4_over_v4");
    let env = common::env_for(case);
    let mut prog = load_bare(env);
    for m in mappings(env) {
        prog.maps().upsert(&m).expect("mapping");
    }
    let _dataplane = with_dataplane(&mut prog);
    assert_eq!(run_xdp(&prog, &case.input_bytes()), XdpOutcome::ToWorkers);
    // And a removed mapping is a miss for the workers again.
    prog.maps().set_fabric_port(LO_IFINDEX).expect("lo");
    assert!(matches!(
        run_xdp(&prog, &case.input_bytes()),
        XdpOutcome::Encapsulated(_)
    ));
    for m in mappings(env) {
        prog.maps().remove(&m.key()).expect("remove");
    }
    assert_eq!(run_xdp(&prog, &case.input_bytes()), XdpOutcome::ToWorkers);
}

#[test]
fn a_full_sync_is_invisible_to_xdp_until_it_is_published() {
    require_root();
    let case = fixture("egress_udp4_over_v4");
    let env = common::env_for(case);
    let mut prog = load_bare(env);
    prog.maps().set_fabric_port(LO_IFINDEX).expect("lo");
    let _dataplane = with_dataplane(&mut prog);
    let all = mappings(env);
    let live = prog.maps().replace_all(&all).expect("first sync");
    assert_eq!((live.written, live.removed), (all.len(), 0));
    let fast = run_xdp(&prog, &case.input_bytes());
    assert!(matches!(fast, XdpOutcome::Encapsulated(_)), "{fast:?}");
    // Half a sync: the rewritten entry belongs to the next generation, so XDP hands the
    // frame to the workers rather than use a table being written.
    let staged = prog.maps().stage(&all).expect("stage");
    assert_eq!(run_xdp(&prog, &case.input_bytes()), XdpOutcome::ToWorkers);
    let published = prog.maps().publish(staged).expect("publish");
    assert_eq!(published.generation, live.generation.wrapping_add(1));
    assert_eq!(run_xdp(&prog, &case.input_bytes()), fast);
    // A sync without the destination removes it: a miss again.
    let others: Vec<_> = all
        .iter()
        .filter(|m| !matches!(m.overlay_ip, std::net::IpAddr::V4(_)))
        .cloned()
        .collect();
    let sync = prog.maps().replace_all(&others).expect("sync without IPv4");
    assert_eq!(sync.removed, all.len() - others.len());
    assert_eq!(run_xdp(&prog, &case.input_bytes()), XdpOutcome::ToWorkers);
}

/// Fail closed: with no dataplane socket registered (no daemon running: the kernel removes a
/// dead process's sockets from the XSKMAP) the tier forwards nothing, even a frame its
/// table and devmap would encapsulate; it is dropped and counted as `no socket`.
#[test]
fn without_a_dataplane_socket_nothing_is_forwarded() {
    require_root();
    let case = fixture("egress_udp4_over_v6");
    let (prog, dataplane) = load(common::env_for(case));
    assert!(matches!(
        run_xdp(&prog, &case.input_bytes()),
        XdpOutcome::Encapsulated(_)
    ));
    drop(dataplane);
    // The socket's release removes it from the map (asynchronously: bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let before = prog.guest_counters().expect("guest counters");
    let (verdict, _) = loop {
        let r = test_run(prog.program_fd().expect("program fd"), &case.input_bytes());
        if r.0 == XDP_DROP || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(verdict, XDP_DROP, "forwarded with no dataplane");
    let after = prog.guest_counters().expect("guest counters");
    assert!(after.dropped_no_socket > before.dropped_no_socket);
}

// ---------------------------------------------------------------------------------------
// Ingress: `xvpc_fabric_fast` against the Rust ingress pipeline.

/// `XDP_PASS`: to the host's kernel stack.
const XDP_PASS: u32 = 2;

/// A bpffs of the test's own (unmounted on drop): the fabric program shares the guest
/// program's maps through pins, as in the daemon.
fn bpffs(tag: &str) -> xvpc_testbed::MountDir {
    let dir = xvpc_testbed::MountDir::new(&format!("oracle-{tag}"));
    xvpc_xdp::PinDir::prepare(dir.path()).expect("a bpffs for the shared maps");
    dir
}

/// Both fast-path programs of one environment, sharing `mappings`, `generation` and
/// `drops`, with the fixtures' mappings, `lo` as the guest port and (unless `socket` is
/// false) a dataplane's socket registered on the fabric program.
struct IngressRig {
    // Declared first: the programs and the socket go before the bpffs and the namespace.
    fabric: FabricFastProgram,
    guest: FastPathProgram,
    _dataplane: Option<Dataplane>,
    _bpffs: xvpc_testbed::MountDir,
}

fn ingress_rig(env: &Env, tag: &str, socket: bool) -> IngressRig {
    let bpffs = bpffs(tag);
    let spec = FastPathSpec {
        ctx: env.ctx(),
        capacity: 64,
    };
    let mut guest =
        FastPathProgram::load_sharing(&spec, Some(bpffs.path())).expect("xvpc_guest_fast loads");
    for m in mappings(env) {
        guest.maps().upsert(&m).expect("mapping into the BPF map");
    }
    let mut fabric =
        FabricFastProgram::load(&spec, bpffs.path()).expect("xvpc_fabric_fast loads and verifies");
    fabric
        .set_guest_port(LO_IFINDEX)
        .expect("lo as the guest port");
    let dataplane = socket.then(|| {
        let d = dataplane();
        fabric
            .register_socket(0, d._port.fd())
            .expect("registering the socket in xsks_map");
        d
    });
    IngressRig {
        fabric,
        guest,
        _dataplane: dataplane,
        _bpffs: bpffs,
    }
}

/// What `xvpc_fabric_fast` did with one frame, told by the one counter that moved.
#[derive(Debug, PartialEq, Eq)]
enum IngressOutcome {
    /// Stripped and redirected to the guest port: the frame the guest receives.
    Decapsulated(Vec<u8>),
    /// To the workers' socket, unchanged (`steered`).
    ToWorkers,
    /// VXLAN for us with no socket registered (`dropped_no_socket`).
    NoSocket,
    /// Not ours: to the host's stack, unchanged (`passed` or `malformed`).
    ToHost,
    /// Dropped in XDP under a worker's reason.
    Dropped(DropReason),
}

fn run_ingress_xdp(rig: &IngressRig, frame: &[u8]) -> IngressOutcome {
    let snapshot = |r: &IngressRig| {
        (
            r.fabric.ingress_counters().expect("ingress counters"),
            r.fabric.counters().expect("fabric counters"),
            r.guest.maps_ref().drops().expect("drop counters"),
        )
    };
    let (in0, fab0, drops0) = snapshot(rig);
    let (verdict, out) = test_run(rig.fabric.program_fd().expect("program fd"), frame);
    let (in1, fab1, drops1) = snapshot(rig);
    let moved_drops: Vec<DropReason> = DropReason::ALL
        .into_iter()
        .zip(drops0.iter().zip(drops1.iter()))
        .filter(|(_, (a, b))| a != b)
        .map(|(r, _)| r)
        .collect();
    assert_eq!(in1.aborted, in0.aborted, "aborted moved");
    let decapsulated = in1.decapsulated - in0.decapsulated;
    let steered = fab1.steered - fab0.steered;
    let no_socket = fab1.dropped_no_socket - fab0.dropped_no_socket;
    let to_host = (fab1.passed + fab1.malformed) - (fab0.passed + fab0.malformed);
    assert_eq!(
        decapsulated + steered + no_socket + to_host + moved_drops.len() as u64,
        1,
        "exactly one counter moves per frame (verdict {verdict})"
    );
    if decapsulated == 1 {
        assert_eq!(
            verdict, XDP_REDIRECT,
            "decapsulated frames go to the devmap"
        );
        assert_eq!(
            in1.ingress_bytes - in0.ingress_bytes,
            out.len() as u64,
            "ingress_bytes counts the inner frame"
        );
        return IngressOutcome::Decapsulated(out);
    }
    if moved_drops.len() == 1 {
        assert_eq!(verdict, XDP_DROP);
        return IngressOutcome::Dropped(moved_drops[0]);
    }
    let (want, outcome) = match (steered, no_socket) {
        (1, _) => (XDP_REDIRECT, IngressOutcome::ToWorkers),
        (_, 1) => (XDP_DROP, IngressOutcome::NoSocket),
        _ => (XDP_PASS, IngressOutcome::ToHost),
    };
    assert_eq!(verdict, want, "{outcome:?}");
    if outcome != IngressOutcome::NoSocket {
        assert_eq!(out, frame, "{outcome:?}: the frame goes on unchanged");
    }
    outcome
}

/// The Rust ingress pipeline on the same frame, with the headroom XDP has: its verdict and
/// the frame it delivers.
fn run_rust_ingress(env: &Env, case: &Case) -> (Verdict, Vec<u8>) {
    let tailroom = case.tailroom.unwrap_or(common::TAILROOM);
    rust_on(env, Direction::Ingress, &case.input_bytes(), tailroom)
}

/// Fixtures `xvpc_fabric` hands to the host (not VXLAN for us by its rules: fragments, IPv6
/// extension headers, other addresses, protocols and ports, ARP, a truncated IPv4 header);
/// `xvpc_fabric_fast` must make the same decision. The workers never see them in either tier.
const MUST_GO_TO_HOST: &[&str] = &[
    "ingress_v6_ext_header",
    "ingress_outer_fragment_v4",
    "ingress_outer_fragment_v6",
    "ingress_not_for_us_v4",
    "ingress_not_for_us_v6",
    "ingress_not_udp",
    "ingress_wrong_port",
    "ingress_outer_arp",
    "ingress_truncated_outer",
];

/// Fixtures of the fast shape XDP must drop itself, under the workers' reason.
const MUST_DROP_INGRESS: &[&str] = &[
    "ingress_no_i_flag",
    "ingress_wrong_vni",
    "ingress_inner_wrong_mac",
    "ingress_inner_broadcast_mac",
    "ingress_inner_wrong_ip",
    "ingress_inner_wrong_ip6",
    "ingress_spoofed_underlay",
    "ingress_spoofed_underlay_family",
    "ingress_inner_mac_mismatch",
];

#[test]
fn every_ingress_fixture_agrees_with_the_rust_pipeline() {
    require_root();
    let (_, cases) = common::shared();
    let plain = ingress_rig(common::shared_env(false), "in-plain", true);
    let zero = ingress_rig(common::shared_env(true), "in-zero", true);
    let mut seen: [BTreeSet<String>; 4] = Default::default(); // fast, workers, host, dropped
    let mut errors = Vec::new();
    let mut rust_fast = BTreeSet::new();
    let mut ingress = 0;
    for case in cases.iter().filter(|c| c.direction == Direction::Ingress) {
        ingress += 1;
        let env = common::env_for(case);
        let rig = if case.udp6_zero_checksum {
            &zero
        } else {
            &plain
        };
        if case.path == common::Path::Fast {
            rust_fast.insert(case.name.clone());
        }
        let (rust_verdict, rust_out) = run_rust_ingress(env, case);
        let rust = common::verdict_name(&rust_verdict);
        match run_ingress_xdp(rig, &case.input_bytes()) {
            IngressOutcome::Decapsulated(out) => {
                seen[0].insert(case.name.clone());
                if rust_verdict != Verdict::ToGuest {
                    errors.push(format!("{}: XDP decapsulated, Rust says {rust}", case.name));
                } else if out != rust_out {
                    errors.push(format!(
                        "{}: bytes differ (got XDP, want Rust):\n{}",
                        case.name,
                        common::hex_diff(&out, &rust_out)
                    ));
                }
            }
            IngressOutcome::ToWorkers => {
                seen[1].insert(case.name.clone());
            }
            IngressOutcome::ToHost => {
                seen[2].insert(case.name.clone());
            }
            IngressOutcome::Dropped(reason) => {
                seen[3].insert(case.name.clone());
                if rust_verdict != Verdict::Drop(reason) {
                    errors.push(format!(
                        "{}: XDP dropped as {}, Rust says {rust}",
                        case.name,
                        reason.name()
                    ));
                }
            }
            IngressOutcome::NoSocket => {
                errors.push(format!("{}: dropped as no socket with one", case.name))
            }
        }
    }
    println!(
        "ingress fixtures: {ingress} run, {} decapsulated in XDP, {} to the workers, {} to \
         the host, {} dropped in XDP",
        seen[0].len(),
        seen[1].len(),
        seen[2].len(),
        seen[3].len()
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(ingress >= 39, "only {ingress} ingress fixtures");
    assert_eq!(
        seen[0], rust_fast,
        "XDP decapsulates exactly the fixtures the Rust fast path takes"
    );
    assert!(seen[0].len() >= 8, "{:?}", seen[0]);
    let want: BTreeSet<String> = MUST_GO_TO_HOST.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen[2], want, "fixtures passed to the host");
    let want: BTreeSet<String> = MUST_DROP_INGRESS.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen[3], want, "fixtures dropped in XDP");
}

/// A dead fast path (everything to the workers) would fail the oracle above only by its
/// sets; this runs each fast-path fixture on its own, against its stored output bytes, and
/// checks it moved `decapsulated` and nothing the workers see.
#[test]
fn the_fast_path_ingress_fixtures_take_the_xdp_fast_path() {
    require_root();
    let (_, cases) = common::shared();
    let plain = ingress_rig(common::shared_env(false), "took-plain", true);
    let zero = ingress_rig(common::shared_env(true), "took-zero", true);
    let mut took = 0;
    for case in cases
        .iter()
        .filter(|c| c.direction == Direction::Ingress && c.path == common::Path::Fast)
    {
        let rig = if case.udp6_zero_checksum {
            &zero
        } else {
            &plain
        };
        let before = rig.fabric.counters().expect("fabric counters");
        let decap_before = rig.fabric.ingress_counters().expect("ingress counters");
        let (verdict, out) = test_run(rig.fabric.program_fd().expect("fd"), &case.input_bytes());
        let after = rig.fabric.counters().expect("fabric counters");
        let decap_after = rig.fabric.ingress_counters().expect("ingress counters");
        assert_eq!(
            verdict, XDP_REDIRECT,
            "{}: redirected to the guest devmap",
            case.name
        );
        let want = case.output_bytes().expect("fixture has output bytes");
        assert_eq!(
            out,
            want,
            "{}\n{}",
            case.name,
            common::hex_diff(&out, &want)
        );
        assert_eq!(
            decap_after.decapsulated - decap_before.decapsulated,
            1,
            "{}",
            case.name
        );
        assert_eq!(after, before, "{}: no steering counter moved", case.name);
        took += 1;
    }
    println!("{took} ingress fixtures took the XDP fast path");
    assert!(took >= 8, "only {took} fast-path ingress fixtures");
}

/// Without a guest port in the devmap, fast-path frames go to the workers; a mapping removed
/// by the control path (through the guest program's maps: one table) is the workers' again.
#[test]
fn ingress_without_a_guest_port_or_a_mapping_goes_to_the_workers() {
    require_root();
    let case = fixture("ingress_v4_with_csum");
    let env = common::env_for(case);
    let bpffs = bpffs("in-noport");
    let spec = FastPathSpec {
        ctx: env.ctx(),
        capacity: 64,
    };
    let mut guest = FastPathProgram::load_sharing(&spec, Some(bpffs.path())).expect("guest");
    for m in mappings(env) {
        guest.maps().upsert(&m).expect("mapping");
    }
    let mut fabric = FabricFastProgram::load(&spec, bpffs.path()).expect("fabric");
    let dp = dataplane();
    fabric.register_socket(0, dp._port.fd()).expect("socket");
    let mut rig = IngressRig {
        fabric,
        guest,
        _dataplane: Some(dp),
        _bpffs: bpffs,
    };
    assert_eq!(
        run_ingress_xdp(&rig, &case.input_bytes()),
        IngressOutcome::ToWorkers
    );
    rig.fabric.set_guest_port(LO_IFINDEX).expect("lo");
    assert!(matches!(
        run_ingress_xdp(&rig, &case.input_bytes()),
        IngressOutcome::Decapsulated(_)
    ));
    // A staged full sync hides the table from XDP until it is published.
    let all = mappings(env);
    let staged = rig.guest.maps().stage(&all).expect("stage");
    assert_eq!(
        run_ingress_xdp(&rig, &case.input_bytes()),
        IngressOutcome::ToWorkers
    );
    rig.guest.maps().publish(staged).expect("publish");
    assert!(matches!(
        run_ingress_xdp(&rig, &case.input_bytes()),
        IngressOutcome::Decapsulated(_)
    ));
    for m in &all {
        rig.guest.maps().remove(&m.key()).expect("remove");
    }
    assert_eq!(
        run_ingress_xdp(&rig, &case.input_bytes()),
        IngressOutcome::ToWorkers
    );
}

/// Fail closed: with no dataplane socket registered, VXLAN for us is dropped, even a frame
/// the pinned table would decapsulate, and the host's own traffic still reaches it.
#[test]
fn ingress_without_a_dataplane_socket_forwards_nothing_and_the_host_still_gets_its_traffic() {
    require_root();
    let fast = fixture("ingress_v6_over_v6");
    let host = fixture("ingress_not_for_us_v4");
    let arp = fixture("ingress_outer_arp");
    let rig = ingress_rig(common::env_for(fast), "in-closed", false);
    assert_eq!(
        run_ingress_xdp(&rig, &fast.input_bytes()),
        IngressOutcome::NoSocket
    );
    assert_eq!(
        run_ingress_xdp(&rig, &host.input_bytes()),
        IngressOutcome::ToHost
    );
    assert_eq!(
        run_ingress_xdp(&rig, &arp.input_bytes()),
        IngressOutcome::ToHost
    );
    // And a socket that goes away (a daemon killed) closes it again.
    let mut rig = rig;
    let dp = dataplane();
    rig.fabric
        .register_socket(0, dp._port.fd())
        .expect("socket");
    assert!(matches!(
        run_ingress_xdp(&rig, &fast.input_bytes()),
        IngressOutcome::Decapsulated(_)
    ));
    drop(dp);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let outcome = loop {
        let o = run_ingress_xdp(&rig, &fast.input_bytes());
        if o == IngressOutcome::NoSocket || std::time::Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(
        outcome,
        IngressOutcome::NoSocket,
        "forwarded with no dataplane"
    );
    assert_eq!(
        run_ingress_xdp(&rig, &host.input_bytes()),
        IngressOutcome::ToHost
    );
}

// ---------------------------------------------------------------------------------------
// Generated flows (the property tests' `flow()`) through both programs.

/// `frame` (a flow of our guest to `REMOTES[remote]`) as that remote guest would send it to
/// ours: its MAC as the source, the addresses swapped (no checksum changes: the sums are
/// commutative).
fn from_remote(frame: &[u8], remote: usize) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[6..12].copy_from_slice(&common::REMOTES[remote].1);
    let (src, len) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => (14 + 12, 4),
        _ => (14 + 8, 16),
    };
    let (a, b) = f[src..src + 2 * len].split_at_mut(len);
    a.swap_with_slice(b);
    f
}

/// Which way each frame went, over a whole run.
#[derive(Default, Debug)]
struct FlowCounts {
    flows: usize,
    /// Unflipped TCP/UDP flows, which must all be among `egress[0]`.
    must_be_fast: usize,
    egress: [usize; 3],  // encapsulated, to the workers, dropped
    ingress: [usize; 4], // decapsulated, to the workers, to the host, dropped
}

/// Generated flows (TCP, UDP, ICMP, GRE, SCTP over IPv4 and IPv6 to both remotes, either
/// checksum mode), and each with one byte flipped: egress through `xvpc_guest_fast`, and the
/// remote's encapsulation of the same flow towards our guest through `xvpc_fabric_fast`.
/// Where XDP rewrites, the bytes must be the Rust pipeline's; where it drops, the reason must
/// be the Rust pipeline's; what it hands to the workers runs the Rust pipeline there.
/// Unflipped TCP and UDP flows must be encapsulated in XDP, and every unflipped flow from a
/// remote decapsulated (the Rust fast path takes them all), so a dead fast path fails.
#[test]
fn generated_flows_agree_with_the_rust_pipeline() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    require_root();
    let egress_progs = [
        load(common::shared_env(false)),
        load(common::shared_env(true)),
    ];
    let ingress_rigs = [
        ingress_rig(common::shared_env(false), "flows-plain", true),
        ingress_rig(common::shared_env(true), "flows-zero", true),
    ];
    let counts = std::cell::RefCell::new(FlowCounts::default());
    let strategy = (
        common::flow(),
        any::<prop::sample::Index>(),
        1u8..=255,
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 300,
        // Failures print their minimal input; nothing is written next to the sources.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &strategy,
        |((remote, v6, protocol, l4), flip, xor, zero)| {
            let env = common::shared_env(zero);
            let (prog, _) = &egress_progs[usize::from(zero)];
            let rig = &ingress_rigs[usize::from(zero)];
            let mut c = counts.borrow_mut();
            c.flows += 1;
            let input = common::flow_frame(remote, v6, protocol, &l4);
            let mut flipped = input.clone();
            let i = flip.index(flipped.len());
            flipped[i] ^= xor;
            let must_be_fast = matches!(protocol, 6 | 17) && l4.len() >= 4;
            c.must_be_fast += usize::from(must_be_fast);
            for (frame, is_flipped) in [(&input, false), (&flipped, true)] {
                let (rust, rust_out) = rust_on(env, Direction::Egress, frame, common::TAILROOM);
                let rust_name = common::verdict_name(&rust);
                match run_xdp(prog, frame) {
                    XdpOutcome::Encapsulated(out) => {
                        c.egress[0] += 1;
                        prop_assert_eq!(
                            &rust,
                            &Verdict::ToFabric,
                            "egress (flipped: {}): XDP encapsulated",
                            is_flipped
                        );
                        prop_assert!(
                            out == rust_out,
                            "egress (flipped: {}): bytes differ\n{}",
                            is_flipped,
                            common::hex_diff(&out, &rust_out)
                        );
                    }
                    XdpOutcome::ToWorkers => {
                        c.egress[1] += 1;
                        prop_assert!(
                            is_flipped || !must_be_fast,
                            "a TCP/UDP flow to a mapped remote went to the workers (Rust: {})",
                            rust_name
                        );
                    }
                    XdpOutcome::Dropped(reason) => {
                        c.egress[2] += 1;
                        prop_assert_eq!(
                            &rust,
                            &Verdict::Drop(reason),
                            "egress (flipped: {}): XDP dropped",
                            is_flipped
                        );
                    }
                }
            }
            // The same flow from the remote's guest, encapsulated by the remote's (Rust) egress.
            let remote_env = common::remote_env(env, remote);
            let back = from_remote(&input, remote);
            let (verdict, outer) = rust_on(&remote_env, Direction::Egress, &back, common::TAILROOM);
            prop_assert_eq!(verdict, Verdict::ToFabric, "the remote encapsulates");
            let mut flipped = outer.clone();
            let i = flip.index(flipped.len());
            flipped[i] ^= xor;
            for (frame, is_flipped) in [(&outer, false), (&flipped, true)] {
                let (rust, rust_out) = rust_on(env, Direction::Ingress, frame, common::TAILROOM);
                let rust_name = common::verdict_name(&rust);
                match run_ingress_xdp(rig, frame) {
                    IngressOutcome::Decapsulated(out) => {
                        c.ingress[0] += 1;
                        prop_assert_eq!(
                            &rust,
                            &Verdict::ToGuest,
                            "ingress (flipped: {}): XDP decapsulated",
                            is_flipped
                        );
                        prop_assert!(
                            out == rust_out,
                            "ingress (flipped: {}): bytes differ\n{}",
                            is_flipped,
                            common::hex_diff(&out, &rust_out)
                        );
                    }
                    IngressOutcome::Dropped(reason) => {
                        c.ingress[3] += 1;
                        prop_assert_eq!(
                            &rust,
                            &Verdict::Drop(reason),
                            "ingress (flipped: {}): XDP dropped",
                            is_flipped
                        );
                    }
                    other => {
                        let i = if other == IngressOutcome::ToWorkers {
                            1
                        } else {
                            2
                        };
                        c.ingress[i] += 1;
                        prop_assert!(
                            is_flipped,
                            "an unflipped flow from a remote was {:?} (Rust: {})",
                            other,
                            rust_name
                        );
                        prop_assert!(other != IngressOutcome::NoSocket, "no socket with one");
                    }
                }
            }
            Ok(())
        },
    );
    let c = counts.into_inner();
    println!("generated flows: {c:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(c.flows >= 300 && c.egress[0] >= 50, "{c:?}");
}
