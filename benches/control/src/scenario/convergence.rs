//! Convergence: time from an etcd put to the first packet forwarded with the new mapping.
//!
//! The guest sends a paced UDP stream to overlay address X. The agent follows etcd; each
//! change flips X's underlay between remote host 0 and remote host 1. A packet socket in
//! each remote's namespace sees the VXLAN packets for X arrive; the latency of a change is
//! from just before the put to the first packet for X seen on the new remote. The probe
//! interval bounds the resolution.

use crossbeam_channel as mpsc;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use xvpc_control_bench::capture::{vxlan_inner_ipv4_dst, RawCapture};
use xvpc_control_bench::etcd::EtcdHttp;
use xvpc_control_bench::summary::summarize;
use xvpc_testbed::vpc::{Underlay, Vpc};

use super::{ms, require_root, wait_stats};
use crate::Bins;

/// The probed overlay address (inside the guest's /24).
const X: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 200);
/// Its overlay MAC (the same on both remotes, so the guest's neighbour entry stays valid).
const X_MAC: &str = "02:00:00:00:03:c8";
/// etcd's client and peer ports inside the dataplane namespace (loopback there only).
const ETCD_CLIENT: u16 = 23790;
const ETCD_PEER: u16 = 23800;
const PREFIX: &str = "/xvpc/mappings";
/// Longest wait for one change to show.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// `xvpc-control-bench convergence`.
pub fn run(changes: usize, probe_us: u64, etcd_bin: &str, bins: &Bins) -> anyhow::Result<()> {
    require_root()?;
    ensure!(
        (1..=100_000).contains(&changes),
        "--changes must be 1..=100000"
    );
    ensure!(
        (20..=10_000).contains(&probe_us),
        "--probe-interval-us must be 20..=10000"
    );
    let (xvpc, agent) = (bins.xvpc()?, bins.agent()?);
    let vpc = Vpc::new("cv", &[Underlay::V4, Underlay::V4]).context("building the topology")?;
    vpc.guest.add_neigh("g0", &X.to_string(), X_MAC)?;
    let mut daemon = vpc.start_dataplane(&xvpc, &vpc.config_toml("", ""))?;

    let etcd_dir = vpc.work.join("etcd");
    let client_url = format!("http://127.0.0.1:{ETCD_CLIENT}");
    let peer_url = format!("http://127.0.0.1:{ETCD_PEER}");
    let etcd_script = format!(
        "exec {etcd_bin} --name ctlbench --data-dir {} --listen-client-urls {client_url} \
         --advertise-client-urls {client_url} --listen-peer-urls {peer_url} \
         --initial-advertise-peer-urls {peer_url} --initial-cluster ctlbench={peer_url} \
         >{} 2>&1",
        etcd_dir.display(),
        vpc.work.join("etcd.log").display()
    );
    let _etcd = vpc.dataplane.spawn(&["sh", "-c", &etcd_script])?;
    let etcd = EtcdHttp::new(
        SocketAddr::from(([127, 0, 0, 1], ETCD_CLIENT)),
        Duration::from_secs(2),
    );
    let key = format!("{PREFIX}/100/{X}");
    let value = |r: usize| {
        format!(
            "{{\"underlay_ip\":\"{}\",\"overlay_mac\":\"{X_MAC}\"}}",
            vpc.remotes[r].underlay_v4
        )
    };
    vpc.dataplane.try_run_in(|| -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !etcd.healthy() {
            ensure!(
                Instant::now() < deadline,
                "etcd did not become healthy within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd.put(&key, &value(0))?;
        Ok(())
    })??;
    let agent_script = format!(
        "exec {} --source etcd --etcd-endpoints {client_url} --etcd-prefix {PREFIX} --control {} >{} 2>&1",
        agent.display(),
        vpc.control_socket().display(),
        vpc.work.join("agent.log").display()
    );
    let _agent = vpc.dataplane.spawn(&["sh", "-c", &agent_script])?;
    wait_stats(
        &vpc.stats_socket(),
        Duration::from_secs(15),
        "X to be mapped",
        |s| s.worker_mapped().is_ok_and(|w| w.iter().all(|m| *m == 1)),
    )
    .with_context(|| {
        format!(
            "agent log: {}",
            std::fs::read_to_string(vpc.work.join("agent.log")).unwrap_or_default()
        )
    })?;

    let stop = AtomicBool::new(false);
    // Bound everything: the whole run may not outlast this.
    let run_limit =
        Duration::from_secs(60) + CHANGE_TIMEOUT * 2 + Duration::from_millis(20) * changes as u32;
    let (tx, rx) = mpsc::unbounded::<(usize, Instant)>();
    let outcome = std::thread::scope(|s| -> anyhow::Result<Outcome> {
        let sender = s.spawn(|| {
            vpc.guest
                .try_run_in(|| probe(&stop, Duration::from_micros(probe_us), run_limit))
        });
        let mut captures = Vec::new();
        for (i, remote) in vpc.remotes.iter().enumerate() {
            let (tx, stop) = (tx.clone(), &stop);
            let outer = remote.underlay_v4;
            captures.push(s.spawn(move || {
                remote
                    .ns
                    .try_run_in(move || capture(i, outer, &tx, stop, run_limit))
            }));
        }
        drop(tx);
        let measured = vpc
            .dataplane
            .try_run_in(|| measure(changes, &rx, &etcd, &key, &value));
        stop.store(true, Ordering::Relaxed);
        let sent = sender
            .join()
            .map_err(|_| anyhow::anyhow!("probe thread panicked"))???;
        for c in captures {
            c.join()
                .map_err(|_| anyhow::anyhow!("capture thread panicked"))???;
        }
        let mut outcome = measured??;
        outcome.probes = sent;
        Ok(outcome)
    })?;
    daemon.terminate()?;

    let lat = summarize(&outcome.latencies_ms).context("no change converged")?;
    let put = summarize(&outcome.put_ms).context("no put timed")?;
    let probe_rate = outcome.probes.0 as f64 / outcome.probes.1.as_secs_f64().max(1e-9);
    println!(
        "convergence over {} changes ({} converged, {} timed out after {CHANGE_TIMEOUT:?}): \
         p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (mean {:.2}); \
         etcd put round trip alone p50 {:.2} ms, p99 {:.2} ms; probes at {:.0}/s (resolution ~{:.2} ms)",
        changes, lat.count, outcome.timeouts, lat.p50, lat.p90, lat.p99, lat.max, lat.mean,
        put.p50, put.p99, probe_rate, 1e3 / probe_rate.max(1.0)
    );
    println!(
        "RESULT convergence changes={changes} converged={} timeouts={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} \
         put_p50_ms={:.2} put_p99_ms={:.2} ratio_p50_to_put={:.1} probe_pps={:.0} target_p99_ms=50 pass={}",
        lat.count, outcome.timeouts, lat.p50, lat.p90, lat.p99, lat.max, put.p50, put.p99,
        lat.p50 / put.p50.max(1e-6), probe_rate, lat.p99 < 50.0 && outcome.timeouts == 0
    );
    Ok(())
}

struct Outcome {
    latencies_ms: Vec<f64>,
    put_ms: Vec<f64>,
    timeouts: usize,
    probes: (u64, Duration),
}

/// Flip the mapping `changes` times; each latency is put start → first packet on the new
/// remote.
fn measure(
    changes: usize,
    rx: &mpsc::Receiver<(usize, Instant)>,
    etcd: &EtcdHttp,
    key: &str,
    value: &(dyn Fn(usize) -> String + Sync),
) -> anyhow::Result<Outcome> {
    // The stream must reach remote 0 first.
    let warm = Instant::now() + Duration::from_secs(10);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((0, _)) => break,
            Ok(_) => {}
            Err(_) if Instant::now() < warm => {}
            Err(e) => bail!("no probe reached remote 0 within 10 s ({e}): is the path up?"),
        }
    }
    let mut out = Outcome {
        latencies_ms: Vec::with_capacity(changes),
        put_ms: Vec::with_capacity(changes),
        timeouts: 0,
        probes: (0, Duration::ZERO),
    };
    for k in 0..changes {
        let target = (k + 1) % 2;
        let v = value(target);
        // Forget what arrived before this change.
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        etcd.put(key, &v)?;
        out.put_ms.push(ms(t0.elapsed()));
        let deadline = t0 + CHANGE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((r, at)) if r == target && at >= t0 => {
                    out.latencies_ms.push(ms(at - t0));
                    break;
                }
                Ok(_) => {}
                Err(_) => {
                    out.timeouts += 1;
                    break;
                }
            }
        }
        // Let packets already in flight to the old remote drain.
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(out)
}

/// The guest's paced probe stream to X (UDP discard port). Returns (sent, elapsed).
fn probe(
    stop: &AtomicBool,
    interval: Duration,
    limit: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let sock = UdpSocket::bind("0.0.0.0:0").context("guest probe socket")?;
    sock.connect((X, 9))
        .context("connecting the probe socket")?;
    let start = Instant::now();
    let mut sent = 0u64;
    let payload = [0x5au8; 18];
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        // ENOBUFS and the like: the next probe goes anyway.
        if sock.send(&payload).is_ok() {
            sent += 1;
        }
        std::thread::sleep(interval);
    }
    Ok((sent, start.elapsed()))
}

/// Report every VXLAN packet for X arriving at remote `index` (outer destination `outer`).
fn capture(
    index: usize,
    outer: Ipv4Addr,
    tx: &mpsc::Sender<(usize, Instant)>,
    stop: &AtomicBool,
    limit: Duration,
) -> anyhow::Result<()> {
    let cap = RawCapture::open(Duration::from_millis(50))?;
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        if let Some(n) = cap.recv(&mut buf)? {
            let at = Instant::now();
            if vxlan_inner_ipv4_dst(&buf[..n], outer) == Some(X) && tx.send((index, at)).is_err() {
                break;
            }
        }
    }
    Ok(())
}
