//! The control channel's dataplane end: listens on a Unix socket for the mapping agent,
//! compiles what it sends off the fast path, and fans updates out to every worker. Misses
//! reported by workers flow back to the agent on the same connection, never as blocking
//! calls.
//!
//! One agent session at a time: a new agent (a restart) replaces the old session, and the
//! workers keep forwarding on their current tables until its full sync ends.

use std::io::{BufReader, BufWriter, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use xvpc_control::{
    read_message_with, write_message, ControlError, Message, Role, StatsReport, SyncAssembler,
};
use xvpc_core::model::{Mapping, MappingKey, Vni};
use xvpc_core::table::{Compiler, MappingTable, TableUpdate};

use crate::tier::GuestTier;
use crate::worker::StatusSlot;

/// Why the control channel could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlServerError {
    /// The socket path could not be prepared or bound.
    #[error("cannot listen on socket {path}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Counters of the control path.
#[derive(Default, Debug)]
pub struct ControlCounters {
    /// Full syncs swapped in.
    pub full_syncs: AtomicU64,
    /// Upserts applied (outside syncs).
    pub upserts: AtomicU64,
    /// Deletes applied.
    pub deletes: AtomicU64,
    /// Misses sent to the agent.
    pub misses_sent: AtomicU64,
    /// Misses that could not be sent (no agent connected).
    pub misses_unsent: AtomicU64,
    /// NotFound answers received.
    pub not_found: AtomicU64,
    /// Mappings rejected (wrong VNI, no local underlay of that family, bad MAC).
    pub rejected: AtomicU64,
    /// Agent sessions accepted.
    pub sessions: AtomicU64,
    /// Epoch of the last full sync.
    pub epoch: AtomicU64,
    /// Is an agent session open?
    pub agent_connected: AtomicBool,
    /// When the last full sync was swapped in (Unix seconds; 0: never).
    pub last_full_sync_unix: AtomicU64,
    /// Mappings the XDP tier's map had no room for in a full sync (the workers forward
    /// them).
    pub xdp_no_room: AtomicU64,
    /// Writes to the XDP tier's map that failed (logged; the mapping is left to the workers).
    pub xdp_errors: AtomicU64,
}

/// Compiles mappings and sends updates to every worker.
pub struct Fanout {
    workers: Vec<Sender<TableUpdate>>,
    statuses: Vec<StatusSlot>,
    compiler: Compiler,
    vni: Vni,
    /// The live mappings every worker's table holds. Locked while an update is sent, so
    /// the workers get updates in the order they were applied here.
    shadow: Mutex<MappingTable>,
    /// The guest port's program: under `fast_path = "xdp"` this is the only writer of its
    /// mapping map, which mirrors `shadow`'s live mappings.
    xdp: Option<Arc<GuestTier>>,
    /// Counters.
    pub counters: ControlCounters,
}

impl Fanout {
    /// A fanout to these workers, whose tables all started as `initial` (fixed).
    pub fn new(
        workers: Vec<Sender<TableUpdate>>,
        statuses: Vec<StatusSlot>,
        compiler: Compiler,
        vni: Vni,
        initial: MappingTable,
    ) -> Self {
        Fanout {
            workers,
            statuses,
            compiler,
            vni,
            shadow: Mutex::new(initial),
            xdp: None,
            counters: ControlCounters::default(),
        }
    }

    /// Mirror every change into the XDP tier's map too (a no-op under `afxdp`).
    pub fn with_xdp(mut self, tier: Arc<GuestTier>) -> Self {
        self.xdp = Some(tier);
        self
    }

    /// Mirror `table` (the one every worker now has) into the XDP map as a whole.
    pub fn mirror_table(&self, table: &MappingTable) {
        let Some(result) = self.xdp.as_ref().and_then(|x| x.replace_all(table)) else {
            return;
        };
        match result {
            Ok(sync) => {
                self.counters
                    .xdp_no_room
                    .fetch_add(sync.no_room as u64, Ordering::Relaxed);
                if sync.no_room > 0 {
                    tracing::warn!(
                        no_room = sync.no_room,
                        "the XDP tier's map is full (dataplane.fast_path_capacity): the workers forward the rest"
                    );
                }
                tracing::info!(
                    generation = sync.generation,
                    written = sync.written,
                    removed = sync.removed,
                    "XDP mapping map replaced"
                );
            }
            Err(e) => self.xdp_error("replacing the XDP mapping map", &e),
        }
    }

    fn xdp_error(&self, what: &str, e: &xvpc_xdp::XdpError) {
        self.counters.xdp_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "{what} failed");
    }

    /// Build a full worker table ([`MappingTable::fixed`]) from `mappings` (invalid ones
    /// skipped, counted and logged).
    pub fn build_table(&self, epoch: u64, mappings: &[Mapping]) -> MappingTable {
        let mut table = MappingTable::fixed(epoch, mappings.len());
        for mapping in mappings {
            if let Some(entry) = self.compile(mapping) {
                table.upsert(mapping.key(), entry);
            }
        }
        table
    }

    fn compile(&self, mapping: &Mapping) -> Option<xvpc_core::table::CompiledEntry> {
        if mapping.vni != self.vni {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(vni = %mapping.vni, ip = %mapping.overlay_ip, "mapping rejected: not our guest's VNI {}", self.vni);
            return None;
        }
        match self.compiler.compile(mapping) {
            Ok(entry) => Some(entry),
            Err(e) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "mapping rejected");
                None
            }
        }
    }

    fn send_all(&self, update: impl Fn() -> TableUpdate) {
        for worker in &self.workers {
            // A worker that has exited is shutting down with the daemon.
            let _ = worker.send(update());
        }
    }

    /// Send each worker its own copy of `table`.
    fn send_table(&self, table: &MappingTable) {
        for worker in &self.workers {
            let _ = worker.send(TableUpdate::Replace(Box::new(table.clone())));
        }
    }

    fn shadow(&self) -> std::sync::MutexGuard<'_, MappingTable> {
        // A session thread that panicked mid-update left a table that is still whole.
        self.shadow.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swap in a full sync.
    pub fn replace(&self, epoch: u64, mappings: &[Mapping]) {
        let table = self.build_table(epoch, mappings);
        tracing::info!(
            epoch,
            mappings = table.mapped_len(),
            "full sync sent to the workers"
        );
        let mut shadow = self.shadow();
        self.send_table(&table);
        self.mirror_table(&table);
        *shadow = table;
        self.counters.full_syncs.fetch_add(1, Ordering::Relaxed);
        self.counters.epoch.store(epoch, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.counters
            .last_full_sync_unix
            .store(now, Ordering::Relaxed);
    }

    /// Insert or replace one mapping. A mapping beyond the live capacity of the workers'
    /// fixed tables comes to them in a table twice as big, built here, which they swap in
    /// (as after a full sync, their negative and pending entries start afresh): they never
    /// grow a table themselves.
    pub fn upsert(&self, mapping: &Mapping) {
        let Some(entry) = self.compile(mapping) else {
            return;
        };
        let key = mapping.key();
        let mut shadow = self.shadow();
        shadow.upsert(key, entry);
        if let Some(Err(e)) = self.xdp.as_ref().and_then(|x| x.upsert(mapping)) {
            self.xdp_error("mirroring an upsert into the XDP map", &e);
        }
        let capacity = shadow.live_capacity().unwrap_or(usize::MAX);
        if shadow.mapped_len() > capacity {
            let mut bigger = MappingTable::fixed(shadow.epoch(), 2 * shadow.mapped_len());
            for (key, entry) in shadow.mappings() {
                bigger.upsert(key, *entry);
            }
            tracing::info!(
                mappings = bigger.mapped_len(),
                capacity = bigger.live_capacity(),
                "worker tables full: sending bigger ones"
            );
            self.send_table(&bigger);
            *shadow = bigger;
        } else {
            self.send_all(|| TableUpdate::Upsert(key, entry));
        }
        self.counters.upserts.fetch_add(1, Ordering::Relaxed);
    }

    /// Remove one mapping.
    pub fn delete(&self, key: MappingKey) {
        let mut shadow = self.shadow();
        shadow.delete(&key);
        // XDP first: from here on it hands the key to the workers, who apply the delete next.
        if let Some(Err(e)) = self.xdp.as_ref().and_then(|x| x.delete(&key)) {
            self.xdp_error("removing a mapping from the XDP map", &e);
        }
        self.send_all(|| TableUpdate::Delete(key));
        self.counters.deletes.fetch_add(1, Ordering::Relaxed);
    }

    /// The live mappings every worker's table holds (static and from the agent), and the
    /// epoch of the last full sync: what a process taking this one over starts with.
    pub fn live_mappings(&self) -> (u64, Vec<Mapping>) {
        let shadow = self.shadow();
        (shadow.epoch(), shadow.to_mappings())
    }

    /// Remember that a key does not exist.
    pub fn not_found(&self, key: MappingKey, ttl_ms: u32) {
        self.send_all(|| TableUpdate::NotFound { key, ttl_ms });
        self.counters.not_found.fetch_add(1, Ordering::Relaxed);
    }

    /// The report sent to the agent (and shown by `xvpc stats`).
    pub fn report(&self) -> StatsReport {
        let c = &self.counters;
        let mut worker_entries = Vec::with_capacity(self.statuses.len());
        let mut negative = 0;
        for slot in &self.statuses {
            if let Ok(status) = slot.lock() {
                worker_entries.push(status.mapped);
                negative += status.entries.saturating_sub(status.mapped);
            }
        }
        StatsReport {
            epoch: c.epoch.load(Ordering::Relaxed),
            // Every worker converges to the same set; the first one stands for all.
            mappings: worker_entries.first().copied().unwrap_or(0),
            worker_entries,
            negative_entries: negative,
            full_syncs: c.full_syncs.load(Ordering::Relaxed),
            upserts: c.upserts.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            misses: c.misses_sent.load(Ordering::Relaxed),
            misses_rate_limited: c.misses_unsent.load(Ordering::Relaxed),
            not_found: c.not_found.load(Ordering::Relaxed),
            invalid_skipped: c.rejected.load(Ordering::Relaxed),
            ..StatsReport::default()
        }
    }
}

/// The current agent session's id and writing half.
type Writer = Arc<Mutex<Option<(u64, BufWriter<UnixStream>)>>>;

/// Bind the control socket (replacing a stale socket file) and serve agents until `stop`.
pub fn spawn(
    path: &Path,
    fanout: Arc<Fanout>,
    misses: Receiver<MappingKey>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, ControlServerError> {
    let listener = bind(path)?;
    let writer: Writer = Arc::new(Mutex::new(None));
    let mut threads = Vec::new();
    {
        let (writer, fanout, stop) = (writer.clone(), fanout.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("xvpc-misses".into())
                .spawn(move || forward_misses(misses, writer, fanout, stop))
                .map_err(|source| ControlServerError::Bind {
                    path: path.to_path_buf(),
                    source,
                })?,
        );
    }
    let instance: u64 = rand::random();
    threads.push(
        std::thread::Builder::new()
            .name("xvpc-control".into())
            .spawn(move || accept_loop(listener, fanout, writer, stop, instance))
            .map_err(|source| ControlServerError::Bind {
                path: path.to_path_buf(),
                source,
            })?,
    );
    Ok(threads)
}

/// Bind a Unix socket at `path`, removing a stale socket file left by a crash.
pub fn bind(path: &Path) -> Result<UnixListener, ControlServerError> {
    let err = |source| ControlServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process is listening there (is another xvpc running?)",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

fn accept_loop(
    listener: UnixListener,
    fanout: Arc<Fanout>,
    writer: Writer,
    stop: Arc<AtomicBool>,
    instance: u64,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (fanout, writer) = (fanout.clone(), writer.clone());
                let spawned = std::thread::Builder::new()
                    .name("xvpc-agent-session".into())
                    .spawn(move || {
                        if let Err(e) = session(stream, &fanout, &writer, instance) {
                            tracing::warn!(error = %e, "mapping agent session ended");
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a thread for the agent session");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on the control socket failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn session(
    stream: UnixStream,
    fanout: &Fanout,
    writer: &Writer,
    instance: u64,
) -> Result<(), ControlError> {
    stream.set_nonblocking(false)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream_for_hello = stream.try_clone()?;
    let peer = xvpc_control::handshake(
        &mut ReadWrite(&mut reader, &mut stream_for_hello),
        Role::Dataplane,
        instance,
    )?;
    tracing::info!(agent_instance = peer, "mapping agent connected");
    let id = fanout.counters.sessions.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut w) = writer.lock() {
        // A new agent replaces the old session: the old reader ends when its peer is gone.
        *w = Some((id, BufWriter::new(stream.try_clone()?)));
        fanout
            .counters
            .agent_connected
            .store(true, Ordering::Relaxed);
    }
    let result = serve(&mut reader, fanout, writer);
    if let Ok(mut w) = writer.lock() {
        if matches!(*w, Some((current, _)) if current == id) {
            *w = None;
            fanout
                .counters
                .agent_connected
                .store(false, Ordering::Relaxed);
        }
    }
    tracing::info!(
        agent_instance = peer,
        "mapping agent disconnected; keeping current tables"
    );
    match result {
        Err(ControlError::Closed) => Ok(()),
        other => other,
    }
}

fn serve(
    reader: &mut BufReader<UnixStream>,
    fanout: &Fanout,
    writer: &Writer,
) -> Result<(), ControlError> {
    let mut sync = SyncAssembler::new();
    // One frame buffer for the whole session: no allocation per update.
    let mut frame = Vec::new();
    loop {
        match read_message_with(reader, &mut frame)? {
            Message::SyncBegin { epoch } => sync.begin(epoch),
            Message::SyncChunk { mappings } => sync.chunk(mappings)?,
            Message::SyncEnd { epoch, count } => {
                let mappings = sync.end(epoch, count)?;
                fanout.replace(epoch, &mappings);
            }
            Message::Upsert(mapping) => fanout.upsert(&mapping),
            Message::Delete(key) => fanout.delete(key),
            Message::NotFound { key, ttl_ms } => fanout.not_found(key, ttl_ms),
            Message::StatsRequest => send(writer, &Message::Stats(fanout.report()))?,
            Message::Stats(_) => {}
            Message::Error { reason } => return Err(ControlError::Peer(reason)),
            other => {
                let reason = format!("unexpected {} from the agent", other.name());
                // Best effort: we are closing anyway.
                let _ = send(
                    writer,
                    &Message::Error {
                        reason: reason.clone(),
                    },
                );
                return Err(ControlError::Peer(reason));
            }
        }
    }
}

fn send(writer: &Writer, message: &Message) -> Result<(), ControlError> {
    let mut guard = writer.lock().map_err(|_| ControlError::Closed)?;
    let Some((_, w)) = guard.as_mut() else {
        return Err(ControlError::Closed);
    };
    write_message(w, message)?;
    w.flush()?;
    Ok(())
}

fn forward_misses(
    misses: Receiver<MappingKey>,
    writer: Writer,
    fanout: Arc<Fanout>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(key) = misses.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        match send(&writer, &Message::Miss { key }) {
            Ok(()) => fanout.counters.misses_sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => fanout
                .counters
                .misses_unsent
                .fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Joins a reader and a writer into one `Read + Write` for the handshake.
struct ReadWrite<'a, R, W>(&'a mut R, &'a mut W);

impl<R: std::io::Read, W> std::io::Read for ReadWrite<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R, W: Write> Write for ReadWrite<'_, R, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.1.flush()
    }
}

#[cfg(test)]
mod tests {
    use xvpc_benches::{mapping, Setup};
    use xvpc_core::table::MIN_FIXED_CAPACITY;

    use super::*;

    #[test]
    fn upserts_past_the_workers_capacity_send_a_bigger_table_not_an_upsert() {
        let env = Setup::new();
        let (tx, rx) = crossbeam_channel::unbounded();
        let initial = MappingTable::fixed(3, 0);
        assert_eq!(initial.live_capacity(), Some(MIN_FIXED_CAPACITY));
        let fanout = Fanout::new(
            vec![tx],
            Vec::new(),
            Compiler::new(env.fabric.clone()),
            env.guest.vni,
            initial,
        );
        let mut worker = MappingTable::fixed(3, 0);
        let (mut upserts, mut replaced) = (0, 0);
        for i in 0..=MIN_FIXED_CAPACITY {
            fanout.upsert(&mapping(i, false));
            for update in rx.try_iter() {
                match &update {
                    TableUpdate::Upsert(..) => upserts += 1,
                    TableUpdate::Replace(_) => replaced += 1,
                    other => panic!("unexpected {other:?}"),
                }
                // What a worker does, and the worker's table never has to grow.
                if let Some(old) = worker.apply(update, 0) {
                    drop(old);
                }
                assert_eq!(worker.refused(), 0);
            }
        }
        assert_eq!((upserts, replaced), (MIN_FIXED_CAPACITY, 1));
        assert_eq!(worker.mapped_len(), MIN_FIXED_CAPACITY + 1);
        assert_eq!(worker.epoch(), 3);
        assert!(worker.live_capacity() >= Some(2 * (MIN_FIXED_CAPACITY + 1)));
        // Deletes reach the copy too: the next upsert fits again.
        fanout.delete(mapping(0, false).key());
        fanout.upsert(&mapping(0, false));
        let kinds: Vec<_> = rx
            .try_iter()
            .map(|u| matches!(u, TableUpdate::Upsert(..)))
            .collect();
        assert_eq!(kinds, [false, true], "a delete, then an upsert");
    }
}
