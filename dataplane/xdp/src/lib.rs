//! Loads and attaches the xvpc XDP steering programs (C, built with clang -target bpf)
#![forbid(unsafe_code)]
