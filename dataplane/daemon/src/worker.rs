//! A poll-mode worker: owns one queue pair, its mapping table and its counters.
//!
//! Per iteration ([`Worker::iteration`]): apply pending table updates (between batches, never
//! during one), retry held frames, receive a batch from each port, run the pipeline on every
//! frame, transmit, recycle completions into the fill rings. When there is no work it sleeps
//! on its rings (poll with need_wakeup), so on a shared core it never starves the kernel's
//! receive thread.
//!
//! The worker is generic over [`Rings`]: the daemon runs it on a [`QueuePair`], its unit
//! tests on `MemRings` (in memory, no privileges).

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

type Processed = Result<(Verdict, Desc), DropReason>;

/// Largest batch a worker takes from one ring at a time.
pub const MAX_BATCH: usize = 256;
/// Most missed frames a worker can hold while it waits for their mappings.
pub const MAX_HOLD: usize = 256;
/// Updates applied between two batches at most, so a flood of updates cannot stall traffic.
const UPDATES_PER_ITERATION: usize = 1024;
/// Table slots checked for expired negative/pending entries per iteration: 1 KB, a few
/// hundred ns when the table holds any; a 2M-slot table is swept in seconds when busy, in
/// about 16 minutes when idle (one iteration per `IDLE_WAIT_MAX`).
const EXPIRE_SLOTS_PER_ITERATION: usize = 16;
/// How long one sleep on the rings lasts when the worker has just gone idle, or holds frames
/// waiting for their mappings (bounds update, held-frame and shutdown latency).
const IDLE_WAIT: Duration = Duration::from_millis(1);
/// How long it lasts once the worker has been idle for about a second: traffic still wakes
/// it at once, a table update may wait this long. An idle worker then wakes 125 times a
/// second instead of 1000 (measured: ~2 % of a core at 1 ms, release build, no traffic).
const IDLE_WAIT_MAX: Duration = Duration::from_millis(8);
/// Sleeps on the rings at one length before the next doubling.
const IDLE_SLEEPS_PER_STEP: u32 = 256;
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
    /// Negative, pending (or, should the control path fall behind, live) entries the fixed
    /// table had no room for.
    pub table_refused: u64,
    /// Set once the worker has stopped: its frame book matched a full recount
    /// ([`Rings::audit`]), after it released what it held and let TX drain.
    pub audit: Option<bool>,
    /// Time spent in loop iterations that moved frames, and in those that found none
    /// (sleeping on the rings included): busy % = busy / (busy + idle).
    pub busy_ns: u64,
    /// See `busy_ns`.
    pub idle_ns: u64,
    /// How the spins after traffic (`dataplane.idle_spin_us`) ended.
    pub spin_ends: SpinEnds,
}

/// How many spins after traffic ran their whole window, and how many a preemption cut short
/// (the core is shared: the worker slept at once, and its next frames wait for a wake-up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpinEnds {
    /// Spun for the whole window without a frame, then slept.
    pub window: u64,
    /// Preempted while spinning (or while busy): slept at the first idle look.
    pub preempted: u64,
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
    pub rings: R,
    /// Its initial table: [`MappingTable::fixed`], so that the worker never grows it.
    pub table: MappingTable,
    /// The guest, gateway and fabric it serves.
    pub guest: Guest,
    /// The guest's gateway.
    pub gateway: Gateway,
    /// The fabric.
    pub fabric: Fabric,
    /// Frames per batch.
    pub batch_size: usize,
    /// Empty iterations before sleeping on the rings (`dataplane.idle_spins`).
    pub idle_spins: u32,
    /// How long to keep spinning after the last frame while nothing else wants the core
    /// (`dataplane.idle_spin_us`; zero: never beyond `idle_spins`).
    pub spin_after_traffic: Duration,
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
    /// Set (before `stop`) to stop for a takeover: the worker stops at a batch boundary
    /// without draining TX, so the new process picks the rings up as they are.
    pub handover: Arc<AtomicBool>,
}

/// A missed frame waiting for its mapping.
#[derive(Clone, Copy, Default)]
struct Held {
    desc: Desc,
    expires_ms: u64,
}

/// Missed frames in arrival order; they are retried, and leave, in that order.
struct HoldQueue {
    frames: [Held; MAX_HOLD],
    len: usize,
    limit: usize,
}

impl HoldQueue {
    fn new(limit: usize) -> Self {
        HoldQueue {
            frames: [Held::default(); MAX_HOLD],
            len: 0,
            limit: limit.min(MAX_HOLD),
        }
    }

    /// Worth a retry: held frames, and the table changed or one of them expired.
    fn due(&self, now_ms: u64, table_changed: bool) -> bool {
        self.len > 0
            && (table_changed
                || self.frames[..self.len]
                    .iter()
                    .any(|h| h.expires_ms <= now_ms))
    }

    /// False if the queue is full.
    fn push(&mut self, held: Held) -> bool {
        if self.len >= self.limit {
            return false;
        }
        self.frames[self.len] = held;
        self.len += 1;
        true
    }
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

/// Run a worker until `stop` is set. Returns its final status and its rings, holding no
/// frame: drained for an exit, or quiesced for a takeover (`handover`).
pub fn run<R: Rings>(setup: WorkerSetup<R>) -> (WorkerStatus, R) {
    let WorkerSetup {
        index,
        core,
        rings,
        table,
        guest,
        gateway,
        fabric,
        batch_size,
        idle_spins,
        spin_after_traffic,
        updates,
        garbage,
        misses,
        miss_limit_per_sec,
        pending_timeout_ms,
        hold_frames,
        status,
        heartbeat,
        stop,
        handover,
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
    let asker = MissAsker::new(misses, miss_limit_per_sec, pending_timeout_ms);
    let mut worker = Worker::new(ctx, rings, table, (updates, garbage), asker, hold_frames);
    worker.batch_size = batch_size.clamp(1, MAX_BATCH);
    let clock = Instant::now();
    let mut last_publish = clock;
    let mut idle = 0u32;
    let mut sleeps = 0u32;
    worker.spin = SpinWindow::new(spin_after_traffic, preemptions());
    while !stop.load(Ordering::Relaxed) {
        // Two clock reads per iteration, as before: the worker's time and busy/idle time.
        let started = Instant::now();
        let busy = worker.iteration(started.duration_since(clock).as_millis() as u64) > 0;
        if busy {
            idle = 0;
            sleeps = 0;
            worker.spin.traffic(started);
        } else {
            if idle == 0 {
                // Just went idle: publish now, so stats are current whenever traffic pauses.
                last_publish = Instant::now();
                worker.publish(&status, false);
            }
            idle = idle.saturating_add(1);
            if idle > idle_spins && !worker.spin.keep_spinning(started, preemptions) {
                sleeps = sleeps.saturating_add(1);
                worker.sleep(index, sleeps);
            }
        }
        let ended = Instant::now();
        worker.times.add(busy, ended.duration_since(started));
        if ended.duration_since(last_publish) >= PUBLISH_EVERY {
            last_publish = ended;
            worker.publish(&status, false);
            heartbeat.fetch_add(1, Ordering::Relaxed);
        }
    }
    let handing_over = handover.load(Ordering::Acquire);
    if handing_over {
        worker.quiesce();
    } else {
        worker.stop();
    }
    worker.publish(&status, true);
    tracing::info!(worker = index, handing_over, "worker stopped");
    let last = status.lock().map(|s| s.clone()).unwrap_or_default();
    (last, worker.io.rings)
}

/// The calling thread's preemptions so far; on error a value that reads as "preempted", so
/// the worker sleeps rather than spins.
fn preemptions() -> u64 {
    xvpc_xsk::involuntary_switches().unwrap_or(u64::MAX)
}

/// Spinning after traffic instead of sleeping in `poll()`: a sleeping worker wakes only when
/// the scheduler runs it again, which on a halted (virtual) CPU takes up to milliseconds, so
/// the next frames wait (measured: a p99 of 0.5–2 ms sleeping, 0.2 ms spinning, unsteered).
/// It spins for `window` after the last frame, but only while nothing else wants the core:
/// a preemption since the last look means the core is shared (with the NIC's receive thread,
/// say), where spinning takes the time that thread needs, so the worker sleeps at once until
/// traffic comes again. No traffic, no spinning: an idle worker costs what it did.
struct SpinWindow {
    window: Duration,
    /// Spinning until then, unless preempted.
    until: Option<Instant>,
    /// Preemptions at the last look.
    preemptions: u64,
    ends: SpinEnds,
}

impl SpinWindow {
    fn new(window: Duration, preemptions: u64) -> Self {
        SpinWindow {
            window,
            until: None,
            preemptions,
            ends: SpinEnds::default(),
        }
    }

    /// A frame was seen at `now`.
    #[inline]
    fn traffic(&mut self, now: Instant) {
        if !self.window.is_zero() {
            self.until = Some(now + self.window);
        }
    }

    /// Whether an idle worker keeps spinning at `now`; `preemptions` reads the thread's
    /// preemptions so far, only within the window.
    #[inline]
    fn keep_spinning(&mut self, now: Instant, preemptions: impl FnOnce() -> u64) -> bool {
        let Some(until) = self.until else {
            return false;
        };
        let seen = preemptions();
        let preempted = seen != self.preemptions;
        self.preemptions = seen;
        if preempted {
            self.ends.preempted += 1;
        } else if now >= until {
            self.ends.window += 1;
        } else {
            return true;
        }
        self.until = None;
        false
    }
}

/// The sleep after `sleeps` consecutive idle sleeps: [`IDLE_WAIT`], doubling every
/// [`IDLE_SLEEPS_PER_STEP`] up to [`IDLE_WAIT_MAX`]; always [`IDLE_WAIT`] while frames are
/// held (their mappings arrive as table updates, which do not wake the poll).
fn idle_wait(sleeps: u32, holding: bool) -> Duration {
    if holding {
        return IDLE_WAIT;
    }
    let wait = IDLE_WAIT * (1u32 << (sleeps / IDLE_SLEEPS_PER_STEP).min(3));
    wait.min(IDLE_WAIT_MAX)
}

/// Where the loop's time went.
#[derive(Default)]
struct LoopTimes {
    busy_ns: u64,
    idle_ns: u64,
}

impl LoopTimes {
    #[inline]
    fn add(&mut self, busy: bool, spent: Duration) {
        let ns = spent.as_nanos() as u64;
        if busy {
            self.busy_ns += ns;
        } else {
            self.idle_ns += ns;
        }
    }
}

/// Missed frames: held while the agent is asked about their keys, within the rate limit.
struct Misses {
    held: HoldQueue,
    asker: MissAsker,
}

impl Misses {
    /// A missed frame: held while the agent is asked about its key, dropped if nobody will
    /// answer (rate limit: holding would only delay the drop) or the hold queue is full.
    fn hold_or_drop<R: Rings>(
        &mut self,
        table: &mut MappingTable,
        io: &mut Io<R>,
        now_ms: u64,
        (out, key): (Desc, MappingKey),
    ) {
        if !self.asker.asked(table, key, now_ms) {
            io.drop_frame(out, DropReason::MissRateLimited);
        } else if self.held.push(Held {
            desc: out,
            expires_ms: now_ms + u64::from(self.asker.pending_timeout_ms),
        }) {
            io.counters.held_packets += 1;
        } else {
            io.drop_frame(out, DropReason::Miss);
        }
    }
}

/// Asks the mapping agent about missed keys, within the rate limit.
struct MissAsker {
    misses: Sender<MappingKey>,
    limiter: MissLimiter,
    pending_timeout_ms: u32,
}

impl MissAsker {
    fn new(misses: Sender<MappingKey>, per_sec: u32, pending_timeout_ms: u32) -> Self {
        MissAsker {
            misses,
            limiter: MissLimiter {
                per_sec,
                tokens: per_sec,
                last_ms: 0,
            },
            pending_timeout_ms,
        }
    }

    /// Whether someone will answer about `key`: asked already (pending), or asked now.
    fn asked(&mut self, table: &mut MappingTable, key: MappingKey, now_ms: u64) -> bool {
        if matches!(table.lookup(&key, now_ms), Lookup::Pending) {
            return true;
        }
        if !self.limiter.allow(now_ms) || self.misses.try_send(key).is_err() {
            return false;
        }
        // A fixed table may have no room to remember it (counted): the key may then be
        // asked again, within the rate limit.
        let _ = table.set_pending(key, now_ms + u64::from(self.pending_timeout_ms));
        true
    }
}

/// A port pair's rings with what is queued for them and the counters of what happened.
struct Io<R> {
    rings: R,
    outbox: Outbox,
    counters: Counters,
}

impl<R: Rings> Io<R> {
    /// Where every processed frame ends: queued for the port its verdict names, or
    /// released (a drop the pipeline counted, or one counted here with its reason).
    #[inline]
    fn finish(&mut self, desc: Desc, processed: Processed) {
        match processed {
            Ok((verdict, out)) if self.outbox.route(verdict, out) => {}
            Ok(_) => self.rings.release(desc.addr),
            Err(reason) => self.drop_frame(desc, reason),
        }
    }

    /// Count a drop the pipeline did not and free the frame.
    fn drop_frame(&mut self, desc: Desc, reason: DropReason) {
        self.counters.drop(reason);
        self.rings.release(desc.addr);
    }

    /// Transmit everything queued; what the TX rings refuse is dropped and counted.
    fn flush(&mut self) {
        self.outbox.flush(&mut self.rings, &mut self.counters);
    }
}

/// One worker's state between iterations; [`run`] drives it, tests call its steps.
struct Worker<'a, R> {
    ctx: Context<'a>,
    table: MappingTable,
    io: Io<R>,
    /// The batch being processed (a field, not a local: 4 KiB not cleared per batch).
    rx: [Desc; MAX_BATCH],
    batch_size: usize,
    misses: Misses,
    updates: Receiver<TableUpdate>,
    garbage: Sender<Box<MappingTable>>,
    times: LoopTimes,
    /// Off until [`run`] sets the configured window.
    spin: SpinWindow,
}

impl<'a, R: Rings> Worker<'a, R> {
    fn new(
        ctx: Context<'a>,
        rings: R,
        table: MappingTable,
        (updates, garbage): (Receiver<TableUpdate>, Sender<Box<MappingTable>>),
        asker: MissAsker,
        hold_frames: usize,
    ) -> Self {
        Worker {
            ctx,
            table,
            io: Io {
                rings,
                outbox: Outbox::default(),
                counters: Counters::default(),
            },
            rx: [Desc::default(); MAX_BATCH],
            batch_size: MAX_BATCH,
            misses: Misses {
                held: HoldQueue::new(hold_frames),
                asker,
            },
            updates,
            garbage,
            times: LoopTimes::default(),
            spin: SpinWindow::new(Duration::ZERO, 0),
        }
    }

    /// One turn of the loop at worker time `now_ms`; returns how many frames it received.
    fn iteration(&mut self, now_ms: u64) -> usize {
        let applied = self.apply_updates(now_ms);
        self.table.expire(now_ms, EXPIRE_SLOTS_PER_ITERATION);
        // Held frames whose mapping (or negative answer) may have arrived go out first.
        if self.misses.held.due(now_ms, applied > 0) {
            self.retry_held(now_ms);
        }
        let work = self.egress(now_ms) + self.ingress(now_ms);
        self.io.flush();
        self.io.rings.service();
        work
    }

    /// Apply what the control thread sent, at most [`UPDATES_PER_ITERATION`]; returns how
    /// many.
    fn apply_updates(&mut self, now_ms: u64) -> usize {
        let mut applied = 0usize;
        for update in self.updates.try_iter().take(UPDATES_PER_ITERATION) {
            applied += 1;
            if let Some(old) = self.table.apply(update, now_ms) {
                // Freed by the garbage thread; if it is gone we are shutting down anyway.
                let _ = self.garbage.send(old);
            }
        }
        applied
    }

    /// Run every held frame through egress again, in order: still missing and not expired,
    /// it stays (in order); expired, it is dropped; anything else is its outcome.
    fn retry_held(&mut self, now_ms: u64) {
        let (ctx, table, io) = (&self.ctx, &self.table, &mut self.io);
        let queue = &mut self.misses.held;
        let mut kept = 0;
        for i in 0..queue.len {
            let held = queue.frames[i];
            let mut rerun = Counters::default();
            let processed = process(&mut io.rings, held.desc, |frame| {
                egress(ctx, table, now_ms, frame, &mut rerun)
            });
            match processed {
                Ok((Verdict::Miss(_), _)) if now_ms < held.expires_ms => {
                    queue.frames[kept] = held;
                    kept += 1;
                }
                Ok((Verdict::Miss(_), _)) => io.drop_frame(held.desc, DropReason::Miss),
                Ok(_) => {
                    // Received and missed once already: count only the outcome.
                    io.counters.add_rerun(&rerun);
                    io.counters.held_released += 1;
                    io.finish(held.desc, processed);
                }
                Err(_) => io.finish(held.desc, processed),
            }
        }
        queue.len = kept;
    }

    /// Take a batch from `from`, no more than the other port's TX ring can still take:
    /// when transmit is the bottleneck the excess is dropped by the kernel at the full RX
    /// ring (counted: `kernel.*.rx_ring_full` in stats) before it costs any work here, not
    /// after (`tx_ring_full`).
    #[inline]
    fn receive(&mut self, from: Side) -> usize {
        let to = from.other();
        let room = (self.io.rings.tx_room(to)).saturating_sub(self.io.outbox.pending(to));
        let want = self.batch_size.min(room);
        self.io.rings.recv(from, &mut self.rx[..want])
    }

    /// Egress: guest → fabric (or a reply back to the guest). Returns frames received.
    fn egress(&mut self, now_ms: u64) -> usize {
        let n = self.receive(Side::Guest);
        for group in self.rx[..n].chunks(PREPARE_AHEAD) {
            let missed = egress_group(&self.ctx, &self.table, &mut self.io, now_ms, group);
            // After the group: this writes to the table, which its prepared lookups read.
            for miss in missed.into_iter().flatten() {
                self.misses
                    .hold_or_drop(&mut self.table, &mut self.io, now_ms, miss);
            }
        }
        n
    }

    /// Ingress: fabric → guest, with the same backpressure. Returns frames received.
    fn ingress(&mut self, now_ms: u64) -> usize {
        let n = self.receive(Side::Fabric);
        for group in self.rx[..n].chunks(PREPARE_AHEAD) {
            ingress_group(&self.ctx, &self.table, &mut self.io, now_ms, group);
        }
        n
    }

    /// Sleep on the rings until traffic or [`idle_wait`] after `sleeps` idle sleeps.
    fn sleep(&mut self, index: usize, sleeps: u32) {
        let wait = idle_wait(sleeps, self.misses.held.len > 0);
        if let Err(e) = self.io.rings.wait(wait) {
            tracing::warn!(worker = index, error = %e, "poll on AF_XDP sockets failed");
            std::thread::sleep(wait);
        }
    }

    /// Drop the missed frames held (counted), so the worker holds no frame: every iteration
    /// has sent or released the rest of its batch. What is on the rings stays there.
    fn quiesce(&mut self) {
        let held = &mut self.misses.held;
        for h in &held.frames[..held.len] {
            self.io.drop_frame(h.desc, DropReason::Miss);
        }
        held.len = 0;
    }

    /// Drop what is held, then let the kernel complete what was queued so that every frame
    /// is back where the book can see it (bounded: about 100 ms).
    fn stop(&mut self) {
        self.quiesce();
        for _ in 0..100 {
            self.io.rings.service();
            if self.io.rings.accounting().in_tx.iter().all(|n| *n == 0) {
                break;
            }
            let _ = self.io.rings.wait(Duration::from_millis(1));
        }
    }

    /// Copy counters and table and ring state to `status`: without waiting if the stats
    /// thread holds it (it is published again soon), waiting and with an audit of every
    /// frame if `last`.
    fn publish(&self, status: &StatusSlot, last: bool) {
        let guard = match last {
            true => status.lock().ok(),
            false => status.try_lock().ok(),
        };
        let Some(mut s) = guard else {
            return;
        };
        let (rings, table) = (&self.io.rings, &self.table);
        s.counters.clone_from(&self.io.counters);
        s.mapped = table.mapped_len() as u64;
        s.entries = table.len() as u64;
        s.epoch = table.epoch();
        s.table_refused = table.refused();
        s.accounting = Some(rings.accounting());
        s.xsk = Some(rings.counters());
        s.kernel = [
            rings.stats(Side::Guest).ok(),
            rings.stats(Side::Fabric).ok(),
        ];
        s.busy_ns = self.times.busy_ns;
        s.idle_ns = self.times.idle_ns;
        s.spin_ends = self.spin.ends;
        if last {
            s.audit = Some(rings.audit());
        }
    }
}

/// A group of received frames through egress; returns the missed ones (frame, key), for
/// the caller to hold or drop. Every frame is prepared (parsed, looked up) before any is
/// finished, so that the lookups' cache misses overlap instead of queueing one behind the
/// other.
#[inline]
fn egress_group<R: Rings>(
    ctx: &Context<'_>,
    table: &MappingTable,
    io: &mut Io<R>,
    now_ms: u64,
    group: &[Desc],
) -> [Option<(Desc, MappingKey)>; PREPARE_AHEAD] {
    let mut prepared = [EgressPrepared::default(); PREPARE_AHEAD];
    for (p, desc) in prepared.iter_mut().zip(group) {
        with_frame(&mut io.rings, *desc, |frame| {
            *p = egress_prepare(ctx, table, now_ms, frame)
        });
    }
    let mut missed = [None; PREPARE_AHEAD];
    for (k, (desc, p)) in group.iter().zip(prepared).enumerate() {
        let processed = process(&mut io.rings, *desc, |frame| {
            egress_prepared(ctx, table, now_ms, p, frame, &mut io.counters)
        });
        match processed {
            Ok((Verdict::Miss(key), out)) => missed[k] = Some((out, key)),
            _ => io.finish(*desc, processed),
        }
    }
    missed
}

/// A group of received frames through ingress, prepared as a group like egress.
#[inline]
fn ingress_group<R: Rings>(
    ctx: &Context<'_>,
    table: &MappingTable,
    io: &mut Io<R>,
    now_ms: u64,
    group: &[Desc],
) {
    let mut prepared = [IngressPrepared::default(); PREPARE_AHEAD];
    for (p, desc) in prepared.iter_mut().zip(group) {
        with_frame(&mut io.rings, *desc, |frame| {
            *p = ingress_prepare(ctx, table, now_ms, frame)
        });
    }
    for (desc, p) in group.iter().zip(prepared) {
        let processed = process(&mut io.rings, *desc, |frame| {
            ingress_prepared(ctx, table, now_ms, p, frame, &mut io.counters)
        });
        io.finish(*desc, processed);
    }
}

/// Look at one received frame without changing it (nothing if its descriptor is invalid:
/// [`process`] then counts the drop).
#[inline]
fn with_frame<R: Rings>(rings: &mut R, desc: Desc, look: impl FnOnce(&Frame<'_>)) {
    if let Ok(mut chunk) = rings.frame(desc) {
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
    rings: &mut R,
    desc: Desc,
    pipeline: impl FnOnce(&mut Frame<'_>) -> Verdict,
) -> Processed {
    // A descriptor outside our UMEM is never touched.
    let mut chunk = rings
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

    /// Transmit everything queued, fabric first; what the TX rings refuse is dropped and
    /// counted.
    fn flush<R: Rings>(&mut self, rings: &mut R, counters: &mut Counters) {
        transmit(rings, Side::Fabric, &self.fabric[..self.n_fabric], counters);
        transmit(rings, Side::Guest, &self.guest[..self.n_guest], counters);
        self.n_fabric = 0;
        self.n_guest = 0;
    }
}

fn transmit<R: Rings>(rings: &mut R, side: Side, descs: &[Desc], counters: &mut Counters) {
    if descs.is_empty() {
        return;
    }
    let sent = rings.send(side, descs);
    for desc in &descs[sent..] {
        counters.drop(DropReason::TxRingFull);
        rings.release(desc.addr);
    }
}

#[cfg(test)]
mod tests {
    //! The worker's steps over in-memory rings: frames in, frames out, counters and the
    //! frame book checked after each step.

    use std::net::IpAddr;
    use std::ops::Range;

    use crossbeam_channel::TryRecvError;
    use xvpc_benches::{fabric_frame, guest_frame, mapping, Setup};
    use xvpc_core::table::Compiler;
    use xvpc_xsk::test_utils::{allocations, CountingAllocator, MemRings};
    use xvpc_xsk::UmemConfig;

    use super::*;

    #[test]
    fn idle_sleeps_back_off_to_their_cap_but_not_while_frames_are_held() {
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(idle_wait(0, false)), 1);
        assert_eq!(ms(idle_wait(IDLE_SLEEPS_PER_STEP - 1, false)), 1);
        assert_eq!(ms(idle_wait(IDLE_SLEEPS_PER_STEP, false)), 2);
        assert_eq!(ms(idle_wait(2 * IDLE_SLEEPS_PER_STEP, false)), 4);
        assert_eq!(ms(idle_wait(3 * IDLE_SLEEPS_PER_STEP, false)), 8);
        assert_eq!(ms(idle_wait(u32::MAX, false)), 8, "capped");
        assert_eq!(
            ms(idle_wait(u32::MAX, true)),
            1,
            "held frames wait for updates"
        );
    }

    #[test]
    fn spins_after_traffic_for_its_window_while_not_preempted() {
        let t0 = Instant::now();
        let us = |n: u64| t0 + Duration::from_micros(n);
        let mut spin = SpinWindow::new(Duration::from_micros(100), 7);
        assert!(
            !spin.keep_spinning(t0, || panic!("no traffic yet: nothing to read")),
            "no traffic, no spinning"
        );
        spin.traffic(t0);
        assert!(spin.keep_spinning(us(10), || 7));
        assert!(spin.keep_spinning(us(99), || 7));
        assert!(!spin.keep_spinning(us(100), || 7), "window over");
        assert!(
            !spin.keep_spinning(us(50), || 7),
            "once asleep, asleep until traffic"
        );
        spin.traffic(us(200));
        assert!(spin.keep_spinning(us(250), || 7), "traffic opens it again");
        let ended_once = SpinEnds {
            window: 1,
            preempted: 0,
        };
        assert_eq!(
            spin.ends, ended_once,
            "one spin ran its window, counted once"
        );
    }

    #[test]
    fn a_preemption_ends_the_spin_until_traffic_comes_again() {
        let t0 = Instant::now();
        let us = |n: u64| t0 + Duration::from_micros(n);
        let mut spin = SpinWindow::new(Duration::from_millis(1), 3);
        spin.traffic(t0);
        assert!(spin.keep_spinning(us(1), || 3));
        assert!(!spin.keep_spinning(us(2), || 4), "preempted while spinning");
        assert!(!spin.keep_spinning(us(3), || 4), "still asleep");
        spin.traffic(us(10));
        assert!(
            spin.keep_spinning(us(11), || 4),
            "not preempted since the last look"
        );
        spin.traffic(us(20));
        assert!(
            !spin.keep_spinning(us(30), || 9),
            "preempted while busy: the core is shared"
        );
        let cut_twice = SpinEnds {
            window: 0,
            preempted: 2,
        };
        assert_eq!(spin.ends, cut_twice, "each cut counted once");
        let mut off = SpinWindow::new(Duration::ZERO, 0);
        off.traffic(t0);
        assert!(!off.keep_spinning(t0, || 0), "a zero window never spins");
        assert_eq!(off.ends, SpinEnds::default(), "and counts no spin");
    }

    #[global_allocator]
    static ALLOCATOR: CountingAllocator = CountingAllocator;

    /// Pending timeout of the test workers.
    const PENDING_MS: u64 = 500;
    /// TX and RX rings of the test rings.
    const RING: usize = 64;

    fn mem_rings() -> MemRings {
        MemRings::new(UmemConfig {
            frame_count: 512,
            ring_size: RING as u32,
            ..UmemConfig::default()
        })
        .expect("valid UMEM config")
    }

    fn ctx(env: &Setup) -> Context<'_> {
        Context {
            guest: &env.guest,
            gateway: &env.gateway,
            fabric: &env.fabric,
        }
    }

    fn key(i: usize) -> MappingKey {
        mapping(i, false).key()
    }

    fn upsert(env: &Setup, i: usize) -> TableUpdate {
        let entry = Compiler::new(env.fabric.clone())
            .compile(&mapping(i, false))
            .expect("benchmark mappings compile");
        TableUpdate::Upsert(key(i), entry)
    }

    /// A worker's table holding mappings `range`.
    fn fixed_table(env: &Setup, range: Range<usize>) -> MappingTable {
        let mut table = MappingTable::fixed(1, range.len());
        for i in range {
            if let TableUpdate::Upsert(k, e) = upsert(env, i) {
                table.upsert(k, e);
            }
        }
        table
    }

    /// A 64-byte guest frame to mapping `i`'s address, tagged with UDP source port `tag`.
    fn to(i: usize, tag: u16) -> Vec<u8> {
        let IpAddr::V4(dst) = mapping(i, false).overlay_ip else {
            unreachable!("benchmark overlays are IPv4")
        };
        guest_frame(dst, 64, tag)
    }

    /// The inner UDP source port of a frame the worker encapsulated (IPv4 underlay).
    fn tag_of(encapsulated: &[u8]) -> u16 {
        let inner_udp = OUTER_V4 + 14 + 20;
        u16::from_be_bytes([encapsulated[inner_udp], encapsulated[inner_udp + 1]])
    }
    const OUTER_V4: usize = xvpc_core::table::OUTER_V4_LEN;

    /// The other ends of a test worker's channels.
    struct Ends {
        updates: Sender<TableUpdate>,
        misses: Receiver<MappingKey>,
        garbage: Receiver<Box<MappingTable>>,
    }

    impl Ends {
        fn misses(&self) -> Vec<MappingKey> {
            self.misses.try_iter().collect()
        }
    }

    fn worker<'a>(
        env: &'a Setup,
        table: MappingTable,
        misses_per_sec: u32,
        hold: usize,
    ) -> (Worker<'a, MemRings>, Ends) {
        let (updates_tx, updates) = crossbeam_channel::bounded(2 * UPDATES_PER_ITERATION);
        let (garbage, garbage_rx) = crossbeam_channel::unbounded();
        let (misses, misses_rx) = crossbeam_channel::bounded(4096);
        let asker = MissAsker::new(misses, misses_per_sec, PENDING_MS as u32);
        let worker = Worker::new(
            ctx(env),
            mem_rings(),
            table,
            (updates, garbage),
            asker,
            hold,
        );
        let ends = Ends {
            updates: updates_tx,
            misses: misses_rx,
            garbage: garbage_rx,
        };
        (worker, ends)
    }

    fn inject(w: &mut Worker<'_, MemRings>, side: Side, frame: &[u8]) {
        assert!(
            w.io.rings.inject(side, frame),
            "the test rings took the frame"
        );
    }

    /// No frame left with the worker, and the book matches a recount.
    fn assert_conserved(w: &Worker<'_, MemRings>) {
        let a = w.io.rings.accounting();
        assert!(w.io.rings.audit(), "frame book vs recount: {a:?}");
        assert_eq!(a.in_app, 0, "frames left with the worker: {a:?}");
        assert_eq!(w.io.rings.counters().frames, Default::default());
    }

    #[test]
    fn held_frames_leave_in_arrival_order_once_mapped_and_count_once() {
        let env = Setup::new();
        let (mut w, ends) = worker(&env, fixed_table(&env, 0..0), 1000, 64);
        let (a, b) = (10, 11);
        for (i, tag) in [(a, 1), (b, 2), (a, 3)] {
            inject(&mut w, Side::Guest, &to(i, tag));
        }
        assert_eq!(w.iteration(0), 3);
        assert_eq!(ends.misses(), [key(a), key(b)], "asked once per key");
        assert_eq!(
            (w.misses.held.len, w.io.rings.tx_pending(Side::Fabric)),
            (3, 0)
        );

        // The answer for `a` and a new frame to it arrive together: held frames go first.
        ends.updates.send(upsert(&env, a)).expect("worker channel");
        inject(&mut w, Side::Guest, &to(a, 4));
        assert_eq!(w.iteration(1), 1);
        let sent = w.io.rings.transmitted(Side::Fabric);
        assert_eq!(
            sent.iter().map(|f| tag_of(f)).collect::<Vec<_>>(),
            [1, 3, 4]
        );
        assert_eq!(w.misses.held.len, 1, "the frame to b still waits");

        // Each frame counted received once, missed once, forwarded once.
        let c = &w.io.counters;
        assert_eq!((c.guest_rx_packets, c.misses), (4, 3));
        assert_eq!(
            (c.held_packets, c.held_released, c.egress_packets),
            (3, 2, 3)
        );
        assert_eq!(
            c.egress_bytes,
            sent.iter().map(|f| f.len() as u64).sum::<u64>()
        );

        // No answer for `b`: dropped when its hold expires, not before.
        w.iteration(PENDING_MS - 1);
        assert_eq!(w.misses.held.len, 1);
        w.iteration(PENDING_MS);
        assert_eq!(
            (w.misses.held.len, w.io.counters.drops_for(DropReason::Miss)),
            (0, 1)
        );
        assert_eq!(w.io.counters.total_drops(), 1);
        assert_conserved(&w);
    }

    #[test]
    fn misses_are_asked_within_the_rate_limit_and_unasked_ones_dropped() {
        let env = Setup::new();
        let (mut w, ends) = worker(&env, fixed_table(&env, 0..0), 2, 64);
        for (i, tag) in [(20, 1), (21, 2), (22, 3), (23, 4), (20, 5)] {
            inject(&mut w, Side::Guest, &to(i, tag));
        }
        w.iteration(0);
        assert_eq!(
            ends.misses(),
            [key(20), key(21)],
            "a burst of two per second"
        );
        let c = &w.io.counters;
        assert_eq!(c.drops_for(DropReason::MissRateLimited), 2, "22 and 23");
        assert_eq!((c.misses, c.held_packets, w.misses.held.len), (5, 3, 3));
        // 22 was never asked: a later frame to it is asked once tokens are back.
        inject(&mut w, Side::Guest, &to(22, 6));
        w.iteration(400);
        assert_eq!(ends.misses(), [], "400 ms at 2/s: no token yet");
        inject(&mut w, Side::Guest, &to(22, 7));
        w.iteration(PENDING_MS);
        assert_eq!(ends.misses(), [key(22)]);
        assert_eq!(w.misses.held.len, 1, "the others expired");
        w.stop();
        assert_conserved(&w);
    }

    #[test]
    fn a_full_hold_queue_drops_the_miss() {
        let env = Setup::new();
        let (mut w, _ends) = worker(&env, fixed_table(&env, 0..0), 1000, 2);
        for tag in 0..3 {
            inject(&mut w, Side::Guest, &to(30, tag));
        }
        w.iteration(0);
        assert_eq!(w.misses.held.len, 2);
        assert_eq!(w.io.counters.drops_for(DropReason::Miss), 1);
        w.stop();
        assert_eq!(w.io.counters.drops_for(DropReason::Miss), 3);
        assert_conserved(&w);
    }

    #[test]
    fn a_full_tx_ring_leaves_frames_in_the_rx_ring_not_dropped() {
        let env = Setup::new();
        let (mut w, _ends) = worker(&env, fixed_table(&env, 0..100), 1000, 64);
        for tag in 0..RING as u16 {
            inject(&mut w, Side::Guest, &to(usize::from(tag % 50) + 1, tag));
        }
        assert_eq!(w.iteration(0), RING);
        assert_eq!(w.io.rings.tx_room(Side::Fabric), 0, "nothing completes");
        for tag in 0..10 {
            inject(&mut w, Side::Guest, &to(1, tag));
            inject(&mut w, Side::Fabric, &fabric_frame(&env, 2, 64, false));
        }
        // Egress takes nothing while the fabric TX ring is full; ingress is not held up.
        assert_eq!(w.iteration(1), 10);
        assert_eq!(w.io.rings.rx_pending(Side::Guest), 10);
        assert_eq!(w.io.rings.tx_pending(Side::Guest), 10);
        assert_eq!(w.io.rings.complete(Side::Fabric, 4), 4);
        assert_eq!(w.iteration(2), 4, "as much as TX has room for");
        assert_eq!(w.io.rings.rx_pending(Side::Guest), 6);
        assert_eq!(w.io.counters.total_drops(), 0, "{:?}", w.io.counters);
        assert_eq!(w.io.counters.egress_packets, RING as u64 + 4);
    }

    #[test]
    fn table_updates_apply_before_the_batch_and_at_most_a_bounded_number() {
        let env = Setup::new();
        let (mut w, ends) = worker(&env, fixed_table(&env, 0..0), 1000, 64);
        inject(&mut w, Side::Guest, &to(40, 1));
        ends.updates.send(upsert(&env, 40)).expect("worker channel");
        w.iteration(0);
        assert_eq!((w.io.counters.egress_packets, w.io.counters.misses), (1, 0));

        for _ in 0..UPDATES_PER_ITERATION + 1 {
            ends.updates.send(upsert(&env, 41)).expect("worker channel");
        }
        w.iteration(1);
        assert_eq!(w.updates.len(), 1, "one left for the next iteration");
        w.iteration(2);
        assert!(w.updates.is_empty());

        // A full sync: swapped in whole, the old table handed back to be freed.
        ends.updates
            .send(TableUpdate::Replace(Box::new(fixed_table(&env, 50..51))))
            .expect("worker channel");
        inject(&mut w, Side::Guest, &to(50, 2));
        w.iteration(3);
        let old = ends.garbage.try_recv().expect("the old table");
        assert_eq!(old.mapped_len(), 2, "40 and 41");
        assert_eq!(w.table.mapped_len(), 1);
        assert_eq!(w.io.counters.egress_packets, 2);
        assert_eq!(ends.garbage.try_recv().err(), Some(TryRecvError::Empty));
    }

    /// Every frame received leaves by exactly one door: sent, or dropped with a reason.
    #[test]
    fn every_frame_is_sent_or_counted_as_dropped_and_none_is_kept() {
        let env = Setup::new();
        let (mut w, ends) = worker(&env, fixed_table(&env, 0..100), 3, 8);
        let mut injected = 0u64;
        let mut sent = 0u64;
        let mut feed = |w: &mut Worker<'_, MemRings>, side, frame: &[u8]| {
            inject(w, side, frame);
            injected += 1;
        };
        // Hits both ways, misses held and rate-limited, malformed frames, spoofed ingress.
        for tag in 0..40u16 {
            feed(&mut w, Side::Guest, &to(usize::from(tag) % 90 + 1, tag));
        }
        for i in 200..210 {
            feed(&mut w, Side::Guest, &to(i, 0));
        }
        feed(&mut w, Side::Guest, &[0xff; 20]);
        feed(&mut w, Side::Fabric, &fabric_frame(&env, 3, 64, false));
        feed(&mut w, Side::Fabric, &fabric_frame(&env, 300, 64, false));
        w.iteration(0);
        // The fabric TX ring fills up; then the held frames are answered at once and find
        // no room (dropped: tx_ring_full).
        for tag in 0..RING as u16 {
            feed(&mut w, Side::Guest, &to(5, tag));
        }
        w.iteration(1);
        sent += w.io.rings.complete(Side::Guest, usize::MAX) as u64;
        for i in 200..203 {
            ends.updates.send(upsert(&env, i)).expect("worker channel");
        }
        w.iteration(2);
        let c = &w.io.counters;
        assert!(c.drops_for(DropReason::TxRingFull) > 0, "{c:?}");
        assert!(c.drops_for(DropReason::MissRateLimited) > 0, "{c:?}");
        assert!(c.drops_for(DropReason::UnknownSource) > 0, "{c:?}");
        // Let TX drain until the worker has taken every frame the "kernel" received.
        for now in PENDING_MS..PENDING_MS + 10 {
            for side in Side::ALL {
                sent += w.io.rings.complete(side, usize::MAX) as u64;
            }
            w.iteration(now);
        }
        assert_eq!(w.io.rings.accounting().in_fill, [0, 0], "all received");
        w.stop();
        for side in Side::ALL {
            sent += w.io.rings.complete(side, usize::MAX) as u64;
        }
        assert_eq!(
            sent + w.io.counters.total_drops(),
            injected,
            "{:?}",
            w.io.counters
        );
        assert_conserved(&w);
        assert_eq!(w.io.rings.accounting().free, 512);
    }

    /// The counting allocator sees allocations: otherwise the test below proves nothing.
    #[test]
    fn the_counting_allocator_counts() {
        let before = allocations();
        let v = std::hint::black_box(vec![1u8; 100]);
        assert!(allocations() > before, "{} bytes not counted", v.len());
    }

    /// The whole iteration allocates nothing: hits both ways, misses to ever new keys (the
    /// table fills with pending entries and never grows), held frames released and
    /// expired, updates of every incremental kind.
    #[test]
    fn the_loop_allocates_nothing_per_frame() {
        const ROUNDS: usize = 1000;
        let env = Setup::new();
        let (mut w, ends) = worker(&env, fixed_table(&env, 0..1000), 1_000_000, 64);
        // Everything that allocates is built before counting.
        let hits: Vec<_> = (0..32).map(|i| to(i * 7 % 990 + 1, i as u16)).collect();
        let ingress: Vec<_> = (0..16)
            .map(|i| fabric_frame(&env, i * 13 % 990 + 1, 64, false))
            .collect();
        let missed: Vec<_> = (0..ROUNDS * 20).map(|i| to(2000 + i, 0)).collect();
        let updates: Vec<_> = (0..ROUNDS * 4).map(|i| upsert(&env, 2000 + i)).collect();
        let mut updates = updates.into_iter();
        let mut round = |w: &mut Worker<'_, MemRings>, r: usize| {
            for f in &hits {
                inject(w, Side::Guest, f);
            }
            for f in &missed[r * 20..r * 20 + 20] {
                inject(w, Side::Guest, f);
            }
            for f in &ingress {
                inject(w, Side::Fabric, f);
            }
            for u in updates.by_ref().take(2) {
                ends.updates.try_send(u).expect("room");
            }
            let k = key(2000 + 2 * r);
            ends.updates.try_send(TableUpdate::Delete(k)).expect("room");
            let nf = TableUpdate::NotFound {
                key: key(900_000 + r),
                ttl_ms: 5000,
            };
            ends.updates.try_send(nf).expect("room");
            w.iteration(r as u64);
            for side in Side::ALL {
                w.io.rings.complete(side, usize::MAX);
            }
            while ends.misses.try_recv().is_ok() {}
        };
        for r in 0..10 {
            round(&mut w, r);
        }
        let before = allocations();
        for r in 10..ROUNDS {
            round(&mut w, r);
        }
        let allocated = allocations() - before;
        let c = &w.io.counters;
        assert!(
            c.held_released > 0 && c.drops_for(DropReason::Miss) > 0,
            "{c:?}"
        );
        assert!(w.table.len() > 2 * 1000, "pending entries piled up");
        assert_eq!(allocated, 0, "allocations in {} rounds: {c:?}", ROUNDS - 10);
        assert!(c.egress_packets > 30 * ROUNDS as u64 && c.ingress_packets > 0);
    }

    /// A `run` setup over `rings` with `table`, the benchmark guest and fabric, and defaults
    /// that the tests change by field; the channels' other ends stay open in `Ends`.
    fn test_setup(
        env: &Setup,
        rings: MemRings,
        table: MappingTable,
    ) -> (WorkerSetup<MemRings>, Ends) {
        let (updates_tx, updates) = crossbeam_channel::bounded(16);
        let (garbage, garbage_rx) = crossbeam_channel::unbounded();
        let (misses, misses_rx) = crossbeam_channel::bounded(16);
        let setup = WorkerSetup {
            index: 0,
            core: None,
            rings,
            table,
            guest: env.guest.clone(),
            gateway: env.gateway.clone(),
            fabric: env.fabric.clone(),
            batch_size: 64,
            idle_spins: crate::config::DEFAULT_IDLE_SPINS,
            spin_after_traffic: Duration::from_micros(crate::config::DEFAULT_IDLE_SPIN_US.into()),
            updates,
            garbage,
            misses,
            miss_limit_per_sec: 1000,
            pending_timeout_ms: 500,
            hold_frames: 64,
            heartbeat: Arc::new(AtomicU64::new(0)),
            status: StatusSlot::default(),
            stop: Arc::new(AtomicBool::new(false)),
            handover: Arc::default(),
        };
        let ends = Ends {
            updates: updates_tx,
            misses: misses_rx,
            garbage: garbage_rx,
        };
        (setup, ends)
    }

    /// `run` keeps beating while idle and reports an audited book when stopped.
    #[test]
    fn run_beats_while_idle_and_audits_on_the_way_out() {
        let env = Setup::new();
        let mut rings = mem_rings();
        rings.inject(Side::Guest, &to(1, 1));
        let (setup, _ends) = test_setup(&env, rings, fixed_table(&env, 0..10));
        let (heartbeat, stop) = (setup.heartbeat.clone(), setup.stop.clone());
        let worker = std::thread::spawn(move || run(setup));
        let deadline = Instant::now() + Duration::from_secs(10);
        while heartbeat.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            heartbeat.load(Ordering::Relaxed) >= 3,
            "the heartbeat stalled"
        );
        stop.store(true, Ordering::Relaxed);
        let (status, _) = worker.join().expect("worker ran");
        assert_eq!(status.counters.egress_packets, 1);
        assert_eq!(status.audit, Some(true));
        let a = status.accounting.expect("accounting");
        // The frame sent stays on the TX ring: MemRings completes only when told to.
        assert_eq!((a.in_app, a.in_tx), (0, [0, 1]));
    }

    /// Stopped for a takeover, `run` hands back rings with no frame held (a held miss is
    /// dropped and counted) and the sent frame still on the TX ring, for the new owner.
    #[test]
    fn run_stopped_for_a_takeover_hands_back_quiesced_rings() {
        let env = Setup::new();
        let mut rings = mem_rings();
        // One mapped destination (sent), one missed (held).
        rings.inject(Side::Guest, &to(1, 1));
        rings.inject(Side::Guest, &to(50, 1));
        let (mut setup, _ends) = test_setup(&env, rings, fixed_table(&env, 0..10));
        setup.pending_timeout_ms = 60_000;
        let (status, stop, handover) = (
            setup.status.clone(),
            setup.stop.clone(),
            setup.handover.clone(),
        );
        let worker = std::thread::spawn(move || run(setup));
        let deadline = Instant::now() + Duration::from_secs(10);
        while status.lock().map_or(0, |s| s.counters.held_packets) < 1 && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        handover.store(true, Ordering::Release);
        stop.store(true, Ordering::Relaxed);
        let (status, rings) = worker.join().expect("worker ran");
        assert_eq!(status.counters.held_packets, 1, "{:?}", status.counters);
        assert_eq!(
            status.counters.drops_for(DropReason::Miss),
            1,
            "the held frame is dropped, counted"
        );
        let a = rings.accounting();
        assert_eq!((a.in_app, a.in_tx), (0, [0, 1]), "{a:?}");
        assert!(rings.audit());
        assert_eq!(status.audit, Some(true));
    }

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
        let (setup, _ends) = test_setup(&env, rings, fixed_table(&env, 0..mappings));
        let stop = setup.stop.clone();
        let worker = std::thread::spawn(move || {
            let cpu = cpu_time::ThreadTime::now();
            let (status, _) = run(setup);
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
