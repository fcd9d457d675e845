//! Full sync of N mappings by the real agent (file source) into a daemon with W workers.
//!
//! The agent connects through a [`SyncProxy`] that timestamps its `SyncBegin`; the end is
//! the first stats snapshot in which every worker has `mapped == N` and `full_syncs` went
//! up (stats are published every 20 ms and served with up to 20 ms of accept delay, so the
//! end is late by at most ~40 ms). Memory is the daemon's `VmHWM` before and after.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use xvpc_control_bench::mappings::{generate, to_toml};
use xvpc_control_bench::procfs;
use xvpc_control_bench::proxy::SyncProxy;
use xvpc_testbed::vpc::{Vpc, FABRIC_MAC};

use super::{inproc, ms, require_root, wait_stats};
use crate::{Bins, Driver};
use xvpc_control_bench::client::LoadClient;

/// `xvpc-control-bench full-sync`.
pub fn run(
    n: usize,
    workers: usize,
    load_timeout: u64,
    driver: Driver,
    bins: &Bins,
) -> anyhow::Result<()> {
    require_root()?;
    ensure!((1..=8).contains(&workers), "--workers must be 1..=8");
    let xvpc = bins.xvpc()?;
    let vpc = Vpc::new("fs", &[]).context("building the topology")?;
    // One queue per worker on both ports: recreate the veths with `workers` queues.
    let queues = workers.to_string();
    for (dev, peer, ns) in [("xg0", "g0", &vpc.guest), ("xf0", "f0", &vpc.fabric)] {
        vpc.dataplane.ip(&["link", "del", dev])?;
        vpc.dataplane.ip(&[
            "link",
            "add",
            dev,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "netns",
            ns.name(),
        ])?;
        ns.link_up(peer)?;
    }
    vpc.dataplane.set_mac("xf0", FABRIC_MAC)?;
    vpc.dataplane.link_up("xg0")?;
    vpc.dataplane.link_up("xf0")?;
    let queue_list: Vec<String> = (0..workers).map(|q| q.to_string()).collect();
    let config = vpc.config_toml("", "").replace(
        "queues = [0]",
        &format!("queues = [{}]", queue_list.join(", ")),
    );
    ensure!(
        config.contains("queues = ["),
        "config template changed: no queues line"
    );

    let mappings = generate(100, n)?;
    let file = vpc.work.join("mappings.toml");
    if driver == Driver::Agent {
        std::fs::write(&file, to_toml(&mappings)).context("writing the mappings file")?;
    }

    let mut daemon = vpc.start_dataplane(&xvpc, &config)?;
    let pid = daemon.pid();
    ensure!(
        procfs::comm(pid)? == "xvpc",
        "pid {pid} is not the daemon (is `{}` the xvpc binary?)",
        xvpc.display()
    );
    let stats_sock = vpc.stats_socket();
    let (snap, _) = wait_stats(&stats_sock, Duration::from_secs(10), "workers", |s| {
        s.worker_mapped().is_ok_and(|w| w.len() == workers)
    })
    .with_context(|| vpc.dataplane_log())?;
    let syncs_before = snap.full_syncs()?;
    std::thread::sleep(Duration::from_millis(300));
    let mem_before = procfs::memory(pid)?;

    let proxy_sock = vpc.work.join("proxy.sock");
    let mut proxy = None;
    let mut agent_proc = None;
    let mut client = None;
    let started = Instant::now();
    let (begin, client_end) = match driver {
        Driver::Agent => {
            let agent = bins.agent()?;
            let p = SyncProxy::start(&proxy_sock, &vpc.control_socket())?;
            let script = format!(
                "exec {} --source file --file {} --control {} >{} 2>&1",
                agent.display(),
                file.display(),
                proxy_sock.display(),
                vpc.work.join("agent.log").display()
            );
            let proc_ = agent_proc.insert(vpc.dataplane.spawn(&["sh", "-c", &script])?);
            let load_deadline = started + Duration::from_secs(load_timeout);
            let begin = loop {
                if let Some(b) = p.times().begin {
                    break b;
                }
                if let Some(status) = proc_.try_wait()? {
                    anyhow::bail!(
                        "the agent exited ({status}) before syncing: {}",
                        std::fs::read_to_string(vpc.work.join("agent.log")).unwrap_or_default()
                    );
                }
                ensure!(
                    Instant::now() < load_deadline,
                    "the agent did not start its sync within {load_timeout} s"
                );
                std::thread::sleep(Duration::from_millis(1));
            };
            proxy = Some(p);
            (begin, None)
        }
        Driver::Client => {
            let c = client.insert(LoadClient::connect(&vpc.control_socket())?);
            let (begin, end) = c.full_sync(1, &mappings)?;
            (begin, Some(end))
        }
    };
    drop(mappings);
    let load = begin - started;
    let mut peak_seen = mem_before.hwm;
    let (snap, done) = wait_stats(
        &stats_sock,
        Duration::from_secs(120),
        "the sync to be swapped in",
        |s| {
            if let Ok(m) = procfs::memory(pid) {
                peak_seen = peak_seen.max(m.hwm);
            }
            s.full_syncs().is_ok_and(|f| f > syncs_before)
                && s.worker_mapped()
                    .is_ok_and(|w| w.len() == workers && w.iter().all(|m| *m == n as u64))
        },
    )
    .with_context(|| vpc.dataplane_log())?;
    let times = proxy.as_ref().map(SyncProxy::times).unwrap_or_default();
    if driver == Driver::Agent {
        ensure!(
            times.count == n as u64,
            "the agent synced {} mappings, expected {n}",
            times.count
        );
    }
    let rejected = snap.rejected()?;
    let mem_peak = procfs::memory(pid)?;
    // Let the free thread return the old tables, then read the steady state.
    std::thread::sleep(Duration::from_millis(1000));
    let mem_after = procfs::memory(pid)?;
    drop(agent_proc);
    drop(proxy);
    drop(client);
    daemon.terminate()?;

    let total = done - begin;
    let transfer = times
        .end_forwarded
        .or(client_end)
        .map(|e| e - begin)
        .unwrap_or_default();
    let apply = total.saturating_sub(transfer);
    let denom = (n.max(1) * workers) as f64;
    let peak_delta = mem_peak.hwm.max(peak_seen).saturating_sub(mem_before.hwm);
    let steady_delta = mem_after.rss.saturating_sub(mem_before.rss);

    let base = inproc::measure(n, workers, 3)?;
    let ratio = ms(total) / base.total_ms;
    println!(
        "full sync of {n} mappings into {workers} workers, driven by {driver:?}: {:.0} ms from SyncBegin to all workers swapped \
         (transfer to SyncEnd {:.0} ms, then build+clone+swap {:.0} ms); agent load before SyncBegin {:.1} s; \
         {} chunks, {:.1} MB on the socket; rejected {rejected}",
        ms(total), ms(transfer), ms(apply), load.as_secs_f64(), times.chunks, times.bytes as f64 / 1e6
    );
    println!(
        "daemon memory: VmHWM {:.0} → {:.0} MB (+{:.0} B per mapping per worker at peak), VmRSS {:.0} → {:.0} MB after the free (+{:.0} B per mapping per worker steady)",
        mem_before.hwm as f64 / 1e6, mem_peak.hwm.max(peak_seen) as f64 / 1e6, peak_delta as f64 / denom,
        mem_before.rss as f64 / 1e6, mem_after.rss as f64 / 1e6, steady_delta as f64 / denom
    );
    println!(
        "in-process baseline (compile + keys + {workers} clones + free, median of 3): {:.0} ms → end-to-end is {ratio:.2}× it",
        base.total_ms
    );
    println!(
        "RESULT full_sync driver={driver:?} mappings={n} workers={workers} total_ms={:.0} transfer_ms={:.0} apply_ms={:.0} agent_load_s={:.1} \
         hwm_before_mb={:.0} hwm_peak_mb={:.0} peak_bytes_per_mapping_per_worker={:.0} steady_bytes_per_mapping_per_worker={:.0} \
         inproc_total_ms={:.0} ratio_to_inproc={ratio:.2} rejected={rejected} target_ms=2000 pass={}",
        ms(total), ms(transfer), ms(apply), load.as_secs_f64(),
        mem_before.hwm as f64 / 1e6, mem_peak.hwm.max(peak_seen) as f64 / 1e6,
        peak_delta as f64 / denom, steady_delta as f64 / denom, base.total_ms,
        total < Duration::from_secs(2)
    );
    Ok(())
}
