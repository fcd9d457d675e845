//! The agent's state: the current mapping table, the revision of the source it reflects,
//! the connected dataplane's outbound queue, and the counters.
//!
//! Every change and every miss answer is queued to the dataplane while the table lock is
//! held, so the dataplane sees them in exactly the order they were applied here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};

use xvpc_control::{sync_messages, Message, StatsReport};
use xvpc_model::{Mapping, MappingKey};

/// The agent's counters (see [`StatsReport`] for their meaning).
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct Counters {
    pub full_syncs: AtomicU64,
    pub upserts: AtomicU64,
    pub deletes: AtomicU64,
    pub misses: AtomicU64,
    pub misses_rate_limited: AtomicU64,
    pub misses_deduplicated: AtomicU64,
    pub source_lookups: AtomicU64,
    pub not_found: AtomicU64,
    pub source_up: AtomicU64,
    pub source_errors: AtomicU64,
    pub source_reloads: AtomicU64,
    pub invalid_skipped: AtomicU64,
    /// Misses answered (a mapping or NotFound sent back).
    pub misses_answered: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Inner {
    map: HashMap<MappingKey, Mapping>,
    /// The source revision the table reflects (etcd revision; 0 for the file source).
    revision: i64,
    /// Full syncs started (one per dataplane connection).
    epoch: u64,
    /// The connected dataplane: connection id and its outbound queue.
    sink: Option<(u64, Sender<Message>)>,
    next_conn: u64,
    /// The source has been loaded once: until then a full sync would wipe the
    /// dataplane's table.
    ready: bool,
}

/// The shared state of the agent.
pub struct Store {
    inner: Mutex<Inner>,
    /// The counters.
    pub counters: Counters,
    negative_ttl_ms: u32,
}

impl Store {
    /// An empty table; misses for absent keys are answered with `negative_ttl_ms`.
    pub fn new(negative_ttl_ms: u32) -> Self {
        Store {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                revision: 0,
                epoch: 0,
                sink: None,
                next_conn: 0,
                ready: false,
            }),
            counters: Counters::default(),
            negative_ttl_ms,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every update is a single
        // insert/remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(inner: &Inner, m: Message) {
        if let Some((_, tx)) = &inner.sink {
            // A closed queue means the connection is going away; it will be detached and
            // the next connection gets a full sync, so nothing is lost.
            let _ = tx.send(m);
        }
    }

    fn upsert_locked(&self, inner: &mut Inner, m: Mapping) {
        if inner.map.get(&m.key()) != Some(&m) {
            inner.map.insert(m.key(), m);
            bump(&self.counters.upserts);
            Self::send(inner, Message::Upsert(m));
        }
    }

    fn delete_locked(&self, inner: &mut Inner, key: MappingKey) {
        if inner.map.remove(&key).is_some() {
            bump(&self.counters.deletes);
            Self::send(inner, Message::Delete(key));
        }
    }

    /// Adds or replaces a mapping seen at source revision `rev`; sends an Upsert if it
    /// changed anything.
    pub fn upsert(&self, m: Mapping, rev: i64) {
        let mut inner = self.lock();
        self.upsert_locked(&mut inner, m);
        inner.revision = inner.revision.max(rev);
    }

    /// Removes a mapping at source revision `rev`; sends a Delete if it existed.
    pub fn delete(&self, key: MappingKey, rev: i64) {
        let mut inner = self.lock();
        self.delete_locked(&mut inner, key);
        inner.revision = inner.revision.max(rev);
    }

    /// Only moves the revision (an event that changed nothing we keep, e.g. garbage).
    pub fn advance(&self, rev: i64) {
        let mut inner = self.lock();
        inner.revision = inner.revision.max(rev);
    }

    /// Replaces the whole table with `new` (a full load of the source at `rev`), sending
    /// the difference as Deletes and Upserts.
    pub fn replace_all(&self, new: HashMap<MappingKey, Mapping>, rev: i64) {
        let mut inner = self.lock();
        let gone: Vec<MappingKey> = inner
            .map
            .keys()
            .filter(|k| !new.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            self.delete_locked(&mut inner, k);
        }
        for m in new.into_values() {
            self.upsert_locked(&mut inner, m);
        }
        inner.revision = rev;
        inner.ready = true;
    }

    /// Has the source been loaded at least once?
    pub fn is_ready(&self) -> bool {
        self.lock().ready
    }

    /// Is a dataplane connected, and how many connections were made so far?
    pub fn dataplane_link(&self) -> (bool, u64) {
        let inner = self.lock();
        (inner.sink.is_some(), inner.next_conn)
    }

    /// The source revision the table reflects.
    pub fn revision(&self) -> i64 {
        self.lock().revision
    }

    /// One mapping.
    pub fn get(&self, key: &MappingKey) -> Option<Mapping> {
        self.lock().map.get(key).copied()
    }

    /// A copy of the table.
    pub fn snapshot(&self) -> Vec<Mapping> {
        self.lock().map.values().copied().collect()
    }

    /// Makes `tx` the dataplane's queue and queues a full sync of the current table on it
    /// (atomically, so later deltas follow the sync). Returns the connection id.
    pub fn attach(&self, tx: Sender<Message>) -> u64 {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.next_conn += 1;
        let conn = inner.next_conn;
        let all: Vec<Mapping> = inner.map.values().copied().collect();
        for m in sync_messages(inner.epoch, &all) {
            // Cannot fail while we hold `tx`'s receiver's owner alive; ignore if it did.
            let _ = tx.send(m);
        }
        bump(&self.counters.full_syncs);
        inner.sink = Some((conn, tx));
        conn
    }

    /// Forgets connection `conn` (if it is still the current one).
    pub fn detach(&self, conn: u64) {
        let mut inner = self.lock();
        if matches!(inner.sink, Some((c, _)) if c == conn) {
            inner.sink = None;
        }
    }

    /// Queues a message for the dataplane (e.g. a Stats reply).
    pub fn send_to_dataplane(&self, m: Message) {
        Self::send(&self.lock(), m);
    }

    /// Answers a miss. `fetched` is the result of a lookup in the source made at a
    /// revision; it is used only if it is newer than the table, which otherwise answers.
    pub fn answer_miss(&self, key: MappingKey, fetched: Option<(Option<Mapping>, i64)>) {
        let inner = self.lock();
        let answer = match fetched {
            Some((found, rev)) if rev > inner.revision => found,
            _ => inner.map.get(&key).copied(),
        };
        bump(&self.counters.misses_answered);
        match answer {
            Some(m) => Self::send(&inner, Message::Upsert(m)),
            None => {
                bump(&self.counters.not_found);
                Self::send(
                    &inner,
                    Message::NotFound {
                        key,
                        ttl_ms: self.negative_ttl_ms,
                    },
                );
            }
        }
    }

    /// The counters as a [`StatsReport`].
    pub fn report(&self) -> StatsReport {
        let (epoch, mappings) = {
            let inner = self.lock();
            (inner.epoch, inner.map.len() as u64)
        };
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsReport {
            epoch,
            mappings,
            worker_entries: Vec::new(),
            negative_entries: 0,
            full_syncs: l(&c.full_syncs),
            upserts: l(&c.upserts),
            deletes: l(&c.deletes),
            misses: l(&c.misses),
            misses_rate_limited: l(&c.misses_rate_limited),
            misses_deduplicated: l(&c.misses_deduplicated),
            source_lookups: l(&c.source_lookups),
            not_found: l(&c.not_found),
            source_up: l(&c.source_up),
            source_errors: l(&c.source_errors),
            source_reloads: l(&c.source_reloads),
            invalid_skipped: l(&c.invalid_skipped),
        }
    }
}
