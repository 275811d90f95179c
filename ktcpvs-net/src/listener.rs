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
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
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
    Ok(socket.into())
}

/// One service's listening sockets.
#[derive(Debug)]
pub struct Group {
    /// The distinct sockets (each with its own accept queue): what the
    /// engine keeps, and what a binary upgrade hands to the next process.
    pub sockets: Vec<std::net::TcpListener>,
    /// The handles the workers accept from: (worker index, handle).
    pub handles: Vec<(usize, mio::net::TcpListener)>,
    /// The address the sockets are bound to (port 0 resolved).
    pub bound: SocketAddr,
}

/// Binds `count` sockets for one service, one per worker: the first on
/// `addr`, the others on the address the first one actually got (port 0
/// resolved).
pub fn bind_group(addr: SocketAddr, backlog: u32, count: usize) -> io::Result<Group> {
    let first = bind(addr, backlog)?;
    let bound = first.local_addr()?;
    let mut sockets = Vec::with_capacity(count);
    sockets.push(first);
    for _ in 1..count {
        sockets.push(bind(bound, backlog)?);
    }
    let handles = assign(&sockets, count)?;
    Ok(Group {
        sockets,
        handles,
        bound,
    })
}

/// A group from sockets the host program already holds (from systemd, or
/// handed over by the process this one replaces, which bound one per
/// worker with `SO_REUSEPORT`): every socket gets at least one worker, so
/// no accept queue is left unserved, and every worker at least one socket
/// (see [`assign`]).
pub fn inherited_group(sockets: &[std::net::TcpListener], count: usize) -> io::Result<Group> {
    let first = sockets
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no inherited socket to use"))?;
    let bound = first.local_addr()?;
    let sockets = sockets
        .iter()
        .map(std::net::TcpListener::try_clone)
        .collect::<io::Result<Vec<_>>>()?;
    let handles = assign(&sockets, count)?;
    Ok(Group {
        sockets,
        handles,
        bound,
    })
}

/// Which worker accepts from which socket: for `j` in `0..max(k, workers)`,
/// worker `j mod workers` takes a (duplicated, non-blocking) handle on
/// socket `j mod k`. With as many sockets as workers each worker has its
/// own; with fewer, sockets are shared; with more, workers take several.
pub fn assign(
    sockets: &[std::net::TcpListener],
    workers: usize,
) -> io::Result<Vec<(usize, mio::net::TcpListener)>> {
    let (k, n) = (sockets.len(), workers.max(1));
    if k == 0 {
        return Ok(Vec::new());
    }
    (0..k.max(n))
        .map(|j| {
            let handle = sockets[j % k].try_clone()?;
            handle.set_nonblocking(true)?;
            Ok((j % n, mio::net::TcpListener::from_std(handle)))
        })
        .collect()
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
        let group = bind_group(([127, 0, 0, 1], 0).into(), 16, 3).unwrap();
        assert_ne!(group.bound.port(), 0);
        assert_eq!(group.sockets.len(), 3);
        for l in &group.sockets {
            assert_eq!(l.local_addr().unwrap(), group.bound);
        }
        let workers: Vec<usize> = group.handles.iter().map(|(w, _)| *w).collect();
        assert_eq!(workers, [0, 1, 2]);
    }

    /// Every inherited socket is accepted from by some worker, and every
    /// worker accepts from some socket, whichever side has more.
    #[test]
    fn inherited_sockets_are_spread_over_the_workers() {
        let sockets = bind_group(([127, 0, 0, 1], 0).into(), 16, 3)
            .unwrap()
            .sockets;
        let more_workers = inherited_group(&sockets, 5).unwrap();
        let workers: Vec<usize> = more_workers.handles.iter().map(|(w, _)| *w).collect();
        assert_eq!(workers, [0, 1, 2, 3, 4]);
        assert_eq!(more_workers.sockets.len(), 3);
        let fewer_workers = inherited_group(&sockets, 2).unwrap();
        let workers: Vec<usize> = fewer_workers.handles.iter().map(|(w, _)| *w).collect();
        assert_eq!(workers, [0, 1, 0]);
        assert!(inherited_group(&[], 2).is_err());
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
