//! Configuration of a UMEM and its sockets.
#![forbid(unsafe_code)]

use crate::error::XskError;

/// Bytes the kernel always leaves before received data (`XDP_PACKET_HEADROOM`), on top of
/// the UMEM headroom we register.
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// Smallest frame a port must be able to receive after both headrooms (Ethernet, 1500 MTU,
/// one VLAN tag).
pub const MIN_DATA_ROOM: u32 = 1518;

/// Smallest headroom we accept: a VXLAN-over-IPv6 outer header (14 + 40 + 8 + 8 = 70
/// bytes) must always fit before the data, even in a mode without `XDP_PACKET_HEADROOM`.
pub const MIN_HEADROOM: u32 = 128;

/// Size and layout of one UMEM and of its rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UmemConfig {
    /// Number of frames (chunks) in the UMEM.
    pub frame_count: u32,
    /// Chunk size in bytes: 2048 (coloured, one frame per 4 KiB page) or 4096 (aligned).
    /// See `frames::Layout`.
    pub frame_size: u32,
    /// UMEM headroom registered with the kernel (≥ [`MIN_HEADROOM`]). Received data starts
    /// at chunk + `headroom` + [`XDP_PACKET_HEADROOM`].
    pub headroom: u32,
    /// Entries in each ring (fill, completion, RX, TX); a power of two.
    pub ring_size: u32,
}

impl Default for UmemConfig {
    /// 8192 frames of 2048 bytes (32 MiB, coloured), 128 bytes headroom, rings of 2048: both fill
    /// rings full still leaves half the frames for RX, the worker and TX.
    fn default() -> Self {
        Self {
            frame_count: 8192,
            frame_size: 2048,
            headroom: MIN_HEADROOM,
            ring_size: 2048,
        }
    }
}

impl UmemConfig {
    /// Checks the configuration for `ports` sockets sharing the UMEM.
    pub fn validate(&self, ports: u32) -> Result<(), XskError> {
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(XskError::Config(format!(
                "frame_size must be 2048 or 4096, got {}",
                self.frame_size
            )));
        }
        if self.headroom < MIN_HEADROOM {
            return Err(XskError::Config(format!(
                "headroom must be at least {MIN_HEADROOM} bytes, got {}",
                self.headroom
            )));
        }
        if self.headroom + XDP_PACKET_HEADROOM + MIN_DATA_ROOM > self.frame_size {
            return Err(XskError::Config(format!(
                "headroom {} + {XDP_PACKET_HEADROOM} kernel headroom leaves less than \
                 {MIN_DATA_ROOM} bytes of a {}-byte frame",
                self.headroom, self.frame_size
            )));
        }
        if !self.ring_size.is_power_of_two() || self.ring_size < 64 {
            return Err(XskError::Config(format!(
                "ring_size must be a power of two ≥ 64, got {}",
                self.ring_size
            )));
        }
        // Every fill ring needs frames and some must remain for the worker and TX.
        let min_frames = 2 * ports * 64;
        if self.frame_count < min_frames || self.frame_count > (1 << 24) {
            return Err(XskError::Config(format!(
                "frame_count must be between {min_frames} and {}, got {}",
                1 << 24,
                self.frame_count
            )));
        }
        Ok(())
    }

    /// Frames each port keeps in its fill ring (or in the kernel waiting for packets):
    /// half of the UMEM split evenly across ports, at most a full ring.
    pub fn fill_target(&self, ports: u32) -> u32 {
        (self.frame_count / (2 * ports.max(1))).min(self.ring_size)
    }
}

/// How a socket is bound to its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Try zero-copy; if the driver refuses, fall back to copy mode.
    #[default]
    Auto,
    /// Zero-copy only (`XDP_ZEROCOPY`); fails on drivers without support (veth).
    ZeroCopy,
    /// Copy mode only (`XDP_COPY`).
    Copy,
}

/// Busy-poll settings (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`) for
/// real NICs: the application drives the driver's NAPI instead of interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: microseconds to busy-poll in a blocking call.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets per busy-poll round.
    pub budget: u32,
    /// `SO_PREFER_BUSY_POLL`: defer interrupts while the application polls.
    pub prefer: bool,
}

/// Per-socket options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketOptions {
    /// Busy polling; `None` leaves the kernel defaults.
    pub busy_poll: Option<BusyPoll>,
}

/// The two ports of a [`crate::QueuePair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The guest-facing port.
    Guest,
    /// The fabric (underlay) port.
    Fabric,
}

impl Side {
    /// Both sides, guest first.
    pub const ALL: [Side; 2] = [Side::Guest, Side::Fabric];

    /// 0 for guest, 1 for fabric (index into per-side arrays such as
    /// [`crate::FrameAccounting::in_fill`]).
    pub const fn index(self) -> usize {
        match self {
            Side::Guest => 0,
            Side::Fabric => 1,
        }
    }

    /// The other port.
    pub const fn other(self) -> Side {
        match self {
            Side::Guest => Side::Fabric,
            Side::Fabric => Side::Guest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_splits_fill() {
        let c = UmemConfig::default();
        assert!(c.validate(2).is_ok());
        assert_eq!(c.fill_target(2), 2048);
        let small = UmemConfig {
            frame_count: 1024,
            ..c
        };
        assert_eq!(small.fill_target(2), 256);
        assert_eq!(small.fill_target(1), 512);
    }

    #[test]
    fn bad_values_are_named() {
        let c = UmemConfig::default();
        for (bad, word) in [
            (
                UmemConfig {
                    frame_size: 3000,
                    ..c
                },
                "frame_size",
            ),
            (UmemConfig { headroom: 64, ..c }, "headroom"),
            (
                UmemConfig {
                    headroom: 1024,
                    ..c
                },
                "headroom",
            ),
            (
                UmemConfig {
                    ring_size: 1000,
                    ..c
                },
                "ring_size",
            ),
            (
                UmemConfig {
                    frame_count: 100,
                    ..c
                },
                "frame_count",
            ),
        ] {
            let msg = bad.validate(2).expect_err("must be rejected").to_string();
            assert!(msg.contains(word), "{msg} should name {word}");
        }
    }
}
