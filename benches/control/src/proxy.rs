//! A transparent control-socket proxy that timestamps a full sync as it passes.
//!
//! The agent connects to the proxy's socket instead of the daemon's; every frame is
//! forwarded unchanged, and the proxy notes when `SyncBegin` arrived from the agent and when
//! `SyncEnd` was handed on to the daemon. That gives "from the agent's SyncBegin" without
//! changing the agent or trusting its logs. Only small frames are decoded (the variant tag
//! is the first payload byte), so the proxy adds a copy, not a parse, per chunk.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xvpc_control::{decode, Message, LEN_PREFIX, MAX_FRAME_LEN};

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The proxy's socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start a proxy thread: {0}")]
    Thread(std::io::Error),
}

/// What the proxy saw of the last full sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncTimes {
    /// When the agent's `SyncBegin` arrived.
    pub begin: Option<Instant>,
    /// When the matching `SyncEnd` was written to the daemon.
    pub end_forwarded: Option<Instant>,
    /// Epoch of that sync.
    pub epoch: u64,
    /// Mappings count announced in `SyncEnd`.
    pub count: u64,
    /// `SyncChunk` frames forwarded.
    pub chunks: u64,
    /// Payload bytes forwarded from the agent (prefixes included).
    pub bytes: u64,
    /// Connections accepted from agents.
    pub sessions: u64,
}

/// A running proxy; dropping it stops accepting and closes open connections.
pub struct SyncProxy {
    stop: Arc<AtomicBool>,
    times: Arc<Mutex<SyncTimes>>,
    accept: Option<JoinHandle<()>>,
    path: PathBuf,
}

type Streams = Arc<Mutex<Vec<UnixStream>>>;

impl SyncProxy {
    /// Listen on `listen` and forward each agent connection to `upstream`.
    pub fn start(listen: &Path, upstream: &Path) -> Result<SyncProxy, ProxyError> {
        let bind_err = |source| ProxyError::Bind {
            path: listen.to_path_buf(),
            source,
        };
        let _ = std::fs::remove_file(listen);
        let listener = UnixListener::bind(listen).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let times = Arc::new(Mutex::new(SyncTimes::default()));
        let upstream = upstream.to_path_buf();
        let accept = {
            let (stop, times) = (stop.clone(), times.clone());
            std::thread::Builder::new()
                .name("ctlbench-proxy".into())
                .spawn(move || accept_loop(listener, upstream, stop, times))
                .map_err(ProxyError::Thread)?
        };
        Ok(SyncProxy {
            stop,
            times,
            accept: Some(accept),
            path: listen.to_path_buf(),
        })
    }

    /// What has been seen so far.
    pub fn times(&self) -> SyncTimes {
        self.times.lock().map(|t| *t).unwrap_or_default()
    }
}

impl Drop for SyncProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(
    listener: UnixListener,
    upstream: PathBuf,
    stop: Arc<AtomicBool>,
    times: Arc<Mutex<SyncTimes>>,
) {
    let streams: Streams = Arc::default();
    let mut threads = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((agent, _)) => {
                if let Some(pair) = connect_pair(agent, &upstream, &times, &streams) {
                    threads.extend(pair);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    // Unblock the copy threads, then wait for them.
    if let Ok(streams) = streams.lock() {
        for s in streams.iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

fn connect_pair(
    agent: UnixStream,
    upstream: &Path,
    times: &Arc<Mutex<SyncTimes>>,
    streams: &Streams,
) -> Option<[JoinHandle<()>; 2]> {
    agent.set_nonblocking(false).ok()?;
    // No daemon: drop the agent's connection; it retries.
    let daemon = UnixStream::connect(upstream).ok()?;
    if let Ok(mut t) = times.lock() {
        t.sessions += 1;
    }
    let (a2, d2) = (agent.try_clone().ok()?, daemon.try_clone().ok()?);
    if let Ok(mut s) = streams.lock() {
        s.push(agent.try_clone().ok()?);
        s.push(daemon.try_clone().ok()?);
    }
    let times = times.clone();
    let up = std::thread::Builder::new()
        .name("ctlbench-proxy-up".into())
        .spawn(move || {
            let _ = forward_frames(agent, daemon, &times);
        })
        .ok()?;
    let down = std::thread::Builder::new()
        .name("ctlbench-proxy-down".into())
        .spawn(move || {
            let (mut from, mut to) = (d2, a2);
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        })
        .ok()?;
    Some([up, down])
}

/// Copy frames from the agent to the daemon, timestamping the sync markers.
fn forward_frames(
    mut from: UnixStream,
    to: UnixStream,
    times: &Mutex<SyncTimes>,
) -> std::io::Result<()> {
    let mut to = std::io::BufWriter::with_capacity(1 << 20, to);
    let mut frame = vec![0u8; LEN_PREFIX + MAX_FRAME_LEN];
    loop {
        if from.read_exact(&mut frame[..LEN_PREFIX]).is_err() {
            break;
        }
        let mut prefix = [0u8; LEN_PREFIX];
        prefix.copy_from_slice(&frame[..LEN_PREFIX]);
        let len = u32::from_be_bytes(prefix) as usize;
        if len > MAX_FRAME_LEN {
            // Let the daemon see (and refuse) the bad prefix itself.
            to.write_all(&frame[..LEN_PREFIX])?;
            to.flush()?;
            break;
        }
        from.read_exact(&mut frame[LEN_PREFIX..LEN_PREFIX + len])?;
        let payload = &frame[LEN_PREFIX..LEN_PREFIX + len];
        let event = classify(payload);
        if let (Event::Begin(epoch), Ok(mut t)) = (&event, times.lock()) {
            *t = SyncTimes {
                begin: Some(Instant::now()),
                epoch: *epoch,
                sessions: t.sessions,
                ..SyncTimes::default()
            };
        }
        to.write_all(&frame[..LEN_PREFIX + len])?;
        let ends = matches!(event, Event::End { .. });
        // The agent batches; forward when it pauses or at a sync's end, never hold a frame.
        if ends || len < 64 {
            to.flush()?;
        }
        if let Ok(mut t) = times.lock() {
            t.bytes += (LEN_PREFIX + len) as u64;
            match event {
                Event::Chunk => t.chunks += 1,
                Event::End { epoch, count } if epoch == t.epoch => {
                    t.end_forwarded = Some(Instant::now());
                    t.count = count;
                }
                _ => {}
            }
        }
    }
    to.flush()?;
    let _ = to.get_ref().shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// What a frame is, as far as the timestamps care.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Begin(u64),
    Chunk,
    End { epoch: u64, count: u64 },
    Other,
}

/// Postcard encodes the variant index as a varint first: SyncBegin = 1, SyncChunk = 2,
/// SyncEnd = 3 (see `xvpc_control::Message`). Only short frames are decoded.
fn classify(payload: &[u8]) -> Event {
    match payload.first() {
        Some(2) => Event::Chunk,
        Some(1 | 3) if payload.len() <= 32 => match decode(payload) {
            Ok(Message::SyncBegin { epoch }) => Event::Begin(epoch),
            Ok(Message::SyncEnd { epoch, count }) => Event::End { epoch, count },
            _ => Event::Other,
        },
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvpc_control::{encode_into, read_message, sync_messages, write_message};

    fn payload(m: &Message) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_into(&mut buf, m).expect("encodable");
        buf.split_off(LEN_PREFIX)
    }

    #[test]
    fn classifies_sync_frames() {
        let mappings = crate::mappings::generate(100, 3).expect("within the plan");
        let kinds: Vec<Event> = sync_messages(7, &mappings)
            .map(|m| classify(&payload(&m)))
            .collect();
        assert_eq!(
            kinds,
            [
                Event::Begin(7),
                Event::Chunk,
                Event::End { epoch: 7, count: 3 }
            ]
        );
        assert_eq!(classify(&payload(&Message::StatsRequest)), Event::Other);
        assert_eq!(classify(&[]), Event::Other);
        assert_eq!(classify(&[1, 0xff, 0xff]), Event::Other);
    }

    #[test]
    fn forwards_frames_unchanged_and_timestamps_the_sync() {
        let dir = std::env::temp_dir().join(format!("ctlbench-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let upstream_path = dir.join("daemon.sock");
        let _ = std::fs::remove_file(&upstream_path);
        let upstream = UnixListener::bind(&upstream_path).expect("bind the fake daemon");
        let proxy = SyncProxy::start(&dir.join("proxy.sock"), &upstream_path).expect("proxy");
        let mut agent = UnixStream::connect(dir.join("proxy.sock")).expect("connect");
        let (mut daemon, _) = upstream.accept().expect("proxied connection");
        let mappings = crate::mappings::generate(100, 5000).expect("within the plan");
        let sent: Vec<Message> = sync_messages(3, &mappings).collect();
        for m in &sent {
            write_message(&mut agent, m).expect("write");
        }
        for m in &sent {
            assert_eq!(&read_message(&mut daemon).expect("forwarded"), m);
        }
        // And the other way.
        write_message(&mut daemon, &Message::StatsRequest).expect("write");
        assert_eq!(
            read_message(&mut agent).expect("back"),
            Message::StatsRequest
        );
        let t = proxy.times();
        let (begin, end) = (
            t.begin.expect("begin seen"),
            t.end_forwarded.expect("end seen"),
        );
        assert!(end >= begin);
        assert_eq!((t.epoch, t.count, t.chunks, t.sessions), (3, 5000, 2, 1));
        drop(agent);
        drop(proxy);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
