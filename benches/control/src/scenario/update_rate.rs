//! Update rate sustained while forwarding, and the forwarding rate lost to it.
//!
//! `xvpc-pktgen` (CPU 0) sends a full-speed 64-byte stream from the guest to a mapped remote
//! through xvpc (worker pinned to CPU 1); the forwarded rate is the daemon's
//! `egress_packets` over the generator's run. Runs without and with a load client pushing
//! upserts at a fixed rate over the control socket alternate (order swapped every
//! repetition), so drift hits both alike.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use xvpc_control_bench::client::LoadClient;
use xvpc_control_bench::mappings::generate;
use xvpc_control_bench::stats;
use xvpc_control_bench::summary::median;
use xvpc_testbed::vpc::{Underlay, Vpc, GUEST_MAC, GUEST_V4};

use super::{require_root, wait_stats};
use crate::Bins;

/// One measurement.
#[derive(Clone, Copy, Debug)]
struct Sample {
    with_updates: bool,
    forwarded_pps: f64,
    offered_pps: f64,
    updates_applied_per_s: f64,
    updates_sent_per_s: f64,
}

/// `xvpc-control-bench update-rate`.
pub fn run(
    rate: u64,
    keys: usize,
    seconds: u64,
    reps: usize,
    size: u16,
    bins: &Bins,
) -> anyhow::Result<()> {
    require_root()?;
    ensure!((1..=60).contains(&seconds), "--seconds must be 1..=60");
    ensure!((1..=20).contains(&reps), "--reps must be 1..=20");
    ensure!(
        (1..=10_000_000).contains(&rate),
        "--rate must be 1..=10000000"
    );
    ensure!(keys >= 1, "--keys must be at least 1");
    ensure!(
        std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2,
        "needs 2 CPUs (generator on CPU 0, worker on CPU 1)"
    );
    let (xvpc, pktgen) = (bins.xvpc()?, bins.pktgen()?);
    let vpc = Vpc::new("ur", &[Underlay::V4]).context("building the topology")?;
    let remote = &vpc.remotes[0];
    let config = vpc.config_toml(&remote.mappings_toml(), "cores = [1]");
    let mut daemon = vpc.start_dataplane(&xvpc, &config)?;
    let stats_sock = vpc.stats_socket();
    wait_stats(
        &stats_sock,
        Duration::from_secs(10),
        "the static mappings",
        |s| s.worker_mapped().is_ok_and(|w| w.iter().all(|m| *m == 2)),
    )?;
    let pool = generate(100, keys)?;
    let mut client = LoadClient::connect(&vpc.control_socket())?;

    let mut samples = Vec::new();
    let mut gen_modes: Vec<String> = Vec::new();
    for rep in 0..reps {
        let order = if rep % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with_updates in order {
            let before = stats::fetch(&stats_sock)?;
            let t_before = Instant::now();
            let (gen, pushed) = std::thread::scope(|s| -> anyhow::Result<_> {
                let pusher = with_updates.then(|| {
                    let client = &mut client;
                    let pool = &pool;
                    s.spawn(move || {
                        client.run_paced(
                            pool,
                            rate,
                            Duration::from_secs(seconds) + Duration::from_millis(400),
                            Duration::from_millis(1),
                        )
                    })
                });
                // Let the update stream reach its pace before traffic starts.
                std::thread::sleep(Duration::from_millis(200));
                let gen = generate_traffic(&vpc, &pktgen, remote, size, seconds);
                let pushed = match pusher {
                    Some(p) => Some(
                        p.join()
                            .map_err(|_| anyhow::anyhow!("load client panicked"))??,
                    ),
                    None => None,
                };
                Ok((gen?, pushed))
            })?;
            let after = stats::fetch(&stats_sock)?;
            let window = t_before.elapsed().as_secs_f64();
            let forwarded = after.total("egress_packets")? - before.total("egress_packets")?;
            let applied = after.upserts()? - before.upserts()?;
            let sample = Sample {
                with_updates,
                forwarded_pps: forwarded as f64 / gen.elapsed.as_secs_f64(),
                offered_pps: gen.sent as f64 / gen.elapsed.as_secs_f64(),
                updates_applied_per_s: applied as f64 / window,
                updates_sent_per_s: pushed.map_or(0.0, |p| p.rate()),
            };
            if !gen_modes.contains(&gen.mode) {
                gen_modes.push(gen.mode.clone());
            }
            println!(
                "rep {rep} {:>8}: offered {:.3} Mpps ({} generator), forwarded {:.3} Mpps, upserts applied {:.0}/s (client wrote {:.0}/s)",
                if with_updates { "updates" } else { "baseline" },
                sample.offered_pps / 1e6,
                gen.mode,
                sample.forwarded_pps / 1e6,
                sample.updates_applied_per_s,
                sample.updates_sent_per_s
            );
            samples.push(sample);
        }
    }
    drop(client);
    let final_stats = stats::fetch(&stats_sock)?;
    daemon.terminate()?;

    let pick = |with: bool, f: fn(&Sample) -> f64| {
        median(
            &samples
                .iter()
                .filter(|s| s.with_updates == with)
                .map(f)
                .collect::<Vec<_>>(),
        )
        .unwrap_or(f64::NAN)
    };
    let base = pick(false, |s| s.forwarded_pps);
    let loaded = pick(true, |s| s.forwarded_pps);
    let applied = pick(true, |s| s.updates_applied_per_s);
    let ratio = loaded / base;
    let loss = (1.0 - ratio) * 100.0;
    if base <= 0.0 {
        bail!("nothing was forwarded without updates: {}", final_stats.0);
    }
    println!(
        "update rate while forwarding ({size} B, {seconds} s × {reps} pairs, medians): upserts applied {applied:.0}/s of {rate}/s offered; \
         forwarding {:.3} Mpps with updates vs {:.3} Mpps without (ratio {ratio:.3}, loss {loss:.1}%)",
        loaded / 1e6,
        base / 1e6
    );
    println!(
        "RESULT update_rate offered_updates_per_s={rate} applied_updates_per_s={applied:.0} baseline_mpps={:.3} with_updates_mpps={:.3} \
         ratio={ratio:.3} loss_pct={loss:.1} size={size} seconds={seconds} reps={reps} keys={keys} gen_mode={} pass={}",
        base / 1e6,
        loaded / 1e6,
        gen_modes.join("+"),
        applied >= 100_000.0 * 0.99 && loss < 10.0
    );
    Ok(())
}

struct GenResult {
    sent: u64,
    elapsed: Duration,
    /// How the generator transmitted (`live` or `afxdp`): offered rates of the two differ.
    mode: String,
}

/// Run the generator in the guest namespace on CPU 0 for `seconds`.
fn generate_traffic(
    vpc: &Vpc,
    pktgen: &std::path::Path,
    remote: &xvpc_testbed::vpc::Remote,
    size: u16,
    seconds: u64,
) -> anyhow::Result<GenResult> {
    let (pktgen, size, secs, dst_ip, count) = (
        pktgen.display().to_string(),
        size.to_string(),
        seconds.to_string(),
        remote.overlay_v4.to_string(),
        (seconds * 20_000_000).to_string(),
    );
    let out = vpc.guest.exec(&[
        "taskset",
        "-c",
        "0",
        &pktgen,
        "--dev",
        "g0",
        "--src-mac",
        GUEST_MAC,
        "--dst-mac",
        &remote.mac,
        "--src-ip",
        GUEST_V4,
        "--dst-ip",
        &dst_ip,
        "--size",
        &size,
        "--flows",
        "64",
        "--count",
        &count,
        "--duration",
        &secs,
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "xvpc-pktgen failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .with_context(|| format!("no RESULT line from xvpc-pktgen: {stdout}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name}= in {line:?}"))
    };
    let mode = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("mode="))
        .with_context(|| format!("no mode= in {line:?}"))?
        .to_string();
    Ok(GenResult {
        sent: field("sent")?,
        elapsed: Duration::from_nanos(field("elapsed_ns")?),
        mode,
    })
}
