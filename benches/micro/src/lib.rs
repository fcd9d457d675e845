//! Criterion micro-benchmarks of the xvpc pipelines and tables
#![forbid(unsafe_code)]
