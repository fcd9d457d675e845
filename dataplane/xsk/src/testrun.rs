//! `BPF_PROG_TEST_RUN` for XDP programs: the plain mode (run once on a buffer, get the verdict
//! and the rewritten bytes back) and the "live frames" mode (kernel ≥ 5.18) in which every
//! `XDP_TX` verdict really transmits the frame, which the traffic generator uses.
//!
//! The functions here are safe: they validate every input and own the buffers handed to the
//! kernel for the duration of the call. The kernel's rules are in
//! `Documentation/bpf/bpf_prog_run.rst`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `BPF_PROG_TEST_RUN` (alias `BPF_PROG_RUN`) from `include/uapi/linux/bpf.h`.
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// Transmit/redirect/pass the frames for real instead of returning them.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// The kernel's `TEST_XDP_MAX_BATCH`.
pub const MAX_BATCH: u32 = 256;
/// Smallest frame the kernel accepts (an Ethernet header).
pub const MIN_FRAME: usize = 14;
/// Largest frame we hand over: a 4 KiB page less `XDP_PACKET_HEADROOM`, the live-frames page
/// header and `skb_shared_info`, rounded down with margin.
pub const MAX_FRAME: usize = 3072;

/// Errors from running an XDP program with `BPF_PROG_TEST_RUN`.
#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    /// The frame is shorter than an Ethernet header or longer than fits in a page.
    #[error("frame of {0} bytes is outside {MIN_FRAME}..={MAX_FRAME}")]
    FrameSize(usize),
    /// A live-frames batch holds at most [`MAX_BATCH`] frames.
    #[error("batch size {0} is outside 1..={MAX_BATCH}")]
    BatchSize(u32),
    /// An interface index is never 0.
    #[error("interface index 0 is not a device")]
    NoInterface,
    /// The output buffer cannot hold what the program returned.
    #[error("output buffer of {have} bytes is smaller than the {need} bytes returned")]
    OutputTooSmall {
        /// Bytes the kernel returned.
        need: usize,
        /// Bytes the caller provided.
        have: usize,
    },
    /// The kernel rejected the arguments; for live frames this usually means a kernel older
    /// than 5.18, a device that does not exist in this network namespace, or a queue index
    /// beyond the device's receive queues.
    #[error("kernel rejected BPF_PROG_TEST_RUN (EINVAL): live frames needs kernel >= 5.18 and an existing device/queue in this netns")]
    Rejected,
    /// A signal arrived while the kernel was running the program; part of the repeat count may
    /// have been executed.
    #[error("interrupted by a signal")]
    Interrupted,
    /// Any other error from the `bpf()` system call.
    #[error("bpf(BPF_PROG_TEST_RUN) failed: {0}")]
    Os(#[source] io::Error),
}

impl TestRunError {
    /// The errno the kernel answered with, if the kernel (not our own validation) refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Rejected => Some(libc::EINVAL),
            Self::Interrupted => Some(libc::EINTR),
            Self::Os(e) => e.raw_os_error(),
            Self::OutputTooSmall { .. } => Some(libc::ENOSPC),
            Self::FrameSize(_) | Self::BatchSize(_) | Self::NoInterface => None,
        }
    }
}

/// The symbolic name of the errnos a `bpf()` call can answer with (`EPERM`, ...), or
/// `errno N` for the rest: what a user greps for and what a kernel log names.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        // The kernel-internal ENOTSUPP leaks to user space from some BPF paths.
        524 => "ENOTSUPP",
        libc::ENOSYS => "ENOSYS",
        libc::ENODEV => "ENODEV",
        libc::ENXIO => "ENXIO",
        libc::EFAULT => "EFAULT",
        libc::E2BIG => "E2BIG",
        libc::ENOMEM => "ENOMEM",
        libc::EBUSY => "EBUSY",
        libc::ENOSPC => "ENOSPC",
        libc::EINTR => "EINTR",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// The `test` member of `union bpf_attr` (UAPI layout, 80 bytes with trailing padding).
#[repr(C, align(8))]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}
const _: () = assert!(std::mem::size_of::<TestAttr>() == 80);

/// `struct xdp_md` as the kernel reads it from `ctx_in`.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}
const _: () = assert!(std::mem::size_of::<XdpMd>() == 24);

fn check_frame(frame: &[u8]) -> Result<u32, TestRunError> {
    if frame.len() < MIN_FRAME || frame.len() > MAX_FRAME {
        return Err(TestRunError::FrameSize(frame.len()));
    }
    // MAX_FRAME fits in u32.
    Ok(frame.len() as u32)
}

fn bpf_test_run(attr: &mut TestAttr) -> Result<(), TestRunError> {
    // SAFETY: `attr` is a valid, initialised `bpf_attr.test` of the size we pass; every pointer
    // inside it (data_in, data_out, ctx_in) was set by our callers from live Rust slices or
    // locals with the matching `*_size_*` lengths, and they outlive this call because the
    // callers hold the borrows until we return. The kernel writes only within those sizes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::EINVAL) => TestRunError::Rejected,
        Some(libc::EINTR) => TestRunError::Interrupted,
        _ => TestRunError::Os(err),
    })
}

/// Runs the XDP program `prog` `repeat` times in live-frames mode on copies of `frame`, as if
/// the frames had arrived on queue `rx_queue` of interface `ifindex` (in the caller's network
/// namespace). Frames the program returns `XDP_TX` for are transmitted out of that interface,
/// `XDP_REDIRECT` follows the redirect and `XDP_PASS` injects them into the stack.
///
/// The kernel recycles its frame pages between runs without restoring the bytes, so the
/// program must write every byte it depends on. `batch_size` (1..=[`MAX_BATCH`]) is how many
/// frames the kernel builds and flushes at a time. Blocks until all runs are done.
pub fn xdp_live_frames(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ifindex: u32,
    rx_queue: u32,
    repeat: u32,
    batch_size: u32,
) -> Result<(), TestRunError> {
    let len = check_frame(frame)?;
    if batch_size == 0 || batch_size > MAX_BATCH {
        return Err(TestRunError::BatchSize(batch_size));
    }
    if ifindex == 0 {
        return Err(TestRunError::NoInterface);
    }
    if repeat == 0 {
        return Ok(());
    }
    let ctx = XdpMd {
        data_end: len,
        ingress_ifindex: ifindex,
        rx_queue_index: rx_queue,
        ..XdpMd::default()
    };
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: len,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size,
        ..TestAttr::default()
    };
    bpf_test_run(&mut attr)
}

/// Runs the XDP program `prog` once on `frame` without side effects and returns its verdict
/// (`XDP_DROP` = 1, `XDP_PASS` = 2, `XDP_TX` = 3, ...) and the number of bytes of the
/// resulting frame written to `out`. `ifindex` 0 means no ingress device.
pub fn xdp_test_run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ifindex: u32,
    out: &mut [u8],
) -> Result<(u32, usize), TestRunError> {
    let len = check_frame(frame)?;
    let ctx = XdpMd {
        data_end: len,
        ingress_ifindex: ifindex,
        ..XdpMd::default()
    };
    let out_len = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: len,
        data_in: frame.as_ptr() as u64,
        data_size_out: out_len,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: if ifindex == 0 {
            0
        } else {
            std::mem::size_of::<XdpMd>() as u32
        },
        ctx_in: if ifindex == 0 {
            0
        } else {
            &ctx as *const XdpMd as u64
        },
        ..TestAttr::default()
    };
    match bpf_test_run(&mut attr) {
        Ok(()) => {}
        // The kernel copies what fits and reports ENOSPC with the full size.
        Err(TestRunError::Os(e)) if e.raw_os_error() == Some(libc::ENOSPC) => {
            return Err(TestRunError::OutputTooSmall {
                need: attr.data_size_out as usize,
                have: out.len(),
            })
        }
        Err(e) => return Err(e),
    }
    let produced = attr.data_size_out as usize;
    if produced > out.len() {
        return Err(TestRunError::OutputTooSmall {
            need: produced,
            have: out.len(),
        });
    }
    Ok((attr.retval, produced))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn rejects_bad_inputs_before_the_syscall() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        let fd = file.as_fd();
        assert!(matches!(
            xdp_live_frames(fd, &[0u8; 10], 1, 0, 1, 64),
            Err(TestRunError::FrameSize(10))
        ));
        assert!(matches!(
            xdp_live_frames(fd, &[0u8; 60], 1, 0, 1, 0),
            Err(TestRunError::BatchSize(0))
        ));
        assert!(matches!(
            xdp_live_frames(fd, &[0u8; 60], 1, 0, 1, 257),
            Err(TestRunError::BatchSize(257))
        ));
        assert!(matches!(
            xdp_live_frames(fd, &[0u8; 60], 0, 0, 1, 64),
            Err(TestRunError::NoInterface)
        ));
        let mut out = [0u8; 64];
        assert!(matches!(
            xdp_test_run(fd, &[0u8; 4000], 0, &mut out),
            Err(TestRunError::FrameSize(4000))
        ));
    }

    #[test]
    fn errnos_are_named_and_validation_errors_carry_none() {
        assert_eq!(errno_name(libc::EPERM), "EPERM");
        assert_eq!(errno_name(524), "ENOTSUPP");
        assert_eq!(errno_name(4242), "errno 4242");
        assert_eq!(TestRunError::Rejected.errno(), Some(libc::EINVAL));
        let os = TestRunError::Os(io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(os.errno(), Some(libc::EPERM));
        assert_eq!(TestRunError::NoInterface.errno(), None);
    }

    #[test]
    fn a_non_bpf_fd_is_an_error_not_a_crash() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        let mut out = [0u8; 64];
        assert!(xdp_test_run(file.as_fd(), &[0u8; 60], 0, &mut out).is_err());
    }
}
