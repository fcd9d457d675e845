//! The UMEM area: one anonymous mapping split into equal power-of-two chunks, and safe
//! access to the chunk of a frame the application owns.

use std::io;

use crate::sys::Mmap;

/// The UMEM memory. Chunks are handed out only for frames the application owns (checked by
/// the frame book before [`Umem::chunk_mut`] is called), so the kernel never writes to a
/// chunk while a slice of it exists.
pub(crate) struct Umem {
    map: Mmap,
    frame_size: u32,
    frame_count: u32,
}

impl Umem {
    /// Allocates `frame_count * frame_size` bytes.
    pub(crate) fn new(frame_count: u32, frame_size: u32) -> io::Result<Self> {
        let len = (frame_count as usize)
            .checked_mul(frame_size as usize)
            .filter(|l| *l > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Self {
            map: Mmap::anonymous(len)?,
            frame_size,
            frame_count,
        })
    }

    /// The `XDP_UMEM_REG` argument for this area.
    pub(crate) fn reg(&self, headroom: u32) -> libc::xdp_umem_reg {
        libc::xdp_umem_reg {
            addr: self.map.as_ptr() as u64,
            len: self.map.len() as u64,
            chunk_size: self.frame_size,
            headroom,
            flags: 0,
            tx_metadata_len: 0,
        }
    }

    /// The whole chunk with index `idx`, or `None` when out of range.
    ///
    /// The caller must own the frame (not in a fill or TX ring); `&mut self` makes the
    /// slice exclusive on our side.
    pub(crate) fn chunk_mut(&mut self, idx: u32) -> Option<&mut [u8]> {
        if idx >= self.frame_count {
            return None;
        }
        let size = self.frame_size as usize;
        // SAFETY: `idx < frame_count`, so `[idx*size, (idx+1)*size)` lies inside the mapping,
        // which lives as long as `self`; the `&mut self` borrow ties the slice's lifetime to
        // it and prevents a second slice; the frame is owned by the application, so the
        // kernel does not access it while the slice exists.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.map.as_ptr().add(idx as usize * size), size)
        })
    }
}
