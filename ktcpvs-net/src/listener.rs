//! Listening sockets: one per worker and service, bound with `SO_REUSEPORT`
//! so the kernel spreads accepts over workers with no shared lock, and the
//! per-service client gate that enforces `maxclients` across all workers.
//!
//! The first socket of a service is bound to the configured address; when
//! that address has port 0, the port the kernel chose is read back and the
//! other workers bind that same port.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

/// Opens one non-blocking listening socket on `addr` with `SO_REUSEADDR`
/// and `SO_REUSEPORT`, listening with `backlog`. `TCP_NODELAY` is set on the
/// listener too: Linux copies it to every accepted socket, which saves a
/// `setsockopt` per connection (the worker checks the first accepted socket
/// and sets it per socket where the option is not inherited).
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    // Best effort: without it, each accepted socket gets the option.
    let _ = socket.set_nodelay(true);
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Binds `count` sockets for one service: the first on `addr`, the others
/// on the address the first one actually got (port 0 resolved). Returns the
/// sockets and the bound address.
pub fn bind_group(
    addr: SocketAddr,
    backlog: u32,
    count: usize,
) -> io::Result<(Vec<mio::net::TcpListener>, SocketAddr)> {
    let first = bind(addr, backlog)?;
    let bound = first.local_addr()?;
    let mut group = Vec::with_capacity(count);
    group.push(first);
    for _ in 1..count {
        group.push(bind(bound, backlog)?);
    }
    Ok((group, bound))
}

/// One listening socket per worker from a socket the host program already
/// holds (inherited from systemd or a previous process): `count` handles on
/// the same socket (duplicated descriptors), each worker accepting from
/// the one queue. Returns them and the socket's address.
pub fn inherited_group(
    socket: &std::net::TcpListener,
    count: usize,
) -> io::Result<(Vec<mio::net::TcpListener>, SocketAddr)> {
    let bound = socket.local_addr()?;
    let mut group = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let handle = socket.try_clone()?;
        handle.set_nonblocking(true)?;
        group.push(mio::net::TcpListener::from_std(handle));
    }
    Ok((group, bound))
}

/// Counts a service's open client connections over every worker, so that
/// `maxclients` is a hard cap: a worker reserves a slot before it accepts.
#[derive(Debug, Default)]
pub struct ClientGate {
    open: AtomicU32,
}

impl ClientGate {
    /// A gate with no connection open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves one slot if fewer than `limit` are taken.
    pub fn try_enter(&self, limit: u32) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a slot taken with [`try_enter`](Self::try_enter).
    pub fn leave(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Slots taken now.
    #[cfg(test)]
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_resolved_once_and_shared() {
        let (group, bound) = bind_group(([127, 0, 0, 1], 0).into(), 16, 3).unwrap();
        assert_ne!(bound.port(), 0);
        for l in &group {
            assert_eq!(l.local_addr().unwrap(), bound);
        }
    }

    #[test]
    fn gate_is_a_hard_cap() {
        let gate = ClientGate::new();
        assert!(gate.try_enter(2));
        assert!(gate.try_enter(2));
        assert!(!gate.try_enter(2));
        gate.leave();
        assert!(gate.try_enter(2));
        assert_eq!(gate.open(), 2);
    }
}
