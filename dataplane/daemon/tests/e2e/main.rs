//! The dataplane's privileged end-to-end suite: every test builds its own namespaces (guest,
//! dataplane, fabric router, remote hosts with Linux kernel VXLAN devices), runs a real
//! `xvpc run` in it and checks what arrives where. Root is required; without it every test
//! fails with a clear message. See docs/TESTING.md.
//!
//! Each test has its own namespace tag (≤ 4 characters) so they run in parallel.

mod common;
mod config;

mod ingress;
mod interop;
mod isolation;
mod lifecycle;
mod metrics;
mod mtu;

mod neighbours;
mod spoofing;
mod traffic;
mod xdp_tier;
