//! xvpc-core: the packet-processing logic of the xvpc dataplane, with no I/O.
//!
//! - [`wire`]: zero-copy views of every packet format the dataplane touches.
//! - [`model`]: VNIs, guests, gateways, mappings and the fabric (the `xvpc-model` crate,
//!   re-exported).
//! - [`table`]: the per-core mapping table of compiled mappings, one cache line per slot.
//! - [`egress`] / [`ingress`]: the two pipelines, one frame in, one verdict out.
//! - [`counters`]: per-core packet counters and drop reasons.
#![forbid(unsafe_code)]

pub mod counters;
pub mod egress;
pub mod frame;
pub mod ingress;
pub use xvpc_model as model;
pub mod pipeline;
pub mod table;
pub mod wire;
