//! Upgrade without loss: a new `xvpc run --takeover` connects to the running daemon's
//! takeover socket; the old daemon stops its workers at a batch boundary, releases its
//! control, stats and metrics endpoints, and sends each queue pair's state and descriptors
//! (UMEM memfd and the two AF_XDP sockets, SCM_RIGHTS) and the live mappings; the new one
//! adopts them, starts its workers and confirms; only then does the old one close its
//! copies and exit. The kernel keeps receiving into the RX rings meanwhile.
//!
//! Wire format: the new process opens with [`REQUEST`] (anything else connecting, such as a
//! liveness probe, is ignored); then messages of an 8-byte little-endian length, carried with the message's
//! descriptors, then that many bytes of JSON. First a [`Header`] (no descriptors), then one
//! [`QueueHandover`] per queue with its three descriptors (UMEM, guest, fabric). The new
//! process answers one byte, [`READY`], once its workers run.

use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use xvpc_core::model::Mapping;
use xvpc_xsk::handover::{recv_fds, send_fds};
use xvpc_xsk::{QueuePair, QueueState, XskError};

/// What the new process says first; the old one stops nothing for any other peer.
const REQUEST: &[u8; 16] = b"XVPC-TAKEOVER-1\n";
/// How long the old process waits for [`REQUEST`] from a peer that connected.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);
/// The new process's answer once its workers run.
const READY: u8 = b'R';
/// Largest JSON message accepted (a header with about a million mappings).
const MAX_MESSAGE: u64 = 256 << 20;
/// How long either side waits for the other at each step.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a takeover failed.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    /// No daemon listens on the takeover socket.
    #[error("cannot connect to the running daemon's takeover socket {path}: {source}")]
    Connect {
        /// The socket path (`dataplane.takeover_socket`).
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The socket failed mid-way.
    #[error("takeover socket: {0}")]
    Io(#[from] std::io::Error),
    /// A message was not what the protocol says.
    #[error("takeover protocol: {0}")]
    Protocol(&'static str),
    /// A message did not parse.
    #[error("takeover message: {0}")]
    Json(#[from] serde_json::Error),
    /// A queue pair could not be exported or adopted.
    #[error("queue {queue}: {source}")]
    Queue {
        /// Queue id.
        queue: u32,
        /// Why.
        source: XskError,
    },
}

/// What comes first: the queue count and the table's mappings.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    /// Queue pairs that follow.
    pub queues: u32,
    /// Epoch of the last full sync.
    pub epoch: u64,
    /// The live mappings (static ones and the agent's).
    pub mappings: Vec<Mapping>,
}

/// One queue pair's state; its descriptors travel with it.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueHandover {
    /// Index of the worker that ran it (its position in `dataplane.queues`).
    pub index: usize,
    /// What [`QueuePair::adopt`] needs.
    pub state: QueueState,
}

fn send<T: Serialize>(
    s: &UnixStream,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), TakeoverError> {
    let json = serde_json::to_vec(msg)?;
    let len = (json.len() as u64).to_le_bytes();
    if send_fds(s, &len, fds)? != len.len() {
        return Err(TakeoverError::Protocol("length prefix sent in part"));
    }
    (&*s).write_all(&json)?;
    Ok(())
}

fn recv<T: DeserializeOwned>(s: &UnixStream) -> Result<(T, Vec<OwnedFd>), TakeoverError> {
    let mut len = [0u8; 8];
    let (n, fds) = recv_fds(s, &mut len)?;
    if n != len.len() {
        return Err(TakeoverError::Protocol("length prefix received in part"));
    }
    let len = u64::from_le_bytes(len);
    if len > MAX_MESSAGE {
        return Err(TakeoverError::Protocol("message too long"));
    }
    let mut json = vec![0u8; len as usize];
    (&*s).read_exact(&mut json)?;
    Ok((serde_json::from_slice(&json)?, fds))
}

/// Old side: whether the peer that connected asks for a takeover (within
/// [`REQUEST_TIMEOUT`]).
pub fn is_request(s: &UnixStream) -> bool {
    let mut got = [0u8; REQUEST.len()];
    s.set_nonblocking(false).is_ok()
        && s.set_read_timeout(Some(REQUEST_TIMEOUT)).is_ok()
        && (&*s).read_exact(&mut got).is_ok()
        && &got == REQUEST
}

/// Old side: send the header and every quiesced queue pair, then wait for the new process
/// to run. The caller drops the pairs (closing its copies) after this returns.
pub fn hand_over(
    s: &UnixStream,
    pairs: &[(usize, u32, QueuePair)],
    epoch: u64,
    mappings: Vec<Mapping>,
) -> Result<(), TakeoverError> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(STEP_TIMEOUT))?;
    s.set_write_timeout(Some(STEP_TIMEOUT))?;
    let header = Header {
        queues: pairs.len() as u32,
        epoch,
        mappings,
    };
    send(s, &header, &[])?;
    for (index, queue, qp) in pairs {
        let (state, fds) = qp.export().map_err(|source| TakeoverError::Queue {
            queue: *queue,
            source,
        })?;
        send(
            s,
            &QueueHandover {
                index: *index,
                state,
            },
            &fds.to_array(),
        )?;
    }
    let mut ready = [0u8; 1];
    (&*s).read_exact(&mut ready)?;
    if ready[0] != READY {
        return Err(TakeoverError::Protocol("the new process did not confirm"));
    }
    Ok(())
}

/// What the new process received.
pub struct Received {
    /// The control connection: answer [`confirm`] on it once the workers run.
    pub stream: UnixStream,
    /// Epoch of the old process's last full sync.
    pub epoch: u64,
    /// Its live mappings.
    pub mappings: Vec<Mapping>,
    /// Its queue pairs, adopted, by worker index.
    pub pairs: Vec<(usize, QueuePair)>,
}

/// New side: connect, receive and adopt everything. The old process has stopped its
/// workers and released its endpoints by the time the first message arrives.
pub fn take_over(path: &Path) -> Result<Received, TakeoverError> {
    let stream = UnixStream::connect(path).map_err(|source| TakeoverError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    (&stream).write_all(REQUEST)?;
    let (header, fds): (Header, _) = recv(&stream)?;
    if !fds.is_empty() {
        return Err(TakeoverError::Protocol("descriptors with the header"));
    }
    let mut pairs = Vec::with_capacity(header.queues as usize);
    for _ in 0..header.queues {
        let (q, fds): (QueueHandover, _) = recv(&stream)?;
        let [umem, guest, fabric]: [OwnedFd; 3] = fds
            .try_into()
            .map_err(|_| TakeoverError::Protocol("a queue pair comes with three descriptors"))?;
        let qp = QueuePair::adopt(&q.state, umem, guest, fabric).map_err(|source| {
            TakeoverError::Queue {
                queue: q.state.queue,
                source,
            }
        })?;
        pairs.push((q.index, qp));
    }
    Ok(Received {
        stream,
        epoch: header.epoch,
        mappings: header.mappings,
        pairs,
    })
}

/// New side: tell the old process that the workers run (it exits).
pub fn confirm(stream: &UnixStream) -> Result<(), TakeoverError> {
    (&*stream).write_all(&[READY])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a peer that asks stops the running daemon's workers.
    #[test]
    fn only_a_takeover_request_is_a_takeover() {
        let (a, b) = UnixStream::pair().expect("socket pair");
        (&a).write_all(REQUEST).expect("write");
        assert!(is_request(&b));
        let (a, b) = UnixStream::pair().expect("socket pair");
        (&a).write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
        assert!(!is_request(&b), "another protocol");
        let (_a, b) = UnixStream::pair().expect("socket pair");
        let t = std::time::Instant::now();
        assert!(!is_request(&b), "a silent peer (a liveness probe)");
        assert!(t.elapsed() < Duration::from_secs(2));
        let (a, b) = UnixStream::pair().expect("socket pair");
        drop(a);
        assert!(!is_request(&b), "a peer that hung up");
    }

    /// The framing: a message and its descriptors arrive together; a header never carries
    /// descriptors.
    #[test]
    fn messages_carry_their_descriptors() {
        let (a, b) = UnixStream::pair().expect("socket pair");
        let header = Header {
            queues: 2,
            epoch: 7,
            mappings: Vec::new(),
        };
        send(&a, &header, &[]).expect("send header");
        let (got, fds): (Header, _) = recv(&b).expect("receive header");
        assert_eq!((got.queues, got.epoch, fds.len()), (2, 7, 0));
        use std::os::fd::AsFd;
        send(&a, &header, &[a.as_fd(), b.as_fd(), a.as_fd()]).expect("send with fds");
        let (_, fds): (Header, _) = recv(&b).expect("receive with fds");
        assert_eq!(fds.len(), 3);
        // A length beyond the limit is refused before anything is allocated.
        send_fds(&a, &(MAX_MESSAGE + 1).to_le_bytes(), &[]).expect("send");
        assert!(matches!(
            recv::<Header>(&b),
            Err(TakeoverError::Protocol("message too long"))
        ));
    }
}
