//! Binary upgrade over the control socket: a new `ktcpvsd` takes over the
//! listening sockets and the configuration of the running one, as HAProxy's
//! `-x` and Pingora's upgrade do.
//!
//! 1. The new daemon connects (the socket's usual trust check: only the
//!    daemon's own user or root is served at all) and sends `handover`.
//! 2. The old daemon answers `OK n` with the text of a [`HandoverBody`]
//!    (which descriptor is which listener, the started services, the
//!    settings, the configuration), the descriptors travelling with the
//!    reply's first bytes as `SCM_RIGHTS` ancillary data (at most
//!    [`MAX_FDS`]).
//! 3. The new daemon checks every descriptor (a listening TCP socket bound
//!    to the announced address, else the whole handover is refused), loads
//!    the configuration, starts accepting on the sockets, binds its own
//!    control socket and admin listener, and only then sends
//!    `handover-done [grace=S]` on the same connection.
//! 4. The old daemon, on `handover-done` only, stops accepting (the sockets
//!    stay open in the new one, so no connection in an accept queue is
//!    lost), finishes its exchanges within the grace period and exits.
//!    Anything else (another line, the connection closing, silence for
//!    [`CONFIRM_TIMEOUT`]) abandons the handover: the old daemon goes on
//!    serving as before.
//!
//! What a hostile or broken peer can do, and what happens:
//!
//! * a process of another user asks for `handover`: it never gets past the
//!   greeting (`ERR permission`), like any other request;
//! * a trusted peer asks and then vanishes or sends garbage: the handover
//!   is abandoned, the old daemon keeps serving; only one handover runs at
//!   a time (`ERR unavailable` for a second);
//! * the "old daemon" answering the new one is not one (a planted socket):
//!   the client refuses a daemon of another user, reads the reply with a
//!   timeout and within byte and line bounds, and refuses descriptors that
//!   are not listening TCP sockets of the announced address, a descriptor
//!   count that differs from the text, or truncated ancillary data; every
//!   received descriptor is owned at once, so a refused one is closed.

use std::io::{BufRead, Cursor, IoSlice, IoSliceMut, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, SockType,
};
use parking_lot::Mutex;
use thiserror::Error;

use super::client::{ClientError, ControlClient};
use super::protocol::{
    read_line, ErrorKind, HandoverBody, HandoverBodyError, LineRead, ListenerInfo, ProtocolError,
    Reply, Request, MAX_FDS, MAX_LINE, MAX_LOAD_BYTES,
};

/// How long the old daemon waits for `handover-done` after its reply; past
/// it the handover is abandoned and the old daemon goes on serving.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the new daemon waits for each read of the old one's reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest `handover` reply the new daemon reads, in bytes: a
/// configuration of the largest `load` size plus the listener lines.
pub const MAX_REPLY_BYTES: usize = MAX_LOAD_BYTES + 1024 * 1024;

/// One listening socket passed over (or to be passed), with what it is.
#[derive(Debug)]
pub struct HandedListener {
    /// What it is for and where it is bound.
    pub info: ListenerInfo,
    /// The socket.
    pub socket: TcpListener,
}

/// What the new daemon received.
#[derive(Debug)]
pub struct Handover {
    /// The listening sockets, each checked to be a listening TCP socket
    /// bound to its announced address.
    pub listeners: Vec<HandedListener>,
    /// The started services.
    pub running: Vec<String>,
    /// The runtime settings, by name.
    pub settings: Vec<(String, String)>,
    /// The configuration in configuration-file syntax.
    pub config: String,
}

/// Why a handover failed, on the new daemon's side.
#[derive(Debug, Error)]
pub enum HandoverError {
    /// Talking to the old daemon failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The old daemon refused.
    #[error("the running ktcpvsd refused the handover: {kind} {message}")]
    Refused {
        /// Its error kind.
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// The reply does not follow the protocol.
    #[error("malformed handover reply: {0}")]
    Malformed(String),
    /// The reply's text is malformed.
    #[error(transparent)]
    Body(#[from] HandoverBodyError),
    /// The reply exceeds [`MAX_REPLY_BYTES`].
    #[error("handover reply larger than {MAX_REPLY_BYTES} bytes")]
    TooLong,
    /// The descriptors received differ in number from the text's listeners.
    #[error("{received} descriptors received, {announced} announced")]
    Count {
        /// Listeners in the text.
        announced: usize,
        /// Descriptors that came.
        received: usize,
    },
    /// A received descriptor is not what the text says.
    #[error("descriptor {index} refused: {reason}")]
    NotAListener {
        /// Its position.
        index: usize,
        /// What it is instead.
        reason: String,
    },
    /// A system call failed.
    #[error("handover I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ProtocolError> for HandoverError {
    fn from(e: ProtocolError) -> Self {
        HandoverError::Malformed(e.to_string())
    }
}

/// What a daemon hands over and how it learns that it was taken over: the
/// host program (`ktcpvsd`) implements it and gives it to
/// [`Dispatcher::with_handover`](super::Dispatcher::with_handover).
pub trait HandoverSource: Send + Sync {
    /// New descriptors on every listening socket to pass (the daemon keeps
    /// its own until [`confirmed`](Self::confirmed)).
    fn listeners(&self) -> std::io::Result<Vec<HandedListener>>;

    /// The new daemon serves: stop accepting, finish the exchanges in
    /// flight within `grace` (the host's default when `None`), exit.
    fn confirmed(&self, grace: Option<Duration>);
}

/// Where a daemon's handover stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    Offered,
    Done,
}

/// A [`HandoverSource`] with the one-at-a-time rule.
pub(crate) struct HandoverGate {
    source: Arc<dyn HandoverSource>,
    stage: Mutex<Stage>,
}

impl HandoverGate {
    pub(crate) fn new(source: Arc<dyn HandoverSource>) -> HandoverGate {
        HandoverGate {
            source,
            stage: Mutex::new(Stage::Idle),
        }
    }

    /// Starts a handover, or says why not.
    fn begin(&self) -> Result<(), &'static str> {
        let mut stage = self.stage.lock();
        match *stage {
            Stage::Idle => {
                *stage = Stage::Offered;
                Ok(())
            }
            Stage::Offered => Err("another handover is in progress"),
            Stage::Done => Err("this daemon has already handed over"),
        }
    }

    fn abandon(&self) {
        let mut stage = self.stage.lock();
        if *stage == Stage::Offered {
            *stage = Stage::Idle;
        }
    }

    fn confirm(&self, grace: Option<Duration>) {
        *self.stage.lock() = Stage::Done;
        self.source.confirmed(grace);
    }
}

/// Sends `bytes` with `fds` attached to the first of them as `SCM_RIGHTS`.
fn send_with_fds(stream: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(bytes)],
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(std::io::Error::from)?;
    let mut rest = stream;
    rest.write_all(bytes.get(sent..).unwrap_or_default())
}

/// Receives the first bytes of a reply and the descriptors that came with
/// them (close-on-exec, owned at once).
fn receive_with_fds(stream: &UnixStream) -> Result<(Vec<u8>, Vec<OwnedFd>), HandoverError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let bytes = msg.bytes;
    let mut fds = Vec::new();
    let truncated = match msg.cmsgs() {
        Ok(cmsgs) => {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmRights(received) = cmsg {
                    // SAFETY: the kernel just installed these descriptors
                    // in this process for us; nothing else refers to them.
                    fds.extend(
                        received
                            .into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            false
        }
        Err(_) => true,
    };
    if truncated {
        return Err(HandoverError::Malformed(
            "the descriptors were truncated".into(),
        ));
    }
    if bytes == 0 {
        return Err(ClientError::Closed.into());
    }
    buf.truncate(bytes);
    Ok((buf, fds))
}

/// Checks that `fd` is a listening TCP socket bound to `expected`.
fn check_listener(
    index: usize,
    fd: OwnedFd,
    expected: SocketAddr,
) -> Result<TcpListener, HandoverError> {
    let refuse = |reason: String| HandoverError::NotAListener { index, reason };
    match getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(other) => return Err(refuse(format!("a {other:?} socket, not a stream"))),
        Err(e) => return Err(refuse(format!("not a socket ({e})"))),
    }
    if !getsockopt(&fd, sockopt::AcceptConn).map_err(|e| refuse(e.to_string()))? {
        return Err(refuse("not listening".into()));
    }
    let listener = TcpListener::from(fd);
    let addr = listener
        .local_addr()
        .map_err(|e| refuse(format!("not a TCP socket ({e})")))?;
    if addr != expected {
        return Err(refuse(format!("bound to {addr}, announced {expected}")));
    }
    Ok(listener)
}

/// Reads a status line and its body from `reader`, within
/// [`MAX_REPLY_BYTES`].
fn read_bounded_reply<R: BufRead>(reader: &mut R) -> Result<Reply, HandoverError> {
    let mut total = 0usize;
    let mut line = |total: &mut usize| -> Result<String, HandoverError> {
        match read_line(reader, MAX_LINE)?? {
            LineRead::Line(l) => {
                *total += l.len() + 1;
                if *total > MAX_REPLY_BYTES {
                    return Err(HandoverError::TooLong);
                }
                Ok(l)
            }
            LineRead::Eof => Err(ClientError::Closed.into()),
        }
    };
    let status = line(&mut total)?;
    match Reply::parse_status(&status)? {
        Err(refusal) => Ok(refusal),
        Ok(count) => {
            let mut body = Vec::with_capacity(count.min(4096));
            for _ in 0..count {
                body.push(line(&mut total)?);
            }
            Ok(Reply::Ok(body))
        }
    }
}

impl ControlClient {
    /// Asks the daemon for its listening sockets and configuration
    /// (`handover`). The daemon goes on serving until
    /// [`confirm_handover`](Self::confirm_handover); dropping the client
    /// instead abandons the handover.
    pub fn handover(&mut self) -> Result<Handover, HandoverError> {
        if !self.reader.buffer().is_empty() {
            return Err(HandoverError::Malformed(
                "unexpected bytes before the handover reply".into(),
            ));
        }
        let Some(unix) = self.writer.unix() else {
            return Err(HandoverError::Malformed(
                "a handover needs the control socket file, not a TCP connection".into(),
            ));
        };
        unix.set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(HandoverError::Io)?;
        let line = Request::Handover.to_line()?;
        let mut writer = unix;
        writer.write_all(format!("{line}\n").as_bytes())?;
        let (first, fds) = receive_with_fds(unix)?;
        let reply = {
            let mut reader = Cursor::new(first).chain(&mut self.reader);
            read_bounded_reply(&mut reader)?
        };
        let lines = match reply {
            Reply::Ok(lines) => lines,
            Reply::Err { kind, message } => return Err(HandoverError::Refused { kind, message }),
        };
        let body = HandoverBody::from_lines(&lines)?;
        if body.listeners.len() != fds.len() {
            return Err(HandoverError::Count {
                announced: body.listeners.len(),
                received: fds.len(),
            });
        }
        let mut listeners = Vec::with_capacity(fds.len());
        for (index, (info, fd)) in body.listeners.into_iter().zip(fds).enumerate() {
            let socket = check_listener(index, fd, info.addr)?;
            listeners.push(HandedListener { info, socket });
        }
        Ok(Handover {
            listeners,
            running: body.running,
            settings: body.settings,
            config: body.config,
        })
    }

    /// Tells the daemon that this one now serves (`handover-done`): it
    /// stops accepting, finishes its exchanges within `grace` (its default
    /// when `None`) and exits.
    pub fn confirm_handover(&mut self, grace: Option<Duration>) -> Result<(), HandoverError> {
        let request = Request::HandoverDone {
            grace: grace.map(|g| g.as_secs()),
        };
        match self.request(&request)? {
            Reply::Ok(_) => Ok(()),
            Reply::Err { kind, message } => Err(HandoverError::Refused { kind, message }),
        }
    }
}

/// Serves `handover` on the old daemon's side: sends the reply with the
/// descriptors, then waits for `handover-done`. Returns whether the
/// connection goes on.
pub(crate) fn serve<R: BufRead>(
    reader: &mut R,
    stream: &UnixStream,
    gate: Option<&HandoverGate>,
    body: impl FnOnce() -> HandoverBody,
    idle_timeout: Duration,
) -> std::io::Result<bool> {
    let mut writer = stream;
    let Some(gate) = gate else {
        let reply = Reply::error(ErrorKind::Unavailable, "this daemon cannot hand over");
        writer.write_all(reply.to_wire().as_bytes())?;
        return Ok(true);
    };
    if let Err(reason) = gate.begin() {
        writer.write_all(
            Reply::error(ErrorKind::Unavailable, reason)
                .to_wire()
                .as_bytes(),
        )?;
        return Ok(true);
    }
    let result = offer(reader, stream, gate, body);
    if !matches!(result, Ok(Offer::Confirmed)) {
        gate.abandon();
    }
    stream.set_read_timeout(Some(idle_timeout))?;
    match result? {
        Offer::Confirmed => Ok(true),
        Offer::Refused(reply) => {
            writer.write_all(reply.to_wire().as_bytes())?;
            Ok(true)
        }
        Offer::Abandoned(reason) => {
            log::warn!("control: handover abandoned ({reason}); serving on");
            Ok(false)
        }
    }
}

/// How an offered handover ended.
enum Offer {
    Confirmed,
    /// Not offered, or abandoned with a line that gets this reply.
    Refused(Reply),
    /// Abandoned; the connection ends.
    Abandoned(String),
}

fn offer<R: BufRead>(
    reader: &mut R,
    stream: &UnixStream,
    gate: &HandoverGate,
    body: impl FnOnce() -> HandoverBody,
) -> std::io::Result<Offer> {
    let listeners = match gate.source.listeners() {
        Ok(l) => l,
        Err(e) => {
            let reply = Reply::error(ErrorKind::Unavailable, format!("cannot hand over: {e}"));
            return Ok(Offer::Refused(reply));
        }
    };
    if listeners.len() > MAX_FDS {
        let reply = Reply::error(
            ErrorKind::Unavailable,
            format!(
                "{} listening sockets, at most {MAX_FDS} can be passed",
                listeners.len()
            ),
        );
        return Ok(Offer::Refused(reply));
    }
    let mut body = body();
    body.listeners = listeners.iter().map(|l| l.info.clone()).collect();
    let wire = Reply::Ok(body.to_lines()).to_wire();
    let fds: Vec<RawFd> = listeners.iter().map(|l| l.socket.as_raw_fd()).collect();
    send_with_fds(stream, wire.as_bytes(), &fds)?;
    drop(listeners);
    log::warn!(
        "control: handover offered ({} sockets); waiting for handover-done",
        fds.len()
    );
    stream.set_read_timeout(Some(CONFIRM_TIMEOUT))?;
    let line = match read_line(reader, MAX_LINE) {
        Ok(Ok(LineRead::Line(line))) => line,
        Ok(Ok(LineRead::Eof)) => return Ok(Offer::Abandoned("the new daemon closed".into())),
        Ok(Err(e)) => return Ok(Offer::Abandoned(e.to_string())),
        Err(e) => return Ok(Offer::Abandoned(e.to_string())),
    };
    match Request::parse(&line) {
        Ok(Request::HandoverDone { grace }) => {
            let grace = grace.map(Duration::from_secs);
            log::warn!("control: handover done; stopping accepts and finishing exchanges");
            gate.confirm(grace);
            let mut writer = stream;
            writer.write_all(Reply::Ok(Vec::new()).to_wire().as_bytes())?;
            Ok(Offer::Confirmed)
        }
        _ => Ok(Offer::Refused(Reply::error(
            ErrorKind::Usage,
            "handover abandoned: expected handover-done",
        ))),
    }
}
