//! The connection to the dataplane: connect (with backoff), Hello, full sync, then deltas
//! and miss answers; reconnect and full-sync again whenever the connection drops.

use std::io::{BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::Sender as MissSender;
use xvpc_control::{handshake, read_message_with, write_message, ControlError, Message, Role};
use xvpc_model::MappingKey;

use crate::store::{bump, Store};

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Shared with the agent handle so it can stop the link.
#[derive(Default)]
pub struct LinkControl {
    /// Set to stop.
    pub shutdown: AtomicBool,
    /// The current connection, to shut it down from outside.
    pub stream: Mutex<Option<UnixStream>>,
}

impl LinkControl {
    /// Stops the link: no reconnection, the current connection is shut down.
    pub fn stop(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(s) = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // Already closed is fine.
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn sleep_backoff(backoff: &mut Duration, ctl: &LinkControl) {
    let mut left = *backoff;
    while !left.is_zero() && !ctl.shutdown.load(Ordering::Relaxed) {
        let step = left.min(Duration::from_millis(20));
        std::thread::sleep(step);
        left -= step;
    }
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// Runs the link until `ctl.shutdown`.
pub fn run(
    path: PathBuf,
    instance: u64,
    store: Arc<Store>,
    misses: MissSender<MappingKey>,
    ctl: Arc<LinkControl>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut logged_waiting = false;
    while !ctl.shutdown.load(Ordering::Relaxed) {
        if !store.is_ready() {
            // Never full-sync before the first load: it would empty the dataplane's table.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let mut stream = match UnixStream::connect(&path) {
            Ok(s) => s,
            Err(e) => {
                if !logged_waiting {
                    tracing::info!(socket = %path.display(), error = %e, "waiting for the dataplane control socket");
                    logged_waiting = true;
                }
                sleep_backoff(&mut backoff, &ctl);
                continue;
            }
        };
        logged_waiting = false;
        backoff = BACKOFF_MIN;
        match serve(&mut stream, instance, &store, &misses, &ctl) {
            Ok(()) => {}
            Err(ControlError::Closed) => tracing::warn!("dataplane closed the control connection"),
            Err(e) => tracing::warn!(error = %e, "control connection to the dataplane failed"),
        }
        *ctl.stream.lock().unwrap_or_else(|p| p.into_inner()) = None;
        sleep_backoff(&mut backoff, &ctl);
    }
}

fn serve(
    stream: &mut UnixStream,
    instance: u64,
    store: &Arc<Store>,
    misses: &MissSender<MappingKey>,
    ctl: &LinkControl,
) -> Result<(), ControlError> {
    *ctl.stream.lock().unwrap_or_else(|p| p.into_inner()) = Some(stream.try_clone()?);
    if ctl.shutdown.load(Ordering::Relaxed) {
        return Ok(());
    }
    let peer = handshake(stream, Role::Agent, instance)?;
    tracing::info!(
        dataplane_instance = format_args!("{peer:016x}"),
        "connected to the dataplane, full sync"
    );

    let (tx, rx) = mpsc::channel::<Message>();
    let conn = store.attach(tx.clone());
    let writer_stream = stream.try_clone()?;
    let done = Arc::new(AtomicBool::new(false));
    let writer_done = done.clone();
    let writer = std::thread::Builder::new()
        .name("agent-ctl-tx".into())
        .spawn(move || {
            let mut w = BufWriter::with_capacity(256 * 1024, writer_stream);
            let res: Result<(), ControlError> = (|| {
                loop {
                    let m = match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) if !writer_done.load(Ordering::Relaxed) => {
                            continue
                        }
                        Err(_) => return Ok(()),
                    };
                    write_message(&mut NoFlush(&mut w), &m)?;
                    // Batch while more is queued; flush when the queue is empty.
                    while let Ok(m) = rx.try_recv() {
                        write_message(&mut NoFlush(&mut w), &m)?;
                    }
                    w.flush()?;
                }
            })();
            if let Err(e) = &res {
                tracing::warn!(error = %e, "writing to the dataplane failed");
                // Wake the reader so the connection is torn down.
                let _ = w.get_ref().shutdown(std::net::Shutdown::Both);
            }
        })?;

    let mut buf = Vec::new();
    let res = loop {
        match read_message_with(stream, &mut buf) {
            Ok(Message::Miss { key }) => {
                bump(&store.counters.misses);
                if misses.try_send(key).is_err() {
                    bump(&store.counters.misses_rate_limited);
                }
            }
            Ok(Message::StatsRequest) => {
                let _ = tx.send(Message::Stats(store.report()));
            }
            Ok(Message::Stats(s)) => tracing::debug!(?s, "dataplane stats"),
            Ok(Message::Error { reason }) => break Err(ControlError::Peer(reason)),
            Ok(other) => {
                let e = ControlError::Unexpected {
                    expected: "Miss, StatsRequest or Stats",
                    got: other.name(),
                };
                let _ = tx.send(Message::Error {
                    reason: e.to_string(),
                });
                break Err(e);
            }
            Err(e) => break Err(e),
        }
    };
    store.detach(conn);
    drop(tx);
    done.store(true, Ordering::Relaxed);
    // The writer drains what is queued (e.g. our Error) and exits.
    let _ = writer.join();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    res
}

/// `write_message` flushes; inside a batch we let the BufWriter decide.
struct NoFlush<'a, W: Write>(&'a mut W);

impl<W: Write> Write for NoFlush<'_, W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
