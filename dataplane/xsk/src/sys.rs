//! Thin wrappers over the AF_XDP syscalls: socket, setsockopt/getsockopt, bind, mmap,
//! sendto/recvfrom wakeups and poll. All of them return `io::Error` with the errno; callers
//! add the interface and queue.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// `SO_BUSY_POLL` (asm-generic/socket.h); not exported by `libc` for Linux.
pub(crate) const SO_BUSY_POLL: libc::c_int = 46;
/// `SO_PREFER_BUSY_POLL` (asm-generic/socket.h, Linux ≥ 5.11).
pub(crate) const SO_PREFER_BUSY_POLL: libc::c_int = 69;
/// `SO_BUSY_POLL_BUDGET` (asm-generic/socket.h, Linux ≥ 5.11).
pub(crate) const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// `XDP_MAX_TX_SKB_BUDGET` (linux/if_xdp.h, Linux ≥ 6.17): frames a copy-mode socket
/// transmits per `sendto` (default 32). Not yet in `libc`.
pub(crate) const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Types the kernel reads or writes as plain bytes through `setsockopt`/`getsockopt`.
///
/// # Safety
/// Implementors must be `repr(C)` plain data for which every bit pattern (in particular
/// all zeroes) is a valid value.
pub(crate) unsafe trait Pod: Copy {}
// SAFETY: plain integer.
unsafe impl Pod for u32 {}
// SAFETY: plain integer.
unsafe impl Pod for libc::c_int {}
// SAFETY: repr(C) struct of u64/u32 fields (linux/if_xdp.h).
unsafe impl Pod for libc::xdp_umem_reg {}
// SAFETY: repr(C) struct of u64 fields.
unsafe impl Pod for libc::xdp_mmap_offsets {}
// SAFETY: repr(C) struct of u64 fields.
unsafe impl Pod for libc::xdp_statistics {}
// SAFETY: repr(C) struct of one u32.
unsafe impl Pod for libc::xdp_options {}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Creates a raw `AF_XDP` socket.
pub(crate) fn xsk_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory-safety preconditions.
    let fd = cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2), is valid and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, level, name, value)`.
pub(crate) fn setsockopt<T: Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a valid reference to `size_of::<T>()` readable bytes for the
    // duration of the call; the kernel only reads them.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `getsockopt(fd, level, name)`; returns the value and the length the kernel wrote.
pub(crate) fn getsockopt<T: Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<(T, usize)> {
    // SAFETY: `T: Pod` guarantees the all-zero bit pattern is a valid `T`.
    let mut value: T = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is writable for `len` bytes and `len` is a valid out-pointer; the
    // kernel never writes more than `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok((value, len as usize))
}

/// Binds an AF_XDP socket to `(ifindex, queue)` with the given `sxdp_flags`.
pub(crate) fn bind(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    queue: u32,
    flags: u16,
    shared_umem_fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: shared_umem_fd.map_or(0, |f| f.as_raw_fd() as u32),
    };
    // SAFETY: `addr` is a valid sockaddr_xdp and the length passed is its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_xdp).cast(),
            mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Resolves an interface name in the current network namespace.
pub(crate) fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// Tells the kernel to process the TX ring (`sendto` with `MSG_DONTWAIT`).
///
/// EAGAIN, EBUSY, ENOBUFS and ENETDOWN mean "try again later" (the kernel sends a limited
/// batch per call, or the device is busy) and are returned so the caller can count them.
pub(crate) fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length sendto with null buffer and address is valid for AF_XDP.
    let ret = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Wakes the driver to refill from the fill ring (`recvfrom` with `MSG_DONTWAIT`).
pub(crate) fn wake_rx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length recvfrom with null buffer and address is valid for AF_XDP.
    let ret = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// poll(2) over `fds`; returns how many have events. EINTR counts as "nothing ready".
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, writable slice of `fds.len()` pollfd structs.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(ret as usize)
}

/// How often the calling thread has been preempted (`getrusage(RUSAGE_THREAD)`'s
/// involuntary context switches): whether something else wants its core.
pub(crate) fn involuntary_switches() -> io::Result<u64> {
    // SAFETY: rusage is plain integers, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the kernel to fill.
    cvt(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) })?;
    Ok(usage.ru_nivcsw as u64)
}

/// An anonymous memory file of `len` bytes (`memfd_create` + `ftruncate`): UMEM memory that
/// can be handed to another process over a Unix socket.
pub(crate) fn memfd(name: &std::ffi::CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by memfd_create, is valid and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = std::fs::File::from(fd);
    file.set_len(len as u64)?;
    Ok(file.into())
}

/// Size in bytes of the file behind `fd` (`fstat`).
pub(crate) fn file_len(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(std::fs::File::from(fd.try_clone_to_owned()?)
        .metadata()?
        .len())
}

/// An owned memory mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving the owner to another
// thread does not invalidate it. Shared access is governed by the types built on top.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Private anonymous, pre-faulted memory (rings of the unit tests).
    #[cfg(test)]
    pub(crate) fn anonymous(len: usize) -> io::Result<Self> {
        // SAFETY: anonymous mapping with a null hint; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::from_raw(ptr, len)
    }

    /// Shared, pre-faulted mapping of the first `len` bytes of a memory file (a UMEM area
    /// made by [`memfd`]); another process maps the same pages from the same file.
    pub(crate) fn shared_file(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        // SAFETY: maps a file at a fresh address; no existing memory is affected. The file is
        // a memfd this crate created (or was handed with a QueuePair), never truncated
        // after creation, so the pages stay valid while mapped.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        Self::from_raw(ptr, len)
    }

    /// Shared mapping of one of a socket's rings at page offset `pgoff`.
    pub(crate) fn ring(fd: BorrowedFd<'_>, len: usize, pgoff: u64) -> io::Result<Self> {
        // SAFETY: maps kernel-provided ring memory of an AF_XDP socket at a fresh address;
        // no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff as libc::off_t,
            )
        };
        Self::from_raw(ptr, len)
    }

    fn from_raw(ptr: *mut libc::c_void, len: usize) -> io::Result<Self> {
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Self { ptr, len })
    }

    /// Start of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping created by mmap and not yet unmapped; every
        // pointer derived from it is owned by a value that is dropped with this one.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Most descriptors one [`send_fds`]/[`recv_fds`] message carries.
pub(crate) const MAX_FDS: usize = 8;
/// Control buffer for `MAX_FDS` descriptors, aligned for `cmsghdr`.
type CmsgBuf = [u64; 16];
const _: () = assert!(
    mem::size_of::<libc::cmsghdr>() + MAX_FDS * mem::size_of::<libc::c_int>()
        <= mem::size_of::<CmsgBuf>()
);

/// `sendmsg` of `data` with `fds` attached (`SCM_RIGHTS`, at most [`MAX_FDS`]); the
/// receiver gets duplicates, so the caller may close its own afterwards.
pub(crate) fn send_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS || data.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut cbuf: CmsgBuf = [0; 16];
    let payload = (fds.len() * mem::size_of::<libc::c_int>()) as u32;
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(payload) } as usize;
        // SAFETY: `msg_control` points to `cbuf`, which holds at least `msg_controllen`
        // bytes (static assertion above) and is aligned for cmsghdr (u64 array), so the
        // first header and its data lie inside it; we write exactly `payload` bytes of data.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(payload) as usize;
            let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: `msg` points to a live iovec over `data` (only read by the kernel) and to a
    // control buffer initialised above; both outlive the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `recvmsg` into `buf`, taking ownership of the descriptors attached (`SCM_RIGHTS`,
/// close-on-exec). A message with more than [`MAX_FDS`] is refused (EMSGSIZE) after the
/// ones that arrived are closed.
pub(crate) fn recv_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut cbuf: CmsgBuf = [0; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of::<CmsgBuf>();
    // SAFETY: `msg` points to a live iovec over `buf` and to `cbuf`, both writable for the
    // lengths given and outliving the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg_control`/`msg_controllen` with well-formed headers
    // inside `cbuf`; CMSG_FIRSTHDR/NXTHDR stay within `msg_controllen`. Every descriptor in
    // an SCM_RIGHTS message was installed in this process for us and is owned by nobody
    // else, so wrapping it in an OwnedFd is sound (and closes it if we refuse the message).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let header = libc::CMSG_LEN(0) as usize;
                let count =
                    ((*c).cmsg_len as usize).saturating_sub(header) / mem::size_of::<libc::c_int>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    Ok((n as usize, fds))
}
