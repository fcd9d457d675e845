//! The etcd source: load the prefix at one revision, then watch from the next revision so
//! nothing between load and watch is lost; resume from the last seen revision after an
//! outage; reload and diff if that revision has been compacted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, WatchOptions};
use xvpc_model::{Mapping, MappingKey};

use crate::entry::{dir_prefix, etcd_key, parse_etcd_entry, parse_etcd_key, UnderlayFamily};
use crate::store::{bump, Store};

/// Keys fetched per page when loading the prefix (keeps each response far below the gRPC
/// message size limit).
const PAGE: i64 = 5000;
/// Backoff of reconnections: first and largest delay.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// HTTP/2 keepalive ping interval: above etcd's default `--grpc-keepalive-min-time` (5 s).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Errors talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The client library failed (connection, RPC, stream).
    #[error("etcd: {0}")]
    Client(#[from] etcd_client::Error),
    /// A request took longer than the dial timeout.
    #[error("etcd request timed out after {0:?}")]
    Timeout(Duration),
    /// A response without the header that carries the revision.
    #[error("etcd response without header")]
    NoHeader,
}

/// The etcd settings the source needs.
#[derive(Clone)]
pub struct EtcdSettings {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// Key prefix.
    pub prefix: String,
    /// Connection and request timeout.
    pub dial_timeout: Duration,
    /// Allowed underlay family.
    pub family: UnderlayFamily,
}

/// Test hook: called (on a blocking thread) after each full load with its revision,
/// before the watch starts.
pub type AfterLoadHook = Arc<dyn Fn(i64) + Send + Sync>;

/// Connects a client.
pub async fn connect(s: &EtcdSettings) -> Result<Client, EtcdError> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(s.dial_timeout)
        // etcd refuses (GOAWAY "too_many_pings") clients that ping more often than its
        // --grpc-keepalive-min-time (5 s by default), which broke the watch every few seconds.
        .with_keep_alive(KEEPALIVE_INTERVAL, s.dial_timeout)
        .with_keep_alive_while_idle(true);
    let c = tokio::time::timeout(s.dial_timeout, Client::connect(&s.endpoints, Some(opts)))
        .await
        .map_err(|_| EtcdError::Timeout(s.dial_timeout))??;
    Ok(c)
}

/// The end of the key range of everything starting with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    // The prefix ends in '/', so the last byte can always be incremented.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Loads every valid mapping under the prefix at one revision; returns them and the
/// revision. Garbage entries are logged and counted.
pub async fn load(
    client: &mut Client,
    s: &EtcdSettings,
    store: &Store,
) -> Result<(HashMap<MappingKey, Mapping>, i64), EtcdError> {
    let dir = dir_prefix(&s.prefix);
    let end = range_end(&dir);
    let mut map = HashMap::new();
    let mut from: Vec<u8> = dir.clone().into_bytes();
    let mut revision = 0i64;
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision != 0 {
            opts = opts.with_revision(revision);
        }
        let resp = tokio::time::timeout(s.dial_timeout, client.get(from.clone(), Some(opts)))
            .await
            .map_err(|_| EtcdError::Timeout(s.dial_timeout))??;
        if revision == 0 {
            revision = resp.header().ok_or(EtcdError::NoHeader)?.revision();
        }
        for kv in resp.kvs() {
            match parse_etcd_entry(&s.prefix, kv.key(), kv.value(), s.family) {
                Ok(m) => {
                    map.insert(m.key(), m);
                }
                Err(e) => skip(store, kv.key(), &e),
            }
        }
        match resp.kvs().last() {
            Some(last) if resp.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    Ok((map, revision))
}

fn skip(store: &Store, key: &[u8], e: &dyn std::fmt::Display) {
    bump(&store.counters.invalid_skipped);
    tracing::warn!(key = %String::from_utf8_lossy(key), error = %e, "skipping invalid etcd entry");
}

/// Looks one key up (to answer a miss): the mapping if valid, and the revision.
pub async fn lookup(
    client: &mut Client,
    s: &EtcdSettings,
    key: &MappingKey,
) -> Result<(Option<Mapping>, i64), EtcdError> {
    let resp = tokio::time::timeout(s.dial_timeout, client.get(etcd_key(&s.prefix, key), None))
        .await
        .map_err(|_| EtcdError::Timeout(s.dial_timeout))??;
    let rev = resp.header().ok_or(EtcdError::NoHeader)?.revision();
    let found = resp
        .kvs()
        .first()
        .and_then(|kv| parse_etcd_entry(&s.prefix, kv.key(), kv.value(), s.family).ok());
    Ok((found, rev))
}

/// Tracks whether etcd is up, logging once per change.
struct Health<'a> {
    store: &'a Store,
    up: Option<bool>,
}

impl Health<'_> {
    fn up(&mut self) {
        if self.up != Some(true) {
            tracing::info!("etcd reachable, watching");
        }
        self.up = Some(true);
        self.store.counters.source_up.store(1, Ordering::Relaxed);
    }
    fn down(&mut self, e: &dyn std::fmt::Display) {
        bump(&self.store.counters.source_errors);
        if self.up != Some(false) {
            tracing::warn!(error = %e, "etcd unreachable, keeping the last state and retrying");
        }
        self.up = Some(false);
        self.store.counters.source_up.store(0, Ordering::Relaxed);
    }
}

async fn sleep_backoff(backoff: &mut Duration, shutdown: &AtomicBool) {
    let until = tokio::time::Instant::now() + *backoff;
    while tokio::time::Instant::now() < until && !shutdown.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// Keeps `store` equal to the etcd prefix until `shutdown`.
pub async fn run(
    s: EtcdSettings,
    store: Arc<Store>,
    shutdown: Arc<AtomicBool>,
    after_load: Option<AfterLoadHook>,
) {
    let mut health = Health {
        store: &store,
        up: None,
    };
    let mut need_load = true;
    let mut backoff = BACKOFF_MIN;
    let dir = dir_prefix(&s.prefix);
    while !shutdown.load(Ordering::Relaxed) {
        let mut client = match connect(&s).await {
            Ok(c) => c,
            Err(e) => {
                health.down(&e);
                sleep_backoff(&mut backoff, &shutdown).await;
                continue;
            }
        };
        if need_load {
            match load(&mut client, &s, &store).await {
                Ok((map, rev)) => {
                    let n = map.len();
                    store.replace_all(map, rev);
                    bump(&store.counters.source_reloads);
                    need_load = false;
                    tracing::info!(mappings = n, revision = rev, "etcd prefix loaded");
                    if let Some(hook) = after_load.clone() {
                        // A panicking hook is a test failure reported by the test itself.
                        let _ = tokio::task::spawn_blocking(move || hook(rev)).await;
                    }
                }
                Err(e) => {
                    health.down(&e);
                    sleep_backoff(&mut backoff, &shutdown).await;
                    continue;
                }
            }
        }
        let start = store.revision() + 1;
        let opts = WatchOptions::new().with_prefix().with_start_revision(start);
        let (_watcher, mut stream) = match client.watch(dir.clone(), Some(opts)).await {
            Ok(w) => w,
            Err(e) => {
                health.down(&e);
                sleep_backoff(&mut backoff, &shutdown).await;
                continue;
            }
        };
        health.up();
        backoff = BACKOFF_MIN;
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if shutdown.load(Ordering::Relaxed) { return; }
                    continue;
                }
            };
            match msg {
                Ok(Some(resp)) => {
                    if resp.compact_revision() > 0 || resp.canceled() {
                        tracing::warn!(
                            from = start,
                            compacted_to = resp.compact_revision(),
                            reason = resp.cancel_reason(),
                            "etcd watch cancelled (history compacted): full reload"
                        );
                        need_load = true;
                        break;
                    }
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let rev = kv.mod_revision();
                        match ev.event_type() {
                            EventType::Put => {
                                match parse_etcd_entry(&s.prefix, kv.key(), kv.value(), s.family) {
                                    Ok(m) => store.upsert(m, rev),
                                    Err(e) => {
                                        skip(&store, kv.key(), &e);
                                        // The key now holds garbage: it no longer maps
                                        // anything (as a reload would conclude too).
                                        match parse_etcd_key(&s.prefix, kv.key()) {
                                            Ok(k) => store.delete(k, rev),
                                            Err(_) => store.advance(rev),
                                        }
                                    }
                                }
                            }
                            EventType::Delete => match parse_etcd_key(&s.prefix, kv.key()) {
                                Ok(k) => store.delete(k, rev),
                                Err(_) => store.advance(rev),
                            },
                        }
                    }
                }
                Ok(None) => {
                    health.down(&"watch stream ended");
                    break;
                }
                Err(e) => {
                    health.down(&e);
                    break;
                }
            }
        }
        sleep_backoff(&mut backoff, &shutdown).await;
    }
}
