//! Shared fixtures of the end-to-end suite: start and stop `xvpc run`, read its counters,
//! bounded waits, packet captures, scapy, and verified UDP/TCP traffic between namespaces.
//!
//! Every wait here is bounded by [`PATIENCE`]: a hang guard, never a performance assertion.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use xvpc_testbed::vpc::{workspace_bin, Vpc};
use xvpc_testbed::{ChildGuard, Netns};

/// Upper bound of every wait in this suite.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The `xvpc` binary cargo built for this test run.
pub fn xvpc() -> PathBuf {
    workspace_bin("xvpc")
}

/// Static mappings for every remote of `vpc`.
pub fn static_mappings(vpc: &Vpc) -> String {
    vpc.remotes.iter().map(|r| r.mappings_toml()).collect()
}

/// Writes `config` and starts `xvpc run`; panics with the daemon's log if it does not come up.
pub fn start(vpc: &Vpc, config: &str) -> ChildGuard {
    vpc.start_dataplane(&xvpc(), config)
        .unwrap_or_else(|e| panic!("xvpc run did not start: {e}"))
}

/// Starts `xvpc run` with the standard config and static mappings for every remote.
pub fn start_default(vpc: &Vpc) -> ChildGuard {
    start(vpc, &vpc.config_toml(&static_mappings(vpc), ""))
}

/// SIGTERM, then the final counters `xvpc run` prints on stdout. Asserts a clean exit.
pub fn stop(vpc: &Vpc, daemon: &mut ChildGuard) -> Value {
    let status = daemon.terminate().expect("stopping xvpc");
    assert!(
        status.success(),
        "xvpc exited with {status} after SIGTERM (a clean stop exits 0); log:\n{}",
        vpc.dataplane_log()
    );
    let out = vpc.dataplane_output();
    serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "xvpc's final output is not JSON ({e}):\n{out}\nlog:\n{}",
            vpc.dataplane_log()
        )
    })
}

/// A snapshot from `xvpc stats --json --socket <vpc's stats socket>`.
pub fn stats(vpc: &Vpc) -> Value {
    let out = Command::new(xvpc())
        .arg("stats")
        .arg("--json")
        .arg("--socket")
        .arg(vpc.stats_socket())
        .output()
        .expect("running xvpc stats");
    assert!(
        out.status.success(),
        "xvpc stats failed: {}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        vpc.dataplane_log()
    );
    serde_json::from_slice(&out.stdout).expect("xvpc stats prints JSON")
}

/// The summed counters of a running daemon (`total` of the snapshot).
pub fn totals(vpc: &Vpc) -> Value {
    stats(vpc)["total"].clone()
}

/// A counter by name from a counters object: a scalar (`egress_packets`) or a drop reason
/// (`spoofed_source_ip`).
pub fn counter(counters: &Value, name: &str) -> u64 {
    counters
        .get(name)
        .or_else(|| counters["drops"].get(name))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no counter `{name}` in {counters}"))
}

/// `after[name] - before[name]`.
pub fn delta(before: &Value, after: &Value, name: &str) -> u64 {
    counter(after, name) - counter(before, name)
}

/// Polls `f` (every 50 ms, up to [`PATIENCE`]) until it returns `Some`; panics naming `what`.
pub fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the daemon's counter `name` reaches `base[name] + at_least` (workers publish
/// every 20 ms) and returns the totals then.
pub fn wait_counter(vpc: &Vpc, base: &Value, name: &str, at_least: u64) -> Value {
    let mut last = Value::Null;
    let what = format!("counter {name} to move by {at_least}");
    let found = {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = totals(vpc);
            if delta(base, &now, name) >= at_least {
                break Some(now);
            }
            last = now;
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    found.unwrap_or_else(|| panic!("gave up waiting for {what}; last totals: {last}"))
}

/// Waits until every counter in `expected` has moved by at least its amount since `base`,
/// then asserts each moved by exactly that amount (the frames were all sent before, and a
/// worker processes one port's frames in order, so any excess would show by then too).
pub fn assert_deltas(vpc: &Vpc, base: &Value, expected: &[(&str, u64)]) -> Value {
    let mut last = Value::Null;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = totals(vpc);
        if expected
            .iter()
            .all(|(name, n)| delta(base, &now, name) >= *n)
        {
            last = now;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(50));
    }
    let moved: Vec<(&str, u64)> = expected
        .iter()
        .map(|(name, _)| (*name, delta(base, &last, name)))
        .collect();
    assert_eq!(
        moved,
        expected,
        "counter deltas (name, moved); totals: {last}\nlog:\n{}",
        vpc.dataplane_log()
    );
    last
}

/// `ping -c <count>` from `ns`: Ok(stdout) if replies came back, Err(stdout + stderr) if not.
pub fn ping(ns: &Netns, target: &str, count: u32) -> Result<String, String> {
    let out = ns
        .exec(&[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            target,
        ])
        .expect("running ping");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Runs a scapy script with Debian's interpreter (the only one that has scapy) in `ns`.
/// `from scapy.all import *` and quiet sending are set up; returns stdout.
pub fn scapy(ns: &Netns, script: &str) -> String {
    let full = format!("from scapy.all import *\nconf.verb = 0\n{script}\n");
    let out = ns
        .exec(&["/usr/bin/python3", "-c", &full])
        .expect("running /usr/bin/python3 (apt-get install python3-scapy)");
    assert!(
        out.status.success(),
        "scapy script failed ({}):\n{}\nscript:\n{full}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `tcpdump -w` running in a namespace; stopped (and its file flushed) by [`Capture::finish`]
/// or on drop.
pub struct Capture {
    guard: ChildGuard,
    /// The pcap file.
    pub path: PathBuf,
}

impl Capture {
    /// Starts capturing on `dev` in `ns` into `path`, at most `max` packets and 60 s, and
    /// returns once tcpdump says it is listening.
    pub fn start(ns: &Netns, dev: &str, filter: &str, max: u32, path: &Path) -> Capture {
        let path_text = path.display().to_string();
        let max_text = max.to_string();
        let mut guard = ns
            .spawn_piped(&[
                "timeout",
                "60",
                "tcpdump",
                "-i",
                dev,
                "-nn",
                // Without it libpcap hands packets over only when a ring block retires
                // (up to a second later), and a stop in between loses them.
                "--immediate-mode",
                "-U",
                "-c",
                &max_text,
                "-w",
                &path_text,
                filter,
            ])
            .expect("starting tcpdump");
        let stderr = guard
            .child_mut()
            .stderr
            .take()
            .expect("tcpdump's stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        // tcpdump prints this once the capture is active; EOF (exit) ends the loop too.
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("listening on") {
                // Keep draining so tcpdump never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return Capture {
                    guard,
                    path: path.to_path_buf(),
                };
            }
        }
        panic!("tcpdump on {dev} did not start:\n{seen}");
    }

    /// Stops the capture (if still running) and returns the file.
    pub fn finish(mut self) -> PathBuf {
        // tcpdump exits 0 on SIGTERM or when -c is reached; either way the file is complete.
        let _ = self.guard.terminate();
        self.path.clone()
    }

    /// Waits (bounded) until the file holds at least `n` packets, then stops the capture.
    pub fn finish_after(self, n: usize) -> PathBuf {
        wait_until(&format!("{n} packets in {}", self.path.display()), || {
            // The file is still being written: count what tshark can read so far.
            let out = Command::new("tshark")
                .arg("-r")
                .arg(&self.path)
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout).lines().count() >= n).then_some(())
        });
        self.finish()
    }

    /// Waits (bounded) for tcpdump to exit by itself after `-c` packets.
    pub fn wait_done(mut self) -> PathBuf {
        let done = self
            .guard
            .wait_timeout(PATIENCE)
            .expect("waiting for tcpdump");
        assert!(
            done.is_some(),
            "tcpdump did not capture its packet count within {PATIENCE:?}"
        );
        self.path.clone()
    }
}

/// One summary line per packet of a pcap file (`tshark -r`, VXLAN decoded on port 4789).
pub fn pcap_packets(path: &Path) -> Vec<String> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-n", "-d", "udp.port==4789,vxlan"])
        .output()
        .expect("running tshark -r");
    assert!(
        out.status.success(),
        "tshark -r {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `/proc/net/snmp` and `/proc/net/snmp6` of a namespace as `Ip.InReceives`,
/// `Icmp6InEchos`, ..., plus `xg0.Ip6InReceives` style entries from
/// `/proc/net/dev_snmp6/<dev>` for each of `devs`.
pub fn snmp(ns: &Netns, devs: &[&str]) -> HashMap<String, u64> {
    let mut map = HashMap::new();
    let text = ns.sh("cat /proc/net/snmp").expect("reading /proc/net/snmp");
    let lines: Vec<&str> = text.lines().collect();
    // Pairs of lines: "Ip: Forwarding DefaultTTL ..." then "Ip: 2 64 ...".
    for pair in lines.chunks(2) {
        if let [names, values] = pair {
            let mut names = names.split_whitespace();
            let mut values = values.split_whitespace();
            let proto = names.next().unwrap_or("").trim_end_matches(':').to_string();
            values.next();
            for (n, v) in names.zip(values) {
                if let Ok(v) = v.parse::<i64>() {
                    map.insert(format!("{proto}.{n}"), v.max(0) as u64);
                }
            }
        }
    }
    let mut two_column = |prefix: &str, file: &str| {
        let text = ns
            .sh(&format!("cat {file}"))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"));
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if let (Some(n), Some(v)) = (words.next(), words.next()) {
                if let Ok(v) = v.parse::<u64>() {
                    map.insert(format!("{prefix}{n}"), v);
                }
            }
        }
    };
    two_column("", "/proc/net/snmp6");
    for dev in devs {
        two_column(&format!("{dev}."), &format!("/proc/net/dev_snmp6/{dev}"));
    }
    map
}

/// Is an XDP program attached to `dev` in `ns` (`ip link show` lists `xdp`)?
pub fn has_xdp(ns: &Netns, dev: &str) -> bool {
    let text = ns
        .ip(&["-d", "link", "show", "dev", dev])
        .unwrap_or_else(|e| panic!("ip link show {dev}: {e}"));
    text.split_whitespace()
        .any(|w| w.starts_with("xdp") || w == "prog/xdp")
}

/// The link-local IPv6 address of `dev`, once duplicate address detection has finished.
pub fn link_local(ns: &Netns, dev: &str) -> Ipv6Addr {
    wait_until(&format!("a usable link-local address on {dev}"), || {
        let text = ns
            .ip(&["-6", "-o", "addr", "show", "dev", dev, "scope", "link"])
            .ok()?;
        if text.contains("tentative") {
            return None;
        }
        let word = text
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)?;
        word.split('/').next()?.parse().ok()
    })
}

// --- verified traffic -----------------------------------------------------------------

/// Datagrams per UDP run.
pub const UDP_COUNT: u32 = 10_000;
/// Datagrams sent back to back before the sender sleeps 1 ms: about 8,000 datagrams/s, a
/// "moderate" rate for a debug build on two shared cores.
const UDP_BURST: u32 = 8;

/// FNV-1a, 64 bit: the per-datagram payload checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A 64-bit mix (splitmix64): the deterministic content of streams and payloads.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the deterministic byte stream starting at `offset`.
fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        *b = mix(pos / 8).to_le_bytes()[(pos % 8) as usize];
    }
}

/// The body of datagram `seq`: 16..1216 bytes of deterministic content.
fn udp_body(seq: u32) -> Vec<u8> {
    let len = 16 + (mix(u64::from(seq)) % 1200) as usize;
    let mut body = vec![0; len];
    pattern(u64::from(seq) << 32, &mut body);
    body
}

/// Datagram `seq`: sequence number (4 bytes), FNV-1a of the body (8 bytes), body.
fn udp_datagram(seq: u32) -> Vec<u8> {
    let body = udp_body(seq);
    let mut d = Vec::with_capacity(12 + body.len());
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&fnv1a(&body).to_be_bytes());
    d.extend_from_slice(&body);
    d
}

/// What the UDP receiver saw.
#[derive(Debug, Default)]
pub struct UdpReport {
    /// Datagrams received in total.
    pub received: u32,
    /// Distinct sequence numbers received with the right checksum and content.
    pub intact: u32,
    /// Datagrams whose checksum or content did not match their sequence number.
    pub corrupt: u32,
    /// Datagrams whose sequence number had been seen before.
    pub duplicates: u32,
    /// The first missing sequence numbers (at most 20).
    pub missing: Vec<u32>,
    /// Send errors on the sender side.
    pub send_errors: u32,
    /// What the receiving namespace's kernel counted meanwhile (`Udp.RcvbufErrors`, ...):
    /// where a loss happened, if any.
    pub receiver_kernel: Vec<(String, u64)>,
}

/// Kernel counters that say a datagram was lost in the receiving namespace.
const RECEIVER_LOSS: [&str; 6] = [
    "Udp.InErrors",
    "Udp.RcvbufErrors",
    "Udp6InErrors",
    "Udp6RcvbufErrors",
    "Ip.InDiscards",
    "Ip6InDiscards",
];

fn udp_receive(bind: SocketAddr, count: u32, ready: mpsc::Sender<()>) -> UdpReport {
    let socket = UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    // The receiving thread shares two cores with the daemon, the kernel's softirqs and the
    // other tests: a default 208 KiB buffer overflows (Udp.RcvbufErrors) whenever it is
    // descheduled for ~10 ms. 16 MiB (forced past rmem_max, we are root) rides that out, so
    // a loss counted here is the dataplane's, not the test harness's.
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBufForce, &(16 << 20))
        .expect("SO_RCVBUFFORCE (needs CAP_NET_ADMIN)");
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("set_read_timeout");
    ready.send(()).expect("the sender waits for us");
    let mut seen = vec![false; count as usize];
    let mut report = UdpReport::default();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + PATIENCE * 3;
    while report.intact < count && Instant::now() < deadline {
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            // Nothing for 3 s: the sender is done and the rest is lost.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("recv on {bind}: {e}"),
        };
        report.received += 1;
        let d = &buf[..n];
        if n < 12 {
            report.corrupt += 1;
            continue;
        }
        let seq = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let sum = u64::from_be_bytes([d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11]]);
        if seq >= count || fnv1a(&d[12..]) != sum || d[12..] != udp_body(seq)[..] {
            report.corrupt += 1;
            continue;
        }
        if seen[seq as usize] {
            report.duplicates += 1;
        } else {
            seen[seq as usize] = true;
            report.intact += 1;
        }
    }
    report.missing = (0..count).filter(|s| !seen[*s as usize]).take(20).collect();
    report
}

fn udp_send(dst: SocketAddr, count: u32) -> u32 {
    let bind: SocketAddr = match dst {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).expect("bind the sender");
    socket.connect(dst).expect("connect the sender");
    let mut errors = 0;
    for seq in 0..count {
        if socket.send(&udp_datagram(seq)).is_err() {
            errors += 1;
        }
        if seq % UDP_BURST == UDP_BURST - 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    errors
}

/// Sends `count` paced, checksummed datagrams from `from` to `dst` (an address in `to`) and
/// reports what arrived.
pub fn udp_transfer(from: &Netns, to: &Netns, dst: SocketAddr, count: u32) -> UdpReport {
    let bind: SocketAddr = match dst.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, dst.port()).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, dst.port()).into(),
    };
    let kernel_before = snmp(to, &[]);
    let mut report = std::thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let receiver = s.spawn(move || to.run_in(move || udp_receive(bind, count, ready_tx)));
        // If the receiver died, its panic is re-raised by the join below.
        if ready_rx.recv_timeout(PATIENCE).is_err() {
            let _ = receiver.join();
            panic!("the UDP receiver in {} did not start", to.name());
        }
        let send_errors = from.run_in(move || udp_send(dst, count));
        let mut report = match receiver.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        report.send_errors = send_errors;
        report
    });
    let kernel_after = snmp(to, &[]);
    report.receiver_kernel = RECEIVER_LOSS
        .iter()
        .map(|k| {
            let get = |m: &HashMap<String, u64>| m.get(*k).copied().unwrap_or(0);
            (k.to_string(), get(&kernel_after) - get(&kernel_before))
        })
        .collect();
    report
}

/// What the TCP receiver verified.
#[derive(Debug)]
pub struct TcpReport {
    /// Bytes received in order and equal to the sent stream.
    pub verified: u64,
    /// Offset of the first byte that differed, if any.
    pub first_mismatch: Option<u64>,
    /// The sender's error, if it failed.
    pub send_error: Option<String>,
}

fn tcp_receive(bind: SocketAddr, ready: mpsc::Sender<()>) -> (u64, Option<u64>) {
    let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("listen on {bind}: {e}"));
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    ready.send(()).expect("the sender waits for us");
    let deadline = Instant::now() + PATIENCE;
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept on {bind}: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking stream");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set_read_timeout");
    let mut buf = vec![0u8; 1 << 16];
    let mut expected = vec![0u8; 1 << 16];
    let mut offset = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return (offset, None),
            Ok(n) => n,
            Err(e) => panic!("TCP receive stalled or failed after {offset} bytes: {e}"),
        };
        pattern(offset, &mut expected[..n]);
        if let Some(i) = buf[..n]
            .iter()
            .zip(&expected[..n])
            .position(|(a, b)| a != b)
        {
            return (offset, Some(offset + i as u64));
        }
        offset += n as u64;
    }
}

fn tcp_send(dst: SocketAddr, bytes: u64) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&dst, Duration::from_secs(10))
        .map_err(|e| format!("connect {dst}: {e}"))?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut chunk = vec![0u8; 1 << 16];
    let mut offset = 0u64;
    while offset < bytes {
        let n = (bytes - offset).min(chunk.len() as u64) as usize;
        pattern(offset, &mut chunk[..n]);
        stream
            .write_all(&chunk[..n])
            .map_err(|e| format!("write at offset {offset}: {e}"))?;
        offset += n as u64;
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())
}

/// Sends `bytes` of a deterministic stream over TCP from `from` to `dst` (in `to`); the
/// receiver compares every byte.
pub fn tcp_transfer(from: &Netns, to: &Netns, dst: SocketAddr, bytes: u64) -> TcpReport {
    let bind: SocketAddr = match dst.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, dst.port()).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, dst.port()).into(),
    };
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let receiver = s.spawn(move || to.run_in(move || tcp_receive(bind, ready_tx)));
        if ready_rx.recv_timeout(PATIENCE).is_err() {
            let _ = receiver.join();
            panic!("the TCP receiver in {} did not start", to.name());
        }
        let send_error = from.run_in(move || tcp_send(dst, bytes)).err();
        let (verified, first_mismatch) = match receiver.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        TcpReport {
            verified,
            first_mismatch,
            send_error,
        }
    })
}

/// Checks a whole TCP transfer and says what went wrong otherwise.
pub fn assert_tcp_ok(report: &TcpReport, bytes: u64, what: &str, vpc: &Vpc) {
    assert!(
        report.send_error.is_none() && report.first_mismatch.is_none() && report.verified == bytes,
        "{what}: {report:?} (expected {bytes} verified bytes); daemon counters: {}\nlog:\n{}",
        totals(vpc),
        vpc.dataplane_log()
    );
}
