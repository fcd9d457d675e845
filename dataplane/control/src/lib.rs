//! Control channel between the mapping agent and the dataplane: versioned, framed messages.
//!
//! Every frame is a big-endian `u32` payload length followed by the payload, a
//! [`Message`] encoded with [`postcard`]. The dataplane listens on a Unix socket, the
//! agent connects; both first send [`Message::Hello`] and close the connection with
//! [`Message::Error`] if the versions differ. See `docs/CONTROL-PROTOCOL.md`.
//!
//! The functions here do blocking I/O over any [`Read`]/[`Write`]: the dataplane's control
//! thread is a plain thread, and the agent drives the socket from its own threads.
#![forbid(unsafe_code)]

pub mod logging;
pub mod metrics;

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use xvpc_model::{Mapping, MappingKey};

pub mod config;

/// The protocol version carried in [`Message::Hello`]. Bump it on any change to the encoding
/// of [`Message`] other than appending new variants at the end.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest payload accepted or sent (1 MiB). A full [`MAX_CHUNK`] of IPv6 mappings
/// encodes to about 180 KiB, so this leaves room without letting a peer make us allocate
/// gigabytes from one length prefix.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// The most mappings one [`Message::SyncChunk`] may carry.
pub const MAX_CHUNK: usize = 4096;

/// Bytes of the length prefix in front of every payload.
pub const LEN_PREFIX: usize = 4;

/// Errors of the control channel.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The peer closed the connection cleanly, at a frame boundary.
    #[error("control connection closed by the peer")]
    Closed,
    /// The connection ended in the middle of a frame.
    #[error("control connection ended inside a frame: got {got} of {expected} bytes")]
    Truncated {
        /// Bytes the frame (prefix or payload) needed.
        expected: usize,
        /// Bytes that arrived before the end.
        got: usize,
    },
    /// A frame announced (or would need) a payload larger than [`MAX_FRAME_LEN`].
    #[error("control frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The announced or encoded payload length.
        len: usize,
        /// The limit, [`MAX_FRAME_LEN`].
        max: usize,
    },
    /// A payload that is not a valid message of this protocol version.
    #[error("malformed control message: {0}")]
    Decode(#[source] postcard::Error),
    /// A payload that decoded but left bytes unused: a framing or version bug on the peer.
    #[error("control message has {0} trailing bytes")]
    TrailingBytes(usize),
    /// A message could not be encoded.
    #[error("cannot encode control message: {0}")]
    Encode(#[source] postcard::Error),
    /// The socket failed.
    #[error("control socket I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer speaks another protocol version.
    #[error("control protocol version mismatch: we speak {ours}, the peer speaks {theirs}")]
    VersionMismatch {
        /// [`PROTOCOL_VERSION`].
        ours: u16,
        /// The version in the peer's Hello.
        theirs: u16,
    },
    /// The peer announced the same role as ours (two agents or two dataplanes).
    #[error("control peer has role {got:?}, expected {expected:?}")]
    WrongRole {
        /// The role the peer must have.
        expected: Role,
        /// The role it announced.
        got: Role,
    },
    /// A message that is not allowed at this point of the conversation.
    #[error("unexpected control message {got} (expected {expected})")]
    Unexpected {
        /// What the protocol allows here.
        expected: &'static str,
        /// The name of the message that arrived.
        got: &'static str,
    },
    /// The peer sent [`Message::Error`].
    #[error("control peer reported an error: {0}")]
    Peer(String),
    /// A full sync whose [`Message::SyncEnd`] does not match what was received.
    #[error("full sync {epoch} inconsistent: {detail}")]
    BadSync {
        /// The epoch of the sync in progress.
        epoch: u64,
        /// What did not match.
        detail: String,
    },
}

/// Which end of the channel a process is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Role {
    /// The mapping agent (connects).
    Agent,
    /// The dataplane daemon (listens).
    Dataplane,
}

/// Counters either side reports in [`Message::Stats`]. Fields that do not apply to the
/// sender are 0 (or empty).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct StatsReport {
    /// Epoch of the last completed full sync.
    pub epoch: u64,
    /// Mappings in the sender's authoritative table (agent: its state; dataplane: the
    /// control-path table).
    pub mappings: u64,
    /// Dataplane: mapping-table entries of each worker, in worker order. Agent: empty.
    pub worker_entries: Vec<u64>,
    /// Dataplane: negative (not-found) entries installed.
    pub negative_entries: u64,
    /// Full syncs completed (agent: sent; dataplane: swapped in).
    pub full_syncs: u64,
    /// Upserts sent (agent) or applied (dataplane), syncs excluded.
    pub upserts: u64,
    /// Deletes sent (agent) or applied (dataplane).
    pub deletes: u64,
    /// Misses sent (dataplane) or received (agent).
    pub misses: u64,
    /// Agent: misses dropped by the rate limiter. Dataplane: misses not sent (queue full).
    pub misses_rate_limited: u64,
    /// Agent: misses dropped because the same key was already being looked up.
    pub misses_deduplicated: u64,
    /// Agent: lookups made in the mapping source to answer misses.
    pub source_lookups: u64,
    /// NotFound answers sent (agent) or received (dataplane).
    pub not_found: u64,
    /// Agent: 1 while the mapping source (etcd) is reachable, 0 while it is not.
    pub source_up: u64,
    /// Agent: failed connections to, or lost streams from, the mapping source.
    pub source_errors: u64,
    /// Agent: full reloads of the source (start, compaction, reconnection without history).
    pub source_reloads: u64,
    /// Invalid entries skipped (agent: garbage in the source; dataplane: rejected mappings).
    pub invalid_skipped: u64,
}

/// One control message. Variant order is part of the encoding: only append.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Message {
    /// First message each way. Versions must match or the connection is closed with an
    /// Error message. Must stay variant 0 with this layout in every version so that any
    /// two versions can tell each other apart.
    Hello {
        /// The sender's [`PROTOCOL_VERSION`].
        version: u16,
        /// The sender's role.
        role: Role,
        /// Random per process start: the peer sees restarts.
        instance: u64,
    },
    /// A full sync follows; the receiver builds a new table off the fast path.
    SyncBegin {
        /// Increases with every full sync the sender starts.
        epoch: u64,
    },
    /// Mappings of the sync in progress (at most [`MAX_CHUNK`]).
    SyncChunk {
        /// The mappings of this chunk.
        mappings: Vec<Mapping>,
    },
    /// The sync is complete: swap the new table in at once.
    SyncEnd {
        /// The epoch of the matching SyncBegin.
        epoch: u64,
        /// Total mappings sent in the chunks (checked by the receiver).
        count: u64,
    },
    /// Add or replace one mapping.
    Upsert(Mapping),
    /// Remove one mapping.
    Delete(MappingKey),
    /// Dataplane → agent: a worker missed this key.
    Miss {
        /// The key that was not in the table.
        key: MappingKey,
    },
    /// Agent → dataplane: the key does not exist; install a negative entry for `ttl_ms`.
    NotFound {
        /// The key that does not exist.
        key: MappingKey,
        /// How long the dataplane should remember that, in milliseconds.
        ttl_ms: u32,
    },
    /// Either way: ask for the peer's counters.
    StatsRequest,
    /// Either way: counters, the answer to StatsRequest.
    Stats(StatsReport),
    /// A fatal protocol error, sent before closing.
    Error {
        /// Human-readable cause.
        reason: String,
    },
}

impl Message {
    /// The variant name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::SyncBegin { .. } => "SyncBegin",
            Message::SyncChunk { .. } => "SyncChunk",
            Message::SyncEnd { .. } => "SyncEnd",
            Message::Upsert(_) => "Upsert",
            Message::Delete(_) => "Delete",
            Message::Miss { .. } => "Miss",
            Message::NotFound { .. } => "NotFound",
            Message::StatsRequest => "StatsRequest",
            Message::Stats(_) => "Stats",
            Message::Error { .. } => "Error",
        }
    }

    /// Our Hello for `role`.
    pub fn hello(role: Role, instance: u64) -> Message {
        Message::Hello {
            version: PROTOCOL_VERSION,
            role,
            instance,
        }
    }
}

/// Appends one frame (length prefix and payload) for `m` to `buf`. On error `buf` is left
/// as it was.
pub fn encode_into(buf: &mut Vec<u8>, m: &Message) -> Result<(), ControlError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; LEN_PREFIX]);
    if let Err(e) = postcard::to_extend(m, Appender(buf)) {
        buf.truncate(start);
        return Err(ControlError::Encode(e));
    }
    let len = buf.len() - start - LEN_PREFIX;
    if len > MAX_FRAME_LEN {
        buf.truncate(start);
        return Err(ControlError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    // `len <= MAX_FRAME_LEN < u32::MAX`, checked just above.
    let prefix = (len as u32).to_be_bytes();
    buf[start..start + LEN_PREFIX].copy_from_slice(&prefix);
    Ok(())
}

/// Lets postcard append to a borrowed buffer, so a failed encode can be rolled back.
struct Appender<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Appender<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Writes one framed message and flushes.
pub fn write_message<W: Write>(w: &mut W, m: &Message) -> Result<(), ControlError> {
    let mut buf = Vec::new();
    encode_into(&mut buf, m)?;
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one framed message. A clean end of stream before a frame gives
/// [`ControlError::Closed`]; an end inside a frame [`ControlError::Truncated`].
pub fn read_message<R: Read>(r: &mut R) -> Result<Message, ControlError> {
    let mut buf = Vec::new();
    read_message_with(r, &mut buf)
}

/// [`read_message`] reusing `buf` for the payload (no allocation per frame once it has
/// grown to the largest frame seen).
pub fn read_message_with<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<Message, ControlError> {
    let mut prefix = [0u8; LEN_PREFIX];
    match fill(r, &mut prefix)? {
        0 => return Err(ControlError::Closed),
        LEN_PREFIX => {}
        got => {
            return Err(ControlError::Truncated {
                expected: LEN_PREFIX,
                got,
            })
        }
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(ControlError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    buf.clear();
    buf.resize(len, 0);
    let got = fill(r, buf)?;
    if got != len {
        return Err(ControlError::Truncated { expected: len, got });
    }
    decode(buf)
}

/// Decodes one payload (without its length prefix).
pub fn decode(payload: &[u8]) -> Result<Message, ControlError> {
    let (m, rest) = postcard::take_from_bytes::<Message>(payload).map_err(ControlError::Decode)?;
    if !rest.is_empty() {
        return Err(ControlError::TrailingBytes(rest.len()));
    }
    Ok(m)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, ControlError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ControlError::Io(e)),
        }
    }
    Ok(got)
}

/// Checks the peer's first message: a Hello of our version from the other role.
/// Returns the peer's instance id. On a mismatch the caller should send
/// [`Message::Error`] with the error's text and close.
pub fn check_hello(m: &Message, expected_peer: Role) -> Result<u64, ControlError> {
    match *m {
        Message::Hello {
            version,
            role,
            instance,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(ControlError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                });
            }
            if role != expected_peer {
                return Err(ControlError::WrongRole {
                    expected: expected_peer,
                    got: role,
                });
            }
            Ok(instance)
        }
        Message::Error { ref reason } => Err(ControlError::Peer(reason.clone())),
        ref other => Err(ControlError::Unexpected {
            expected: "Hello",
            got: other.name(),
        }),
    }
}

/// Sends our Hello, reads and checks the peer's. On a bad peer Hello, sends
/// [`Message::Error`] (best effort) and returns the error. Returns the peer's instance.
pub fn handshake<S: Read + Write>(
    s: &mut S,
    ours: Role,
    instance: u64,
) -> Result<u64, ControlError> {
    write_message(s, &Message::hello(ours, instance))?;
    let peer = read_message(s)?;
    let expected = match ours {
        Role::Agent => Role::Dataplane,
        Role::Dataplane => Role::Agent,
    };
    match check_hello(&peer, expected) {
        Ok(i) => Ok(i),
        Err(e) => {
            if !matches!(e, ControlError::Peer(_)) {
                // Best effort: the peer may already be gone, and the real error is `e`.
                let _ = write_message(
                    s,
                    &Message::Error {
                        reason: e.to_string(),
                    },
                );
            }
            Err(e)
        }
    }
}

/// The messages of one full sync of `mappings`: SyncBegin, chunks of at most
/// [`MAX_CHUNK`], SyncEnd.
pub fn sync_messages(epoch: u64, mappings: &[Mapping]) -> impl Iterator<Item = Message> + '_ {
    std::iter::once(Message::SyncBegin { epoch })
        .chain(mappings.chunks(MAX_CHUNK).map(|c| Message::SyncChunk {
            mappings: c.to_vec(),
        }))
        .chain(std::iter::once(Message::SyncEnd {
            epoch,
            count: mappings.len() as u64,
        }))
}

/// Receiver-side bookkeeping of a full sync: checks the order of SyncBegin / SyncChunk /
/// SyncEnd, the epoch and the count, and collects the mappings.
#[derive(Debug, Default)]
pub struct SyncAssembler {
    in_progress: Option<(u64, Vec<Mapping>)>,
}

impl SyncAssembler {
    /// A receiver with no sync in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Is a sync in progress?
    pub fn in_progress(&self) -> bool {
        self.in_progress.is_some()
    }

    /// SyncBegin: starts a new sync, dropping any unfinished one (an agent that restarted
    /// mid-sync starts over).
    pub fn begin(&mut self, epoch: u64) {
        self.in_progress = Some((epoch, Vec::new()));
    }

    /// SyncChunk: adds mappings to the sync in progress.
    pub fn chunk(&mut self, mappings: Vec<Mapping>) -> Result<(), ControlError> {
        match self.in_progress.as_mut() {
            Some((epoch, acc)) => {
                if mappings.len() > MAX_CHUNK {
                    let epoch = *epoch;
                    self.in_progress = None;
                    return Err(ControlError::BadSync {
                        epoch,
                        detail: format!("chunk of {} mappings exceeds {MAX_CHUNK}", mappings.len()),
                    });
                }
                acc.extend(mappings);
                Ok(())
            }
            None => Err(ControlError::Unexpected {
                expected: "SyncBegin before SyncChunk",
                got: "SyncChunk",
            }),
        }
    }

    /// SyncEnd: returns the complete table if epoch and count match.
    pub fn end(&mut self, epoch: u64, count: u64) -> Result<Vec<Mapping>, ControlError> {
        let Some((begun, acc)) = self.in_progress.take() else {
            return Err(ControlError::Unexpected {
                expected: "SyncBegin before SyncEnd",
                got: "SyncEnd",
            });
        };
        if begun != epoch {
            return Err(ControlError::BadSync {
                epoch: begun,
                detail: format!("SyncEnd carries epoch {epoch}"),
            });
        }
        if acc.len() as u64 != count {
            return Err(ControlError::BadSync {
                epoch,
                detail: format!("SyncEnd announces {count} mappings, {} received", acc.len()),
            });
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests;
