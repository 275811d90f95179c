//! The control-socket client: what `tcpvsadm` (or any host tool) uses to
//! talk to a running daemon.
//!
//! ```no_run
//! use ktcpvs::control_socket::{ControlClient, Reply, Request};
//!
//! let path = ktcpvs::control_socket::default_socket_path();
//! let mut client = ControlClient::connect(&path)?;
//! match client.request(&Request::Ping)? {
//!     Reply::Ok(_) => println!("daemon at {} is alive", path.display()),
//!     Reply::Err { kind, message } => eprintln!("{kind}: {message}"),
//! }
//! # Ok::<(), ktcpvs::control_socket::ClientError>(())
//! ```

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::protocol::{
    parse_greeting, read_line, stuff_line, ErrorKind, LineRead, ProtocolError, Reply, Request,
    END_OF_TEXT, MAX_LINE, PROTOCOL_VERSION,
};
use super::remote::Token;
use super::trust::{effective_uid, is_trusted_uid, peer_uid};

/// Why a request could not be carried to the daemon and back. (A refusal
/// by the daemon is not an error here: it is a [`Reply::Err`].)
#[derive(Debug, Error)]
pub enum ClientError {
    /// Nothing listens at the socket path.
    #[error("no ktcpvsd is running at {path} ({source}); start one with `cargo run --release --example ktcpvsd`, or pick its socket with --socket or $KTCPVS_SOCKET")]
    NotRunning {
        /// The socket path tried.
        path: PathBuf,
        /// The connect error.
        source: std::io::Error,
    },
    /// The socket exists but we may not use it.
    #[error("permission denied on {path}: the control socket belongs to the user running ktcpvsd")]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// The process listening at the path runs as another user than this
    /// one, and not as root: it is not talked to (it could be a socket
    /// another user planted to collect the configuration).
    #[error("the control socket {path} is served by uid {uid}, not by this user (uid {own}) or root; refusing to talk to it")]
    UntrustedDaemon {
        /// The socket path.
        path: PathBuf,
        /// The uid of the process serving it.
        uid: u32,
        /// This process's effective uid.
        own: u32,
    },
    /// The daemon refused the connection instead of greeting it (for
    /// instance `ERR permission`: this user may not use it).
    #[error("ktcpvsd at {path} refused the connection: {kind} {message}")]
    Refused {
        /// The socket path.
        path: PathBuf,
        /// Why, as the daemon's error kind.
        kind: ErrorKind,
        /// The daemon's message.
        message: String,
    },
    /// The daemon speaks another protocol version.
    #[error(
        "ktcpvsd at {path} speaks control protocol {found}, this tool speaks {PROTOCOL_VERSION}"
    )]
    Version {
        /// The socket path.
        path: PathBuf,
        /// The version it announced.
        found: u32,
    },
    /// The daemon sent something that is not the protocol.
    #[error("protocol error from ktcpvsd: {0}")]
    Protocol(#[from] ProtocolError),
    /// A remote control listener needs a token and none was given.
    #[error(
        "{path} is a remote control listener: give its token (--token-file FILE or $KTCPVS_TOKEN)"
    )]
    NoToken {
        /// The address tried.
        path: PathBuf,
    },
    /// The connection closed before the reply was complete.
    #[error("ktcpvsd closed the connection before replying")]
    Closed,
    /// Reading or writing the socket failed.
    #[error("control socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What a [`ControlClient`] talks over: the socket file, or the remote
/// control listener.
#[derive(Debug)]
pub(super) enum Transport {
    /// A Unix domain socket.
    Unix(UnixStream),
    /// A TCP connection, authenticated with a token.
    Tcp(TcpStream),
}

impl Transport {
    fn try_clone(&self) -> std::io::Result<Transport> {
        Ok(match self {
            Transport::Unix(s) => Transport::Unix(s.try_clone()?),
            Transport::Tcp(s) => Transport::Tcp(s.try_clone()?),
        })
    }

    /// The Unix socket, which alone can carry descriptors.
    pub(super) fn unix(&self) -> Option<&UnixStream> {
        match self {
            Transport::Unix(s) => Some(s),
            Transport::Tcp(_) => None,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Unix(s) => s.read(buf),
            Transport::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Unix(s) => s.write(buf),
            Transport::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Unix(s) => s.flush(),
            Transport::Tcp(s) => s.flush(),
        }
    }
}

/// The prefix of a `--socket` value that names a remote control listener
/// (`tcp://HOST:PORT`) rather than a socket file.
pub const TCP_PREFIX: &str = "tcp://";

/// A connection to a daemon's control socket.
#[derive(Debug)]
pub struct ControlClient {
    pub(super) reader: BufReader<Transport>,
    pub(super) writer: Transport,
}

impl ControlClient {
    /// Connects to the daemon at `path`, checks that it runs as this user
    /// or root (its `SO_PEERCRED` credentials), and checks its greeting.
    pub fn connect(path: &Path) -> Result<ControlClient, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                path: path.to_path_buf(),
            },
            _ => ClientError::NotRunning {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let uid = peer_uid(&stream)?;
        if !is_trusted_uid(uid) {
            return Err(ClientError::UntrustedDaemon {
                path: path.to_path_buf(),
                uid,
                own: effective_uid(),
            });
        }
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut client = ControlClient::over(Transport::Unix(stream))?;
        client.greeted(path)?;
        Ok(client)
    }

    /// Connects to `target`: a remote control listener when it reads
    /// `tcp://HOST:PORT` (presenting `token`), else a socket file (see
    /// [`connect`](Self::connect)).
    pub fn connect_to(target: &Path, token: Option<&Token>) -> Result<ControlClient, ClientError> {
        let remote = target.to_str().and_then(|t| t.strip_prefix(TCP_PREFIX));
        match remote {
            Some(addr) => Self::connect_tcp(addr, token),
            None => Self::connect(target),
        }
    }

    /// Connects to the remote control listener at `addr` (`HOST:PORT`) and
    /// authenticates with `token`.
    pub fn connect_tcp(addr: &str, token: Option<&Token>) -> Result<ControlClient, ClientError> {
        let path = PathBuf::from(format!("{TCP_PREFIX}{addr}"));
        let not_running = |source| ClientError::NotRunning {
            path: path.clone(),
            source,
        };
        let resolved = addr
            .to_socket_addrs()
            .map_err(not_running)?
            .next()
            .ok_or_else(|| not_running(std::io::Error::from(std::io::ErrorKind::NotFound)))?;
        let stream =
            TcpStream::connect_timeout(&resolved, Duration::from_secs(5)).map_err(not_running)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let _ = stream.set_nodelay(true);
        let mut client = ControlClient::over(Transport::Tcp(stream))?;
        client.greeted(&path)?;
        let Some(token) = token else {
            return Err(ClientError::NoToken { path });
        };
        client
            .writer
            .write_all(format!("auth {}\n", token.as_str()).as_bytes())?;
        match client.reply()? {
            Reply::Ok(_) => Ok(client),
            Reply::Err { kind, message } => Err(ClientError::Refused {
                path,
                kind,
                message,
            }),
        }
    }

    fn over(transport: Transport) -> Result<ControlClient, ClientError> {
        let writer = transport.try_clone()?;
        Ok(ControlClient {
            reader: BufReader::new(transport),
            writer,
        })
    }

    /// Reads and checks the daemon's greeting.
    fn greeted(&mut self, path: &Path) -> Result<(), ClientError> {
        let client = self;
        let greeting = client.line()?;
        if let Ok(Err(Reply::Err { kind, message })) = Reply::parse_status(&greeting) {
            return Err(ClientError::Refused {
                path: path.to_path_buf(),
                kind,
                message,
            });
        }
        let version = parse_greeting(&greeting)?;
        if version != PROTOCOL_VERSION {
            return Err(ClientError::Version {
                path: path.to_path_buf(),
                found: version,
            });
        }
        Ok(())
    }

    fn line(&mut self) -> Result<String, ClientError> {
        match read_line(&mut self.reader, MAX_LINE * 64)? {
            Ok(LineRead::Line(l)) => Ok(l),
            Ok(LineRead::Eof) => Err(ClientError::Closed),
            Err(e) => Err(e.into()),
        }
    }

    fn reply(&mut self) -> Result<Reply, ClientError> {
        let status = self.line()?;
        match Reply::parse_status(&status)? {
            Err(refusal) => Ok(refusal),
            Ok(count) => {
                let mut body = Vec::with_capacity(count.min(4096));
                for _ in 0..count {
                    body.push(self.line()?);
                }
                Ok(Reply::Ok(body))
            }
        }
    }

    /// Sends one request and reads its reply. For `load`, use
    /// [`load`](Self::load), which also sends the text.
    pub fn request(&mut self, request: &Request) -> Result<Reply, ClientError> {
        let line = request.to_line()?;
        self.writer.write_all(format!("{line}\n").as_bytes())?;
        if request.takes_text() {
            self.writer
                .write_all(format!("{END_OF_TEXT}\n").as_bytes())?;
        }
        self.reply()
    }

    /// Sends `load` with the configuration `text` (named `file` in error
    /// messages) and reads the reply.
    pub fn load(&mut self, file: Option<&str>, text: &str) -> Result<Reply, ClientError> {
        self.send_text(
            Request::Load {
                file: file.map(str::to_string),
            },
            text,
        )
    }

    /// Sends `check load` with the configuration `text`: whether the daemon
    /// would load it, loading nothing.
    pub fn check_load(&mut self, file: Option<&str>, text: &str) -> Result<Reply, ClientError> {
        let load = Request::Load {
            file: file.map(str::to_string),
        };
        self.send_text(Request::Check(Box::new(load)), text)
    }

    /// Sends `plan` with the configuration `text`: what loading it would
    /// change, as request lines (and `#` lines for the changes no request
    /// makes), in the order to make them; an empty body for no change.
    /// Nothing is applied.
    pub fn plan(&mut self, file: Option<&str>, text: &str) -> Result<Reply, ClientError> {
        let plan = Request::Plan {
            file: file.map(str::to_string),
        };
        self.send_text(plan, text)
    }

    fn send_text(&mut self, request: Request, text: &str) -> Result<Reply, ClientError> {
        let line = request.to_line()?;
        let mut wire = format!("{line}\n");
        for line in text.lines() {
            wire.push_str(&stuff_line(line));
            wire.push('\n');
        }
        wire.push_str(END_OF_TEXT);
        wire.push('\n');
        self.writer.write_all(wire.as_bytes())?;
        self.reply()
    }
}
