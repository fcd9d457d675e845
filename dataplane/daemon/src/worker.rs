//! A poll-mode worker: owns one queue pair, its mapping table and its counters.
//!
//! Per iteration: apply pending table updates (between batches, never during one), receive a
//! batch from each port, run the pipeline on every frame, transmit, recycle completions into
//! the fill rings. When there is no work it sleeps on its rings (poll with need_wakeup), so
//! on a shared core it never starves the kernel's receive thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::CachePadded;
use xvpc_core::counters::{Counters, DropReason};
use xvpc_core::egress::{egress, egress_prepare, egress_prepared, EgressPrepared};
use xvpc_core::frame::{Frame, FrameError};
use xvpc_core::ingress::{ingress_prepare, ingress_prepared, IngressPrepared};
use xvpc_core::model::{Fabric, Gateway, Guest, MappingKey};
use xvpc_core::pipeline::{Context, Verdict, PREPARE_AHEAD};
use xvpc_core::table::{Lookup, MappingTable, TableUpdate};
use xvpc_xsk::{Desc, FrameAccounting, FrameMut, QueuePair, Rings, Side, XskCounters, XskStats};

/// Largest batch a worker takes from one ring at a time.
pub const MAX_BATCH: usize = 256;
/// Most missed frames a worker can hold while it waits for their mappings.
pub const MAX_HOLD: usize = 256;
/// Updates applied between two batches at most, so a flood of updates cannot stall traffic.
const UPDATES_PER_ITERATION: usize = 1024;
/// Table slots checked for expired negative/pending entries per iteration: 1 KB, a few
/// hundred ns when the table holds any; a 2M-slot table is swept in seconds when busy, about
/// two minutes when idle (one iteration per `IDLE_WAIT`).
const EXPIRE_SLOTS_PER_ITERATION: usize = 16;
/// Idle iterations before sleeping on the rings.
const IDLE_SPINS: u32 = 32;
/// How long one sleep on the rings lasts at most (bounds update and shutdown latency).
const IDLE_WAIT: Duration = Duration::from_millis(1);
/// How often the worker publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// What a worker publishes for `stats`; written by the worker, read by the stats thread.
#[derive(Clone, Debug, Default)]
pub struct WorkerStatus {
    /// Pipeline counters.
    pub counters: Counters,
    /// Live mappings in the worker's table.
    pub mapped: u64,
    /// All slots (live + negative + pending).
    pub entries: u64,
    /// Epoch of the table's last full sync.
    pub epoch: u64,
    /// Where the UMEM frames are.
    pub accounting: Option<FrameAccounting>,
    /// AF_XDP-level counters (wakeups, ring full, ...).
    pub xsk: Option<XskCounters>,
    /// The kernel's counters of the guest and the fabric socket (drops at a full RX ring,
    /// empty fill ring, invalid descriptors).
    pub kernel: [Option<XskStats>; 2],
}

/// The worker's shared slot for its status.
pub type StatusSlot = Arc<CachePadded<Mutex<WorkerStatus>>>;

/// Everything a worker needs, built by the daemon before it starts.
pub struct WorkerSetup<R = QueuePair> {
    /// Index of this worker (for logs).
    pub index: usize,
    /// Core to pin to, if any.
    pub core: Option<usize>,
    /// The queue pair it owns.
    pub queue_pair: R,
    /// Its initial table.
    pub table: MappingTable,
    /// The guest, gateway and fabric it serves.
    pub guest: Guest,
    /// The guest's gateway.
    pub gateway: Gateway,
    /// The fabric.
    pub fabric: Fabric,
    /// Frames per batch.
    pub batch_size: usize,
    /// Table updates from the control thread.
    pub updates: Receiver<TableUpdate>,
    /// Replaced tables go back to be freed off the fast path.
    pub garbage: Sender<Box<MappingTable>>,
    /// Misses to report to the mapping agent.
    pub misses: Sender<MappingKey>,
    /// Misses per second this worker may report.
    pub miss_limit_per_sec: u32,
    /// How long a reported miss suppresses further reports of the same key, and how long a
    /// missed frame is held waiting for the answer.
    pub pending_timeout_ms: u32,
    /// Missed frames held at most (0: drop them).
    pub hold_frames: usize,
    /// Advanced about every `PUBLISH_EVERY` while the loop runs: the watchdog's proof of life.
    pub heartbeat: Arc<AtomicU64>,
    /// Where to publish status.
    pub status: StatusSlot,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
}

/// A missed frame waiting for its mapping.
#[derive(Clone, Copy, Default)]
struct Held {
    desc: Desc,
    expires_ms: u64,
}

/// A token bucket refilled once per millisecond tick.
struct MissLimiter {
    per_sec: u32,
    tokens: u32,
    last_ms: u64,
}

impl MissLimiter {
    fn allow(&mut self, now_ms: u64) -> bool {
        if now_ms != self.last_ms {
            let refill = (now_ms - self.last_ms).saturating_mul(u64::from(self.per_sec)) / 1000;
            if refill > 0 {
                self.tokens =
                    (u64::from(self.tokens) + refill).min(u64::from(self.per_sec.max(1))) as u32;
                self.last_ms = now_ms;
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Run a worker until `stop` is set. Returns its final status.
pub fn run<R: Rings>(setup: WorkerSetup<R>) -> WorkerStatus {
    let WorkerSetup {
        index,
        core,
        mut queue_pair,
        mut table,
        guest,
        gateway,
        fabric,
        batch_size,
        updates,
        garbage,
        misses,
        miss_limit_per_sec,
        pending_timeout_ms,
        hold_frames,
        status,
        heartbeat,
        stop,
    } = setup;
    if let Some(core) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            tracing::warn!(worker = index, core, "could not pin worker to core");
        }
    }
    tracing::info!(worker = index, ?core, "worker started");
    let ctx = Context {
        guest: &guest,
        gateway: &gateway,
        fabric: &fabric,
    };
    let batch_size = batch_size.clamp(1, MAX_BATCH);
    let mut counters = Counters::default();
    let mut rx = [Desc::default(); MAX_BATCH];
    let mut outbox = Outbox::default();
    let mut held = [Held::default(); MAX_HOLD];
    let mut n_held = 0usize;
    let hold_limit = hold_frames.min(MAX_HOLD);
    let mut limiter = MissLimiter {
        per_sec: miss_limit_per_sec,
        tokens: miss_limit_per_sec,
        last_ms: 0,
    };
    let epoch = Instant::now();
    let mut last_publish = epoch;
    let mut idle = 0u32;

    while !stop.load(Ordering::Relaxed) {
        let now_ms = epoch.elapsed().as_millis() as u64;
        let mut applied = 0usize;
        for update in updates.try_iter().take(UPDATES_PER_ITERATION) {
            applied += 1;
            if let Some(old) = table.apply(update, now_ms) {
                // Freed by the garbage thread; if it is gone we are shutting down anyway.
                let _ = garbage.send(old);
            }
        }
        table.expire(now_ms, EXPIRE_SLOTS_PER_ITERATION);

        // Held frames whose mapping (or negative answer) may have arrived go out first, in order.
        if n_held > 0 && (applied > 0 || held[..n_held].iter().any(|h| h.expires_ms <= now_ms)) {
            let mut kept = 0;
            for i in 0..n_held {
                let Held { desc, expires_ms } = held[i];
                let mut scratch = Counters::default();
                let outcome = process(&mut queue_pair, desc, |frame| {
                    egress(&ctx, &table, now_ms, frame, &mut scratch)
                });
                match outcome {
                    Ok((Verdict::Miss(_), _)) if now_ms < expires_ms => {
                        held[kept] = held[i];
                        kept += 1;
                    }
                    Ok((Verdict::Miss(_), _)) => {
                        counters.drop(DropReason::Miss);
                        queue_pair.release(desc.addr);
                    }
                    Ok((verdict, out)) => {
                        // Received and missed once already: count only the outcome.
                        scratch.guest_rx_packets = 0;
                        scratch.misses = 0;
                        counters.add(&scratch);
                        counters.held_released += 1;
                        if !outbox.route(verdict, out) {
                            queue_pair.release(desc.addr);
                        }
                    }
                    Err(reason) => {
                        counters.drop(reason);
                        queue_pair.release(desc.addr);
                    }
                }
            }
            n_held = kept;
        }
        // Egress: guest → fabric (or a reply back to the guest). Backpressure: take only what
        // the fabric TX ring can still take, so when transmit is the bottleneck the excess
        // is dropped by the kernel at the full RX ring (counted: `kernel.*.rx_ring_full` in
        // stats) before it costs any work here, not after (`tx_ring_full`).
        let room = queue_pair
            .tx_room(Side::Fabric)
            .saturating_sub(outbox.pending(Side::Fabric));
        let n = queue_pair.recv(Side::Guest, &mut rx[..batch_size.min(room)]);
        // Each group of frames is prepared (parsed, looked up) before any is finished, so that
        // the lookups' cache misses overlap instead of queueing one behind the other.
        for group in rx[..n].chunks(PREPARE_AHEAD) {
            let mut prepared = [EgressPrepared::default(); PREPARE_AHEAD];
            for (p, desc) in prepared.iter_mut().zip(group) {
                with_frame(&mut queue_pair, *desc, |frame| {
                    *p = egress_prepare(&ctx, &table, now_ms, frame)
                });
            }
            // Misses are handled after the group: that writes to the table, which the
            // prepared lookups still point into.
            let mut missed: [Option<(Desc, MappingKey)>; PREPARE_AHEAD] = [None; PREPARE_AHEAD];
            for (k, (desc, p)) in group.iter().zip(prepared).enumerate() {
                let processed = process(&mut queue_pair, *desc, |frame| {
                    egress_prepared(&ctx, &table, now_ms, p, frame, &mut counters)
                });
                match processed {
                    Ok((Verdict::Miss(key), out)) => missed[k] = Some((out, key)),
                    Ok((verdict, out)) => {
                        if !outbox.route(verdict, out) {
                            queue_pair.release(desc.addr);
                        }
                    }
                    Err(reason) => {
                        counters.drop(reason);
                        queue_pair.release(desc.addr);
                    }
                }
            }
            for &(out, key) in missed.iter().flatten() {
                // Ask the agent once per key per pending period, within the rate limit.
                let asked = matches!(table.lookup(&key, now_ms), Lookup::Pending)
                    || (limiter.allow(now_ms) && misses.try_send(key).is_ok() && {
                        table.set_pending(key, now_ms + u64::from(pending_timeout_ms));
                        true
                    });
                if !asked {
                    // Nobody will answer: holding would only delay the drop.
                    counters.drop(DropReason::MissRateLimited);
                    queue_pair.release(out.addr);
                } else if n_held < hold_limit {
                    held[n_held] = Held {
                        desc: out,
                        expires_ms: now_ms + u64::from(pending_timeout_ms),
                    };
                    n_held += 1;
                    counters.held_packets += 1;
                } else {
                    counters.drop(DropReason::Miss);
                    queue_pair.release(out.addr);
                }
            }
        }
        let mut work = n;
        // Ingress: fabric → guest, with the same backpressure.
        let room = queue_pair
            .tx_room(Side::Guest)
            .saturating_sub(outbox.pending(Side::Guest));
        let n = queue_pair.recv(Side::Fabric, &mut rx[..batch_size.min(room)]);
        for group in rx[..n].chunks(PREPARE_AHEAD) {
            let mut prepared = [IngressPrepared::default(); PREPARE_AHEAD];
            for (p, desc) in prepared.iter_mut().zip(group) {
                with_frame(&mut queue_pair, *desc, |frame| {
                    *p = ingress_prepare(&ctx, &table, now_ms, frame)
                });
            }
            for (desc, p) in group.iter().zip(prepared) {
                match process(&mut queue_pair, *desc, |frame| {
                    ingress_prepared(&ctx, &table, now_ms, p, frame, &mut counters)
                }) {
                    Ok((verdict, out)) => {
                        if !outbox.route(verdict, out) {
                            queue_pair.release(desc.addr);
                        }
                    }
                    Err(reason) => {
                        counters.drop(reason);
                        queue_pair.release(desc.addr);
                    }
                }
            }
        }
        work += n;

        outbox.flush(&mut queue_pair, &mut counters);
        queue_pair.service();

        if work == 0 {
            if idle == 0 {
                // Just went idle: publish now, so stats are current whenever traffic pauses.
                last_publish = Instant::now();
                publish(&status, &counters, &table, &queue_pair, false);
            }
            idle += 1;
            if idle > IDLE_SPINS {
                if let Err(e) = queue_pair.wait(IDLE_WAIT) {
                    tracing::warn!(worker = index, error = %e, "poll on AF_XDP sockets failed");
                    std::thread::sleep(IDLE_WAIT);
                }
            }
        } else {
            idle = 0;
        }
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = Instant::now();
            publish(&status, &counters, &table, &queue_pair, false);
            heartbeat.fetch_add(1, Ordering::Relaxed);
        }
    }
    for h in &held[..n_held] {
        counters.drop(DropReason::Miss);
        queue_pair.release(h.desc.addr);
    }
    // Drain: let the kernel complete what we queued so the accounting balances.
    for _ in 0..100 {
        queue_pair.service();
        if queue_pair.accounting().in_tx.iter().all(|n| *n == 0) {
            break;
        }
        let _ = queue_pair.wait(Duration::from_millis(1));
    }
    publish(&status, &counters, &table, &queue_pair, true);
    tracing::info!(worker = index, "worker stopped");
    status.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Look at one received frame without changing it (nothing if its descriptor is invalid:
/// [`process`] then counts the drop).
#[inline]
fn with_frame<R: Rings>(queue_pair: &mut R, desc: Desc, look: impl FnOnce(&Frame<'_>)) {
    if let Ok(mut chunk) = queue_pair.frame(desc) {
        if let Ok(frame) = frame_in(&mut chunk) {
            look(&frame);
        }
    }
}

/// The pipeline's view of a received UMEM frame: its data within its chunk.
#[inline]
fn frame_in<'a>(chunk: &'a mut FrameMut<'_>) -> Result<Frame<'a>, FrameError> {
    let (start, len) = (chunk.start(), chunk.len());
    Frame::new(chunk.buf(), start, len)
}

/// Run `pipeline` on one received frame; returns its verdict and the frame's new
/// descriptor, or why the frame could not be processed at all (not yet counted).
#[inline]
fn process<R: Rings>(
    queue_pair: &mut R,
    desc: Desc,
    pipeline: impl FnOnce(&mut Frame<'_>) -> Verdict,
) -> Result<(Verdict, Desc), DropReason> {
    // A descriptor outside our UMEM is never touched.
    let mut chunk = queue_pair
        .frame(desc)
        .map_err(|_| DropReason::InvalidDescriptor)?;
    let mut frame = frame_in(&mut chunk).map_err(|_| DropReason::InvalidDescriptor)?;
    let verdict = pipeline(&mut frame);
    let (start, len) = (frame.start(), frame.len());
    chunk
        .set_data(start, len)
        .map_err(|_| DropReason::NoHeadroom)?;
    Ok((verdict, chunk.desc()))
}

/// Frames to transmit at the end of an iteration, per port: at most a batch from each port
/// plus every held frame.
struct Outbox {
    guest: [Desc; 2 * MAX_BATCH + MAX_HOLD],
    n_guest: usize,
    fabric: [Desc; MAX_BATCH + MAX_HOLD],
    n_fabric: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            guest: [Desc::default(); 2 * MAX_BATCH + MAX_HOLD],
            n_guest: 0,
            fabric: [Desc::default(); MAX_BATCH + MAX_HOLD],
            n_fabric: 0,
        }
    }
}

impl Outbox {
    /// Frames queued for `side`'s TX ring, not yet flushed.
    fn pending(&self, side: Side) -> usize {
        match side {
            Side::Guest => self.n_guest,
            Side::Fabric => self.n_fabric,
        }
    }

    /// Queue a processed frame on the port its verdict names; false if it names none (the
    /// caller releases the frame).
    #[inline]
    fn route(&mut self, verdict: Verdict, out: Desc) -> bool {
        match verdict {
            Verdict::ToFabric => {
                self.fabric[self.n_fabric] = out;
                self.n_fabric += 1;
                true
            }
            Verdict::ToGuest => {
                self.guest[self.n_guest] = out;
                self.n_guest += 1;
                true
            }
            Verdict::Miss(_) | Verdict::Drop(_) => false,
        }
    }

    /// Transmit everything queued; what the TX rings refuse is dropped and counted.
    fn flush<R: Rings>(&mut self, queue_pair: &mut R, counters: &mut Counters) {
        transmit(
            queue_pair,
            Side::Fabric,
            &self.fabric[..self.n_fabric],
            counters,
        );
        transmit(
            queue_pair,
            Side::Guest,
            &self.guest[..self.n_guest],
            counters,
        );
        self.n_fabric = 0;
        self.n_guest = 0;
    }
}

fn transmit<R: Rings>(queue_pair: &mut R, side: Side, descs: &[Desc], counters: &mut Counters) {
    if descs.is_empty() {
        return;
    }
    let sent = queue_pair.send(side, descs);
    for desc in &descs[sent..] {
        counters.drop(DropReason::TxRingFull);
        queue_pair.release(desc.addr);
    }
}

fn publish<R: Rings>(
    status: &StatusSlot,
    counters: &Counters,
    table: &MappingTable,
    qp: &R,
    block: bool,
) {
    let guard = if block {
        status.lock().ok()
    } else {
        status.try_lock().ok()
    };
    if let Some(mut s) = guard {
        s.counters.clone_from(counters);
        s.mapped = table.mapped_len() as u64;
        s.entries = table.len() as u64;
        s.epoch = table.epoch();
        s.accounting = Some(qp.accounting());
        s.xsk = Some(qp.counters());
        s.kernel = [qp.stats(Side::Guest).ok(), qp.stats(Side::Fabric).ok()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miss_limiter_caps_the_rate() {
        let mut limiter = MissLimiter {
            per_sec: 10,
            tokens: 10,
            last_ms: 0,
        };
        let allowed = (0..100).filter(|_| limiter.allow(0)).count();
        assert_eq!(allowed, 10, "a burst is capped by the bucket size");
        let allowed = (0..100).filter(|_| limiter.allow(100)).count();
        assert_eq!(allowed, 1, "100 ms at 10/s refills one token");
    }

    /// The worker's whole loop over in-memory rings that always have traffic: 64-byte
    /// egress and ingress frames of 1,000 mappings, for `XVPC_BENCH_SECS` (2) seconds of
    /// wall time; prints the worker thread's CPU time per forwarded frame. A benchmark, not a
    /// test: `cargo test --release -p xvpc-dataplane --bin xvpc -- --ignored --nocapture
    /// worker_loop_cost`.
    #[test]
    #[ignore]
    fn worker_loop_cost() {
        use xvpc_benches::{destinations, fabric_frame, guest_frame, mapping};
        let env = xvpc_benches::Setup::new();
        let mappings = 1000;
        let dsts = destinations(&env, mappings, 4096, 7);
        let guest = dsts
            .iter()
            .map(|&i| match mapping(i, false).overlay_ip {
                std::net::IpAddr::V4(dst) => guest_frame(dst, 64, i as u16),
                std::net::IpAddr::V6(_) => unreachable!("benchmark overlays are IPv4"),
            })
            .collect();
        let fabric = dsts
            .iter()
            .map(|&i| fabric_frame(&env, i, 64, false))
            .collect();
        let mut rings = xvpc_xsk::test_utils::MemRings::new(xvpc_xsk::UmemConfig::default())
            .expect("default UMEM");
        rings.set_source(Side::Guest, guest);
        rings.set_source(Side::Fabric, fabric);
        rings.service();
        let (_updates_tx, updates) = crossbeam_channel::bounded(16);
        let (garbage, _garbage_rx) = crossbeam_channel::unbounded();
        let (misses, _misses_rx) = crossbeam_channel::bounded(16);
        let stop = Arc::new(AtomicBool::new(false));
        let setup = WorkerSetup {
            index: 0,
            core: None,
            queue_pair: rings,
            table: xvpc_benches::table(&env, mappings, false),
            guest: env.guest.clone(),
            gateway: env.gateway.clone(),
            fabric: env.fabric.clone(),
            batch_size: 64,
            updates,
            garbage,
            misses,
            miss_limit_per_sec: 1000,
            pending_timeout_ms: 500,
            hold_frames: 64,
            heartbeat: Arc::new(AtomicU64::new(0)),
            status: StatusSlot::default(),
            stop: stop.clone(),
        };
        let worker = std::thread::spawn(move || {
            let cpu = cpu_time::ThreadTime::now();
            let status = run(setup);
            (status, cpu.elapsed())
        });
        let secs = std::env::var("XVPC_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0);
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let (status, cpu) = worker.join().expect("worker ran");
        let c = &status.counters;
        let frames = c.egress_packets + c.ingress_packets;
        assert_eq!(c.total_drops(), 0, "{c:?}");
        assert!(frames > 0);
        println!(
            "worker loop: {:.1} ns of worker CPU per frame ({frames} frames, {:.2} s CPU)",
            cpu.as_nanos() as f64 / frames as f64,
            cpu.as_secs_f64()
        );
    }
}
