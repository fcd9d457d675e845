//! Pacing shared by both transmit paths: `rate / 1000` frames per 1 ms tick (at least one
//! frame per tick below 1 kpps), or unpaced.

use std::thread;
use std::time::{Duration, Instant};

/// Frames per round and the wait between rounds for an offered rate.
pub struct Pacer {
    per_round: u64,
    tick: Duration,
    next: Instant,
}

impl Pacer {
    /// `rate` frames per second (0: as fast as possible, `full_speed_round` frames a round);
    /// a round never exceeds `full_speed_round`.
    pub fn new(rate: u64, full_speed_round: u64) -> Self {
        let (per_round, tick) = match rate {
            0 => (full_speed_round, Duration::ZERO),
            r if r >= 1000 => ((r / 1000).min(full_speed_round), Duration::from_millis(1)),
            r => (1, Duration::from_secs_f64(1.0 / r as f64)),
        };
        Pacer {
            per_round,
            tick,
            next: Instant::now(),
        }
    }

    /// Frames to send in one round.
    pub fn per_round(&self) -> u64 {
        self.per_round
    }

    /// Sleeps until the next round is due (never, unpaced). Far behind (the machine is
    /// saturated), it starts over instead of bursting to catch up.
    pub fn wait(&mut self) {
        if self.tick.is_zero() {
            return;
        }
        self.next += self.tick;
        let now = Instant::now();
        if self.next > now {
            thread::sleep(self.next - now);
        } else if now - self.next > Duration::from_millis(100) {
            self.next = now;
        }
    }
}
