//! `xvpc stats`: the daemon serves a JSON snapshot of every counter on a Unix socket.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use xvpc_core::counters::{Counters, DropReason};
use xvpc_xdp::IngressCounters;
use xvpc_xsk::XskStats;

use crate::control::Fanout;
use crate::tier::{FabricTier, FastStats, GuestTier};
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
    pub fabric: Arc<FabricTier>,
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
        "spin_ends": {"window": status.spin_ends.window, "preempted": status.spin_ends.preempted},
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
    if let Some(Ok(i)) = sources.fabric.ingress_since_start() {
        merge_ingress(&mut total, &i);
    }
    // As pinned (since the map was created), like the other `xdp` counters.
    let fast = sources.guest.fast_stats();
    let ingress = sources.fabric.ingress_stats();
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
            "fabric_fast": match &ingress {
                None => Value::Null,
                Some(Ok(i)) => json!({
                    "decapsulated": i.decapsulated,
                    "aborted": i.aborted,
                    "ingress_bytes": i.ingress_bytes,
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
/// received from the guest and sent to the fabric, what it dropped is received (from the
/// guest or the fabric, as its reason says: both programs count in one map) and dropped
/// under the same reasons; a frame rewritten and then dropped (`aborted`, the fabric port
/// gone) is received only (it is in `xdp.guest_fast.aborted`).
pub fn merge_fast(total: &mut Counters, fast: &FastStats) {
    let (mut from_guest, mut from_fabric) = (0, 0);
    for (reason, n) in DropReason::ALL.iter().zip(fast.drops.iter()) {
        match reason.is_ingress() {
            true => from_fabric += n,
            false => from_guest += n,
        }
    }
    total.guest_rx_packets += fast.counters.encapsulated + fast.counters.aborted + from_guest;
    total.fabric_rx_packets += from_fabric;
    total.egress_packets += fast.counters.encapsulated;
    total.egress_bytes += fast.counters.egress_bytes;
    for (mine, xdp) in total.drops.iter_mut().zip(fast.drops.iter()) {
        *mine += xdp;
    }
}

/// The ingress fast path's work in the totals: what it decapsulated is received from the
/// fabric and delivered to the guest; a frame stripped and then dropped (`aborted`) is
/// received only (it is in `xdp.fabric_fast.aborted`). Its drops are in [`merge_fast`].
pub fn merge_ingress(total: &mut Counters, ingress: &IngressCounters) {
    total.fabric_rx_packets += ingress.decapsulated + ingress.aborted;
    total.ingress_packets += ingress.decapsulated;
    total.ingress_bytes += ingress.ingress_bytes;
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

#[cfg(test)]
mod tests {
    use super::*;
    use xvpc_xdp::FastCounters;

    /// Both XDP programs count their drops in one map: the totals receive each on the port
    /// its reason belongs to, and the decapsulated frames as received from the fabric and
    /// delivered to the guest.
    #[test]
    fn the_xdp_tiers_work_lands_on_the_port_it_came_from() {
        let mut drops = [0u64; DropReason::COUNT];
        drops[DropReason::SpoofedSourceIp as usize] = 3;
        drops[DropReason::SpoofedUnderlay as usize] = 5;
        drops[DropReason::UnknownVni as usize] = 7;
        let fast = FastStats {
            counters: FastCounters {
                encapsulated: 10,
                aborted: 1,
                egress_bytes: 1000,
            },
            drops,
        };
        let ingress = IngressCounters {
            decapsulated: 20,
            aborted: 2,
            ingress_bytes: 2000,
        };
        let mut total = Counters::default();
        merge_fast(&mut total, &fast);
        merge_ingress(&mut total, &ingress);
        assert_eq!(total.guest_rx_packets, 10 + 1 + 3);
        assert_eq!(total.fabric_rx_packets, 20 + 2 + 5 + 7);
        assert_eq!((total.egress_packets, total.egress_bytes), (10, 1000));
        assert_eq!((total.ingress_packets, total.ingress_bytes), (20, 2000));
        assert_eq!(total.drops_for(DropReason::SpoofedUnderlay), 5);
        assert_eq!(total.total_drops(), 15);
    }
}
