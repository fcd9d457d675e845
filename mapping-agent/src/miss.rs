//! Answering misses: deduplication of keys in flight, a token bucket in front of the
//! mapping service, then an answer from the table or a lookup in the source.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc::Receiver;
use xvpc_model::MappingKey;

use crate::etcd_source::{self, EtcdSettings};
use crate::store::{bump, Store};

/// A token bucket: `rate` tokens per second, at most `burst` saved.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        TokenBucket {
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Where misses for keys absent from the table are looked up.
pub enum Lookup {
    /// The table is the whole source (file): absent means not found.
    Table,
    /// Ask etcd (the table may lag behind the watch).
    Etcd(EtcdSettings),
}

/// Answers misses from `rx` until the channel closes.
pub async fn run(
    mut rx: Receiver<MappingKey>,
    store: Arc<Store>,
    lookup: Lookup,
    mut bucket: TokenBucket,
) {
    let in_flight: Arc<Mutex<HashSet<MappingKey>>> = Arc::default();
    let mut client = None;
    while let Some(key) = rx.recv().await {
        let c = &store.counters;
        if in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            bump(&c.misses_deduplicated);
            continue;
        }
        if !bucket.take(Instant::now()) {
            bump(&c.misses_rate_limited);
            continue;
        }
        let settings = match &lookup {
            Lookup::Etcd(s) if store.get(&key).is_none() => s.clone(),
            // Present in the table (which the watch keeps current), or a file source.
            _ => {
                store.answer_miss(key, None);
                continue;
            }
        };
        if client.is_none() {
            match etcd_source::connect(&settings).await {
                Ok(cl) => client = Some(cl),
                Err(e) => {
                    tracing::debug!(error = %e, "miss lookup: etcd unreachable, answering from the table");
                    store.answer_miss(key, None);
                    continue;
                }
            }
        }
        let Some(mut cl) = client.clone() else {
            continue;
        };
        in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        bump(&c.source_lookups);
        let store = store.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            match etcd_source::lookup(&mut cl, &settings, &key).await {
                Ok(found) => store.answer_miss(key, Some(found)),
                Err(e) => {
                    // etcd down: the table is the last known full state.
                    tracing::debug!(error = %e, "miss lookup failed, answering from the table");
                    store.answer_miss(key, None);
                }
            }
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_limits_and_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5);
        b.last = t0;
        let took = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(took, 5, "burst");
        assert!(!b.take(t0));
        assert!(
            b.take(t0 + Duration::from_millis(100)),
            "one token after 100 ms at 10/s"
        );
        assert!(!b.take(t0 + Duration::from_millis(100)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            (0..100).filter(|_| b.take(later)).count(),
            5,
            "never more than the burst"
        );
    }
}
