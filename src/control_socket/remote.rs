//! The remote control listener: the control protocol over TCP, for nodes
//! `tcpvsadm` cannot reach through a socket file. Off unless a host opens
//! it, on the address it names (loopback, or a management network).
//!
//! A client proves itself with a shared token before anything else: the
//! daemon greets it as on the socket file, its first line must be
//! `auth TOKEN`, and anything else (a wrong token, another request, a
//! silence of [`AUTH_TIMEOUT`]) is answered `ERR permission` and closed,
//! after a pause of [`REFUSAL_PAUSE`] that makes guessing slow. Tokens are
//! compared in constant time. After `OK`, the requests are those of the
//! socket file, but `handover`, which passes descriptors, only works there.
//!
//! The token travels in clear: keep the listener on loopback or a trusted
//! management network (or reach it through an SSH tunnel).

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use thiserror::Error;

use super::dispatch::Dispatcher;
use super::protocol::{greeting, read_line, ErrorKind, LineRead, Reply, MAX_LINE};
use super::server::{serve_requests, ServerOptions};

/// How long a client has to send `auth TOKEN`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a refused client waits for its refusal.
pub const REFUSAL_PAUSE: Duration = Duration::from_secs(1);

/// Shortest accepted token, in bytes.
pub const MIN_TOKEN: usize = 16;

/// A shared secret that lets a client use the remote control listener.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Why a token was refused.
#[derive(Debug, Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read the token file {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Others than its owner may read the file.
    #[error("the token file {path} may be read by others (mode {mode:o}); make it 0600")]
    Exposed {
        /// The file.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Too short, or holds blanks or control characters.
    #[error("a token must be {MIN_TOKEN} or more printable characters without blanks")]
    Weak,
}

impl Token {
    /// A token from its text (blanks around it ignored).
    ///
    /// ```
    /// use ktcpvs::control_socket::remote::Token;
    /// assert!(Token::new("short").is_err());
    /// let t = Token::new("  0123456789abcdef0123\n").unwrap();
    /// assert!(t.matches("0123456789abcdef0123"));
    /// assert!(!t.matches("0123456789abcdef0124"));
    /// ```
    pub fn new(text: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.len() < MIN_TOKEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Weak);
        }
        Ok(Token(text.as_bytes().into()))
    }

    /// The token in `path`, a file only its owner may read.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        use std::os::unix::fs::MetadataExt;
        let read = |source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.mode() & 0o077 != 0 {
            return Err(TokenError::Exposed {
                path: path.to_path_buf(),
                mode: meta.mode() & 0o777,
            });
        }
        Token::new(&std::fs::read_to_string(path).map_err(read)?)
    }

    /// The token's text, for a client to send.
    pub fn as_str(&self) -> &str {
        // Built from a `&str` only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether `offered` is the token, in time independent of where they
    /// differ.
    pub fn matches(&self, offered: &str) -> bool {
        constant_time_eq(offered.as_bytes(), &self.0)
    }
}

/// Whether `offered` equals `secret`, in time that depends on the
/// secret's length only, not on where they differ.
pub(crate) fn constant_time_eq(offered: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(offered.len() != secret.len());
    for (i, b) in secret.iter().enumerate() {
        diff |= b ^ offered.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Why the remote control listener could not open.
#[derive(Debug, Error)]
pub enum RemoteError {
    /// Binding or starting failed.
    #[error("cannot open the remote control listener on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

struct Shared {
    dispatcher: Dispatcher,
    token: Token,
    options: ServerOptions,
    stopping: AtomicBool,
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, TcpStream>>,
}

/// A running remote control listener; closed (with its clients) when
/// dropped.
pub struct RemoteControl {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RemoteControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteControl")
            .field("addr", &self.addr)
            .finish()
    }
}

impl RemoteControl {
    /// Serves `dispatcher` on `addr` to clients that present `token`.
    pub fn bind(
        addr: SocketAddr,
        token: Token,
        dispatcher: Dispatcher,
    ) -> Result<RemoteControl, RemoteError> {
        let io = |source| RemoteError::Io { addr, source };
        let listener = TcpListener::bind(addr).map_err(io)?;
        let bound = listener.local_addr().map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let shared = Arc::new(Shared {
            dispatcher,
            token,
            options: ServerOptions::default(),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            clients: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name("ktcpvs-remote-control".into())
            .spawn(move || accept_loop(&listener, &accept_shared))
            .map_err(io)?;
        log::info!("remote control listening on {bound} (token required)");
        Ok(RemoteControl {
            addr: bound,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RemoteControl {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for stream in self.shared.clients.lock().values() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::os::fd::AsFd;
    while !shared.stopping.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, 100u16);
                continue;
            }
            Err(e) => {
                log::warn!("remote control: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut clients = shared.clients.lock();
            if clients.len() >= shared.options.max_clients {
                continue;
            }
            match stream.try_clone() {
                Ok(clone) => {
                    clients.insert(id, clone);
                }
                Err(_) => continue,
            }
        }
        let client_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("ktcpvs-remote-client".into())
            .spawn(move || {
                if let Err(e) = serve_client(stream, &client_shared) {
                    log::debug!("remote control client {id} ended: {e}");
                }
                client_shared.clients.lock().remove(&id);
            });
        if spawned.is_err() {
            shared.clients.lock().remove(&id);
        }
    }
}

fn serve_client(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(shared.options.write_timeout))?;
    stream.set_read_timeout(Some(AUTH_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(format!("{}\n", greeting()).as_bytes())?;
    let offered = match read_line(&mut reader, MAX_LINE) {
        Ok(Ok(LineRead::Line(line))) => line,
        _ => String::new(),
    };
    let token = offered.strip_prefix("auth ").unwrap_or("");
    if !shared.token.matches(token) {
        log::warn!("remote control: {peer} refused (no or wrong token)");
        std::thread::sleep(REFUSAL_PAUSE);
        let reply = Reply::error(
            ErrorKind::Permission,
            "the first line must be 'auth TOKEN' with this daemon's token",
        );
        let _ = writer.write_all(reply.to_wire().as_bytes());
        return Ok(());
    }
    log::info!("remote control: {peer} authenticated");
    writer.write_all(Reply::Ok(Vec::new()).to_wire().as_bytes())?;
    reader
        .get_ref()
        .set_read_timeout(Some(shared.options.idle_timeout))?;
    serve_requests(
        &mut reader,
        &mut writer,
        &shared.dispatcher,
        &shared.stopping,
        |_, writer| {
            let reply = Reply::error(
                ErrorKind::Unavailable,
                "'handover' passes descriptors: use the control socket file",
            );
            writer.write_all(reply.to_wire().as_bytes())?;
            Ok(true)
        },
    )
}
