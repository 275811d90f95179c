//! Backend connections of one worker: every connection to a real server
//! lives in one slab (its token names it), owned by a session while in use
//! and kept in a per-server idle pool between requests.
//!
//! Idle pooled connections stay registered with the poller under their own
//! token, so a server closing one (FIN, reset, stray bytes) shows up as an
//! event on a connection without an owner, and the connection is dropped
//! at once. A connection taken from the pool is also checked with a
//! non-blocking `peek` first, and expired ones (`keepalive_timeout`) are
//! swept. The pool holds at most `pool_max_idle` connections per server.
//!
//! Each server address gets its idle list once, at the first connect to it;
//! a connection remembers its list and its place in it, so putting it back
//! and taking it again by id (a per-request session reusing the connection
//! it just returned) cost no hashing and no search.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;

use crate::io::conn::Conn;
use crate::token;

/// Where a backend connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// A non-blocking connect is in progress.
    Connecting,
    /// Connected.
    Open,
}

/// One connection to a real server (or to the redirect address).
#[derive(Debug)]
pub struct BackendConn {
    /// The socket and what the poller reported about it.
    pub conn: Conn,
    /// The server address.
    pub addr: SocketAddr,
    /// Connecting or open.
    pub state: LinkState,
    /// The session using it, or `None` while it idles in the pool.
    pub owner: Option<usize>,
    /// Taken off the poller by [`pause_source`](Self::pause_source); never
    /// pooled in that state.
    source_paused: bool,
    /// When it was last put in the pool.
    idle_since: Instant,
    /// Its server's idle list (an index into `Backends::lists`).
    list: usize,
    /// Its place in that list while it idles.
    slot: usize,
}

impl BackendConn {
    /// Takes the socket off the poller while a spliced relay from it waits
    /// on its destination with a full pipe: until the destination drains,
    /// every segment the server sent would wake the worker for nothing (a
    /// cross-CPU wake-up each). Does nothing if it is off already, or if
    /// the poller refuses (the connection then just stays watched).
    pub fn pause_source(&mut self, registry: &Registry) {
        if !self.source_paused && registry.deregister(&mut self.conn.stream).is_ok() {
            self.source_paused = true;
        }
    }

    /// Puts a paused socket (connection `id`) back on the poller, readable
    /// assumed since its events were not watched; does nothing if it was
    /// not paused.
    pub fn resume_source(&mut self, registry: &Registry, id: usize) -> io::Result<()> {
        if self.source_paused {
            registry.register(
                &mut self.conn.stream,
                token::backend(id),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.source_paused = false;
            self.conn.ready.readable = true;
        }
        Ok(())
    }
}

/// The outcome of checking a connect in progress.
#[derive(Debug)]
pub enum ConnectCheck {
    /// Not finished yet (a spurious event).
    Pending,
    /// The connection is established.
    Connected,
    /// The connect failed.
    Failed(io::Error),
}

/// All backend connections of one worker.
#[derive(Debug)]
pub struct Backends {
    conns: Slab<BackendConn>,
    /// Server address → index of its idle list in `lists`.
    idle: HashMap<SocketAddr, usize>,
    /// Idle connection ids per server, most recently pooled last.
    lists: Vec<Vec<usize>>,
    idle_count: usize,
}

impl Default for Backends {
    fn default() -> Self {
        Self::new()
    }
}

impl Backends {
    /// No connections.
    pub fn new() -> Self {
        Backends {
            conns: Slab::with_capacity(1024),
            idle: HashMap::new(),
            lists: Vec::new(),
            idle_count: 0,
        }
    }

    /// Starts a non-blocking connect to `addr` for session `owner`.
    pub fn connect(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        owner: usize,
        now: Instant,
    ) -> io::Result<usize> {
        let mut stream = TcpStream::connect(addr)?;
        let lists = &mut self.lists;
        let list = *self.idle.entry(addr).or_insert_with(|| {
            lists.push(Vec::new());
            lists.len() - 1
        });
        let entry = self.conns.vacant_entry();
        let id = entry.key();
        registry.register(
            &mut stream,
            token::backend(id),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(BackendConn {
            conn: Conn::new(stream, false),
            addr,
            state: LinkState::Connecting,
            owner: Some(owner),
            source_paused: false,
            idle_since: now,
            list,
            slot: 0,
        });
        Ok(id)
    }

    /// Checks a connect in progress after an event (or a timeout).
    pub fn check_connect(&mut self, id: usize) -> ConnectCheck {
        let Some(b) = self.conns.get_mut(id) else {
            return ConnectCheck::Failed(io::Error::from(io::ErrorKind::NotConnected));
        };
        if b.state == LinkState::Open {
            return ConnectCheck::Connected;
        }
        match b.conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => return ConnectCheck::Failed(e),
            Ok(None) => {}
        }
        match b.conn.stream.peer_addr() {
            Ok(_) => {
                let _ = b.conn.stream.set_nodelay(true);
                b.state = LinkState::Open;
                // A fresh connection is writable; whether the server already
                // sent something is what the poller reported (an event sets
                // `readable`), so no read is wasted on an empty socket.
                b.conn.ready.writable = true;
                ConnectCheck::Connected
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => ConnectCheck::Pending,
            Err(e) => ConnectCheck::Failed(e),
        }
    }

    /// Takes a live idle connection to `addr` for session `owner`, if the
    /// pool has one. Dead or expired ones met on the way are dropped; with
    /// `probe`, each is first checked with a non-blocking `peek` (a caller
    /// that can replay its request on a fresh connection may skip it: a dead
    /// connection then shows at the first read or write).
    pub fn take_idle(
        &mut self,
        addr: SocketAddr,
        owner: usize,
        now: Instant,
        keepalive: Duration,
        probe: bool,
    ) -> Option<usize> {
        let &list = self.idle.get(&addr)?;
        while let Some(id) = self.lists[list].pop() {
            self.idle_count -= 1;
            if let Some(id) = self.claim(id, owner, now, keepalive, probe) {
                return Some(id);
            }
        }
        None
    }

    /// Takes idle connection `id` back for session `owner` when it is still
    /// in the pool, leads to `addr` and is alive (see [`Backends::take_idle`]
    /// for `probe`): a per-request session reusing the connection it pooled
    /// after its last request, without hashing or searching the pool.
    pub fn take_idle_by_id(
        &mut self,
        id: usize,
        addr: SocketAddr,
        owner: usize,
        now: Instant,
        keepalive: Duration,
        probe: bool,
    ) -> Option<usize> {
        let b = self.conns.get(id)?;
        if b.owner.is_some() || b.addr != addr {
            return None;
        }
        let (list, slot) = (b.list, b.slot);
        self.unlist(id, list, slot);
        self.claim(id, owner, now, keepalive, probe)
    }

    /// Hands unlisted idle connection `id` to `owner` if it is alive, else
    /// drops it.
    fn claim(
        &mut self,
        id: usize,
        owner: usize,
        now: Instant,
        keepalive: Duration,
        probe: bool,
    ) -> Option<usize> {
        let alive = self.conns.get(id).is_some_and(|b| {
            now.saturating_duration_since(b.idle_since) < keepalive
                && (!probe || is_quiet(&b.conn.stream))
        });
        if alive {
            if let Some(b) = self.conns.get_mut(id) {
                b.owner = Some(owner);
                // Nothing to read: the peek just returned `WouldBlock`, or
                // (unprobed) no event reported data, and the next byte
                // brings one.
                b.conn.ready.readable = false;
                b.conn.ready.writable = true;
                return Some(id);
            }
        }
        if self.conns.contains(id) {
            self.conns.remove(id);
        }
        None
    }

    /// Removes idle connection `id` from its list, found at `slot` (the
    /// last entry takes its place).
    fn unlist(&mut self, id: usize, list: usize, slot: usize) {
        let Some(ids) = self.lists.get_mut(list) else {
            return;
        };
        let slot = if ids.get(slot) == Some(&id) {
            slot
        } else {
            match ids.iter().position(|&x| x == id) {
                Some(pos) => pos,
                None => return,
            }
        };
        ids.swap_remove(slot);
        self.idle_count -= 1;
        if let Some(&moved) = ids.get(slot) {
            if let Some(m) = self.conns.get_mut(moved) {
                m.slot = slot;
            }
        }
    }

    /// Puts an open connection back in the pool of its server, or closes
    /// it when that pool already holds `max_idle`.
    /// Returns whether it was pooled.
    pub fn put_idle(&mut self, id: usize, max_idle: usize, now: Instant) -> bool {
        let Some(b) = self.conns.get_mut(id) else {
            return false;
        };
        let list = &mut self.lists[b.list];
        if list.len() >= max_idle || b.state != LinkState::Open || b.source_paused {
            self.conns.remove(id);
            return false;
        }
        b.owner = None;
        b.idle_since = now;
        b.slot = list.len();
        list.push(id);
        self.idle_count += 1;
        true
    }

    /// An event arrived on a connection that has no owner: an idle pooled
    /// connection the server closed or wrote to. Drops it unless the event
    /// was spurious.
    pub fn on_idle_event(&mut self, id: usize) {
        let dead = self
            .conns
            .get(id)
            .is_some_and(|b| b.owner.is_none() && !is_quiet(&b.conn.stream));
        if dead {
            self.close(id);
        }
    }

    /// Drops idle connections older than `keepalive`.
    pub fn sweep(&mut self, now: Instant, keepalive: Duration) {
        if self.idle_count == 0 {
            return;
        }
        let conns = &mut self.conns;
        let mut removed = 0;
        for list in &mut self.lists {
            list.retain(|&id| {
                let keep = conns
                    .get(id)
                    .is_some_and(|b| now.saturating_duration_since(b.idle_since) < keepalive);
                if !keep {
                    if conns.contains(id) {
                        conns.remove(id);
                    }
                    removed += 1;
                }
                keep
            });
            for (slot, &id) in list.iter().enumerate() {
                if let Some(b) = conns.get_mut(id) {
                    b.slot = slot;
                }
            }
        }
        self.idle_count -= removed;
    }

    /// Closes a connection (owned or pooled).
    pub fn close(&mut self, id: usize) {
        let Some(b) = self.conns.get(id) else {
            return;
        };
        if b.owner.is_none() {
            let (list, slot) = (b.list, b.slot);
            self.unlist(id, list, slot);
        }
        self.conns.remove(id);
    }

    /// The connection `id`, mutably.
    pub fn get_mut(&mut self, id: usize) -> Option<&mut BackendConn> {
        self.conns.get_mut(id)
    }

    /// Idle pooled connections.
    pub fn idle_count(&self) -> usize {
        self.idle_count
    }

    /// Closes every idle pooled connection.
    pub fn clear_idle(&mut self) {
        for list in &mut self.lists {
            for id in list.drain(..) {
                if self.conns.contains(id) {
                    self.conns.remove(id);
                }
            }
        }
        self.idle_count = 0;
    }
}

/// Whether a connection has nothing to read and is not closed: a pooled
/// connection must be quiet, since a server sends nothing unasked.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
