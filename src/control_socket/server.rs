//! The control-socket server: serves a [`Dispatcher`] on a Unix domain
//! socket, one thread per client.
//!
//! Safety and liveness rules, each enforced here:
//!
//! * the socket lives in a directory of the daemon's user or root that
//!   others cannot write (the default one is created `0700`), and is
//!   created with mode `0600` (bound inside a fresh `0700` directory, then
//!   renamed into place), so only its owner can connect; see
//!   [`trust`](super::trust);
//! * a client whose credentials (`SO_PEERCRED`) name another user than the
//!   daemon's, and not root, is told `ERR permission …` and closed;
//! * a socket file left by a dead daemon is replaced; one that a live daemon
//!   answers on, one that another user owns, or a path that is not a
//!   socket, is refused;
//! * every line is bounded ([`MAX_LINE`]) before it is buffered further, and
//!   `load` text by [`MAX_LOAD_BYTES`];
//! * a client that idles past the idle timeout, or stops reading its
//!   replies, is disconnected; it only ever holds its own thread, and the
//!   control path is held only while a request is applied, so it stalls
//!   neither other clients nor the data path;
//! * at most [`ServerOptions::max_clients`] clients are served at once;
//!   the next one is told `ERR unavailable …` and closed.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use thiserror::Error;

use super::dispatch::Dispatcher;
use super::protocol::{
    greeting, read_line, unstuff_line, ErrorKind, LineRead, ProtocolError, Reply, Request,
    TextLine, MAX_LINE, MAX_LOAD_BYTES,
};
use super::trust::{effective_uid, is_trusted_uid, peer_uid, prepare_directory, UntrustedPath};

/// The control socket could not be opened.
#[derive(Debug, Error)]
pub enum SocketError {
    /// A daemon already answers on this path.
    #[error("control socket {path} is in use by a running ktcpvsd")]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket exists at the path; it is left alone.
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A socket that another user owns is at the path: it is neither used
    /// nor replaced.
    #[error("{path} is a socket of uid {owner}, not of this user or root; refusing to use or replace it")]
    ForeignSocket {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// The directory that would hold the socket cannot be trusted.
    #[error("control socket directory refused: {0}")]
    Directory(#[from] UntrustedPath),
    /// A system call failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

/// Limits of a [`ControlServer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Clients served at once.
    pub max_clients: usize,
    /// A client silent for this long is disconnected.
    pub idle_timeout: Duration,
    /// A client that does not take its reply within this time is
    /// disconnected.
    pub write_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_clients: 32,
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
        }
    }
}

struct Shared {
    dispatcher: Dispatcher,
    options: ServerOptions,
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Open client connections, so shutdown can close them.
    clients: Mutex<HashMap<u64, UnixStream>>,
}

/// A running control-socket server. Dropping it (or calling
/// [`shutdown`](Self::shutdown)) closes every client and removes the socket
/// file.
pub struct ControlServer {
    path: PathBuf,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
    /// Device and inode of the socket file we created, so we never remove a
    /// file someone else put at the path later.
    identity: (u64, u64),
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("path", &self.path)
            .field("clients", &self.shared.clients.lock().len())
            .finish()
    }
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Removes a stale socket file at `path`, refusing live sockets and
/// non-sockets. With `live_ok` (a binary upgrade) a live socket is left
/// for the rename to replace.
fn clear_stale(path: &Path, live_ok: bool) -> Result<(), SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    if !is_trusted_uid(meta.uid()) {
        return Err(SocketError::ForeignSocket {
            path: path.to_path_buf(),
            owner: meta.uid(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) if live_ok => Ok(()),
        Ok(_) => Err(SocketError::InUse {
            path: path.to_path_buf(),
        }),
        Err(_) => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove stale socket", path)(e)),
        },
    }
}

/// Binds a listener at `path` with mode 0600, never exposing it with wider
/// permissions: it is bound in a private 0700 directory beside `path`,
/// restricted, then renamed into place.
fn bind_private(path: &Path) -> Result<UnixListener, SocketError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let private = parent.join(format!(
        ".ktcpvs.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_err("create directory", &private))?;
    let staged = private.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&staged).map_err(io_err("bind", &staged))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("set permissions of", &staged))?;
        std::fs::rename(&staged, path).map_err(io_err("move socket to", path))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    result
}

impl ControlServer {
    /// Serves `dispatcher` on a new socket at `path` with default limits.
    pub fn bind(path: &Path, dispatcher: Dispatcher) -> Result<ControlServer, SocketError> {
        Self::bind_with(path, dispatcher, ServerOptions::default())
    }

    /// Serves `dispatcher` on a new socket at `path`.
    pub fn bind_with(
        path: &Path,
        dispatcher: Dispatcher,
        options: ServerOptions,
    ) -> Result<ControlServer, SocketError> {
        Self::open(path, dispatcher, options, false)
    }

    /// Serves `dispatcher` at `path` in place of the live daemon there
    /// (a binary upgrade, after `handover`): the new socket is renamed
    /// over the old one's file, so clients reach this daemon from then on
    /// while the old one finishes; the old one does not remove the file
    /// (it is no longer the one it created). The directory and ownership
    /// checks of [`bind`](Self::bind) apply.
    pub fn bind_replacing(
        path: &Path,
        dispatcher: Dispatcher,
    ) -> Result<ControlServer, SocketError> {
        Self::open(path, dispatcher, ServerOptions::default(), true)
    }

    fn open(
        path: &Path,
        dispatcher: Dispatcher,
        options: ServerOptions,
        replace: bool,
    ) -> Result<ControlServer, SocketError> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            prepare_directory(dir)?;
        }
        clear_stale(path, replace)?;
        let listener = bind_private(path)?;
        let meta = std::fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
        let shared = Arc::new(Shared {
            dispatcher,
            options,
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            clients: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name("ktcpvs-control".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .map_err(io_err("start the accept thread for", path))?;
        log::info!("control socket listening at {}", path.display());
        Ok(ControlServer {
            path: path.to_path_buf(),
            shared,
            accept_thread: Some(accept_thread),
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, disconnects every client and removes the socket
    /// file (if it is still the one this server created).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The accept thread sees the flag within STOP_CHECK milliseconds.
        let _ = thread.join();
        // Close the read side only: a client waiting for its next request
        // sees the end of the stream, while one whose request is being
        // applied (say, the `unload` that stops us) still gets its reply.
        for stream in self.shared.clients.lock().values() {
            let _ = stream.shutdown(std::net::Shutdown::Read);
        }
        // Client threads leave the table as they end; give them a bounded
        // moment, then cut off whoever is left.
        for _ in 0..400 {
            if self.shared.clients.lock().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for stream in self.shared.clients.lock().values() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How often the accept thread looks at its stop flag. It waits with
/// `poll` rather than in a blocking `accept` woken by a connection to the
/// path: after a binary upgrade the path leads to the next daemon.
const STOP_CHECK: u16 = 100;

/// The next client, or `None` when the server stops.
fn next_client(
    listener: &UnixListener,
    stopping: &AtomicBool,
) -> Option<std::io::Result<UnixStream>> {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::os::fd::AsFd;
    loop {
        if stopping.load(Ordering::SeqCst) {
            return None;
        }
        match listener.accept() {
            Ok((stream, _)) => return Some(stream.set_nonblocking(false).map(|()| stream)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, STOP_CHECK);
            }
            Err(e) => return Some(Err(e)),
        }
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("control socket: cannot make the listener non-blocking: {e}");
        return;
    }
    while let Some(stream) = next_client(&listener, &shared.stopping) {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("control socket accept failed: {e}");
                // Back off briefly so a persistent error (EMFILE) cannot spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let _ = stream.set_write_timeout(Some(shared.options.write_timeout));
        match peer_uid(&stream) {
            Ok(uid) if is_trusted_uid(uid) => {}
            Ok(uid) => {
                log::warn!("control socket: refused a client running as uid {uid}");
                let reply = Reply::error(
                    ErrorKind::Permission,
                    format!(
                        "this daemon serves uid {} and root only, not uid {uid}",
                        effective_uid()
                    ),
                );
                let _ = stream.write_all(reply.to_wire().as_bytes());
                continue;
            }
            Err(e) => {
                log::warn!("control socket: cannot read a client's credentials: {e}");
                continue;
            }
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut clients = shared.clients.lock();
            if clients.len() >= shared.options.max_clients {
                let reply = Reply::error(
                    ErrorKind::Unavailable,
                    format!(
                        "too many control clients (limit {}); try again later",
                        shared.options.max_clients
                    ),
                );
                let _ = stream.write_all(reply.to_wire().as_bytes());
                continue;
            }
            match stream.try_clone() {
                Ok(clone) => {
                    clients.insert(id, clone);
                }
                Err(e) => {
                    log::warn!("control socket: cannot track client: {e}");
                    continue;
                }
            }
        }
        let client_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("ktcpvs-control-client".into())
            .spawn(move || {
                if let Err(e) = serve_client(stream, &client_shared) {
                    log::debug!("control client {id} ended: {e}");
                }
                client_shared.clients.lock().remove(&id);
            });
        if let Err(e) = spawned {
            log::warn!("control socket: cannot start a client thread: {e}");
            shared.clients.lock().remove(&id);
        }
    }
}

/// The text after a `load` line, up to the `.` line.
enum LoadText {
    Complete(String),
    TooLong,
    Malformed(ProtocolError),
    Eof,
}

fn read_load_text<R: std::io::BufRead>(reader: &mut R) -> std::io::Result<LoadText> {
    let mut text = String::new();
    let mut outcome: Option<LoadText> = None;
    loop {
        match read_line(reader, MAX_LINE)? {
            Ok(LineRead::Eof) => return Ok(LoadText::Eof),
            Ok(LineRead::Line(line)) => match unstuff_line(&line) {
                TextLine::End => {
                    return Ok(outcome.unwrap_or(LoadText::Complete(text)));
                }
                TextLine::Line(l) => {
                    if outcome.is_none() {
                        if text.len() + l.len() + 1 > MAX_LOAD_BYTES {
                            outcome = Some(LoadText::TooLong);
                            text = String::new();
                        } else {
                            text.push_str(l);
                            text.push('\n');
                        }
                    }
                }
            },
            Err(e) => {
                // Keep reading to the terminator so the stream stays in step.
                if outcome.is_none() {
                    outcome = Some(LoadText::Malformed(e));
                    text = String::new();
                }
            }
        }
    }
}

fn serve_client(stream: UnixStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(shared.options.idle_timeout))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(format!("{}\n", greeting()).as_bytes())?;
    serve_requests(
        &mut reader,
        &mut writer,
        &shared.dispatcher,
        &shared.stopping,
        |reader, writer| {
            log::warn!("control: handover requested");
            super::handover::serve(
                reader,
                writer,
                shared.dispatcher.handover_gate(),
                || shared.dispatcher.handover_body(),
                shared.options.idle_timeout,
            )
        },
    )
}

/// Reads requests from `reader` and answers each on `writer` until the
/// client leaves, says `quit`, or `stopping` is set. `handover` serves a
/// `handover` request (it passes descriptors, which only some transports
/// can); it returns whether to go on serving.
pub(super) fn serve_requests<S: std::io::Read + Write>(
    reader: &mut BufReader<S>,
    writer: &mut S,
    dispatcher: &Dispatcher,
    stopping: &AtomicBool,
    mut handover: impl FnMut(&mut BufReader<S>, &mut S) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    loop {
        if stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let line = match read_line(reader, MAX_LINE)? {
            Ok(LineRead::Eof) => return Ok(()),
            Ok(LineRead::Line(line)) => line,
            Err(e) => {
                let reply = Reply::error(ErrorKind::of_protocol_error(&e), e);
                writer.write_all(reply.to_wire().as_bytes())?;
                continue;
            }
        };
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let reply = match Request::parse(&line) {
            Err(e) => Reply::error(ErrorKind::of_protocol_error(&e), e),
            Ok(Request::Handover) => {
                if handover(reader, writer)? {
                    continue;
                }
                return Ok(());
            }
            Ok(request) if request.takes_text() => match read_load_text(reader)? {
                LoadText::Eof => return Ok(()),
                LoadText::TooLong => Reply::error(
                    ErrorKind::TooLong,
                    format!("configuration text larger than {MAX_LOAD_BYTES} bytes"),
                ),
                LoadText::Malformed(e) => Reply::error(ErrorKind::of_protocol_error(&e), e),
                LoadText::Complete(text) => {
                    log::info!("control: {request}");
                    dispatcher.handle(&request, Some(&text))
                }
            },
            Ok(request) => {
                log::debug!("control: {request}");
                let reply = dispatcher.handle(&request, None);
                if let Reply::Err { message, .. } = &reply {
                    log::info!("control: {request} refused: {message}");
                } else if !matches!(
                    request,
                    Request::List { .. }
                        | Request::Stats { .. }
                        | Request::Ping
                        | Request::Help
                        | Request::Quit
                        | Request::Sysctl(super::protocol::SysctlRequest::All)
                        | Request::Sysctl(super::protocol::SysctlRequest::Get(_))
                ) {
                    log::info!("control: {request}");
                }
                if request == Request::Quit {
                    writer.write_all(reply.to_wire().as_bytes())?;
                    return Ok(());
                }
                reply
            }
        };
        writer.write_all(reply.to_wire().as_bytes())?;
    }
}
