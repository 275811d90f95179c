//! Sessions: one accepted client connection and everything it owns (its
//! backend connection while in use, its buffers while they hold bytes, its
//! deadline).
//!
//! A session is either a layer-4 [`tunnel::Tunnel`] or an HTTP/1.x
//! [`http::HttpSession`] (which becomes a tunnel after `101 Switching
//! Protocols`). Both are driven the same way: the worker records what the
//! poller reported in each socket's readiness and calls `drive`, which does
//! all the I/O it can and returns a [`Flow`].
//!
//! What the poller reported is kept apart from what a session wants (see
//! [`crate::io::conn`]): a state decides which readiness flags it acts on.

pub(crate) mod http;
pub(crate) mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::Snapshot;
use mio::Registry;

use crate::io::buffer::BufferPool;
use crate::io::conn::Conn;
use crate::listener::ClientGate;
use crate::timer::Deadline;
use crate::upstream::connect::Dialer;
use crate::upstream::pool::Backends;

/// What a session asks of the worker after being driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep going; wake me at this deadline (if any).
    Open(Option<Instant>),
    /// Keep going, but I could not get a buffer: drive me again when one
    /// is given back.
    Starved(Option<Instant>),
    /// Close the session.
    Done,
}

/// The worker state a session may use while it is driven.
pub(crate) struct Ctx<'a> {
    /// The poller's registry, for registering backend sockets.
    pub registry: &'a Registry,
    /// The worker's buffers.
    pub pool: &'a mut BufferPool,
    /// The worker's backend connections.
    pub backends: &'a mut Backends,
    /// The time at the top of this loop iteration.
    pub now: Instant,
    /// The session's own slab key.
    pub key: usize,
    /// The published configuration.
    pub snapshots: &'a ArcSwap<Snapshot>,
    /// Whether the engine is draining (finish requests, keep nothing alive).
    pub draining: bool,
}

impl Ctx<'_> {
    /// What starting a connect for this session needs.
    pub fn dialer(&mut self) -> Dialer<'_> {
        let backoff = self.backoff();
        Dialer {
            registry: self.registry,
            backends: self.backends,
            owner: self.key,
            now: self.now,
            backoff,
        }
    }

    /// How long a server whose connect failed stays out of rotation
    /// (`server_retry_backoff`).
    pub fn backoff(&self) -> Duration {
        Duration::from_secs(self.snapshots.load().settings().server_retry_backoff())
    }
}

/// One client connection.
pub(crate) struct Session {
    /// The client socket.
    pub client: Conn,
    /// The client's address.
    pub peer: SocketAddr,
    /// The service version the connection was accepted under.
    pub service: Arc<ServiceSnapshot>,
    /// The `maxclients` gate the connection holds a slot of.
    pub gate: Arc<ClientGate>,
    /// The session's wake-up time in the worker's timer heap.
    pub deadline: Deadline,
    /// What kind of relay it is.
    pub kind: Kind,
    /// Whether the client socket is registered with the poller. It is
    /// registered the first time the session waits and
    /// [`needs_client_events`](Self::needs_client_events): a connection
    /// served without its socket ever blocking is never registered.
    pub registered: bool,
}

/// The two kinds of session. Both are boxed so that a slab slot stays a
/// few words whatever the kind: every slot of the worker's session slab is
/// as large as its largest variant, and idle keep-alive connections are
/// the many.
pub(crate) enum Kind {
    /// Layer-4 byte relay.
    Tunnel(Box<tunnel::Tunnel>),
    /// HTTP/1.x content switching.
    Http(Box<http::HttpSession>),
}

impl Session {
    /// Does all the I/O the session can.
    pub fn drive(&mut self, ctx: &mut Ctx<'_>) -> Flow {
        match &mut self.kind {
            Kind::Tunnel(t) => t.drive(&mut self.client, &self.service, ctx),
            Kind::Http(h) => match h.drive(&mut self.client, self.peer, &self.service, ctx) {
                http::HttpFlow::Flow(flow) => flow,
                http::HttpFlow::Upgrade(tunnel) => {
                    self.kind = Kind::Tunnel(Box::new(tunnel));
                    self.drive(ctx)
                }
            },
        }
    }

    /// The session's deadline passed.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Flow {
        match &mut self.kind {
            Kind::Tunnel(t) => t.on_timeout(&mut self.client, &self.service, ctx),
            Kind::Http(h) => match h.on_timeout(&mut self.client, self.peer, &self.service, ctx) {
                http::HttpFlow::Flow(flow) => flow,
                http::HttpFlow::Upgrade(tunnel) => {
                    self.kind = Kind::Tunnel(Box::new(tunnel));
                    self.drive(ctx)
                }
            },
        }
    }

    /// Whether the session may need the client socket's readiness events
    /// while it waits (a tunnel always does; an HTTP session not while it
    /// waits only for its backend).
    pub fn needs_client_events(&self) -> bool {
        match &self.kind {
            Kind::Tunnel(_) => true,
            Kind::Http(h) => h.needs_client_events(),
        }
    }

    /// Whether the session is between requests with nothing in flight, so
    /// a draining engine may close it now.
    pub fn is_idle(&self) -> bool {
        match &self.kind {
            Kind::Tunnel(_) => false,
            Kind::Http(h) => h.is_idle(),
        }
    }

    /// Releases everything the session holds. An HTTP session's box comes
    /// back emptied (see [`http::HttpSession::close`]) so that the worker
    /// can reuse the allocation for its next connection.
    pub fn close(mut self, ctx: &mut Ctx<'_>) -> Option<Box<http::HttpSession>> {
        let rest = self.client.take_traffic();
        if !rest.is_empty() {
            self.service.load().add_bytes(rest.read, rest.written);
        }
        let spare = match self.kind {
            Kind::Tunnel(t) => {
                t.close(ctx);
                None
            }
            Kind::Http(mut h) => {
                h.close(ctx);
                Some(h)
            }
        };
        self.gate.leave();
        self.service.load().connection_closed();
        spare
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    /// An idle keep-alive connection costs its slab slot plus its boxed
    /// session: both are kept small (scenario 4 of the benchmark measures
    /// resident memory per idle connection). A slot must not grow back to
    /// the size of the largest session kind.
    #[test]
    fn idle_sessions_stay_small() {
        assert!(
            size_of::<super::Session>() <= 160,
            "{}",
            size_of::<super::Session>()
        );
        assert_eq!(size_of::<super::Kind>(), 16);
        let http = size_of::<super::http::HttpSession>();
        assert!(http <= 512, "HttpSession is {http} bytes");
    }
}
