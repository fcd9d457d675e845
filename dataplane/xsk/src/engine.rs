//! Sockets sharing one UMEM, and the batched hot-path operations common to
//! [`crate::QueuePair`] (two ports) and [`crate::Port`] (one port).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::config::{BindMode, SocketOptions, UmemConfig};
use crate::error::{DescError, HandoverError, XskError};
use crate::frame::{Desc, FrameMut};
use crate::frames::{rx_data_addr, FrameAccounting, FrameErrors, Layout};
use crate::ring::{End, Ring};
use crate::sys;
use crate::umem::{Umem, UmemAdoptError};

/// How long a bind waits for the kernel to release a socket just closed on the same queue.
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Largest batch moved between the free list and a fill ring in one go, so two ports are
/// refilled in turn rather than one taking everything.
const REFILL_CHUNK: u32 = 64;
/// Most `sendto` kicks per service call while the TX ring drains (see `Engine::drain_tx`).
const MAX_DRAIN_KICKS: usize = 4;

/// Kernel counters of one socket (`getsockopt(XDP_STATISTICS)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct XskStats {
    /// Frames dropped for reasons other than invalid descriptors (e.g. too big for a chunk).
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when the kernel needed a frame.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked for work.
    pub tx_ring_empty_descs: u64,
}

/// Counters of the user-space side (syscalls made and refused operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XskCounters {
    /// `sendto` TX kicks made.
    pub tx_kicks: u64,
    /// Kicks answered EAGAIN/EBUSY/ENOBUFS/ENETDOWN (kernel busy or batch limit reached;
    /// the frames stay on the TX ring and are retried).
    pub tx_kick_busy: u64,
    /// Kicks that failed with any other errno.
    pub tx_kick_errors: u64,
    /// `recvfrom` fill-ring wakeups made.
    pub fill_wakeups: u64,
    /// `poll` calls made by `wait`.
    pub polls: u64,
    /// Operations the frame book refused (see [`FrameErrors`]).
    pub frames: FrameErrors,
}

/// One AF_XDP socket with its four rings.
struct Socket {
    // Rings first: they are unmapped before the socket is closed.
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    fill: Ring<u64>,
    comp: Ring<u64>,
    fd: OwnedFd,
    ifname: String,
    queue: u32,
}

/// What to bind with.
#[derive(Clone, Copy)]
enum Bind<'a> {
    /// First socket: owns and registers the UMEM.
    Owner { zero_copy: bool },
    /// Further socket: shares the owner's UMEM (mode inherited).
    Shared(BorrowedFd<'a>),
}

struct Ctx<'a> {
    ifname: &'a str,
    queue: u32,
}

impl Ctx<'_> {
    fn sys(&self, op: &'static str) -> impl FnOnce(io::Error) -> XskError + '_ {
        move |source| XskError::Sys {
            op,
            ifname: self.ifname.to_owned(),
            queue: self.queue,
            source,
        }
    }

    fn mmap(&self, what: &'static str) -> impl FnOnce(io::Error) -> XskError + '_ {
        move |source| XskError::Mmap {
            what,
            ifname: self.ifname.to_owned(),
            queue: self.queue,
            source,
        }
    }

    fn busy(&self, option: &'static str) -> impl FnOnce(io::Error) -> XskError + '_ {
        move |source| XskError::BusyPoll {
            option,
            ifname: self.ifname.to_owned(),
            queue: self.queue,
            source,
        }
    }
}

fn open_socket(
    ifname: &str,
    queue: u32,
    cfg: &UmemConfig,
    umem: &Umem,
    bind: Bind<'_>,
    opts: &SocketOptions,
) -> Result<Socket, XskError> {
    let ctx = Ctx { ifname, queue };
    let ifindex = sys::ifindex(ifname).map_err(|source| XskError::NoSuchInterface {
        ifname: ifname.to_owned(),
        source,
    })?;
    let fd = sys::xsk_socket().map_err(ctx.sys("socket(AF_XDP)"))?;
    let f = fd.as_fd();
    if let Bind::Owner { .. } = bind {
        sys::setsockopt(
            f,
            libc::SOL_XDP,
            libc::XDP_UMEM_REG,
            &umem.reg(cfg.headroom),
        )
        .map_err(ctx.sys("setsockopt(XDP_UMEM_REG)"))?;
    }
    let size = cfg.ring_size;
    // A socket sharing the UMEM on another (interface, queue) needs its own fill and
    // completion rings: the kernel creates a separate buffer pool for it.
    sys::setsockopt(f, libc::SOL_XDP, libc::XDP_UMEM_FILL_RING, &size)
        .map_err(ctx.sys("setsockopt(XDP_UMEM_FILL_RING)"))?;
    sys::setsockopt(f, libc::SOL_XDP, libc::XDP_UMEM_COMPLETION_RING, &size)
        .map_err(ctx.sys("setsockopt(XDP_UMEM_COMPLETION_RING)"))?;
    sys::setsockopt(f, libc::SOL_XDP, libc::XDP_RX_RING, &size)
        .map_err(ctx.sys("setsockopt(XDP_RX_RING)"))?;
    sys::setsockopt(f, libc::SOL_XDP, libc::XDP_TX_RING, &size)
        .map_err(ctx.sys("setsockopt(XDP_TX_RING)"))?;
    let (rx, tx, fill, comp) = map_rings(f, size, &ctx)?;

    if let Some(bp) = opts.busy_poll {
        let prefer: libc::c_int = bp.prefer.into();
        sys::setsockopt(f, libc::SOL_SOCKET, sys::SO_PREFER_BUSY_POLL, &prefer)
            .map_err(ctx.busy("SO_PREFER_BUSY_POLL"))?;
        let usecs = libc::c_int::try_from(bp.usecs).unwrap_or(libc::c_int::MAX);
        sys::setsockopt(f, libc::SOL_SOCKET, sys::SO_BUSY_POLL, &usecs)
            .map_err(ctx.busy("SO_BUSY_POLL"))?;
        let budget = libc::c_int::try_from(bp.budget).unwrap_or(libc::c_int::MAX);
        sys::setsockopt(f, libc::SOL_SOCKET, sys::SO_BUSY_POLL_BUDGET, &budget)
            .map_err(ctx.busy("SO_BUSY_POLL_BUDGET"))?;
    }

    let (flags, shared, mode) = match bind {
        Bind::Owner { zero_copy: true } => (
            libc::XDP_ZEROCOPY | libc::XDP_USE_NEED_WAKEUP,
            None,
            "zero-copy",
        ),
        Bind::Owner { zero_copy: false } => {
            (libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP, None, "copy")
        }
        // The kernel refuses mode and need_wakeup flags here (EINVAL): both are inherited
        // from the UMEM owner.
        Bind::Shared(owner) => (libc::XDP_SHARED_UMEM, Some(owner), "shared-UMEM"),
    };
    // A socket that was just closed on this queue (a restarted daemon, a previous test) is
    // released by the kernel asynchronously; until then bind says EBUSY. Wait for it, bounded.
    let deadline = std::time::Instant::now() + BIND_BUSY_WAIT;
    loop {
        match sys::bind(f, ifindex, queue, flags, shared) {
            Ok(()) => break,
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(source) => {
                return Err(XskError::Bind {
                    ifname: ifname.to_owned(),
                    queue,
                    mode,
                    source,
                })
            }
        }
    }
    Ok(Socket {
        rx,
        tx,
        fill,
        comp,
        fd,
        ifname: ifname.to_owned(),
        queue,
    })
}

/// Maps the four rings (`size` entries each) of a socket whose rings are configured.
#[allow(clippy::type_complexity)]
fn map_rings(
    f: BorrowedFd<'_>,
    size: u32,
    ctx: &Ctx<'_>,
) -> Result<
    (
        Ring<libc::xdp_desc>,
        Ring<libc::xdp_desc>,
        Ring<u64>,
        Ring<u64>,
    ),
    XskError,
> {
    let (off, len) =
        sys::getsockopt::<libc::xdp_mmap_offsets>(f, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS)
            .map_err(ctx.sys("getsockopt(XDP_MMAP_OFFSETS)"))?;
    if len != std::mem::size_of::<libc::xdp_mmap_offsets>() {
        // Kernels before 5.4 return offsets without the flags word (no need_wakeup).
        return Err(XskError::Sys {
            op: "getsockopt(XDP_MMAP_OFFSETS): kernel without need_wakeup support",
            ifname: ctx.ifname.to_owned(),
            queue: ctx.queue,
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        });
    }
    // A ring mapped again (a takeover) starts its cached indices from the shared words.
    let rx = Ring::map(
        f,
        &off.rx,
        size,
        libc::XDP_PGOFF_RX_RING as u64,
        End::Consumer,
    )
    .map_err(ctx.mmap("RX ring"))?;
    let tx = Ring::map(
        f,
        &off.tx,
        size,
        libc::XDP_PGOFF_TX_RING as u64,
        End::Producer,
    )
    .map_err(ctx.mmap("TX ring"))?;
    let fill = Ring::map(
        f,
        &off.fr,
        size,
        libc::XDP_UMEM_PGOFF_FILL_RING,
        End::Producer,
    )
    .map_err(ctx.mmap("fill ring"))?;
    let comp = Ring::map(
        f,
        &off.cr,
        size,
        libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        End::Consumer,
    )
    .map_err(ctx.mmap("completion ring"))?;
    Ok((rx, tx, fill, comp))
}

/// Whether the kernel bound socket `f` in zero-copy mode (`XDP_OPTIONS`).
fn is_zero_copy(f: BorrowedFd<'_>, ctx: &Ctx<'_>) -> Result<bool, XskError> {
    let (o, _) = sys::getsockopt::<libc::xdp_options>(f, libc::SOL_XDP, libc::XDP_OPTIONS)
        .map_err(ctx.sys("getsockopt(XDP_OPTIONS)"))?;
    Ok(o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// What a quiesced [`Engine`] hands to the process that takes it over, besides its file
/// descriptors (see [`crate::QueueState`]).
pub(crate) struct EngineState<const N: usize> {
    pub(crate) ifnames: [String; N],
    pub(crate) queue: u32,
    pub(crate) cfg: UmemConfig,
    pub(crate) zero_copy: bool,
    /// [`crate::frames::FrameBook::export`]'s table.
    pub(crate) owners: Vec<u8>,
}

/// Whether the socket busy-polls (`SO_BUSY_POLL` set above 0).
fn busy_polls(fd: BorrowedFd<'_>) -> bool {
    sys::getsockopt::<libc::c_int>(fd, libc::SOL_SOCKET, sys::SO_BUSY_POLL)
        .is_ok_and(|(usecs, _)| usecs > 0)
}

/// `N` sockets on `N` interfaces (same queue id) sharing one UMEM.
pub(crate) struct Engine<const N: usize> {
    // Sockets are declared before the UMEM so they are closed before it is unmapped.
    socks: [Socket; N],
    /// The memory and its frame book: every frame put on a fill or TX ring below goes
    /// through the book (`give_to_fill`, `app_chunk` + `sent`), which `Umem::frame_mut`
    /// relies on.
    umem: Umem,
    fill_target: u32,
    zero_copy: bool,
    /// UMEM headroom registered with the kernel (handed over with the UMEM).
    headroom: u32,
    /// The sockets busy-poll (`SO_BUSY_POLL` > 0): every service enters the kernel with a
    /// `recvfrom`, which runs the queue's NAPI in this thread, whether or not the fill ring
    /// asks for a wakeup. With `SO_PREFER_BUSY_POLL` that is what moves the frames.
    busy_poll: bool,
    counters: XskCounters,
}

impl<const N: usize> Engine<N> {
    /// Opens `ifnames.len() == N` sockets; the first owns the UMEM.
    pub(crate) fn new(
        ifnames: [&str; N],
        queue: u32,
        cfg: UmemConfig,
        mode: BindMode,
        opts: &SocketOptions,
    ) -> Result<Self, XskError> {
        cfg.validate(N as u32)?;
        match mode {
            BindMode::ZeroCopy => Self::build(ifnames, queue, cfg, true, opts),
            BindMode::Copy => Self::build(ifnames, queue, cfg, false, opts),
            BindMode::Auto => match Self::build(ifnames, queue, cfg, true, opts) {
                Err(XskError::Bind { .. }) => Self::build(ifnames, queue, cfg, false, opts),
                other => other,
            },
        }
    }

    fn build(
        ifnames: [&str; N],
        queue: u32,
        cfg: UmemConfig,
        zero_copy: bool,
        opts: &SocketOptions,
    ) -> Result<Self, XskError> {
        let layout = Layout::new(cfg.frame_count, cfg.frame_size);
        let umem = Umem::new(layout).map_err(|source| XskError::Mmap {
            what: "UMEM area",
            ifname: ifnames.first().copied().unwrap_or_default().to_owned(),
            queue,
            source,
        })?;
        let mut socks: Vec<Socket> = Vec::with_capacity(N);
        for name in ifnames {
            let bind = match socks.first() {
                None => Bind::Owner { zero_copy },
                Some(owner) => Bind::Shared(owner.fd.as_fd()),
            };
            let s = open_socket(name, queue, &cfg, &umem, bind, opts)?;
            socks.push(s);
        }
        let socks: [Socket; N] = socks
            .try_into()
            .map_err(|_| XskError::Config("socket count mismatch".into()))?;
        // Ask the kernel which mode it actually gave us.
        let zero_copy = match socks.first() {
            Some(s) => is_zero_copy(
                s.fd.as_fd(),
                &Ctx {
                    ifname: &s.ifname,
                    queue,
                },
            )?,
            None => zero_copy,
        };
        let mut e = Self {
            socks,
            umem,
            fill_target: cfg.fill_target(N as u32),
            zero_copy,
            headroom: cfg.headroom,
            busy_poll: opts.busy_poll.is_some_and(|bp| bp.usecs > 0),
            counters: XskCounters::default(),
        };
        e.service();
        Ok(e)
    }

    /// The state and descriptors (UMEM file, then the sockets in order) another process
    /// needs to take this engine over. Refused while the application holds frames: the
    /// caller sends or releases them first. Ring batches cannot outlive a call, so between
    /// calls every ring's shared words are its whole state.
    #[allow(clippy::type_complexity)]
    pub(crate) fn export(
        &self,
    ) -> Result<(EngineState<N>, BorrowedFd<'_>, [BorrowedFd<'_>; N]), XskError> {
        let owners = self
            .umem
            .book
            .export()
            .map_err(|held| XskError::Handover(HandoverError::FramesHeld(held)))?;
        let s0 = &self.socks[0];
        let l = self.umem.book.layout();
        let state = EngineState {
            ifnames: std::array::from_fn(|i| self.socks[i].ifname.clone()),
            queue: s0.queue,
            cfg: UmemConfig {
                frame_count: l.frame_count(),
                frame_size: l.frame_size(),
                headroom: self.headroom,
                ring_size: s0.rx.size(),
            },
            zero_copy: self.zero_copy,
            owners,
        };
        let socks = std::array::from_fn(|i| self.socks[i].fd.as_fd());
        Ok((state, self.umem.file(), socks))
    }

    /// Takes over the bound sockets `socks` and the UMEM file `umem` of an engine another
    /// process exported as `state`: maps the UMEM and every ring again and rebuilds the frame
    /// book, binding nothing. The kernel kept receiving into the rings meanwhile; those
    /// frames are in the book as given to the fill ring and are received as usual.
    pub(crate) fn adopt(
        state: &EngineState<N>,
        umem: OwnedFd,
        socks: [OwnedFd; N],
    ) -> Result<Self, XskError> {
        let cfg = state.cfg;
        cfg.validate(N as u32)?;
        let layout = Layout::new(cfg.frame_count, cfg.frame_size);
        let book = crate::frames::FrameBook::import(layout, &state.owners)
            .ok_or(XskError::Handover(HandoverError::FrameTable))?;
        let umem = Umem::adopt(umem, book).map_err(|e| match e {
            UmemAdoptError::Io(source) => XskError::Mmap {
                what: "handed-over UMEM area",
                ifname: state.ifnames[0].clone(),
                queue: state.queue,
                source,
            },
            UmemAdoptError::Size { expected, actual } => {
                XskError::Handover(HandoverError::UmemSize { expected, actual })
            }
        })?;
        let mut out: Vec<Socket> = Vec::with_capacity(N);
        for (fd, ifname) in socks.into_iter().zip(&state.ifnames) {
            let ctx = Ctx {
                ifname,
                queue: state.queue,
            };
            if is_zero_copy(fd.as_fd(), &ctx)? != state.zero_copy {
                return Err(XskError::Handover(HandoverError::Mode {
                    ifname: ifname.clone(),
                }));
            }
            let (rx, tx, fill, comp) = map_rings(fd.as_fd(), cfg.ring_size, &ctx)?;
            out.push(Socket {
                rx,
                tx,
                fill,
                comp,
                fd,
                ifname: ifname.clone(),
                queue: state.queue,
            });
        }
        let socks: [Socket; N] = out
            .try_into()
            .map_err(|_| XskError::Config("socket count mismatch".into()))?;
        Ok(Self {
            umem,
            fill_target: cfg.fill_target(N as u32),
            zero_copy: state.zero_copy,
            headroom: cfg.headroom,
            // Socket options live on the sockets, which came over as they were.
            busy_poll: socks.first().is_some_and(|s| busy_polls(s.fd.as_fd())),
            socks,
            counters: XskCounters::default(),
        })
    }

    pub(crate) fn bind_mode(&self) -> BindMode {
        if self.zero_copy {
            BindMode::ZeroCopy
        } else {
            BindMode::Copy
        }
    }

    pub(crate) fn fd(&self, i: usize) -> BorrowedFd<'_> {
        self.socks[i % N].fd.as_fd()
    }

    pub(crate) fn recv(&mut self, i: usize, out: &mut [Desc]) -> usize {
        let side = i as u8;
        let s = &mut self.socks[i % N];
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let mut rx = s.rx.peek(want);
        let mut k = 0;
        for d in rx.by_ref() {
            let addr = rx_data_addr(d.addr);
            if self.umem.book.received(side, addr) {
                // `k <=` entries read `<= want <= out.len()`.
                if let Some(slot) = out.get_mut(k) {
                    *slot = Desc { addr, len: d.len };
                }
                k += 1;
            }
        }
        rx.release();
        k
    }

    pub(crate) fn frame(&mut self, d: Desc) -> Result<FrameMut<'_>, DescError> {
        self.umem.frame_mut(d)
    }

    pub(crate) fn alloc(&mut self) -> Option<u64> {
        self.umem.book.alloc()
    }

    pub(crate) fn tx_room(&mut self, i: usize) -> usize {
        // Dropped uncommitted: a reservation only counts the free slots.
        self.socks[i % N].tx.reserve(u32::MAX).capacity() as usize
    }

    pub(crate) fn send(&mut self, i: usize, descs: &[Desc]) -> usize {
        let side = i as u8;
        let want = u32::try_from(descs.len()).unwrap_or(u32::MAX);
        let s = &mut self.socks[i % N];
        let book = &mut self.umem.book;
        let mut tx = s.tx.reserve(want);
        // `insert` takes a descriptor only when a slot is free and writes every one it takes.
        tx.insert(descs.iter().map_while(|d| {
            if book.app_chunk(*d).is_err() {
                book.errors.send_rejected += 1;
                return None;
            }
            book.sent(side, d.addr);
            Some(libc::xdp_desc {
                addr: d.addr,
                len: d.len,
                options: 0,
            })
        }));
        let k = tx.commit();
        if k > 0 && s.tx.needs_wakeup() {
            Self::kick(&mut self.counters, s);
        }
        k as usize
    }

    /// One `sendto` TX kick; false if the kernel was busy or failed.
    fn kick(c: &mut XskCounters, s: &Socket) -> bool {
        c.tx_kicks += 1;
        match sys::kick_tx(s.fd.as_fd()) {
            Ok(()) => true,
            Err(e) => {
                match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) => {
                        c.tx_kick_busy += 1
                    }
                    _ => c.tx_kick_errors += 1,
                }
                false
            }
        }
    }

    /// Kick while the TX ring stays backed up and each kick drains some of it, at most
    /// [`MAX_DRAIN_KICKS`] times: in copy mode a `sendto` moves at most the socket's TX
    /// budget (32 frames by default), so one kick per batch lets the ring fill up.
    fn drain_tx(c: &mut XskCounters, s: &Socket) {
        for _ in 0..MAX_DRAIN_KICKS {
            let before = s.tx.pending();
            if before == 0 || !s.tx.needs_wakeup() || !Self::kick(c, s) {
                return;
            }
            if s.tx.pending() >= before {
                return;
            }
        }
    }

    pub(crate) fn release(&mut self, addr: u64) {
        self.umem.book.release(addr);
    }

    pub(crate) fn service(&mut self) {
        // 1. Completions back to the free list.
        for (i, s) in self.socks.iter_mut().enumerate() {
            let size = s.comp.size();
            let mut comp = s.comp.peek(size);
            for addr in comp.by_ref() {
                self.umem.book.completed(i as u8, addr);
            }
            comp.release();
        }
        // 2. Refill fill rings in turns so every port can receive.
        loop {
            let mut moved = 0;
            for (i, s) in self.socks.iter_mut().enumerate() {
                let book = &mut self.umem.book;
                let have = book.accounting().in_fill[i & 1];
                let want = self
                    .fill_target
                    .saturating_sub(have)
                    .min(REFILL_CHUNK)
                    .min(book.free_len());
                if want == 0 {
                    continue;
                }
                let mut fill = s.fill.reserve(want);
                // A frame leaves the free list only when a fill slot is free for it.
                fill.insert(std::iter::from_fn(|| book.give_to_fill(i as u8)));
                moved += fill.commit();
            }
            if moved == 0 {
                break;
            }
        }
        // 3. Wakeups only where the kernel asks for them, or every time when busy polling.
        for s in &mut self.socks {
            if self.busy_poll || s.fill.needs_wakeup() {
                self.counters.fill_wakeups += 1;
                // Errors here are transient (EAGAIN); the next service retries.
                let _ = sys::wake_rx(s.fd.as_fd());
            }
            Self::drain_tx(&mut self.counters, s);
        }
    }

    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<bool, XskError> {
        let mut tx_pending = false;
        let mut kicked = false;
        for s in &mut self.socks {
            if s.rx.available() > 0 || s.comp.available() > 0 {
                return Ok(true);
            }
            if s.tx.pending() > 0 {
                tx_pending = true;
                // Copy-mode TX moves only when kicked; sleeping would stall it.
                if s.tx.needs_wakeup() {
                    Self::kick(&mut self.counters, s);
                    kicked = true;
                }
            }
        }
        if kicked {
            return Ok(true);
        }
        let mut fds = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; N];
        for (p, s) in fds.iter_mut().zip(&self.socks) {
            p.fd = s.fd.as_raw_fd();
            p.events = libc::POLLIN;
        }
        // A driver still working through our TX ring will post completions, which poll()
        // does not report: nap briefly instead of for the whole timeout.
        let timeout = if tx_pending {
            timeout.min(Duration::from_millis(1))
        } else {
            timeout
        };
        self.counters.polls += 1;
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let n = sys::poll(&mut fds, ms).map_err(XskError::Poll)?;
        Ok(n > 0)
    }

    pub(crate) fn accounting(&self) -> FrameAccounting {
        self.umem.book.accounting()
    }

    pub(crate) fn audit(&self) -> bool {
        let a = self.umem.book.accounting();
        a.is_balanced() && a == self.umem.book.recount()
    }

    pub(crate) fn counters(&self) -> XskCounters {
        XskCounters {
            frames: self.umem.book.errors,
            ..self.counters
        }
    }

    pub(crate) fn set_tx_budget(&mut self, i: usize, budget: u32) -> Result<(), XskError> {
        let sock = &self.socks[i % N];
        sys::setsockopt(
            sock.fd.as_fd(),
            libc::SOL_XDP,
            sys::XDP_MAX_TX_SKB_BUDGET,
            &budget,
        )
        .map_err(|source| XskError::Sys {
            op: "setsockopt(XDP_MAX_TX_SKB_BUDGET)",
            ifname: sock.ifname.clone(),
            queue: sock.queue,
            source,
        })
    }

    pub(crate) fn stats(&self, i: usize) -> Result<XskStats, XskError> {
        let sock = &self.socks[i % N];
        let (s, _) = sys::getsockopt::<libc::xdp_statistics>(
            sock.fd.as_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
        )
        .map_err(|source| XskError::Sys {
            op: "getsockopt(XDP_STATISTICS)",
            ifname: sock.ifname.clone(),
            queue: sock.queue,
            source,
        })?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }
}
