//! Start, stop, crash, restart, upgrade and detach: the ports fail closed whenever no daemon
//! runs (the XDP programs are pinned in the test's bpffs and outlive the process), frame
//! accounting balances, and only `xvpc detach` opens the guest port again.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc, GUEST_V4, UNDERLAY_V4};

use crate::common::*;

fn xdp_attached(vpc: &Vpc) -> (bool, bool) {
    (
        has_xdp(&vpc.dataplane, "xg0"),
        has_xdp(&vpc.dataplane, "xf0"),
    )
}

fn ping_remote(vpc: &Vpc) {
    let remote = &vpc.remotes[0];
    for target in [remote.overlay_v4.to_string(), remote.overlay_v6.to_string()] {
        if let Err(out) = ping(&vpc.guest, &target, 2) {
            panic!("guest → {target}: {out}\nlog:\n{}", vpc.dataplane_log());
        }
    }
}

fn dev_counter(vpc: &Vpc, ns: &xvpc_testbed::Netns, dev: &str, name: &str) -> u64 {
    ns.sh(&format!("cat /sys/class/net/{dev}/statistics/{name}"))
        .unwrap_or_else(|e| panic!("{dev} {name}: {e}\n{}", vpc.dataplane_log()))
        .trim()
        .parse()
        .expect("a number")
}

/// What a guest probing the dataplane host saw.
struct Probe {
    /// The host answered the guest's ARP for its fabric address.
    arp_answered: bool,
    /// ICMP echo requests the host's stack received meanwhile.
    host_echos: u64,
    /// IPv4 packets the host's stack received meanwhile.
    host_ip_in: u64,
    /// Frames with the guest's MAC or address seen on the fabric meanwhile.
    on_fabric: usize,
}

/// The guest tries to reach the dataplane host's own fabric address (198.18.0.2) through its
/// port, as issue #12 reproduced: a host route on g0, ARP, three pings.
fn probe_host(vpc: &Vpc) -> Probe {
    let g = &vpc.guest;
    let _ = g.ip(&["route", "del", &format!("{UNDERLAY_V4}/32")]);
    g.ip(&["route", "add", &format!("{UNDERLAY_V4}/32"), "dev", "g0"])
        .expect("host route");
    let _ = g.ip(&["neigh", "flush", "dev", "g0", "to", UNDERLAY_V4]);
    let pcap = vpc.work.join("probe-fabric.pcap");
    let capture = Capture::start(
        &vpc.fabric,
        "f0",
        &format!("host {GUEST_V4} or ether host 02:00:00:00:01:01"),
        100,
        &pcap,
    );
    let before = snmp(&vpc.dataplane, &[]);
    let _ = ping(g, UNDERLAY_V4, 3);
    let after = snmp(&vpc.dataplane, &[]);
    let neigh = g
        .ip(&["neigh", "show", "to", UNDERLAY_V4, "dev", "g0"])
        .unwrap_or_default();
    std::thread::sleep(Duration::from_millis(200));
    let on_fabric = pcap_packets(&capture.finish()).len();
    g.ip(&["route", "del", &format!("{UNDERLAY_V4}/32")])
        .expect("remove the host route");
    let moved = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    Probe {
        arp_answered: neigh.contains("lladdr"),
        host_echos: moved("Icmp.InEchos"),
        host_ip_in: moved("Ip.InReceives"),
        on_fabric,
    }
}

fn assert_closed(p: &Probe, when: &str) {
    assert!(!p.arp_answered, "{when}: the host answered the guest's ARP");
    assert_eq!(
        p.host_echos, 0,
        "{when}: guest pings reached the host stack"
    );
    assert_eq!(
        p.host_ip_in, 0,
        "{when}: guest packets reached the host stack"
    );
    assert_eq!(p.on_fabric, 0, "{when}: guest frames reached the fabric");
}

fn xvpc_cmd(vpc: &Vpc, args: &[&str]) -> (bool, String) {
    let bin = xvpc();
    let mut argv = vec![bin.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    let out = vpc.dataplane.exec(&argv).expect("run xvpc");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn config_path(vpc: &Vpc) -> String {
    vpc.work.join("xvpc.toml").display().to_string()
}

fn guest_xdp_drops(vpc: &Vpc) -> u64 {
    let s = stats(vpc);
    s["xdp"]["guest"]["dropped_no_socket"]
        .as_u64()
        .unwrap_or_else(|| panic!("no xdp.guest.dropped_no_socket in {s}"))
}

#[test]
fn clean_stop_keeps_both_ports_closed_and_a_restart_reuses_the_pins() {
    require_root();
    let vpc = Vpc::new("lif", &[Underlay::V4]).expect("topology");
    assert_eq!(xdp_attached(&vpc), (false, false), "no XDP before xvpc");
    let mut daemon = start_default(&vpc);
    assert_eq!(xdp_attached(&vpc), (true, true), "xvpc attached both ports");
    ping_remote(&vpc);

    // Idle after traffic: every frame is back in a fill ring or on the free list.
    let frames = wait_until("frames to settle (in_app 0, in_tx [0,0])", || {
        let snapshot = stats(&vpc);
        let frames = snapshot["workers"][0]["frames"].clone();
        (frames["in_app"] == 0 && frames["in_tx"] == serde_json::json!([0, 0])).then_some(frames)
    });
    assert_eq!(frames["balanced"], true, "running accounting: {frames}");
    let snapshot = stats(&vpc);
    for port in ["guest", "fabric"] {
        let kernel = &snapshot["workers"][0]["kernel"][port];
        assert_eq!(kernel["rx_ring_full"], 0, "{port} socket: {kernel}");
        assert_eq!(kernel["rx_invalid_descs"], 0, "{port} socket: {kernel}");
    }

    let before = totals(&vpc);
    let last = stop(&vpc, &mut daemon);
    assert_clean_exit_summary(&last);
    assert!(
        counter(&last, "egress_packets") >= counter(&before, "egress_packets")
            && counter(&last, "egress_packets") >= 4,
        "the final counters include the run's traffic: {last}"
    );
    for reason in ["tx_ring_full", "invalid_descriptor", "no_headroom"] {
        assert_eq!(counter(&last, reason), 0, "{reason}: {last}");
    }
    assert!(
        !vpc.stats_socket().exists() && !vpc.control_socket().exists(),
        "sockets removed at exit"
    );
    // Stopped means closed: the programs stay, pinned, and drop what the guest sends.
    assert_eq!(
        xdp_attached(&vpc),
        (true, true),
        "XDP stays attached after a stop"
    );
    assert!(vpc.pin_dir().join("xg0/link").exists(), "guest link pinned");
    assert!(
        vpc.pin_dir().join("xf0/link").exists(),
        "fabric link pinned"
    );
    assert_closed(&probe_host(&vpc), "after a clean stop");
    let log = vpc.dataplane_log();
    assert!(log.contains("stay attached and pinned"), "log:\n{log}");

    // The same binary again: it adopts the pinned programs as they are.
    let mut daemon = start_default(&vpc);
    ping_remote(&vpc);
    let log = vpc.dataplane_log();
    assert_eq!(
        log.matches("already attached: reused").count(),
        2,
        "both programs reused:\n{log}"
    );
    let (ok, status) = xvpc_cmd(&vpc, &["status", "--config", &config_path(&vpc)]);
    assert!(ok, "xvpc status: {status}");
    assert_eq!(status.matches(", attached").count(), 2, "{status}");
    assert!(status.contains("dataplane: running"), "{status}");
    stop(&vpc, &mut daemon);
}

#[test]
fn kill_9_fails_closed_counts_the_drops_and_only_detach_opens_the_port() {
    require_root();
    let vpc = Vpc::new("crs", &[Underlay::V4]).expect("topology");
    let mut daemon = start_default(&vpc);
    ping_remote(&vpc);
    let drops_before = guest_xdp_drops(&vpc);
    let status = daemon.kill_hard().expect("kill -9 xvpc");
    assert!(!status.success(), "xvpc was killed: {status}");
    // The sockets leave the XSKMAP as the dead process's descriptors close.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        xdp_attached(&vpc),
        (true, true),
        "XDP stays attached after kill -9"
    );

    // The pinned counters, read through `xvpc status` while no daemon runs, move by what the
    // guest sends. The guest's kernel may send a frame of its own (an ARP retry) at any
    // moment, so the move is bracketed by g0's own count: at least what it sent between the
    // two reads, at most what it sent from just before the first read (a frame counted in
    // g0's tx can still be on its way through the veth) to just after the second.
    let status_drops = |vpc: &Vpc| -> u64 {
        let (_, out) = xvpc_cmd(vpc, &["status", "--config", &config_path(vpc)]);
        out.lines()
            .find(|l| l.starts_with("guest "))
            .and_then(|l| l.split("dropped_no_socket ").nth(1))
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no guest dropped_no_socket in xvpc status:\n{out}"))
    };
    let guest_sent = |vpc: &Vpc| dev_counter(vpc, &vpc.guest, "g0", "tx_packets");
    let sent_before_d0 = guest_sent(&vpc);
    let d0 = status_drops(&vpc);
    let sent_after_d0 = guest_sent(&vpc);
    let probe = probe_host(&vpc);
    assert_closed(&probe, "after kill -9");
    let sent_low = guest_sent(&vpc) - sent_after_d0;
    let d1 = status_drops(&vpc);
    let sent_high = guest_sent(&vpc) - sent_before_d0;
    assert!(
        sent_low >= 3,
        "the guest sent its probes ({sent_low} frames)"
    );
    assert!(
        (sent_low..=sent_high).contains(&(d1 - d0)),
        "the pinned guest drop counter moved by {} while the guest sent {sent_low}..={sent_high} frames",
        d1 - d0
    );
    assert!(d0 >= drops_before, "the counters survived the crash");
    let (ok, status_out) = xvpc_cmd(&vpc, &["status", "--config", &config_path(&vpc)]);
    assert!(ok, "closed ports are a good status: {status_out}");
    assert!(
        status_out.contains("dataplane: not running"),
        "{status_out}"
    );

    // A restart despite the stale socket files: traffic flows again, and the restarted
    // daemon's stats carry the drops counted while it was down.
    let mut daemon = start_default(&vpc);
    ping_remote(&vpc);
    assert!(
        guest_xdp_drops(&vpc) >= d1,
        "xvpc stats after the restart shows the drops counted while no dataplane ran"
    );
    let last = stop(&vpc, &mut daemon);
    assert_clean_exit_summary(&last);

    // `xvpc detach` is the way out, and says so; the positive control: the same probe now
    // reaches the host.
    let (ok, out) = xvpc_cmd(&vpc, &["detach", "--config", &config_path(&vpc)]);
    assert!(ok, "xvpc detach: {out}");
    assert!(out.contains("ordinary interface"), "{out}");
    wait_until("the programs to go after detach", || {
        (xdp_attached(&vpc) == (false, false)).then_some(())
    });
    assert!(!vpc.pin_dir().join("xg0").exists(), "pins removed");
    let (ok, out) = xvpc_cmd(&vpc, &["status", "--config", &config_path(&vpc)]);
    assert!(
        !ok && out.contains("OPEN"),
        "status of an open port fails: {out}"
    );
    let open = probe_host(&vpc);
    assert!(
        open.arp_answered,
        "positive control: the host answers ARP once detached"
    );
    assert!(
        open.host_echos >= 1,
        "positive control: pings reach the host stack"
    );
}

#[test]
fn a_changed_program_version_replaces_the_old_one_with_no_gap() {
    require_root();
    let vpc = Vpc::new("upg", &[Underlay::V4]).expect("topology");
    let mut daemon = start_default(&vpc);
    ping_remote(&vpc);
    stop(&vpc, &mut daemon);
    let ids = |vpc: &Vpc| {
        ["xg0", "xf0"].map(|dev| {
            let text = vpc
                .dataplane
                .ip(&["-d", "link", "show", "dev", dev])
                .expect("ip link");
            text.split("prog/xdp id ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no XDP program on {dev}: {text}"))
        })
    };
    let old = ids(&vpc);

    // The guest probes the host for the whole swap: ARP and pings every 10 ms.
    let g = &vpc.guest;
    g.ip(&["route", "add", &format!("{UNDERLAY_V4}/32"), "dev", "g0"])
        .expect("host route");
    let before = snmp(&vpc.dataplane, &[]);
    let mut flood = g
        .spawn_piped(&["ping", "-c", "300", "-i", "0.01", "-W", "1", UNDERLAY_V4])
        .expect("start the probe flood");
    std::thread::sleep(Duration::from_millis(300));
    let config = vpc.config_toml(&static_mappings(&vpc), "");
    let env = format!("{}=drill-2", xvpc_xdp::VERSION_SALT_ENV);
    let mut daemon = vpc
        .start_dataplane_with_env(&xvpc(), &config, &[&env])
        .unwrap_or_else(|e| panic!("the new version did not start: {e}"));
    let _ = flood.wait_timeout(Duration::from_secs(20));
    let after = snmp(&vpc.dataplane, &[]);
    let new = ids(&vpc);
    let log = vpc.dataplane_log();
    assert_eq!(
        log.matches("replaced atomically").count(),
        2,
        "both programs upgraded in place:\n{log}"
    );
    assert_ne!(old, new, "new programs run on both ports");
    let moved = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(
        moved("Icmp.InEchos"),
        0,
        "a guest ping reached the host during the swap"
    );
    assert_eq!(
        moved("Ip.InReceives"),
        0,
        "a guest packet reached the host during the swap"
    );
    let neigh = g
        .ip(&["neigh", "show", "to", UNDERLAY_V4, "dev", "g0"])
        .unwrap_or_default();
    assert!(!neigh.contains("lladdr"), "the host answered ARP: {neigh}");
    g.ip(&["route", "del", &format!("{UNDERLAY_V4}/32")])
        .expect("remove the host route");
    ping_remote(&vpc);
    let (ok, status) = xvpc_cmd(&vpc, &["status", "--config", &config_path(&vpc)]);
    assert!(ok, "{status}");
    stop(&vpc, &mut daemon);
}

/// What a paced guest → remote UDP stream saw across a restart.
struct Gap {
    sent: u32,
    received: u32,
    longest_gap: Duration,
}

/// Sends `seconds` of 10 kpps sequence-numbered datagrams from the guest to the remote's
/// overlay address while `during` runs (after a 1 s lead-in), and measures what arrived.
fn paced_stream_across(vpc: &Vpc, seconds: u64, during: impl FnOnce()) -> Gap {
    const PPS: u64 = 10_000;
    let remote = &vpc.remotes[0];
    let dst = SocketAddr::new(remote.overlay_v4.into(), 7001);
    let done = AtomicBool::new(false);
    let (sent, mut arrivals) = std::thread::scope(|s| {
        let done = &done;
        let receiver = s.spawn(move || {
            remote.ns.run_in(|| {
                let sock = UdpSocket::bind(dst).expect("bind the receiver");
                // The burst queued during a restart or takeover arrives at once: a default
                // 208 KiB buffer would drop it here (Udp.RcvbufErrors), not in the dataplane.
                nix::sys::socket::setsockopt(
                    &sock,
                    nix::sys::socket::sockopt::RcvBufForce,
                    &(16 << 20),
                )
                .expect("SO_RCVBUFFORCE (needs CAP_NET_ADMIN)");
                sock.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("timeout");
                let mut arrivals: Vec<(u32, Instant)> = Vec::new();
                let mut buf = [0u8; 64];
                while !done.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        if n >= 4 {
                            let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                            arrivals.push((seq, Instant::now()));
                        }
                    }
                }
                arrivals
            })
        });
        std::thread::sleep(Duration::from_millis(200));
        let guest = &vpc.guest;
        let sender = s.spawn(move || {
            guest.run_in(|| {
                let sock = UdpSocket::bind("0.0.0.0:0").expect("bind the sender");
                let start = Instant::now();
                let total = (PPS * seconds) as u32;
                for seq in 0..total {
                    let due = start + Duration::from_micros(u64::from(seq) * 1_000_000 / PPS);
                    while Instant::now() < due {
                        std::hint::spin_loop();
                    }
                    let _ = sock.send_to(&seq.to_be_bytes(), dst);
                }
                total
            })
        });
        std::thread::sleep(Duration::from_secs(1));
        during();
        let sent = sender.join().expect("sender");
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        (sent, receiver.join().expect("receiver"))
    });
    arrivals.sort_by_key(|a| a.1);
    let mut seen = std::collections::HashSet::new();
    arrivals.iter().for_each(|(s, _)| {
        seen.insert(*s);
    });
    let longest_gap = arrivals
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or_default();
    Gap {
        sent,
        received: seen.len() as u32,
        longest_gap,
    }
}

#[test]
fn restart_gap_of_a_paced_stream_through_kill_9_and_a_clean_restart() {
    require_root();
    let vpc = Vpc::new("gap", &[Underlay::V4]).expect("topology");
    let mut daemon = start_default(&vpc);
    ping_remote(&vpc);
    let mut results = Vec::new();
    for how in ["kill -9", "SIGTERM"] {
        let host_before = snmp(&vpc.dataplane, &[]);
        let gap = paced_stream_across(&vpc, 3, || {
            if how == "kill -9" {
                daemon.kill_hard().expect("kill -9");
            } else {
                daemon.terminate().expect("SIGTERM");
            }
            daemon = start_default(&vpc);
        });
        let host_after = snmp(&vpc.dataplane, &[]);
        let lost = gap.sent - gap.received.min(gap.sent);
        eprintln!(
            "restart gap ({how} + restart, 10 kpps guest → remote UDP): lost {lost} of {}, \
             longest gap between arrivals {:.1} ms",
            gap.sent,
            gap.longest_gap.as_secs_f64() * 1e3
        );
        assert!(
            gap.received > 0 && lost < gap.sent / 2,
            "traffic resumed after {how}"
        );
        let ip_in = |s: &std::collections::HashMap<String, u64>| {
            s.get("Ip.InReceives").copied().unwrap_or(0)
        };
        // The host's own traffic (none here) is all that may reach its stack.
        assert_eq!(
            ip_in(&host_after) - ip_in(&host_before),
            0,
            "guest packets reached the host stack during the {how} restart"
        );
        results.push((how, lost, gap.longest_gap));
    }
    stop(&vpc, &mut daemon);
    assert_eq!(results.len(), 2);
}

/// Upgrade by takeover: `xvpc run --takeover` receives the running daemon's sockets, UMEM
/// and mappings while a 10 kpps stream flows; nothing is lost, and both daemons' frame books
/// are exact at their exits.
#[test]
fn takeover_loses_no_frame_of_a_paced_stream() {
    require_root();
    let vpc = Vpc::new("tko", &[Underlay::V4]).expect("topology");
    let mut old = start_default(&vpc);
    ping_remote(&vpc);
    let config = vpc.config_toml(&static_mappings(&vpc), "");
    let mut new = None;
    let mut took = Duration::ZERO;
    let remote_before = snmp(&vpc.remotes[0].ns, &[]);
    let gap = paced_stream_across(&vpc, 3, || {
        let t = Instant::now();
        new = Some(
            vpc.start_takeover(&xvpc(), &config)
                .expect("start xvpc run --takeover"),
        );
        // The old daemon exits once the new one forwards.
        let status = old
            .wait_timeout(PATIENCE)
            .expect("wait for the old daemon")
            .unwrap_or_else(|| panic!("the old daemon still runs; log:\n{}", vpc.dataplane_log()));
        took = t.elapsed();
        assert!(
            status.success(),
            "the old daemon exited with {status}; log:\n{}",
            vpc.dataplane_log()
        );
    });
    let mut new = new.expect("the takeover ran");
    let handed: serde_json::Value = serde_json::from_str(&vpc.dataplane_output())
        .unwrap_or_else(|e| panic!("old daemon's summary ({e}); log:\n{}", vpc.dataplane_log()));
    assert_eq!(handed["handed_over"], true, "{handed}");
    assert_eq!(
        handed["frames_audit"], true,
        "old daemon's frame audit: {handed}"
    );
    assert_eq!(handed["frames_held_at_exit"], 0, "{handed}");
    // The new daemon serves the stats socket and forwards. The kernel counters are those of
    // the same sockets: cumulative over both daemons.
    let snapshot = stats(&vpc);
    let kernel = |name: &str| -> u64 {
        snapshot["workers"]
            .as_array()
            .map(|ws| {
                ws.iter()
                    .map(|w| w["kernel"]["guest"][name].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    // At a full RX ring, or with no frame in the fill ring.
    let kernel_drops = kernel("rx_ring_full") + kernel("rx_dropped");
    ping_remote(&vpc);
    let status = new.terminate().expect("stop the new daemon");
    assert!(status.success(), "log:\n{}", vpc.dataplane_log());
    let last: serde_json::Value = serde_json::from_str(&vpc.takeover_output())
        .unwrap_or_else(|e| panic!("new daemon's summary ({e}); log:\n{}", vpc.dataplane_log()));
    assert_eq!(last["handed_over"], false);
    assert_eq!(
        last["frames_audit"], true,
        "new daemon's frame audit: {last}"
    );
    assert_eq!(last["frames_held_at_exit"], 0, "{last}");
    let remote_after = snmp(&vpc.remotes[0].ns, &[]);
    let rcvbuf_errors = remote_after.get("Udp.RcvbufErrors").copied().unwrap_or(0)
        - remote_before.get("Udp.RcvbufErrors").copied().unwrap_or(0);
    let lost = u64::from(gap.sent - gap.received.min(gap.sent));
    eprintln!(
        "takeover (10 kpps guest → remote UDP): lost {lost} of {}, longest gap between \
         arrivals {:.1} ms, guest socket drops rx_ring_full {} rx_dropped {}, takeover to \
         old daemon's exit {:.0} ms, receiver Udp.RcvbufErrors {rcvbuf_errors}",
        gap.sent,
        gap.longest_gap.as_secs_f64() * 1e3,
        kernel("rx_ring_full"),
        kernel("rx_dropped"),
        took.as_secs_f64() * 1e3
    );
    assert!(
        lost <= kernel_drops,
        "{lost} frames lost across the takeover, {kernel_drops} counted by the guest socket; \
         old daemon {handed}, new daemon {last}"
    );
    assert_eq!(lost, 0, "frames lost across the takeover");
}

#[test]
fn systemd_notify_ready_after_attach_and_watchdog_pings() {
    require_root();
    let vpc = Vpc::new("ntf", &[Underlay::V4]).expect("topology");
    let path = vpc.work.join("notify.sock");
    let listener =
        std::os::unix::net::UnixDatagram::bind(&path).expect("bind the NOTIFY_SOCKET listener");
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let config = vpc.config_toml(&static_mappings(&vpc), "");
    let env = [
        format!("NOTIFY_SOCKET={}", path.display()),
        "WATCHDOG_USEC=400000".to_string(),
    ];
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    let mut daemon = vpc
        .start_dataplane_with_env(&xvpc(), &config, &env)
        .unwrap_or_else(|e| panic!("xvpc did not start: {e}"));
    let mut buf = [0u8; 512];
    let recv = |buf: &mut [u8]| -> String {
        let n = listener.recv(buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv(&mut buf);
    assert!(first.starts_with("READY=1\n"), "first message: {first:?}");
    assert!(first.contains("STATUS=forwarding"), "{first:?}");
    assert_eq!(xdp_attached(&vpc), (true, true), "READY only once attached");
    // Half the 400 ms watchdog: about 5 pings a second, while the workers beat.
    let start = Instant::now();
    let mut pings = 0;
    while pings < 3 {
        let m = recv(&mut buf);
        assert_eq!(m, "WATCHDOG=1\n");
        pings += 1;
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "pings come often enough"
    );
    daemon.terminate().expect("SIGTERM");
    let mut last = String::new();
    while let Ok(n) = listener.recv(&mut buf) {
        last = String::from_utf8_lossy(&buf[..n]).into_owned();
        if last.starts_with("STOPPING=1") {
            break;
        }
    }
    assert!(last.starts_with("STOPPING=1"), "last message: {last:?}");
}

/// The exit summary: every worker's frame book matched a full recount and no worker kept a
/// frame, and the kernel dropped nothing at a full RX ring of either socket.
fn assert_clean_exit_summary(last: &serde_json::Value) {
    assert_eq!(last["frames_audit"], true, "final frame audit: {last}");
    assert_eq!(
        last["frames_held_at_exit"], 0,
        "frames kept by workers: {last}"
    );
    assert_eq!(
        last["kernel_rx_ring_full"],
        serde_json::json!({"guest": 0, "fabric": 0}),
        "final kernel drops: {last}"
    );
}

/// `dataplane.fast_path` changed across a restart, `afxdp` → `xdp` → `afxdp`: the pinned guest
/// link gets the other program in place (`bpf_link_update`), the guest port is never open
/// meanwhile (the guest floods the host's address with ARP and pings, and streams UDP to the
/// remote, across each switch), and traffic flows in the new tier afterwards.
#[test]
fn switching_the_tier_upgrades_the_guest_link_in_place_and_never_opens_the_port() {
    require_root();
    let vpc = Vpc::new("tsw", &[Underlay::V4]).expect("topology");
    // XDP redirects into xf0 reach f0 only with NAPI on it (docs/XDP.md).
    vpc.fabric
        .sh("ethtool -K f0 gro on")
        .expect("GRO on the fabric peer");
    let config = |tier: &str| {
        let extra = match tier {
            "xdp" => "fast_path = \"xdp\"\nfast_path_capacity = 4096",
            _ => "fast_path = \"afxdp\"",
        };
        vpc.config_toml(&static_mappings(&vpc), extra)
    };
    let remote = &vpc.remotes[0];
    let dst = SocketAddr::new(remote.overlay_v4.into(), 7002);
    let guest_link = || {
        let pin = vpc.pin_dir().join("xg0/link");
        std::fs::metadata(&pin)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or_else(|e| panic!("{}: {e}", pin.display()))
    };
    let mut daemon = start(&vpc, &config("afxdp"));
    ping_remote(&vpc);
    let link = guest_link();

    for (tier, program) in [("xdp", "xvpc_guest_fast"), ("afxdp", "xvpc_guest")] {
        let g = &vpc.guest;
        g.ip(&["route", "add", &format!("{UNDERLAY_V4}/32"), "dev", "g0"])
            .expect("host route");
        let _ = g.ip(&["neigh", "flush", "dev", "g0", "to", UNDERLAY_V4]);
        let log_before = vpc.dataplane_log().len();
        let host_before = snmp(&vpc.dataplane, &[]);
        let mut flood = g
            .spawn_piped(&["ping", "-c", "300", "-i", "0.01", "-W", "1", UNDERLAY_V4])
            .expect("start the probe flood");
        let gap = paced_stream_across(&vpc, 3, || {
            daemon.terminate().expect("SIGTERM");
            daemon = start(&vpc, &config(tier));
        });
        let _ = flood.wait_timeout(Duration::from_secs(20));
        let host_after = snmp(&vpc.dataplane, &[]);
        let moved = |k: &str| {
            host_after.get(k).copied().unwrap_or(0) - host_before.get(k).copied().unwrap_or(0)
        };
        let when = format!("switching to fast_path = \"{tier}\"");
        assert_eq!(
            moved("Icmp.InEchos"),
            0,
            "{when}: a guest ping reached the host"
        );
        assert_eq!(
            moved("Ip.InReceives"),
            0,
            "{when}: a guest packet reached the host"
        );
        let neigh = g
            .ip(&["neigh", "show", "to", UNDERLAY_V4, "dev", "g0"])
            .unwrap_or_default();
        assert!(
            !neigh.contains("lladdr"),
            "{when}: the host answered ARP: {neigh}"
        );
        g.ip(&["route", "del", &format!("{UNDERLAY_V4}/32")])
            .expect("remove the host route");
        let lost = gap.sent - gap.received.min(gap.sent);
        eprintln!(
            "{when} (10 kpps guest → remote UDP): lost {lost} of {}, longest gap {:.1} ms",
            gap.sent,
            gap.longest_gap.as_secs_f64() * 1e3
        );
        assert!(
            gap.received > 0 && lost < gap.sent / 2,
            "{when}: the stream did not resume ({} of {} arrived)",
            gap.received,
            gap.sent
        );

        // An upgrade of the pinned link, not a new attachment.
        let log = vpc.dataplane_log();
        let new_log = &log[log_before..];
        assert!(
            new_log.lines().any(|l| l.contains("replaced atomically")
                && l.contains("xg0")
                && l.contains(program)),
            "{when}: no in-place upgrade of the guest link to {program}:\n{new_log}"
        );
        assert_eq!(
            guest_link(),
            link,
            "{when}: the pinned guest link is the same"
        );
        let (ok, status) = xvpc_cmd(&vpc, &["status", "--config", &config_path(&vpc)]);
        assert!(ok, "{when}: {status}");
        let guest_line = status
            .lines()
            .find(|l| l.starts_with("guest "))
            .unwrap_or_else(|| panic!("no guest line in xvpc status:\n{status}"));
        assert!(
            guest_line.contains(&format!(": {program} version"))
                && guest_line.contains(", attached"),
            "{when}: {guest_line}"
        );

        // Traffic flows in the new tier.
        let before = stats(&vpc);
        let report = udp_transfer(&vpc.guest, &remote.ns, dst, 500);
        let after = stats(&vpc);
        assert_eq!(report.intact, 500, "{when}: {report:?}");
        let fast = &after["xdp"]["guest_fast"];
        let workers = |s: &serde_json::Value| -> u64 {
            s["workers"]
                .as_array()
                .expect("workers")
                .iter()
                .map(|w| counter(&w["counters"], "egress_packets"))
                .sum()
        };
        if tier == "xdp" {
            let encapsulated = |s: &serde_json::Value| {
                s["xdp"]["guest_fast"]["encapsulated"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{when}: no XDP tier in {}", s["xdp"]))
            };
            assert_eq!(
                encapsulated(&after) - encapsulated(&before),
                500,
                "{when}: the XDP tier took the flow"
            );
            assert_eq!(workers(&after), workers(&before), "{when}: not the workers");
        } else {
            assert!(fast.is_null(), "{when}: an XDP tier still runs: {fast}");
            assert!(
                workers(&after) - workers(&before) >= 500,
                "{when}: the workers took the flow"
            );
        }
    }
    let last = stop(&vpc, &mut daemon);
    assert_clean_exit_summary(&last);
}
