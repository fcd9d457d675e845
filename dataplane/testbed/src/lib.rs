//! Network-namespace topologies and process guards for xvpc's privileged tests and benchmarks
#![forbid(unsafe_code)]
