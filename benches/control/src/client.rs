//! A control client of our own, speaking `xvpc_control` directly: the load generator of the
//! update-rate benchmark. It connects as an agent, never full-syncs (so the daemon keeps its
//! tables), and writes paced batches of upserts. Whatever the daemon sends back (misses,
//! stats) is read and discarded on a thread, so the daemon never blocks on us.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xvpc_control::{encode_into, handshake, ControlError, Message, Role};
use xvpc_core::model::Mapping;

/// Errors of the load client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or the handshake failed.
    #[error("control handshake with {path} failed: {source}")]
    Connect {
        /// The daemon's control socket.
        path: String,
        /// Why.
        source: ControlError,
    },
    /// Writing to the daemon failed.
    #[error("writing upserts to the daemon failed: {0}")]
    Write(#[from] ControlError),
    /// Nothing to send.
    #[error("the upsert pool is empty")]
    EmptyPool,
}

/// A connected load client.
pub struct LoadClient {
    stream: UnixStream,
    drain: Option<JoinHandle<()>>,
    buf: Vec<u8>,
    next: usize,
}

/// What a paced run achieved.
#[derive(Clone, Copy, Debug, Default)]
pub struct PacedRun {
    /// Upserts written.
    pub sent: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Ticks at which the writer was already late (the socket or the CPU held it back).
    pub late_ticks: u64,
}

impl PacedRun {
    /// Upserts per second achieved by the writer.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl LoadClient {
    /// Connect to the daemon's control socket and shake hands as an agent.
    pub fn connect(path: &Path) -> Result<LoadClient, ClientError> {
        let err = |source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        };
        let mut stream = UnixStream::connect(path).map_err(|e| err(ControlError::Io(e)))?;
        handshake(&mut stream, Role::Agent, 0x6374_6c62_656e_6368).map_err(err)?;
        let mut reader = stream.try_clone().map_err(|e| err(ControlError::Io(e)))?;
        let drain = std::thread::Builder::new()
            .name("ctlbench-drain".into())
            .spawn(move || {
                let mut sink = [0u8; 64 * 1024];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
            })
            .map_err(|e| err(ControlError::Io(e)))?;
        Ok(LoadClient {
            stream,
            drain: Some(drain),
            buf: Vec::with_capacity(1 << 20),
            next: 0,
        })
    }

    /// Send a whole full sync of `mappings` (SyncBegin, chunks, SyncEnd: the frames the agent
    /// sends). Returns when the last byte has been written, and when the first was.
    pub fn full_sync(
        &mut self,
        epoch: u64,
        mappings: &[Mapping],
    ) -> Result<(Instant, Instant), ClientError> {
        let mut frames = Vec::with_capacity(mappings.len() * 48 + 64);
        for m in xvpc_control::sync_messages(epoch, mappings) {
            encode_into(&mut frames, &m)?;
        }
        let begin = Instant::now();
        self.stream.write_all(&frames).map_err(ControlError::Io)?;
        Ok((begin, Instant::now()))
    }

    /// Write upserts cycling through `pool` at `rate` per second for `duration`, in one
    /// batch per `tick`. Returns what was achieved.
    pub fn run_paced(
        &mut self,
        pool: &[Mapping],
        rate: u64,
        duration: Duration,
        tick: Duration,
    ) -> Result<PacedRun, ClientError> {
        if pool.is_empty() {
            return Err(ClientError::EmptyPool);
        }
        let start = Instant::now();
        let mut run = PacedRun::default();
        let mut ticks = 0u64;
        while start.elapsed() < duration {
            ticks += 1;
            let due_at = start + tick * ticks as u32;
            // Upserts due by the end of this tick, minus what was already sent.
            let due = (rate as f64 * (tick * ticks as u32).as_secs_f64()) as u64;
            let n = due.saturating_sub(run.sent);
            self.buf.clear();
            for _ in 0..n {
                let m = pool[self.next % pool.len()];
                self.next = self.next.wrapping_add(1);
                encode_into(&mut self.buf, &Message::Upsert(m))?;
            }
            self.stream.write_all(&self.buf).map_err(ControlError::Io)?;
            run.sent += n;
            let now = Instant::now();
            if now < due_at {
                std::thread::sleep(due_at - now);
            } else {
                run.late_ticks += 1;
            }
        }
        run.elapsed = start.elapsed();
        Ok(run)
    }
}

impl Drop for LoadClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.drain.take() {
            let _ = t.join();
        }
    }
}
