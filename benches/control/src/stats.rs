//! Reads a running daemon's `xvpc stats` snapshot (JSON on its stats socket) and picks out
//! the figures the benchmarks watch.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Errors reading or interpreting a stats snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The socket could not be reached or read.
    #[error("cannot read stats from {path}: {source}")]
    Io {
        /// The stats socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The answer is not JSON.
    #[error("stats from {path} are not JSON: {source}")]
    Json {
        /// The stats socket.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A field the benchmark needs is missing or not a number.
    #[error("stats snapshot has no numeric field {0}")]
    Field(String),
}

/// One snapshot.
#[derive(Clone, Debug)]
pub struct Snapshot(pub Value);

/// Fetch a snapshot from the daemon's stats socket (5 s timeout).
pub fn fetch(path: &Path) -> Result<Snapshot, StatsError> {
    let io = |source| StatsError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    let mut body = String::new();
    stream.read_to_string(&mut body).map_err(io)?;
    serde_json::from_str(&body)
        .map(Snapshot)
        .map_err(|source| StatsError::Json {
            path: path.display().to_string(),
            source,
        })
}

impl Snapshot {
    fn number(&self, pointer: &str) -> Result<u64, StatsError> {
        self.0
            .pointer(pointer)
            .and_then(Value::as_u64)
            .ok_or_else(|| StatsError::Field(pointer.to_string()))
    }

    /// Live mappings of each worker, in worker order.
    pub fn worker_mapped(&self) -> Result<Vec<u64>, StatsError> {
        let workers = self
            .0
            .pointer("/workers")
            .and_then(Value::as_array)
            .ok_or_else(|| StatsError::Field("/workers".into()))?;
        workers
            .iter()
            .map(|w| {
                w.get("mapped")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| StatsError::Field("/workers/*/mapped".into()))
            })
            .collect()
    }

    /// `control.full_syncs`.
    pub fn full_syncs(&self) -> Result<u64, StatsError> {
        self.number("/control/full_syncs")
    }

    /// `control.upserts` (applied outside syncs).
    pub fn upserts(&self) -> Result<u64, StatsError> {
        self.number("/control/upserts")
    }

    /// `control.rejected`.
    pub fn rejected(&self) -> Result<u64, StatsError> {
        self.number("/control/rejected")
    }

    /// A total pipeline counter (`total.<name>`), e.g. `egress_packets`.
    pub fn total(&self, name: &str) -> Result<u64, StatsError> {
        self.number(&format!("/total/{name}"))
    }

    /// Total drops of one reason (`total.drops.<reason>`).
    pub fn drops(&self, reason: &str) -> Result<u64, StatsError> {
        self.number(&format!("/total/drops/{reason}"))
    }

    /// All drops (`total.drops_total`).
    pub fn drops_total(&self) -> Result<u64, StatsError> {
        self.number("/total/drops_total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_fields() {
        let s = Snapshot(serde_json::json!({
            "total": {"egress_packets": 7, "drops": {"miss": 2}, "drops_total": 3},
            "workers": [{"mapped": 10}, {"mapped": 11}],
            "control": {"full_syncs": 1, "upserts": 5, "rejected": 0},
        }));
        assert_eq!(s.worker_mapped().expect("present"), vec![10, 11]);
        assert_eq!(s.full_syncs().expect("present"), 1);
        assert_eq!(s.upserts().expect("present"), 5);
        assert_eq!(s.total("egress_packets").expect("present"), 7);
        assert_eq!(s.drops("miss").expect("present"), 2);
        assert_eq!(s.drops_total().expect("present"), 3);
        assert!(matches!(s.total("nope"), Err(StatsError::Field(_))));
        let bad = Snapshot(serde_json::json!({"workers": [{"mapped": "x"}]}));
        assert!(bad.worker_mapped().is_err());
    }

    #[test]
    fn missing_socket_is_an_error() {
        assert!(matches!(
            fetch(Path::new("/nonexistent/xvpc-stats.sock")),
            Err(StatsError::Io { .. })
        ));
    }
}
