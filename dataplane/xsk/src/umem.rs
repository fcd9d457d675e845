//! The UMEM area: one shared mapping of a memory file (memfd), holding the chunks of a [`Layout`], the
//! [`FrameBook`] that says who owns each chunk, and safe access to the chunk of a frame the
//! book says the application holds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::DescError;
use crate::frame::{Desc, FrameMut};
use crate::frames::{FrameBook, Layout};
use crate::sys::{self, Mmap};

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
    /// The memory file behind `map`: what a takeover hands to the next process, which maps
    /// the same pages (anonymous memory could not be handed over).
    file: OwnedFd,
    /// Who owns each chunk of `map`; built from the same [`Layout`].
    pub(crate) book: FrameBook,
}

impl Umem {
    /// Allocates the bytes `layout` needs; every frame starts on the free list.
    pub(crate) fn new(layout: Layout) -> io::Result<Self> {
        let len = Self::len(layout)?;
        let file = sys::memfd(c"xvpc-umem", len)?;
        Ok(Self {
            map: Mmap::shared_file(file.as_fd(), len)?,
            file,
            book: FrameBook::new(layout),
        })
    }

    /// Maps a UMEM handed over by another process: `file` must be exactly as long as
    /// `book`'s layout needs, and `book` says where each of its frames is.
    pub(crate) fn adopt(file: OwnedFd, book: FrameBook) -> Result<Self, UmemAdoptError> {
        let len = Self::len(book.layout()).map_err(UmemAdoptError::Io)?;
        let actual = sys::file_len(file.as_fd()).map_err(UmemAdoptError::Io)?;
        if actual != len as u64 {
            return Err(UmemAdoptError::Size {
                expected: len as u64,
                actual,
            });
        }
        Ok(Self {
            map: Mmap::shared_file(file.as_fd(), len).map_err(UmemAdoptError::Io)?,
            file,
            book,
        })
    }

    fn len(layout: Layout) -> io::Result<usize> {
        layout
            .umem_len()
            .filter(|l| *l > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// The memory file (to hand over).
    pub(crate) fn file(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
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

/// Why a handed-over UMEM file cannot be adopted.
#[derive(Debug)]
pub(crate) enum UmemAdoptError {
    /// fstat or mmap failed.
    Io(io::Error),
    /// The file's size is not what the layout needs.
    Size { expected: u64, actual: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umem() -> Umem {
        Umem::new(Layout::new(4, 2048)).expect("memfd UMEM")
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
    fn an_adopted_umem_maps_the_same_memory_with_the_same_book() {
        let mut u = umem();
        let base = u.book.alloc().expect("free frame");
        u.frame_mut(Desc::from_chunk(base, 0, 4))
            .expect("held frame")
            .data_mut()
            .copy_from_slice(b"xvpc");
        u.book.sent(0, base);
        let file = u.file().try_clone_to_owned().expect("dup");
        let owners = u.book.export().expect("nothing held");
        let book = FrameBook::import(u.book.layout(), &owners).expect("table");
        let mut v = Umem::adopt(file, book).expect("adopt");
        drop(u);
        assert!(v.book.completed(0, base));
        assert_eq!(v.book.alloc(), Some(base));
        let f = v
            .frame_mut(Desc::from_chunk(base, 0, 4))
            .expect("held frame");
        assert_eq!(f.data(), b"xvpc", "same pages");
        let small = sys::memfd(c"xvpc-test", 4096).expect("memory file");
        let book = FrameBook::new(Layout::new(4, 2048));
        assert!(matches!(
            Umem::adopt(small, book),
            Err(UmemAdoptError::Size {
                expected: 16384,
                actual: 4096
            })
        ));
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
