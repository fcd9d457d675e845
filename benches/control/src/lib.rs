//! Benchmarks of the xvpc control path (issue 4): full sync of many mappings, convergence
//! from an etcd put to the first packet forwarded with it, and the update rate sustained
//! while forwarding.
//!
//! The library holds the reusable, unprivileged parts (mapping generation, the in-process
//! `Fanout`-equivalent measurement, a sync-timestamping control proxy, a control client, an
//! etcd HTTP client, frame capture parsing, statistics); `src/main.rs` and `src/scenario/`
//! drive the privileged scenarios in namespaces built with `xvpc-testbed`.
#![forbid(unsafe_code)]

pub mod capture;
pub mod client;
pub mod etcd;
pub mod inproc;
pub mod mappings;
pub mod procfs;
pub mod proxy;
pub mod stats;
pub mod summary;
