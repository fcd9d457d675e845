//! The xvpc mapping agent: keeps the dataplane's mapping tables equal to the mapping
//! service (a watched file or an etcd prefix), over the xvpc control channel.
//!
//! Data flows one way: source → [`store::Store`] → control socket → dataplane. Misses flow
//! back as requests and are answered asynchronously. See `docs/MAPPING-AGENT.md`.
#![forbid(unsafe_code)]

pub mod config;
pub mod entry;
pub mod etcd_source;
pub mod file_source;
pub mod link;
pub mod metrics;
pub mod miss;
pub mod store;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use xvpc_control::StatsReport;
use xvpc_model::Mapping;

use crate::config::{Config, SourceConfig};
use crate::etcd_source::{AfterLoadHook, EtcdSettings};
use crate::link::LinkControl;
use crate::miss::{Lookup, TokenBucket};
use crate::store::Store;

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The management namespace could not be opened or entered.
    #[error("cannot enter network namespace {name:?} (/run/netns/{name}): {message}")]
    Netns {
        /// The namespace name.
        name: String,
        /// Why.
        message: String,
    },
    /// A thread or the async runtime could not be created.
    #[error("cannot start agent threads: {0}")]
    Spawn(#[from] std::io::Error),
    /// The metrics listener could not start.
    #[error(transparent)]
    Metrics(#[from] xvpc_control::metrics::MetricsError),
}

/// Extra behaviour for tests.
#[derive(Default, Clone)]
pub struct Hooks {
    /// Called after each full etcd load with its revision, before the watch starts.
    pub after_etcd_load: Option<AfterLoadHook>,
}

/// Moves the calling thread into network namespace `/run/netns/<name>`. Threads created
/// afterwards inherit it, so call it before starting anything.
pub fn enter_netns(name: &str) -> Result<(), AgentError> {
    let err = |message: String| AgentError::Netns {
        name: name.to_string(),
        message,
    };
    let f = std::fs::File::open(format!("/run/netns/{name}")).map_err(|e| err(e.to_string()))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| err(e.to_string()))
}

/// A random id per process start (the dataplane sees agent restarts by it).
pub fn new_instance_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A running agent. Dropping it stops it.
pub struct Agent {
    store: Arc<Store>,
    link: Arc<LinkControl>,
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    instance: u64,
}

impl Agent {
    /// Starts the agent (does not enter `management_netns`; see [`enter_netns`]).
    pub fn start(cfg: Config, hooks: Hooks) -> Result<Agent, AgentError> {
        let store = Arc::new(Store::new(cfg.negative_ttl_ms));
        let shutdown = Arc::new(AtomicBool::new(false));
        let link = Arc::new(LinkControl::default());
        let instance = new_instance_id();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("agent-rt")
            .enable_all()
            .build()?;
        let mut threads = Vec::new();
        if let Some(m) = &cfg.metrics {
            let listener = m.bind()?;
            tracing::info!(listen = %m.listen, netns = ?m.netns, "serving Prometheus metrics");
            let (store, shutdown) = (store.clone(), shutdown.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("agent-metrics".into())
                    .spawn(move || {
                        xvpc_control::metrics::serve(listener, || metrics::render(&store), shutdown)
                    })?,
            );
        }
        let lookup = match &cfg.source {
            SourceConfig::File {
                path,
                poll_interval,
            } => {
                let (path, interval, family) = (path.clone(), *poll_interval, cfg.underlay_family);
                let (store, shutdown) = (store.clone(), shutdown.clone());
                threads.push(
                    std::thread::Builder::new()
                        .name("agent-file".into())
                        .spawn(move || file_source::run(path, interval, family, store, shutdown))?,
                );
                Lookup::Table
            }
            SourceConfig::Etcd {
                endpoints,
                prefix,
                dial_timeout,
            } => {
                let s = EtcdSettings {
                    endpoints: endpoints.clone(),
                    prefix: prefix.clone(),
                    dial_timeout: *dial_timeout,
                    family: cfg.underlay_family,
                };
                runtime.spawn(etcd_source::run(
                    s.clone(),
                    store.clone(),
                    shutdown.clone(),
                    hooks.after_etcd_load,
                ));
                Lookup::Etcd(s)
            }
        };
        let (miss_tx, miss_rx) = tokio::sync::mpsc::channel(4096);
        runtime.spawn(miss::run(
            miss_rx,
            store.clone(),
            lookup,
            TokenBucket::new(cfg.miss_rate_per_sec, cfg.miss_burst),
        ));
        {
            let (path, store, link) = (cfg.control_socket.clone(), store.clone(), link.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("agent-link".into())
                    .spawn(move || link::run(path, instance, store, miss_tx, link))?,
            );
        }
        tracing::info!(instance = format_args!("{instance:016x}"), socket = %cfg.control_socket.display(), "agent started");
        Ok(Agent {
            store,
            link,
            shutdown,
            threads,
            runtime: Some(runtime),
            instance,
        })
    }

    /// The agent's counters.
    pub fn stats(&self) -> StatsReport {
        self.store.report()
    }

    /// The agent's current table.
    pub fn mappings(&self) -> Vec<Mapping> {
        self.store.snapshot()
    }

    /// This process start's instance id (sent in Hello).
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Stops every thread and task.
    pub fn stop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        self.link.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}
