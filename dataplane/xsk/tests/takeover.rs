//! Privileged test (root): a forwarding QueuePair moves to another process in the middle of
//! a paced stream (export, SCM_RIGHTS, adopt) and no frame is lost. Fails, never skips,
//! without root.

mod common;

use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde::{Deserialize, Serialize};
use xvpc_xdp::{AttachMode, GuestSteering};
use xvpc_xsk::handover::{recv_fds, send_fds};
use xvpc_xsk::{
    BindMode, Desc, FrameAccounting, FrameErrors, Port, QueuePair, QueueState, Side, SocketOptions,
    UmemConfig, XskStats,
};

/// Set in the child process: the Unix socket path it takes the queue pair over from.
const CHILD_ENV: &str = "XVPC_XSK_TAKEOVER_SOCKET";
const TEST_NAME: &str = "a_forwarding_queue_pair_moves_to_another_process_and_loses_no_frame";
/// 10 kpps for 2 s; the handover starts after 0.5 s.
const FRAMES: u64 = 20_000;
const PPS: u64 = 10_000;
const HANDOVER_AFTER: Duration = Duration::from_millis(500);

/// What one owner's forwarding loop did.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counts {
    rx: [u64; 2],
    tx: [u64; 2],
    drop_tx_full: [u64; 2],
}

/// The new owner's report, printed on its stdout.
#[derive(Debug, Serialize, Deserialize)]
struct ChildReport {
    counts: Counts,
    accounting: FrameAccounting,
    audit: bool,
    frames: FrameErrors,
    guest_stats: XskStats,
}

const REPORT_TAG: &str = "TAKEOVER-REPORT ";

/// recv guest → send fabric (and back) until `stop` returns true and the pair is idle
/// with nothing in flight; every frame is sent or released within its iteration, so any
/// iteration boundary is a quiesced point.
fn forward(qp: &mut QueuePair, c: &mut Counts, mut stop: impl FnMut() -> bool, limit: Duration) {
    let mut batch = [Desc::default(); 64];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut work = false;
        for side in Side::ALL {
            let n = qp.recv(side, &mut batch);
            if n == 0 {
                continue;
            }
            work = true;
            c.rx[side.index()] += n as u64;
            let out = side.other();
            let sent = qp.send(out, &batch[..n]);
            c.tx[out.index()] += sent as u64;
            for d in &batch[sent..n] {
                qp.release(d.addr);
                c.drop_tx_full[out.index()] += 1;
            }
        }
        qp.service();
        if !work {
            if stop() {
                return;
            }
            let _ = qp.wait(Duration::from_millis(1));
        }
    }
    panic!("forwarding loop ran past its time limit");
}

/// Sends the state (length-prefixed JSON) and the three descriptors over `s`.
fn send_pair(s: &UnixStream, state: &QueueState, fds: [BorrowedFd<'_>; 3]) {
    let json = serde_json::to_vec(state).expect("serialize the queue state");
    let len = (json.len() as u64).to_le_bytes();
    let n = send_fds(s, &len, &fds).expect("sendmsg with SCM_RIGHTS");
    assert_eq!(n, len.len());
    (&*s).write_all(&json).expect("send the queue state");
}

/// Receives what [`send_pair`] sent.
fn recv_pair(s: &UnixStream) -> (QueueState, [OwnedFd; 3]) {
    let mut len = [0u8; 8];
    let (n, fds) = recv_fds(s, &mut len).expect("recvmsg");
    assert_eq!(n, 8, "length prefix in one piece");
    let fds: [OwnedFd; 3] = fds.try_into().expect("three descriptors");
    let mut json = vec![0u8; u64::from_le_bytes(len) as usize];
    (&*s).read_exact(&mut json).expect("read the queue state");
    (
        serde_json::from_slice(&json).expect("parse the queue state"),
        fds,
    )
}

/// The new owner: adopt, say so, forward until told to stop, report.
fn child(path: &str) {
    let s = UnixStream::connect(path).expect("connect to the old owner");
    let (state, [umem, guest, fabric]) = recv_pair(&s);
    let mut qp = QueuePair::adopt(&state, umem, guest, fabric).expect("adopt the queue pair");
    (&s).write_all(b"A").expect("confirm the adoption");
    s.set_nonblocking(true)
        .expect("non-blocking control socket");
    let mut c = Counts::default();
    let mut byte = [0u8; 1];
    forward(
        &mut qp,
        &mut c,
        || (&s).read(&mut byte).is_ok_and(|n| n == 1),
        Duration::from_secs(30),
    );
    // Let the last completions come back.
    let drain = Instant::now() + Duration::from_secs(2);
    while qp.accounting().in_tx != [0, 0] && Instant::now() < drain {
        qp.service();
        let _ = qp.wait(Duration::from_millis(1));
    }
    let report = ChildReport {
        counts: c,
        accounting: qp.accounting(),
        audit: qp.audit(),
        frames: qp.counters().frames,
        guest_stats: qp.stats(Side::Guest).expect("guest XDP_STATISTICS"),
    };
    println!(
        "{REPORT_TAG}{}",
        serde_json::to_string(&report).expect("serialize the report")
    );
}

/// `count` 64-byte frames from `GEN_IF` at `PPS`, paced by the clock. Returns (sent,
/// generator accounting clean).
fn generate_paced(topo: &Topology, count: u64, started: &AtomicBool) -> (u64, bool) {
    topo.gen.run_in(|| {
        let cfg = UmemConfig {
            frame_count: 4096,
            ..UmemConfig::default()
        };
        let mut port = Port::new(GEN_IF, 0, cfg, BindMode::Auto, &SocketOptions::default())
            .expect("open generator socket");
        let t0 = Instant::now();
        started.store(true, Ordering::Release);
        let deadline = t0 + Duration::from_secs(30);
        let mut descs = [Desc::default(); 16];
        let mut sent = 0u64;
        while sent < count && Instant::now() < deadline {
            port.service();
            let due = (t0.elapsed().as_micros() as u64 * PPS / 1_000_000).min(count);
            let mut k = 0;
            while k < descs.len() && sent + (k as u64) < due {
                let Some(base) = port.alloc() else { break };
                let mut f = port
                    .frame(Desc { addr: base, len: 0 })
                    .expect("allocated frame is ours");
                let len = build_frame(&mut f.buf()[256..], sent + k as u64, 64);
                descs[k] = Desc::from_chunk(base, 256, len);
                k += 1;
            }
            let n = port.send(&descs[..k]);
            for d in &descs[n..k] {
                port.release(d.addr);
            }
            sent += n as u64;
            if sent >= due {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let drain = Instant::now() + Duration::from_secs(5);
        while port.accounting().in_tx != [0, 0] && Instant::now() < drain {
            port.service();
            let _ = port.wait(Duration::from_millis(1));
        }
        let acc = port.accounting();
        (sent, port.audit() && acc.in_tx == [0, 0] && acc.in_app == 0)
    })
}

#[test]
fn a_forwarding_queue_pair_moves_to_another_process_and_loses_no_frame() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        return child(&path);
    }
    let topo = Topology::new("xsktk");
    let sock_path =
        std::env::temp_dir().join(format!("xvpc-xsk-takeover-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path).expect("bind the takeover socket");
    let sink_before = if_counter(&topo.sink, SINK_IF, "rx_packets");

    let ready = AtomicBool::new(false);
    let started = AtomicBool::new(false);
    let handover = AtomicBool::new(false);
    let (old, (gs, fs), (stream, child, window), (sent, gen_ok)) = std::thread::scope(|s| {
        let fwd = s.spawn(|| {
            topo.fwd.run_in(|| {
                let mut gs = GuestSteering::attach(FWD_GUEST_IF, AttachMode::Driver, None)
                    .expect("attach steering to the guest port");
                let mut fs = GuestSteering::attach(FWD_FABRIC_IF, AttachMode::Driver, None)
                    .expect("attach steering to the fabric port");
                let mut qp = QueuePair::new(
                    FWD_GUEST_IF,
                    FWD_FABRIC_IF,
                    0,
                    UmemConfig::default(),
                    BindMode::Auto,
                    &SocketOptions::default(),
                )
                .expect("open the QueuePair");
                gs.register_socket(0, qp.fd(Side::Guest))
                    .expect("register guest socket");
                fs.register_socket(0, qp.fd(Side::Fabric))
                    .expect("register fabric socket");
                ready.store(true, Ordering::Release);
                let mut c = Counts::default();
                forward(
                    &mut qp,
                    &mut c,
                    || handover.load(Ordering::Acquire),
                    Duration::from_secs(30),
                );
                // Quiesced: hand over, and close nothing before the child has it all.
                let t = Instant::now();
                let (state, fds) = qp.export().expect("export the quiesced pair");
                let child = Command::new(std::env::current_exe().expect("test binary"))
                    .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
                    .env(CHILD_ENV, &sock_path)
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("start the new owner");
                let child = xvpc_testbed::ChildGuard::new(child);
                let (stream, _) = listener.accept().expect("new owner connects");
                send_pair(&stream, &state, fds.to_array());
                let mut ack = [0u8; 1];
                (&stream).read_exact(&mut ack).expect("adoption confirmed");
                assert_eq!(&ack, b"A");
                let window = t.elapsed();
                drop(qp);
                ((c, (gs, fs)), (stream, child, window))
            })
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "forwarder did not become ready");
            assert!(!fwd.is_finished(), "forwarder failed to start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let gen = s.spawn(|| generate_paced(&topo, FRAMES, &started));
        while !started.load(Ordering::Acquire) && !gen.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(HANDOVER_AFTER);
        handover.store(true, Ordering::Release);
        let ((old, steer), rest) = fwd.join().expect("old owner");
        (old, steer, rest, gen.join().expect("generator"))
    });
    let _ = std::fs::remove_file(&sock_path);
    // Let the tail reach the new owner, then stop it and read its report.
    std::thread::sleep(Duration::from_millis(300));
    (&stream)
        .write_all(b"S")
        .expect("tell the new owner to stop");
    let mut child = child;
    let status = child
        .wait_timeout(Duration::from_secs(30))
        .expect("wait for the new owner")
        .expect("the new owner exits when told to");
    let mut out = String::new();
    if let Some(mut o) = child.child_mut().stdout.take() {
        o.read_to_string(&mut out)
            .expect("read the new owner's output");
    }
    assert!(status.success(), "new owner failed ({status}):\n{out}");
    let line = out
        .lines()
        .find_map(|l| l.split_once(REPORT_TAG).map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report from the new owner:\n{out}"));
    let new: ChildReport = serde_json::from_str(line).expect("parse the report");
    let redirected = gs.counters().expect("guest counters").redirected;
    drop((gs, fs));

    let sink_rx = if_counter(&topo.sink, SINK_IF, "rx_packets") - sink_before;
    let tx_dropped = if_counter(&topo.fwd, FWD_FABRIC_IF, "tx_dropped");
    let received = old.rx[0] + new.counts.rx[0];
    let st = new.guest_stats;
    let lost = FRAMES - sink_rx.min(FRAMES);
    eprintln!(
        "takeover: sent {sent}, old owner forwarded {} / new owner {}, sink {sink_rx}, lost {lost}; \
         handover window {window:?} (export, start of the new process, adoption; ~{} frames \
         queued in the RX ring meanwhile), rx_ring_full {}, guest stats {st:?}, redirected \
         {redirected}",
        old.tx[1],
        new.counts.tx[1],
        window.as_micros() as u64 * PPS / 1_000_000,
        st.rx_ring_full
    );
    assert_eq!(sent, FRAMES, "generator did not send every frame");
    assert!(gen_ok, "generator leaked frames");
    assert!(
        old.rx[0] > 0 && new.counts.rx[0] > 0,
        "the handover was not mid-stream"
    );
    // Every frame the XDP program redirected was received by one of the owners or counted.
    assert_eq!(redirected, received + st.rx_dropped + st.rx_ring_full);
    // Every received frame went out on the fabric port and reached the sink.
    assert_eq!(old.drop_tx_full[1] + new.counts.drop_tx_full[1], 0);
    assert_eq!(old.tx[1] + new.counts.tx[1], received);
    assert_eq!(sink_rx + tx_dropped, received);
    assert_eq!(lost, 0, "frames lost across the takeover");
    // The new owner's book is exact at its end.
    assert!(new.audit, "accounting disagrees with the ownership table");
    assert_eq!(new.accounting.in_tx, [0, 0]);
    assert_eq!(new.accounting.in_app, 0);
    assert_eq!(new.frames, FrameErrors::default());
}
