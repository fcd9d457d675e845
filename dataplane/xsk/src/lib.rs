//! AF_XDP sockets, UMEM and rings: the only crate of xvpc with unsafe code.

pub mod testrun;
