//! `xvpc stats`: the daemon serves a JSON snapshot of every counter on a Unix socket.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use xvpc_core::counters::{Counters, DropReason};
use xvpc_xdp::FabricSteering;
use xvpc_xsk::XskStats;

use crate::control::Fanout;
use crate::tier::{FastStats, GuestTier};
use crate::worker::{StatusSlot, WorkerStatus};

/// What the stats snapshot (and `/metrics`) is built from.
#[derive(Clone)]
pub struct StatsSources {
    /// Worker status slots.
    pub workers: Vec<StatusSlot>,
    /// The control path.
    pub fanout: Arc<Fanout>,
    /// The guest port's XDP program.
    pub guest: Arc<GuestTier>,
    /// The fabric port's XDP program.
    pub fabric: Arc<FabricSteering>,
    /// When the daemon started (rates since start, uptime).
    pub started: Instant,
}

/// Counters as a JSON object: scalars and non-zero-or-not drops by reason.
pub fn counters_json(counters: &Counters) -> Value {
    let mut object = Map::new();
    for (name, value) in counters.scalars() {
        object.insert(name.into(), json!(value));
    }
    let drops: Map<String, Value> = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), json!(counters.drops_for(*r))))
        .collect();
    object.insert("drops".into(), Value::Object(drops));
    object.insert("drops_total".into(), json!(counters.total_drops()));
    Value::Object(object)
}

fn worker_json(index: usize, status: &WorkerStatus) -> Value {
    json!({
        "worker": index,
        "mapped": status.mapped,
        "entries": status.entries,
        "epoch": status.epoch,
        "busy_ns": status.busy_ns,
        "idle_ns": status.idle_ns,
        "table_refused": status.table_refused,
        "counters": counters_json(&status.counters),
        "frames": status.accounting.map(|a| json!({
            "frame_count": a.frame_count,
            "free": a.free,
            "in_fill": a.in_fill,
            "in_app": a.in_app,
            "in_tx": a.in_tx,
            "balanced": a.is_balanced(),
        })),
        "xsk": status.xsk.map(|x| json!({
            "tx_kicks": x.tx_kicks,
            "tx_kick_busy": x.tx_kick_busy,
            "tx_kick_errors": x.tx_kick_errors,
            "fill_wakeups": x.fill_wakeups,
            "polls": x.polls,
        })),
        "kernel": {
            "guest": status.kernel[0].map(kernel_json),
            "fabric": status.kernel[1].map(kernel_json),
        },
    })
}

/// A socket's kernel counters; `rx_ring_full` is where backpressure drops.
fn kernel_json(k: XskStats) -> Value {
    json!({
        "rx_ring_full": k.rx_ring_full,
        "rx_dropped": k.rx_dropped,
        "rx_fill_ring_empty": k.rx_fill_ring_empty_descs,
        "rx_invalid_descs": k.rx_invalid_descs,
        "tx_invalid_descs": k.tx_invalid_descs,
    })
}

/// The whole snapshot.
pub fn snapshot(sources: &StatsSources) -> Value {
    let mut total = Counters::default();
    let mut workers = Vec::new();
    for (i, slot) in sources.workers.iter().enumerate() {
        if let Ok(status) = slot.lock() {
            total.add(&status.counters);
            workers.push(worker_json(i, &status));
        }
    }
    if let Some(Ok(f)) = sources.guest.fast_since_start() {
        merge_fast(&mut total, &f);
    }
    // As pinned (since the map was created), like the other `xdp` counters.
    let fast = sources.guest.fast_stats();
    let report = sources.fanout.report();
    let c = &sources.fanout.counters;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": sources.started.elapsed().as_secs_f64(),
        "total": counters_json(&total),
        "workers": workers,
        "control": {
            "epoch": report.epoch,
            "mappings": report.mappings,
            "worker_entries": report.worker_entries,
            "negative_entries": report.negative_entries,
            "full_syncs": report.full_syncs,
            "upserts": report.upserts,
            "deletes": report.deletes,
            "misses_sent": report.misses,
            "misses_unsent": report.misses_rate_limited,
            "not_found": report.not_found,
            "rejected": report.invalid_skipped,
            "agent_connected": c.agent_connected.load(Ordering::Relaxed),
            "agent_sessions": c.sessions.load(Ordering::Relaxed),
            "last_full_sync_unix": c.last_full_sync_unix.load(Ordering::Relaxed),
            "xdp_no_room": c.xdp_no_room.load(Ordering::Relaxed),
            "xdp_errors": c.xdp_errors.load(Ordering::Relaxed),
        },
        "xdp": {
            "guest": match sources.guest.counters() {
                Ok(c) => json!({"redirected": c.redirected, "dropped_no_socket": c.dropped_no_socket}),
                Err(e) => json!({"error": e.to_string()}),
            },
            "guest_fast": match &fast {
                None => Value::Null,
                Some(Ok(f)) => json!({
                    "encapsulated": f.counters.encapsulated,
                    "aborted": f.counters.aborted,
                    "egress_bytes": f.counters.egress_bytes,
                    "drops": DropReason::ALL
                        .iter()
                        .filter(|r| f.drops[**r as usize] > 0)
                        .map(|r| (r.name().to_string(), json!(f.drops[*r as usize])))
                        .collect::<Map<String, Value>>(),
                }),
                Some(Err(e)) => json!({"error": e.to_string()}),
            },
            "fabric": match sources.fabric.counters() {
                Ok(c) => json!({
                    "steered": c.steered,
                    "passed": c.passed,
                    "dropped_no_socket": c.dropped_no_socket,
                    "malformed": c.malformed,
                }),
                Err(e) => json!({"error": e.to_string()}),
            },
        },
    })
}

/// The XDP tier's work in the totals, as if a worker had done it: what it encapsulated is
/// received from the guest and sent to the fabric, what it dropped is received and dropped
/// under the same reasons; a frame rewritten and then dropped (`aborted`, the fabric port
/// gone) is received only (it is in `xdp.guest_fast.aborted`).
pub fn merge_fast(total: &mut Counters, fast: &FastStats) {
    let dropped: u64 = fast.drops.iter().sum();
    total.guest_rx_packets += fast.counters.encapsulated + fast.counters.aborted + dropped;
    total.egress_packets += fast.counters.encapsulated;
    total.egress_bytes += fast.counters.egress_bytes;
    for (mine, xdp) in total.drops.iter_mut().zip(fast.drops.iter()) {
        *mine += xdp;
    }
}

/// Serve snapshots on `listener` until `stop`.
pub fn serve(listener: UnixListener, sources: StatsSources, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let body = snapshot(&sources).to_string();
                // A client that went away is not our problem.
                let _ = stream.set_nonblocking(false);
                let _ = stream.write_all(body.as_bytes());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on the stats socket failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Read a snapshot from a running daemon.
pub fn fetch(path: &Path) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    serde_json::from_str(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
