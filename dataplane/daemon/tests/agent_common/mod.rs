//! Shared fixtures of the agent ↔ dataplane end-to-end tests: start `xvpc-agent` next to a
//! real `xvpc run`, read the daemon's stats, wait (bounded) for convergence, talk from the
//! guest.
#![allow(dead_code)]

use std::io::Read;
use std::net::{IpAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use xvpc_testbed::etcd::Etcd;
use xvpc_testbed::vpc::{workspace_bin, Remote, Vpc, VNI};
use xvpc_testbed::ChildGuard;

/// Upper bound of every wait (a hang guard, never a performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);
/// The agent's default etcd prefix.
pub const PREFIX: &str = "/xvpc/mappings";

/// The etcd key of `(VNI 100, ip)`.
pub fn etcd_key(ip: IpAddr) -> String {
    format!("{PREFIX}/{VNI}/{ip}")
}

/// The etcd value mapping to `underlay` / `mac`.
pub fn etcd_value(underlay: IpAddr, mac: &str) -> String {
    format!(r#"{{"underlay_ip":"{underlay}","overlay_mac":"{mac}"}}"#)
}

/// Puts the mapping of `remote`'s overlay address `ip` (to its own underlay) into etcd.
pub fn put_remote(etcd: &Etcd, remote: &Remote, ip: IpAddr) {
    etcd.put(
        &etcd_key(ip),
        &etcd_value(remote.underlay_ip(), &remote.mac),
    )
    .expect("etcdctl put");
}

/// Starts `xvpc-agent` with `args` (plus `--control <the vpc's socket>`), logging to
/// `<work>/agent-<n>.log`.
pub fn start_agent(vpc: &Vpc, n: usize, args: &[&str]) -> ChildGuard {
    let log_path = vpc.work.join(format!("agent-{n}.log"));
    let log = std::fs::File::create(&log_path).expect("agent log file");
    let child = Command::new(workspace_bin("xvpc-agent"))
        .args(args)
        .arg("--control")
        .arg(vpc.control_socket())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .expect("start xvpc-agent (build it: cargo build --workspace --bins)");
    ChildGuard::new(child)
}

/// Starts an etcd-sourced agent on `etcd`.
pub fn start_etcd_agent(vpc: &Vpc, n: usize, etcd: &Etcd) -> ChildGuard {
    let endpoint = etcd.endpoint();
    start_agent(vpc, n, &["--source", "etcd", "--etcd-endpoints", &endpoint])
}

/// Every agent log and the daemon's log, for failure messages.
pub fn logs(vpc: &Vpc) -> String {
    let mut s = format!("--- xvpc log\n{}", vpc.dataplane_log());
    for n in 0..8 {
        if let Ok(t) = std::fs::read_to_string(vpc.work.join(format!("agent-{n}.log"))) {
            s.push_str(&format!("--- agent-{n} log\n{t}"));
        }
    }
    s
}

/// The daemon's stats snapshot.
pub fn stats(vpc: &Vpc) -> Value {
    let mut s = UnixStream::connect(vpc.stats_socket()).expect("connect to the stats socket");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read stats");
    serde_json::from_str(&body).expect("stats are JSON")
}

/// A counter of the snapshot by JSON pointer (`/total/misses`); panics naming it if absent.
pub fn counter(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("stats have no counter {pointer}: {v}"))
}

/// Shorthand: one counter of a fresh snapshot.
pub fn stat(vpc: &Vpc, pointer: &str) -> u64 {
    counter(&stats(vpc), pointer)
}

/// Waits (bounded by [`PATIENCE`]) until `f` holds; the failure message has every log.
pub fn wait_until(vpc: &Vpc, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out ({PATIENCE:?}) waiting for: {what}\nstats: {}\n{}",
            stats(vpc),
            logs(vpc)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One ping from the guest to `ip` (1 s timeout): did it get an answer?
pub fn ping_once(vpc: &Vpc, ip: IpAddr) -> bool {
    vpc.guest.sh(&format!("ping -c 1 -W 1 {ip}")).is_ok()
}

/// Waits until the guest reaches `ip`.
pub fn wait_ping(vpc: &Vpc, ip: IpAddr) {
    wait_until(vpc, &format!("guest pings {ip}"), || ping_once(vpc, ip));
}

/// Waits until the daemon has swapped in at least `n` full syncs.
pub fn wait_full_syncs(vpc: &Vpc, n: u64) {
    wait_until(vpc, &format!("control.full_syncs >= {n}"), || {
        stat(vpc, "/control/full_syncs") >= n
    });
}

/// Waits until the workers report `n` mappings. A full sync is counted when it is sent;
/// the workers publish what they hold a few milliseconds later.
pub fn wait_mappings(vpc: &Vpc, n: u64) {
    wait_until(vpc, &format!("control.mappings == {n}"), || {
        stat(vpc, "/control/mappings") == n
    });
}

/// Sends `count` UDP datagrams (payload: big-endian sequence number) from the guest to
/// `dst:port`, one every `gap`; returns how many the kernel accepted.
pub fn udp_stream(vpc: &Vpc, dst: IpAddr, port: u16, count: u32, gap: Duration) -> u32 {
    vpc.guest.run_in(move || {
        let sock = UdpSocket::bind("0.0.0.0:0").expect("guest UDP socket");
        let mut sent = 0;
        for seq in 0..count {
            if sock.send_to(&seq.to_be_bytes(), (dst, port)).is_ok() {
                sent += 1;
            }
            std::thread::sleep(gap);
        }
        sent
    })
}

/// A UDP socket bound to `ip:port` inside `remote`'s namespace (sockets keep their
/// namespace after the thread that made them leaves it).
pub fn udp_sink(remote: &Remote, ip: IpAddr, port: u16) -> UdpSocket {
    let sock = remote
        .ns
        .run_in(move || UdpSocket::bind((ip, port)))
        .expect("bind the UDP sink in the remote namespace");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    sock
}

/// Receives datagrams from `sock` until `expected` distinct sequence numbers arrived or
/// nothing arrived for 3 s; returns the distinct sequence numbers seen.
pub fn drain_sink(sock: &UdpSocket, expected: u32) -> std::collections::BTreeSet<u32> {
    let mut seen = std::collections::BTreeSet::new();
    let mut idle = Instant::now();
    let mut buf = [0u8; 64];
    while (seen.len() as u32) < expected && idle.elapsed() < Duration::from_secs(3) {
        if let Ok(n) = sock.recv(&mut buf) {
            if n == 4 {
                seen.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
            idle = Instant::now();
        }
    }
    seen
}
