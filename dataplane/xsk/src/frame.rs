//! Descriptors and in-place access to a frame's chunk.
#![forbid(unsafe_code)]

use crate::error::DescError;

/// A packet in the UMEM: `addr` is the UMEM offset of the first data byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Desc {
    /// UMEM offset of the first data byte (chunk base + offset inside the chunk).
    pub addr: u64,
    /// Data length in bytes.
    pub len: u32,
}

impl Desc {
    /// A descriptor for data at `start` bytes into the chunk at `chunk_base`.
    pub fn from_chunk(chunk_base: u64, start: usize, len: usize) -> Desc {
        Desc {
            addr: chunk_base + start as u64,
            len: len as u32,
        }
    }
}

/// Mutable view of the whole chunk of a frame the application owns, with the data range
/// inside it. Headers are prepended by moving `start` earlier into the headroom and
/// stripped by moving it later; the payload never moves.
#[derive(Debug)]
pub struct FrameMut<'a> {
    buf: &'a mut [u8],
    base: u64,
    start: usize,
    len: usize,
}

impl<'a> FrameMut<'a> {
    /// Caller guarantees `start + len <= buf.len()`.
    pub(crate) fn new(buf: &'a mut [u8], base: u64, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= buf.len());
        Self {
            buf,
            base,
            start,
            len,
        }
    }

    /// The whole chunk.
    pub fn buf(&mut self) -> &mut [u8] {
        self.buf
    }

    /// Offset of the first data byte inside the chunk.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Data length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the frame holds no data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes before the data (room to prepend).
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the data.
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.start - self.len
    }

    /// UMEM offset of the chunk.
    pub fn chunk_base(&self) -> u64 {
        self.base
    }

    /// The data bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The data bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// Sets the data range; fails if it does not fit in the chunk.
    pub fn set_data(&mut self, start: usize, len: usize) -> Result<(), DescError> {
        match start.checked_add(len) {
            Some(end) if end <= self.buf.len() => {
                self.start = start;
                self.len = len;
                Ok(())
            }
            _ => Err(DescError::CrossesChunk),
        }
    }

    /// Grows the data by `n` bytes at the front and returns them (the new header).
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], DescError> {
        if n > self.start {
            return Err(DescError::CrossesChunk);
        }
        self.start -= n;
        self.len += n;
        Ok(&mut self.buf[self.start..self.start + n])
    }

    /// Removes `n` bytes from the front of the data.
    pub fn strip(&mut self, n: usize) -> Result<(), DescError> {
        if n > self.len {
            return Err(DescError::CrossesChunk);
        }
        self.start += n;
        self.len -= n;
        Ok(())
    }

    /// The descriptor for the current data range, ready for `send`.
    pub fn desc(&self) -> Desc {
        Desc::from_chunk(self.base, self.start, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_strip_move_start_without_copying() {
        let mut chunk = vec![0u8; 2048];
        chunk[400..404].copy_from_slice(b"DATA");
        let mut f = FrameMut::new(&mut chunk, 4096, 400, 4);
        assert_eq!(f.desc(), Desc { addr: 4496, len: 4 });
        f.prepend(50).expect("room").fill(0xAB);
        assert_eq!(f.start(), 350);
        assert_eq!(&f.data()[48..], &[0xAB, 0xAB, b'D', b'A', b'T', b'A']);
        assert_eq!(f.desc(), Desc::from_chunk(4096, 350, 54));
        f.strip(50).expect("strip");
        assert_eq!(f.data(), b"DATA");
        assert_eq!(f.prepend(401), Err(DescError::CrossesChunk));
        assert_eq!(f.strip(5), Err(DescError::CrossesChunk));
        assert_eq!(f.set_data(2000, 49), Err(DescError::CrossesChunk));
        assert!(f.set_data(2000, 48).is_ok());
        assert_eq!(f.tailroom(), 0);
    }
}
