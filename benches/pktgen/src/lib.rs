//! xvpc-pktgen as a library: frame templates, the benchmark XDP programs' loaders, the latency
//! histogram, argument validation and the `RESULT` lines (printed and parsed in one place). The
//! binary in `main.rs` is the command-line front end; the integration tests drive the programs
//! through this API.
#![forbid(unsafe_code)]

pub mod afxdp;
pub mod args;
pub mod bpf;
pub mod frame;
pub mod hist;
pub mod pace;
pub mod result;
