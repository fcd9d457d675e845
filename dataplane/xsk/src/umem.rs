//! The UMEM area: one anonymous mapping holding the chunks of a [`Layout`], and safe access
//! to the chunk of a frame the application owns.

use std::io;

use crate::frames::Layout;
use crate::sys::Mmap;

/// The UMEM memory. Chunks are handed out only for frames the application owns (checked by
/// the frame book before [`Umem::chunk_mut`] is called), so the kernel never writes to a
/// chunk while a slice of it exists.
pub(crate) struct Umem {
    map: Mmap,
    layout: Layout,
}

impl Umem {
    /// Allocates the bytes `layout` needs.
    pub(crate) fn new(layout: Layout) -> io::Result<Self> {
        let len = layout
            .umem_len()
            .filter(|l| *l > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Self {
            map: Mmap::anonymous(len)?,
            layout,
        })
    }

    /// The `XDP_UMEM_REG` argument for this area: unaligned-chunk mode for a coloured layout.
    pub(crate) fn reg(&self, headroom: u32) -> libc::xdp_umem_reg {
        libc::xdp_umem_reg {
            addr: self.map.as_ptr() as u64,
            len: self.map.len() as u64,
            chunk_size: self.layout.frame_size(),
            headroom,
            flags: match self.layout.is_coloured() {
                true => libc::XDP_UMEM_UNALIGNED_CHUNK_FLAG,
                false => 0,
            },
            tx_metadata_len: 0,
        }
    }

    /// The whole chunk with index `idx`, or `None` when out of range.
    ///
    /// The caller must own the frame (not in a fill or TX ring); `&mut self` makes the
    /// slice exclusive on our side.
    pub(crate) fn chunk_mut(&mut self, idx: u32) -> Option<&mut [u8]> {
        if idx >= self.layout.frame_count() {
            return None;
        }
        let base = usize::try_from(self.layout.chunk_base(idx)).ok()?;
        let size = self.layout.frame_size() as usize;
        if base.checked_add(size)? > self.map.len() {
            return None;
        }
        // SAFETY: `[base, base + size)` lies inside the mapping (checked above), which lives
        // as long as `self`; the `&mut self` borrow ties the slice's lifetime to it and
        // prevents a second slice; the frame is owned by the application, so the kernel does
        // not access it while the slice exists.
        Some(unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr().add(base), size) })
    }
}
