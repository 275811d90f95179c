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
//! Each destination (an address, and for a server reached over TLS its
//! client configuration) gets its idle list once, at the first connect to it;
//! a connection remembers its list and its place in it, so putting it back
//! and taking it again by id (a per-request session reusing the connection
//! it just returned) cost no hashing and no search.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ktcpvs_core::model::ProxyVersion;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use rustc_hash::FxHashMap;
use slab::Slab;

use crate::io::conn::Conn;
use crate::proxy_protocol::{encode, encode_local, Addresses, MAX_ENCODED};
use crate::tls::ClientTls;
use crate::token;

/// What a backend connection is used for: one state, carrying what only
/// that state needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// A non-blocking connect in progress for session `owner`.
    Connecting {
        /// The session it is for.
        owner: usize,
    },
    /// Connected, its TLS handshake (the proxy as client) under way, for
    /// session `owner`: not usable before it is done.
    Handshaking {
        /// The session it is for.
        owner: usize,
    },
    /// Connected and used by session `owner`.
    Owned {
        /// The session using it.
        owner: usize,
    },
    /// Connected and idle in its server's pool since `since`, at `slot`
    /// of its server's idle list.
    Idle {
        /// When it was pooled, in whole seconds since the pool's epoch
        /// (idle times are compared with `keepalive_timeout`, whole
        /// seconds; a `u32` keeps every connection in the slab small).
        since: u32,
        /// Its place in the list.
        slot: u32,
    },
}

/// One connection to a real server (or to the redirect address).
#[derive(Debug)]
pub(crate) struct BackendConn {
    /// The socket and what the poller reported about it.
    pub conn: Conn,
    /// What it is used for.
    pub use_: Use,
    /// Its server's idle list (an index into `Backends::lists`), which also
    /// names its address.
    list: u32,
    /// Taken off the poller by [`pause_source`](Self::pause_source); never
    /// pooled in that state.
    source_paused: bool,
    /// Opened with a PROXY protocol header naming one client: never pooled
    /// for another.
    proxied: bool,
    /// The PROXY protocol header to send once the connect completes.
    preface: Option<Box<Preface>>,
}

/// A PROXY protocol header waiting for its connection to be established.
#[derive(Debug)]
struct Preface {
    bytes: [u8; MAX_ENCODED],
    len: usize,
}

impl Preface {
    /// The header of `version` for `origin`'s connection, or one naming no
    /// client (a health probe's) without it.
    fn new(version: ProxyVersion, origin: Option<Addresses>) -> Box<Preface> {
        let mut bytes = [0u8; MAX_ENCODED];
        let len = match origin {
            Some(a) => encode(version, a.source, a.destination, &mut bytes),
            None => encode_local(version, &mut bytes),
        };
        Box::new(Preface { bytes, len })
    }

    /// Writes the header on a just-established socket, whose send buffer
    /// is empty: it goes whole or the connect counts as failed.
    fn send(&self, stream: &mut TcpStream) -> io::Result<()> {
        match stream.write(&self.bytes[..self.len]) {
            Ok(n) if n == self.len => Ok(()),
            Ok(_) => Err(io::Error::other("PROXY protocol header sent in part")),
            Err(e) => Err(e),
        }
    }
}

impl BackendConn {
    /// The session using it, or `None` while it idles in the pool.
    pub fn owner(&self) -> Option<usize> {
        match self.use_ {
            Use::Connecting { owner } | Use::Handshaking { owner } | Use::Owned { owner } => {
                Some(owner)
            }
            Use::Idle { .. } => None,
        }
    }

    /// Takes the socket off the poller while a spliced relay from it waits
    /// on its destination with a full pipe: until the destination drains,
    /// every segment the server sent would wake the worker for nothing (a
    /// cross-CPU wake-up each). Does nothing if it is off already, or if
    /// the poller refuses (the connection then just stays watched).
    pub fn pause_source(&mut self, registry: &Registry) {
        if self.source_paused {
            return;
        }
        if let Some(stream) = self.conn.socket_mut() {
            if registry.deregister(stream).is_ok() {
                self.source_paused = true;
            }
        }
    }

    /// Puts a paused socket (connection `id`) back on the poller, readable
    /// assumed since its events were not watched; does nothing if it was
    /// not paused.
    pub fn resume_source(&mut self, registry: &Registry, id: usize) -> io::Result<()> {
        if self.source_paused {
            let stream = self
                .conn
                .socket_mut()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
            registry.register(
                stream,
                token::backend(id),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.source_paused = false;
            let writable = self.conn.ready.writable;
            self.conn.assume_ready(true, writable);
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

/// Where a backend connection leads, as the pool tells connections apart:
/// the address and, for a server reached over TLS, its client
/// configuration (by identity), so that a connection is only ever lent to
/// the destination it was made and verified for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Destination<'a> {
    /// The server's address.
    pub addr: SocketAddr,
    /// How it is reached over TLS; `None`: plain TCP.
    pub tls: Option<&'a ClientTls>,
    /// The PROXY protocol header it expects first, if any.
    pub send_proxy: Option<ProxyVersion>,
}

/// A [`Destination`] as a key: the address and the identity of the TLS
/// configuration (0: plain TCP).
type PoolKey = (SocketAddr, usize);

impl Destination<'_> {
    /// A plain TCP destination.
    pub fn plain(addr: SocketAddr) -> Destination<'static> {
        Destination {
            addr,
            tls: None,
            send_proxy: None,
        }
    }

    fn key(&self) -> PoolKey {
        let tls = self.tls.map_or(0, |t| std::ptr::from_ref(t) as usize);
        (self.addr, tls)
    }
}

/// The idle connections to one destination, most recently pooled last.
#[derive(Debug)]
struct IdleList {
    key: PoolKey,
    ids: Vec<usize>,
}

/// All backend connections of one worker.
#[derive(Debug)]
pub(crate) struct Backends {
    conns: Slab<BackendConn>,
    /// Destination → index of its idle list in `lists`. The keys are the
    /// configured servers' addresses, not chosen by clients, so a fast
    /// hash without a random key is safe (and one is computed for every
    /// request that takes a pooled connection).
    idle: FxHashMap<PoolKey, u32>,
    /// Idle connection ids per server.
    lists: Vec<IdleList>,
    idle_count: usize,
    /// Second 0 of the idle times ([`Use::Idle`]).
    epoch: Instant,
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
            idle: FxHashMap::default(),
            lists: Vec::new(),
            idle_count: 0,
            epoch: Instant::now(),
        }
    }

    /// Starts a non-blocking connect to `to` for session `owner` (over TLS
    /// when `to` says so: the handshake follows the connect, see
    /// [`check_connect`](Self::check_connect)). A destination that expects
    /// a PROXY protocol header gets one first, naming `origin` (or no
    /// client without it), and the connection is never pooled.
    pub fn connect(
        &mut self,
        registry: &Registry,
        to: Destination<'_>,
        owner: usize,
        origin: Option<Addresses>,
    ) -> io::Result<usize> {
        let tls = match to.tls {
            Some(t) => Some(
                t.connection()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let mut stream = TcpStream::connect(to.addr)?;
        let lists = &mut self.lists;
        let key = to.key();
        let list = *self.idle.entry(key).or_insert_with(|| {
            lists.push(IdleList {
                key,
                ids: Vec::new(),
            });
            // Far fewer servers than 2^32.
            (lists.len() - 1) as u32
        });
        let entry = self.conns.vacant_entry();
        let id = entry.key();
        registry.register(
            &mut stream,
            token::backend(id),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let conn = match tls {
            Some(tls) => Conn::with_client_tls(stream, tls),
            None => Conn::new(stream, false),
        };
        entry.insert(BackendConn {
            conn,
            use_: Use::Connecting { owner },
            list,
            source_paused: false,
            proxied: to.send_proxy.is_some(),
            preface: to.send_proxy.map(|v| Preface::new(v, origin)),
        });
        Ok(id)
    }

    /// Checks a connect in progress after an event (or a timeout): the TCP
    /// connect, then, for a server reached over TLS, the handshake.
    pub fn check_connect(&mut self, id: usize) -> ConnectCheck {
        let Some(b) = self.conns.get_mut(id) else {
            return ConnectCheck::Failed(io::Error::from(io::ErrorKind::NotConnected));
        };
        let owner = match b.use_ {
            Use::Connecting { owner } => {
                let stream = match b.conn.socket_mut() {
                    Some(stream) => stream,
                    None => {
                        return ConnectCheck::Failed(io::Error::from(io::ErrorKind::NotConnected))
                    }
                };
                match stream.take_error() {
                    Ok(Some(e)) | Err(e) => return ConnectCheck::Failed(e),
                    Ok(None) => {}
                }
                match stream.peer_addr() {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        return ConnectCheck::Pending
                    }
                    Err(e) => return ConnectCheck::Failed(e),
                }
                let _ = stream.set_nodelay(true);
                if let Some(preface) = b.preface.take() {
                    if let Err(e) = preface.send(stream) {
                        return ConnectCheck::Failed(e);
                    }
                }
                // A fresh connection is writable; whether the server already
                // sent something is what the poller reported (an event sets
                // `readable`), so no read is wasted on an empty socket.
                let readable = b.conn.ready.readable;
                b.conn.assume_ready(readable, true);
                b.use_ = Use::Handshaking { owner };
                owner
            }
            Use::Handshaking { owner } => owner,
            Use::Owned { .. } | Use::Idle { .. } => return ConnectCheck::Connected,
        };
        match b.conn.handshake() {
            Ok(true) => {
                b.use_ = Use::Owned { owner };
                ConnectCheck::Connected
            }
            Ok(false) => ConnectCheck::Pending,
            Err(e) => ConnectCheck::Failed(e),
        }
    }

    /// Takes a live idle connection to `to` for session `owner`, if the
    /// pool has one. Dead or expired ones met on the way are dropped; with
    /// `probe`, each is first checked with a non-blocking `peek` (a caller
    /// that can replay its request on a fresh connection may skip it: a dead
    /// connection then shows at the first read or write).
    pub fn take_idle(
        &mut self,
        to: Destination<'_>,
        owner: usize,
        now: Instant,
        keepalive: Duration,
        probe: bool,
    ) -> Option<usize> {
        let &list = self.idle.get(&to.key())?;
        while let Some(id) = self.lists[list as usize].ids.pop() {
            self.idle_count -= 1;
            if let Some(id) = self.claim(id, owner, now, keepalive, probe) {
                return Some(id);
            }
        }
        None
    }

    /// Takes idle connection `id` back for session `owner` when it is still
    /// in the pool, leads to `to` and is alive (see [`Backends::take_idle`]
    /// for `probe`): a per-request session reusing the connection it pooled
    /// after its last request, without hashing or searching the pool.
    pub fn take_idle_by_id(
        &mut self,
        id: usize,
        to: Destination<'_>,
        owner: usize,
        now: Instant,
        keepalive: Duration,
        probe: bool,
    ) -> Option<usize> {
        let b = self.conns.get(id)?;
        let Use::Idle { slot, .. } = b.use_ else {
            return None;
        };
        if self.lists[b.list as usize].key != to.key() {
            return None;
        }
        self.unlist(id, b.list, slot);
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
        let epoch = self.epoch;
        let alive = self.conns.get(id).is_some_and(|b| {
            matches!(b.use_, Use::Idle { since, .. } if idle_for(epoch, since, now) < keepalive)
                && (!probe || b.conn.socket().is_some_and(is_quiet))
        });
        if alive {
            if let Some(b) = self.conns.get_mut(id) {
                b.use_ = Use::Owned { owner };
                // Nothing to read: the peek just returned `WouldBlock`, or
                // (unprobed) no event reported data, and the next byte
                // brings one.
                b.conn.assume_ready(false, true);
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
    fn unlist(&mut self, id: usize, list: u32, slot: u32) {
        let Some(IdleList { ids, .. }) = self.lists.get_mut(list as usize) else {
            return;
        };
        let slot = if ids.get(slot as usize) == Some(&id) {
            slot as usize
        } else {
            match ids.iter().position(|&x| x == id) {
                Some(pos) => pos,
                None => return,
            }
        };
        ids.swap_remove(slot);
        self.idle_count -= 1;
        if let Some(&moved) = ids.get(slot) {
            if let Some(Use::Idle { slot: s, .. }) = self.conns.get_mut(moved).map(|m| &mut m.use_)
            {
                // A slot is below the list length, far below 2^32.
                *s = slot as u32;
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
        let ids = &mut self.lists[b.list as usize].ids;
        let doubtful = b.source_paused || b.proxied || b.conn.wants_write();
        if ids.len() >= max_idle || !matches!(b.use_, Use::Owned { .. }) || doubtful {
            self.conns.remove(id);
            return false;
        }
        b.use_ = Use::Idle {
            since: secs_since(self.epoch, now),
            // The list holds at most `max_idle` (u16 range) entries.
            slot: ids.len() as u32,
        };
        ids.push(id);
        self.idle_count += 1;
        true
    }

    /// Whether connection `id` is open with nothing to read (a
    /// non-blocking `peek`): no bytes the server sent unasked, no FIN.
    pub fn is_quiet(&self, id: usize) -> bool {
        self.conns
            .get(id)
            .is_some_and(|b| b.conn.socket().is_some_and(is_quiet))
    }

    /// An event arrived on a connection that has no owner: an idle pooled
    /// connection the server closed or wrote to. Drops it unless the event
    /// was spurious.
    pub fn on_idle_event(&mut self, id: usize) {
        let dead = self.conns.get(id).is_some_and(|b| {
            matches!(b.use_, Use::Idle { .. }) && !b.conn.socket().is_some_and(is_quiet)
        });
        if dead {
            self.close(id);
        }
    }

    /// Drops idle connections older than `keepalive`.
    pub fn sweep(&mut self, now: Instant, keepalive: Duration) {
        if self.idle_count == 0 {
            return;
        }
        let (conns, epoch) = (&mut self.conns, self.epoch);
        let mut removed = 0;
        for IdleList { ids, .. } in &mut self.lists {
            ids.retain(|&id| {
                let keep = conns.get(id).is_some_and(|b| {
                    matches!(b.use_, Use::Idle { since, .. } if idle_for(epoch, since, now) < keepalive)
                });
                if !keep {
                    if conns.contains(id) {
                        conns.remove(id);
                    }
                    removed += 1;
                }
                keep
            });
            for (slot, &id) in ids.iter().enumerate() {
                if let Some(Use::Idle { slot: s, .. }) = conns.get_mut(id).map(|b| &mut b.use_) {
                    *s = slot as u32;
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
        if let Use::Idle { slot, .. } = b.use_ {
            self.unlist(id, b.list, slot);
        }
        self.conns.remove(id);
    }

    /// The connection `id`, mutably.
    pub fn get_mut(&mut self, id: usize) -> Option<&mut BackendConn> {
        self.conns.get_mut(id)
    }

    /// How many connections sessions hold (exchanges in flight, and the
    /// connections per-connection routes keep).
    pub fn busy_count(&self) -> usize {
        self.conns.len() - self.idle_count
    }

    /// Idle pooled connections.
    pub fn idle_count(&self) -> usize {
        self.idle_count
    }

    /// Closes every idle pooled connection.
    pub fn clear_idle(&mut self) {
        for IdleList { ids, .. } in &mut self.lists {
            for id in ids.drain(..) {
                if self.conns.contains(id) {
                    self.conns.remove(id);
                }
            }
        }
        self.idle_count = 0;
    }
}

/// `now` in whole seconds since `epoch`.
fn secs_since(epoch: Instant, now: Instant) -> u32 {
    u32::try_from(now.saturating_duration_since(epoch).as_secs()).unwrap_or(u32::MAX)
}

/// How long a connection pooled at `since` (see [`Use::Idle`]) has idled
/// at `now`.
fn idle_for(epoch: Instant, since: u32, now: Instant) -> Duration {
    Duration::from_secs(u64::from(secs_since(epoch, now).saturating_sub(since)))
}

/// Whether a connection has nothing to read and is not closed: a pooled
/// connection must be quiet, since a server sends nothing unasked.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
