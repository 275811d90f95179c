//! The layer-4 tunnel: a bidirectional byte relay between a client and one
//! backend connection, with correct half-close.
//!
//! Each direction is a `Pipe` over the shared relay loop
//! ([`super::relay`]), open until its source sends FIN, which is passed on
//! (the destination's write side shut) once everything before it went out.
//! A FIN in one direction is passed on while the other keeps flowing; the session ends when both pipes are
//! closed, on any error (a reset closes both sides), or after `read_timeout`
//! without a relayed byte. Before relaying, the tunnel connects to a picked
//! server, and when the connect fails or times out it retries on another
//! server with the failed ones in `exclude`.
//!
//! An HTTP session that receives `101 Switching Protocols`, or whose
//! request no server takes and whose redirect address it connected to,
//! becomes a tunnel over that backend connection ([`Tunnel::relaying`]).

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use ktcpvs_core::live::QueueSlot;
use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};
use ktcpvs_core::Lease;

use super::relay::{Direction, Progress, RelayError};
use super::{Ctx, Flow};
use crate::access_log::Record;
use crate::http::BodyState;
use crate::io::buffer::{Buffer, BufferPool};
use crate::io::conn::Conn;
use crate::upstream::connect::{
    fail_target, poll_connect, record_connect_time, start_connect, Chooser, Connecting, Excluded,
    NoBackend,
};
use crate::upstream::pool::ConnectCheck;

/// One direction of the relay: open until its source sends FIN, which is
/// passed on (the destination's write side is shut) once everything before
/// it went out.
#[derive(Debug)]
struct Pipe {
    dir: Direction,
    open: bool,
}

impl Pipe {
    /// An open pipe, holding `buf` if bytes are already waiting.
    fn new(buf: Option<Buffer>) -> Self {
        Pipe {
            dir: Direction::new(buf),
            open: true,
        }
    }

    /// Moves bytes from `src` to `dst` until one of them would block; with
    /// `zerocopy`, through a kernel pipe once the buffer is empty. Returns
    /// whether it stopped for want of a buffer.
    fn pump(
        &mut self,
        src: &mut Conn,
        dst: &mut Conn,
        pool: &mut BufferPool,
        zerocopy: bool,
    ) -> io::Result<bool> {
        if !self.open {
            return Ok(false);
        }
        // A tunnel direction is a stream that ends when its source closes.
        let mut stream = BodyState::CloseDelimited;
        match self.dir.relay(src, dst, &mut stream, pool, zerocopy) {
            Ok(Progress::Eof) => {
                match dst.shutdown_write() {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => return Err(e),
                }
                self.open = false;
                self.dir.clear();
                Ok(false)
            }
            Ok(Progress::Starved) => Ok(true),
            Ok(Progress::Blocked | Progress::Done) => Ok(false),
            Err(RelayError::Io(e)) => Err(e),
            // A close-delimited stream has no framing to break.
            Err(RelayError::Truncated | RelayError::Framing(_)) => {
                Err(io::Error::from(io::ErrorKind::InvalidData))
            }
        }
    }
}

/// Where the tunnel is.
#[derive(Debug)]
enum Phase {
    /// Every server the connection could go to is at its `maxconn`: it
    /// waits in the service's queue (its place is the slot) until one
    /// frees a slot or the deadline (`queue_timeout`) passes.
    Queued(QueueSlot, Instant),
    /// Connecting to a picked server; the deadline is the connect timeout.
    Connecting(Connecting, Instant),
    /// Relaying over an open backend connection.
    Relaying {
        backend: usize,
        lease: Option<Lease>,
    },
    /// Finished; waiting to be closed.
    Finished,
}

/// A layer-4 relay session.
#[derive(Debug)]
pub(crate) struct Tunnel {
    phase: Phase,
    up: Pipe,
    down: Pipe,
    excluded: Excluded,
    last_activity: Instant,
    /// When it began, where it went and what it moved, for its access-log
    /// line.
    opened: Instant,
    server: Option<SocketAddr>,
    connect: Option<std::time::Duration>,
    bytes: (u64, u64),
}

impl Tunnel {
    /// Starts a layer-4 session: picks a server and starts connecting.
    /// `None` when no server can be reached (the client is then closed).
    pub fn start(
        client: SocketAddr,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Option<Tunnel> {
        let mut excluded = Excluded::default();
        service.load().add_request();
        let phase = match connect_next(service, client, &mut excluded, ctx) {
            Ok(connecting) => {
                let deadline =
                    ctx.now + service.timeout(TimeoutKind::Connect, ctx.snapshot.settings());
                Phase::Connecting(connecting, deadline)
            }
            Err(NoBackend::Full) => {
                let health = &service.config().health;
                let slot = (health.queue > 0)
                    .then(|| service.load().try_enqueue(health.queue, ctx.now))
                    .flatten();
                let Some(slot) = slot else {
                    // No room to wait: closed, as with no server.
                    service.load().add_error();
                    return None;
                };
                Phase::Queued(slot, ctx.now + health.queue_timeout)
            }
            Err(_) => return None,
        };
        Some(Tunnel {
            phase,
            up: Pipe::new(None),
            down: Pipe::new(None),
            excluded,
            last_activity: ctx.now,
            opened: ctx.now,
            server: None,
            connect: None,
            bytes: (0, 0),
        })
    }

    /// A tunnel over an already open backend connection (after `101`),
    /// with bytes already read from either side.
    pub fn relaying(
        backend: usize,
        lease: Option<Lease>,
        up: Option<Buffer>,
        down: Option<Buffer>,
        now: Instant,
    ) -> Tunnel {
        Tunnel {
            phase: Phase::Relaying { backend, lease },
            up: Pipe::new(up),
            down: Pipe::new(down),
            excluded: Excluded::default(),
            last_activity: now,
            opened: now,
            server: None,
            connect: None,
            bytes: (0, 0),
        }
    }

    /// Does all the I/O it can.
    pub fn drive(
        &mut self,
        client: &mut Conn,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Flow {
        if let Phase::Queued(_, deadline) = &self.phase {
            let deadline = *deadline;
            if !service.any_slot_free() {
                return Flow::Queued(deadline);
            }
            let Phase::Queued(slot, _) = std::mem::replace(&mut self.phase, Phase::Finished) else {
                return Flow::Done;
            };
            let peer = client.stream().and_then(|s| s.peer_addr()).ok();
            match peer.map(|p| connect_next(service, p, &mut self.excluded, ctx)) {
                Some(Ok(next)) => {
                    slot.served(ctx.now);
                    let timeout = service.timeout(TimeoutKind::Connect, ctx.snapshot.settings());
                    self.phase = Phase::Connecting(next, ctx.now + timeout);
                }
                Some(Err(NoBackend::Full)) => {
                    self.phase = Phase::Queued(slot, deadline);
                    return Flow::Queued(deadline);
                }
                _ => return Flow::Done,
            }
        }
        if let Phase::Connecting(connecting, deadline) = &self.phase {
            let (target, addr, id) = (connecting.target, connecting.addr, connecting.conn);
            match poll_connect(service, target, addr, id, ctx.backends) {
                ConnectCheck::Pending => return Flow::Open(Some(*deadline)),
                ConnectCheck::Connected => self.connected(service, ctx),
                ConnectCheck::Failed(e) => return self.retry(client, service, &e, ctx),
            }
        }
        let Phase::Relaying { backend, lease } = &self.phase else {
            return Flow::Done;
        };
        let backend = *backend;
        let Some(link) = ctx.backends.get_mut(backend) else {
            return Flow::Done;
        };
        // Driven by the client (it drained, or sent something for the
        // server): a paused server socket is watched again first.
        if link.resume_source(ctx.registry, backend).is_err() {
            return Flow::Done;
        }
        // TLS records to the server a send accepted earlier go first.
        if link.conn.wants_write() && link.conn.flush().is_err() {
            return Flow::Done;
        }
        let zerocopy = ctx.snapshot.settings().zerocopy_send() == 1;
        let up = self.up.pump(client, &mut link.conn, ctx.pool, zerocopy);
        let down = self.down.pump(&mut link.conn, client, ctx.pool, zerocopy);
        // The server's bytes fill the kernel pipe and the client takes
        // none, while nothing waits to be written to the server: the
        // server's socket leaves the poller until the client drains.
        if matches!((&up, &down), (Ok(_), Ok(_)))
            && !client.ready.writable
            && self.down.open
            && self.down.dir.pipe_is_full()
            && !self.up.dir.holds_bytes()
        {
            link.pause_source(ctx.registry);
        }
        // One add per counter and relay batch, whatever the path (buffers
        // or splice) and however the batch ended.
        let from_client = client.take_traffic();
        if !from_client.is_empty() {
            service
                .load()
                .add_bytes(from_client.read, from_client.written);
            self.bytes.0 += from_client.read;
            self.bytes.1 += from_client.written;
        }
        let to_server = link.conn.take_traffic();
        if let (Some(lease), false) = (lease, to_server.is_empty()) {
            lease.load().add_bytes(to_server.written, to_server.read);
        }
        let starved = match (up, down) {
            (Ok(up), Ok(down)) => up || down,
            (Err(e), _) | (_, Err(e)) => {
                log::debug!("[{}] relay ended: {e}", service.config().name);
                return Flow::Done;
            }
        };
        if !from_client.is_empty() || !to_server.is_empty() {
            self.last_activity = ctx.now;
        }
        if !self.up.open && !self.down.open {
            return Flow::Done;
        }
        let idle = self.last_activity + service.timeout(TimeoutKind::Read, ctx.snapshot.settings());
        if starved {
            Flow::Starved(Some(idle))
        } else {
            Flow::Open(Some(idle))
        }
    }

    fn connected(&mut self, service: &ServiceSnapshot, ctx: &Ctx<'_>) {
        if let Phase::Connecting(c, deadline) = std::mem::replace(&mut self.phase, Phase::Finished)
        {
            let server = c.lease.as_ref().map(|l| &**l.load());
            let settings = ctx.snapshot;
            let took = record_connect_time(service, server, deadline, ctx.now, settings.settings());
            self.server = Some(c.addr);
            self.connect = Some(took);
            self.phase = Phase::Relaying {
                backend: c.conn,
                lease: c.lease,
            };
            self.last_activity = ctx.now;
        }
    }

    /// A connect failed or timed out: try another server.
    fn retry(
        &mut self,
        client: &mut Conn,
        service: &ServiceSnapshot,
        error: &io::Error,
        ctx: &mut Ctx<'_>,
    ) -> Flow {
        let Phase::Connecting(c, _) = std::mem::replace(&mut self.phase, Phase::Finished) else {
            return Flow::Done;
        };
        ctx.backends.close(c.conn);
        fail_target(
            service,
            c.target,
            c.addr,
            error,
            &mut self.excluded,
            ctx.backoff(),
        );
        drop(c.lease);
        let peer = client.stream().and_then(|s| s.peer_addr()).ok();
        let Some(peer) = peer else {
            return Flow::Done;
        };
        match connect_next(service, peer, &mut self.excluded, ctx) {
            Ok(next) => {
                let deadline =
                    ctx.now + service.timeout(TimeoutKind::Connect, ctx.snapshot.settings());
                self.phase = Phase::Connecting(next, deadline);
                Flow::Open(Some(deadline))
            }
            Err(_) => Flow::Done,
        }
    }

    /// The deadline passed: a connect timed out, or the relay idled for
    /// `read_timeout`.
    pub fn on_timeout(
        &mut self,
        client: &mut Conn,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Flow {
        match &self.phase {
            Phase::Queued(_, deadline) if ctx.now >= *deadline => {
                if let Phase::Queued(slot, _) = std::mem::replace(&mut self.phase, Phase::Finished)
                {
                    log::debug!(
                        "[{}] a connection waited its queue timeout; closing",
                        service.config().name
                    );
                    slot.timed_out(ctx.now);
                    service.load().add_error();
                }
                Flow::Done
            }
            Phase::Queued(_, deadline) => Flow::Queued(*deadline),
            Phase::Connecting(..) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                self.retry(client, service, &e, ctx)
            }
            Phase::Relaying { .. } => {
                log::debug!(
                    "[{}] relay idle for read_timeout; closing",
                    service.config().name
                );
                Flow::Done
            }
            Phase::Finished => Flow::Done,
        }
    }

    /// Releases the backend connection and buffers, and writes the
    /// connection's access-log line when logging.
    pub fn close(mut self, client: SocketAddr, service: &ServiceSnapshot, ctx: &mut Ctx<'_>) {
        if let Some((log, format)) = ctx.logging() {
            let total = ctx.now.saturating_duration_since(self.opened);
            let record = Record {
                time: std::time::SystemTime::now()
                    .checked_sub(total)
                    .unwrap_or_else(std::time::SystemTime::now),
                client,
                service: &service.config().name,
                rule: None,
                server: self.server,
                request_line: b"",
                status: 0,
                bytes_in: self.bytes.0,
                bytes_out: self.bytes.1,
                connect: self.connect,
                first_byte: None,
                total,
                retries: self.excluded.failed,
                end: "closed",
            };
            let mut line = log.buffer();
            record.write(format, &mut line);
            log.submit(line);
        }
        match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Connecting(c, _) => ctx.backends.close(c.conn),
            Phase::Relaying { backend, .. } => ctx.backends.close(backend),
            Phase::Queued(..) | Phase::Finished => {}
        }
    }
}

fn connect_next(
    service: &ServiceSnapshot,
    client: SocketAddr,
    excluded: &mut Excluded,
    ctx: &mut Ctx<'_>,
) -> Result<Connecting, NoBackend> {
    // A layer-4 service picks as it accepts, before any TLS handshake.
    let mut chooser = Chooser::new(service, client, None, None);
    let mut pick = |exclude: &[usize]| chooser.pick(exclude);
    let failed = match start_connect(service, &mut pick, excluded, &mut ctx.dialer()) {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    match failed {
        NoBackend::NoServer => {
            log::debug!("[{}] no server for {client}", service.config().name);
        }
        NoBackend::AllFailed => {
            log::warn!(
                "[{}] every server failed for {client}",
                service.config().name
            );
            service.load().add_error();
        }
        NoBackend::LocalExhaustion | NoBackend::NoRetry => service.load().add_error(),
        NoBackend::Full => log::debug!(
            "[{}] every server at its maxconn for {client}",
            service.config().name
        ),
    }
    Err(failed)
}
