//! The systemd notify protocol (`sd_notify(3)`), without libsystemd: datagrams of
//! `KEY=VALUE` lines to the socket in `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). `READY=1` once the programs are attached and the sockets bound; `WATCHDOG=1`
//! only while every worker's heartbeat moves, so a wedged worker gets the daemon restarted.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Why the notify socket from the environment cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor `@abstract`.
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor @abstract")]
    BadAddress(String),
    /// `$WATCHDOG_USEC` is not a positive number of microseconds.
    #[error("WATCHDOG_USEC={0:?} is not a positive number of microseconds")]
    BadWatchdog(String),
    /// The datagram socket could not be made.
    #[error("cannot create the notify socket: {0}")]
    Socket(#[source] std::io::Error),
}

/// A connection to the service manager.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier the environment asks for, or `None` when not run by a service manager.
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let path = path.to_string_lossy().into_owned();
        let addr = if let Some(name) = path.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())
        } else if path.starts_with('/') {
            SocketAddr::from_pathname(&path)
        } else {
            return Err(NotifyError::BadAddress(path));
        }
        .map_err(|_| NotifyError::BadAddress(path.clone()))?;
        // The watchdog is ours only if WATCHDOG_PID is unset or names us.
        let for_us = std::env::var("WATCHDOG_PID")
            .map_or(true, |pid| pid.trim() == std::process::id().to_string());
        let watchdog = match std::env::var("WATCHDOG_USEC") {
            Ok(usec) if for_us => match usec.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(Duration::from_micros(n)),
                _ => return Err(NotifyError::BadWatchdog(usec)),
            },
            _ => None,
        };
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        Ok(Some(Notifier {
            socket,
            addr,
            watchdog,
        }))
    }

    /// How often to ping: half the watchdog timeout, as sd_watchdog_enabled(3) advises.
    pub fn ping_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::warn!(error = %e, message, "cannot notify the service manager");
        }
    }

    /// Start-up is complete: the service is ready.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}\n",
            std::process::id()
        ));
    }

    /// Everything is alive: reset the watchdog timer.
    pub fn ping(&self) {
        self.send("WATCHDOG=1\n");
    }

    /// The daemon is shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping (XDP programs stay attached: fail closed)\n");
    }
}

/// Decides when to ping the watchdog: only when every worker's heartbeat moved since the
/// last ping, so one wedged worker stops the pings.
#[derive(Debug, Default)]
pub struct Heartbeats {
    last: Vec<u64>,
}

impl Heartbeats {
    /// True if every beat differs from what it was at the previous call that returned true
    /// (the first call compares with nothing and is true if there is any worker).
    pub fn all_moved(&mut self, beats: &[u64]) -> bool {
        let moved = !beats.is_empty()
            && (self.last.len() != beats.len()
                || beats
                    .iter()
                    .zip(&self.last)
                    .all(|(now, before)| now != before));
        if moved {
            self.last = beats.to_vec();
        }
        moved
    }

    /// The workers whose beat is what it was at the last ping (for the log).
    pub fn stalled(&self, beats: &[u64]) -> Vec<usize> {
        beats
            .iter()
            .zip(&self.last)
            .enumerate()
            .filter(|(_, (now, before))| now == before)
            .map(|(index, _)| index)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stalled_worker_stops_the_pings() {
        let mut h = Heartbeats::default();
        assert!(!h.all_moved(&[]), "no workers, no pings");
        assert!(h.all_moved(&[1, 1]));
        assert!(h.all_moved(&[2, 5]));
        assert!(!h.all_moved(&[3, 5]), "worker 1 did not beat");
        assert_eq!(h.stalled(&[3, 5]), vec![1]);
        // Compared with the last ping, not the last call: worker 1 moves later, worker 0 too.
        assert!(h.all_moved(&[4, 6]));
    }
}
