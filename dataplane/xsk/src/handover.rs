//! Passing descriptors between processes over a Unix socket (`SCM_RIGHTS`), for the
//! takeover of a [`crate::QueuePair`] by a new process (see [`crate::QueuePair::export`]).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::sys;

/// Most descriptors one message carries.
pub const MAX_FDS: usize = sys::MAX_FDS;

/// Sends `data` (not empty) with `fds` attached (at most [`MAX_FDS`]); returns the bytes
/// sent. The receiver gets its own duplicates: the caller may close its descriptors once
/// this returns.
pub fn send_fds(sock: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    sys::send_fds(sock.as_fd(), data, fds)
}

/// Receives into `buf`; returns the bytes received and the descriptors that came with them
/// (owned, close-on-exec). More than [`MAX_FDS`] descriptors in one message is an error
/// (EMSGSIZE).
pub fn recv_fds(sock: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    sys::recv_fds(sock.as_fd(), buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn a_descriptor_sent_is_the_same_file_on_the_other_side() {
        let (a, b) = UnixStream::pair().expect("socket pair");
        let mut file =
            std::fs::File::from(sys::memfd(c"xvpc-handover-test", 4096).expect("memory file"));
        file.write_all(b"frame").expect("write");
        assert_eq!(
            send_fds(&a, b"hi", &[file.as_fd(), a.as_fd()]).expect("send"),
            2
        );
        drop(file);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_fds(&b, &mut buf).expect("receive");
        assert_eq!((&buf[..n], fds.len()), (&b"hi"[..], 2));
        let mut got = std::fs::File::from(fds.into_iter().next().expect("first fd"));
        got.rewind().expect("seek");
        let mut s = String::new();
        got.read_to_string(&mut s).expect("read");
        assert_eq!(&s[..5], "frame");
        // Without descriptors: plain data.
        assert_eq!(send_fds(&a, b"x", &[]).expect("send"), 1);
        let (n, fds) = recv_fds(&b, &mut buf).expect("receive");
        assert_eq!((n, fds.len()), (1, 0));
        let many = [a.as_fd(); MAX_FDS + 1];
        assert!(send_fds(&a, b"x", &many).is_err());
    }
}
