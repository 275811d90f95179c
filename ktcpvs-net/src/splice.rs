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
//! Readiness follows the engine's rules: the pipe is filled only when it is
//! empty, so `EAGAIN` from the filling `splice` can only mean the source
//! socket has nothing (its readable flag is cleared), and `EAGAIN` from the
//! draining `splice` (pipe not empty) can only mean the destination socket
//! is full (its writable flag is cleared).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::session::{Conn, Fill};

/// The pipe capacity asked for (`F_SETPIPE_SZ`); the default (64 KiB) is
/// kept when the system refuses.
const PIPE_SIZE: libc::c_int = 256 * 1024;

/// One relay direction's pipe and how many bytes it holds.
#[derive(Debug)]
pub struct KernelPipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe (at most `capacity`, far below `u32::MAX`).
    held: u32,
    capacity: u32,
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
        // SAFETY: F_SETPIPE_SZ/F_GETPIPE_SZ on a descriptor we own.
        let capacity = unsafe {
            libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
            libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        Ok(KernelPipe {
            read,
            write,
            held: 0,
            capacity: u32::try_from(capacity).unwrap_or(64 * 1024).max(4096),
        })
    }

    /// Bytes in the pipe, not yet sent on.
    pub fn held(&self) -> usize {
        self.held as usize
    }

    /// Moves up to `max` bytes from `src` into the pipe. Only called on an
    /// empty pipe (see the module documentation).
    pub fn fill_from(&mut self, src: &mut Conn, max: u64) -> io::Result<Fill> {
        debug_assert_eq!(self.held, 0);
        if !src.ready.readable {
            return Ok(Fill::WouldBlock);
        }
        let len = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.capacity as usize);
        if len == 0 {
            return Ok(Fill::NoRoom);
        }
        loop {
            // SAFETY: both descriptors are open for the duration of the
            // call; null offsets mean "the current position", as required
            // for sockets and pipes.
            let n = unsafe {
                libc::splice(
                    src.stream.as_raw_fd(),
                    std::ptr::null_mut(),
                    self.write.as_raw_fd(),
                    std::ptr::null_mut(),
                    len,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            match n {
                0 => return Ok(Fill::Eof),
                n if n > 0 => {
                    // `0 < n <= len <= capacity`, so it fits both types.
                    self.held += n as u32;
                    src.traffic.read += n as u64;
                    return Ok(Fill::Data(n as usize));
                }
                _ => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => {
                            src.ready.readable = false;
                            return Ok(Fill::WouldBlock);
                        }
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
        let mut sent = 0;
        while self.held > 0 && dst.ready.writable {
            // SAFETY: as in `fill_from`.
            let n = unsafe {
                libc::splice(
                    self.read.as_raw_fd(),
                    std::ptr::null_mut(),
                    dst.stream.as_raw_fd(),
                    std::ptr::null_mut(),
                    self.held as usize,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            if n > 0 {
                // `0 < n <= held`, so it fits both types.
                self.held -= n as u32;
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
