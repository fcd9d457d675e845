//! The UMEM area: one anonymous mapping holding the chunks of a [`Layout`], the
//! [`FrameBook`] that says who owns each chunk, and safe access to the chunk of a frame the
//! book says the application holds.

use std::io;

use crate::error::DescError;
use crate::frame::{Desc, FrameMut};
use crate::frames::{FrameBook, Layout};
use crate::sys::Mmap;

/// The UMEM memory and its ownership ledger.
///
/// The book lives here, next to the memory, so that [`Umem::frame_mut`] checks ownership in
/// the same book that tracks this memory and no caller has to promise it: a chunk is sliced
/// only when the book says the application holds the frame, and the slice borrows the whole
/// `Umem` (book included), so the frame cannot change owner while the slice exists.
///
/// The book is only as truthful as the rings: frames reach a kernel ring only through the
/// book's transitions (fill entries come from [`FrameBook::give_to_fill`], TX entries are
/// checked with [`FrameBook::app_chunk`] and recorded with [`FrameBook::sent`], see
/// `Engine`), so a frame the book gives the application is in no fill or TX ring and the
/// kernel does not access it.
pub(crate) struct Umem {
    map: Mmap,
    /// Who owns each chunk of `map`; built from the same [`Layout`].
    pub(crate) book: FrameBook,
}

impl Umem {
    /// Allocates the bytes `layout` needs; every frame starts on the free list.
    pub(crate) fn new(layout: Layout) -> io::Result<Self> {
        let len = layout
            .umem_len()
            .filter(|l| *l > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Self {
            map: Mmap::anonymous(len)?,
            book: FrameBook::new(layout),
        })
    }

    /// The `XDP_UMEM_REG` argument for this area: unaligned-chunk mode for a coloured layout.
    pub(crate) fn reg(&self, headroom: u32) -> libc::xdp_umem_reg {
        let layout = self.book.layout();
        libc::xdp_umem_reg {
            addr: self.map.as_ptr() as u64,
            len: self.map.len() as u64,
            chunk_size: layout.frame_size(),
            headroom,
            flags: match layout.is_coloured() {
                true => libc::XDP_UMEM_UNALIGNED_CHUNK_FLAG,
                false => 0,
            },
            tx_metadata_len: 0,
        }
    }

    /// The chunk of the frame holding `d`, with `d`'s data range: refused unless `d` lies in
    /// one chunk and the book says the application holds that frame.
    pub(crate) fn frame_mut(&mut self, d: Desc) -> Result<FrameMut<'_>, DescError> {
        let base = self.book.app_chunk(d)?;
        let size = self.book.layout().frame_size() as usize;
        let start = usize::try_from(base).map_err(|_| DescError::OutOfUmem)?;
        match start.checked_add(size) {
            Some(end) if end <= self.map.len() => {}
            _ => return Err(DescError::OutOfUmem),
        }
        // SAFETY: `[start, start + size)` lies inside the mapping (checked above), which
        // lives as long as `self`. The book says the application holds this frame, so it is
        // in no fill or TX ring and the kernel does not access it (type doc). The slice
        // borrows `self` mutably: no second slice exists, and the book cannot hand the frame
        // to the kernel until the slice is gone.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr().add(start), size) };
        // `app_chunk` checked `d.addr - base + d.len <= size`.
        Ok(FrameMut::new(
            buf,
            base,
            (d.addr - base) as usize,
            d.len as usize,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umem() -> Umem {
        Umem::new(Layout::new(4, 2048)).expect("anonymous UMEM")
    }

    #[test]
    fn frames_in_a_kernel_ring_are_not_sliced() {
        let mut u = umem();
        let fill = u.book.give_to_fill(0).expect("free frame");
        let d = Desc::from_chunk(fill, 256, 64);
        assert_eq!(u.frame_mut(d).err(), Some(DescError::NotOwned));
        // Received: now the application's.
        assert!(u.book.received(0, fill + 256));
        let mut f = u.frame_mut(d).expect("held frame");
        assert_eq!((f.chunk_base(), f.start(), f.len()), (fill, 256, 64));
        assert_eq!(f.buf().len(), 2048);
        f.data_mut().fill(0xAB);
        // Sent on TX: the kernel's again.
        u.book.sent(1, d.addr);
        assert_eq!(u.frame_mut(d).err(), Some(DescError::NotOwned));
    }

    #[test]
    fn free_and_released_frames_are_not_sliced() {
        let mut u = umem();
        let base = u.book.layout().chunk_base(0);
        let d = Desc::from_chunk(base, 0, 10);
        assert_eq!(u.frame_mut(d).err(), Some(DescError::NotOwned));
        assert_eq!(u.book.alloc(), Some(base));
        assert!(u.frame_mut(d).is_ok());
        assert!(u.book.release(base));
        assert_eq!(u.frame_mut(d).err(), Some(DescError::NotOwned));
    }

    #[test]
    fn descriptors_outside_a_chunk_are_not_sliced() {
        let mut u = umem();
        let base = u.book.alloc().expect("free frame");
        let crossing = Desc::from_chunk(base, 2000, 49);
        assert_eq!(u.frame_mut(crossing).err(), Some(DescError::CrossesChunk));
        assert!(u.frame_mut(Desc::from_chunk(base, 2000, 48)).is_ok());
        let beyond = Desc {
            addr: 4 << 12,
            len: 0,
        };
        assert_eq!(u.frame_mut(beyond).err(), Some(DescError::OutOfUmem));
        // The gap after a coloured chunk belongs to no frame.
        let gap = Desc {
            addr: base + 2048,
            len: 0,
        };
        assert_eq!(u.frame_mut(gap).err(), Some(DescError::OutOfUmem));
    }
}
