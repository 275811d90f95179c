//! `zerocopy_send`: bytes moved socket → pipe → socket with `splice(2)`,
//! so body and tunnel bytes never enter user space.
//!
//! The original KTCPVS could hand pages to `sendpage` from kernel space;
//! the user-space equivalent is a pipe per relay direction: `splice` from
//! the source socket into the pipe, then from the pipe into the destination
//! socket. A [`KernelPipe`] is made only when a relay first uses it (an
//! idle or a parsing connection holds none) and its two descriptors close
//! with it.
//!
//! Only bytes that need no inspection go this way: layer-4 tunnels, the
//! tunnel after `101 Switching Protocols`, and `Content-Length` or
//! close-delimited bodies (the engine asks for at most the bytes the body
//! has left, so nothing of the next message is taken). Chunked bodies are
//! validated while streamed and stay on the buffered path.
//!
//! Both ends work at once: [`KernelPipe::relay`] splices in while the pipe
//! has room and out while it holds bytes, so reading the source and writing
//! the destination overlap instead of alternating (a pipe refilled only
//! once empty made a 64 MiB body slower than the buffered path). The pipe
//! is asked for 1 MiB (`F_SETPIPE_SZ`), then 256 KiB, else the system's
//! default is kept.
//!
//! Readiness follows the engine's rules, with one ambiguity handled: an
//! `EAGAIN` from the filling `splice` means "source empty" only when the
//! pipe is empty; with bytes in the pipe it may mean "pipe full" (a pipe
//! counts pages, and socket data may fill them partly), so the source's
//! readable flag is then kept and the relay stops only when the draining
//! side is blocked too: it is driven again when the destination takes more
//! or the source brings more, and a spurious try costs one `EAGAIN`. An
//! `EAGAIN` from the draining `splice` means the destination is full.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::conn::Conn;

/// The pipe capacities asked for (`F_SETPIPE_SZ`), largest first; the
/// default (64 KiB) is kept when the system refuses them all (a per-user
/// limit on pipe pages, or `fs.pipe-max-size`).
const PIPE_SIZES: [libc::c_int; 2] = [1024 * 1024, 256 * 1024];

/// How a [`KernelPipe::relay`] call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// Nothing more can move until a socket is ready again.
    Blocked,
    /// The `max` bytes asked for were taken from the source (some may
    /// still be in the pipe).
    Limit,
    /// The source is at end of stream and the pipe is empty.
    Eof,
}

/// What one [`KernelPipe::relay`] call moved, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// Bytes taken from the source into the pipe.
    pub taken: u64,
    /// Bytes sent from the pipe to the destination.
    pub sent: usize,
    /// Why it stopped.
    pub end: Relayed,
}

/// The outcome of one splice into the pipe.
enum In {
    Data(usize),
    WouldBlock,
    Eof,
}

/// One relay direction's pipe and how many bytes it holds.
#[derive(Debug)]
pub struct KernelPipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe (at most `capacity`, far below `u32::MAX`).
    held: u32,
    capacity: u32,
    /// The pipe took nothing more on the last try while holding bytes
    /// (no room, or no free page slot): see [`is_full`](Self::is_full).
    full: bool,
}

impl KernelPipe {
    /// A non-blocking pipe (two descriptors).
    pub fn new() -> io::Result<KernelPipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is valid for two ints, as pipe2 requires.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned
        // by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for size in PIPE_SIZES {
            // SAFETY: F_SETPIPE_SZ on a descriptor we own.
            if unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size) } >= 0 {
                break;
            }
        }
        // SAFETY: F_GETPIPE_SZ on a descriptor we own.
        let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        Ok(KernelPipe {
            read,
            write,
            held: 0,
            capacity: u32::try_from(capacity).unwrap_or(64 * 1024).max(4096),
            full: false,
        })
    }

    /// Whether the pipe can take nothing more until some of it is sent:
    /// the last attempt to fill it found no room (by bytes, or by the page
    /// slots a pipe counts). While it is full and the destination blocks,
    /// the source's readiness is of no use to the relay.
    pub fn is_full(&self) -> bool {
        self.held > 0 && self.full
    }

    /// Bytes in the pipe, not yet sent on.
    pub fn held(&self) -> usize {
        self.held as usize
    }

    /// Moves bytes `src` → pipe → `dst` until both sides are blocked, the
    /// source ends, or `max` bytes were taken: it splices in while the pipe
    /// has room and out while it holds bytes (see the module documentation
    /// for how `EAGAIN` is read).
    pub fn relay(&mut self, src: &mut Conn, dst: &mut Conn, max: u64) -> io::Result<Relay> {
        let mut out = Relay {
            taken: 0,
            sent: 0,
            end: Relayed::Blocked,
        };
        loop {
            let mut progress = false;
            if self.held > 0 && dst.ready.writable {
                let n = self.drain_to(dst)?;
                out.sent += n;
                progress |= n > 0;
            }
            if out.taken >= max {
                out.end = Relayed::Limit;
                return Ok(out);
            }
            let room = (self.capacity - self.held) as usize;
            if room == 0 {
                self.full = true;
            }
            if src.ready.readable && room > 0 {
                let left = usize::try_from(max - out.taken).unwrap_or(usize::MAX);
                match self.splice_in(src, room.min(left))? {
                    In::Data(n) => {
                        out.taken += n as u64;
                        progress = true;
                    }
                    // Only an empty pipe proves the source drained.
                    In::WouldBlock if self.held == 0 => src.ready.readable = false,
                    In::WouldBlock => self.full = true,
                    In::Eof if self.held == 0 => {
                        out.end = Relayed::Eof;
                        return Ok(out);
                    }
                    // The end comes after what the pipe still holds; the
                    // source keeps reporting it, so it is seen again.
                    In::Eof => {}
                }
            }
            if !progress {
                return Ok(out);
            }
        }
    }

    /// One splice of at most `len` (> 0) bytes from `src` into the pipe.
    fn splice_in(&mut self, src: &mut Conn, len: usize) -> io::Result<In> {
        let Some(fd) = src.splice_fd() else {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        };
        loop {
            // SAFETY: both descriptors are open for the duration of the
            // call; null offsets mean "the current position", as required
            // for sockets and pipes.
            let n = unsafe {
                libc::splice(
                    fd,
                    std::ptr::null_mut(),
                    self.write.as_raw_fd(),
                    std::ptr::null_mut(),
                    len,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            match n {
                0 => return Ok(In::Eof),
                n if n > 0 => {
                    // `0 < n <= len <= capacity - held`, so it fits both types.
                    self.held += n as u32;
                    src.traffic.read += n as u64;
                    return Ok(In::Data(n as usize));
                }
                _ => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return Ok(In::WouldBlock),
                        io::ErrorKind::Interrupted => continue,
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    /// Sends what the pipe holds to `dst` until it is empty or `dst` is
    /// full; returns how many bytes went.
    pub fn drain_to(&mut self, dst: &mut Conn) -> io::Result<usize> {
        let Some(fd) = dst.splice_fd() else {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        };
        let mut sent = 0;
        while self.held > 0 && dst.ready.writable {
            // SAFETY: as in `splice_in`.
            let n = unsafe {
                libc::splice(
                    self.read.as_raw_fd(),
                    std::ptr::null_mut(),
                    fd,
                    std::ptr::null_mut(),
                    self.held as usize,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            if n > 0 {
                // `0 < n <= held`, so it fits both types.
                self.held -= n as u32;
                self.full = false;
                sent += n as usize;
                dst.traffic.written += n as u64;
                continue;
            }
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => dst.ready.writable = false,
                io::ErrorKind::Interrupted => {}
                _ => return Err(e),
            }
        }
        Ok(sent)
    }
}

/// Drains `pipe` (if any) into `dst`; `true` when nothing is left in it.
pub fn drain(pipe: &mut Option<KernelPipe>, dst: &mut Conn) -> io::Result<(usize, bool)> {
    match pipe.as_mut() {
        Some(p) if p.held() > 0 => {
            let n = p.drain_to(dst)?;
            Ok((n, p.held() == 0))
        }
        _ => Ok((0, true)),
    }
}

/// The pipe in `slot`, made on first use; `None` when the system has no
/// descriptor to spare (the caller then uses its buffers).
pub fn pipe_for(slot: &mut Option<KernelPipe>) -> Option<&mut KernelPipe> {
    if slot.is_none() {
        match KernelPipe::new() {
            Ok(p) => *slot = Some(p),
            Err(e) => {
                log::debug!("zerocopy_send: no pipe ({e}); relaying through buffers");
                return None;
            }
        }
    }
    slot.as_mut()
}
