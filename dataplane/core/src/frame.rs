//! A frame inside a larger buffer: room before it (headroom) to prepend outer headers and
//! room after it (tailroom) to grow a reply, without moving the payload.

/// Errors from moving a frame's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The requested bounds fall outside the buffer.
    #[error("frame bounds {start}+{len} exceed the {capacity}-byte buffer")]
    OutOfBounds {
        /// Requested start.
        start: usize,
        /// Requested length.
        len: usize,
        /// Buffer size.
        capacity: usize,
    },
}

/// The packet is `buf[start..start + len]`.
#[derive(Debug)]
pub struct Frame<'a> {
    buf: &'a mut [u8],
    start: usize,
    len: usize,
}

impl<'a> Frame<'a> {
    /// A frame at `start..start + len` of `buf`.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Result<Self, FrameError> {
        check(buf.len(), start, len)?;
        Ok(Frame { buf, start, len })
    }

    /// Offset of the first byte in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }
    /// Length of the packet.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Is the packet empty?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes available before the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }
    /// Bytes available after the packet.
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.start - self.len
    }
    /// The packet.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
    /// The packet, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
    /// The whole buffer, for building a packet around the current one.
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        self.buf
    }
    /// Move the packet to `start..start + len` of the same buffer (bytes are not moved).
    pub fn set_bounds(&mut self, start: usize, len: usize) -> Result<(), FrameError> {
        check(self.buf.len(), start, len)?;
        self.start = start;
        self.len = len;
        Ok(())
    }
}

fn check(capacity: usize, start: usize, len: usize) -> Result<(), FrameError> {
    match start.checked_add(len) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(FrameError::OutOfBounds {
            start,
            len,
            capacity,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let mut buf = [0u8; 64];
        assert!(Frame::new(&mut buf, 60, 5).is_err());
        assert!(Frame::new(&mut buf, usize::MAX, 5).is_err());
        let mut frame = Frame::new(&mut buf, 16, 32).expect("fits");
        assert_eq!((frame.headroom(), frame.tailroom()), (16, 16));
        assert!(frame.set_bounds(0, 65).is_err());
        frame.set_bounds(0, 64).expect("fits");
        assert_eq!(frame.data().len(), 64);
    }
}
