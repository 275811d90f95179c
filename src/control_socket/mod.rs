//! The control socket: a small, versioned, line-oriented text protocol on
//! a Unix domain socket, through which `tcpvsadm` (or `socat`, or any host
//! tool) reconfigures a running balancer.
//!
//! | module | what lives there |
//! |---|---|
//! | [`protocol`] | the wire format: [`Request`] and [`Reply`], parse and format, the version |
//! | [`explain`] | what a configuration would do with a request (`tcpvsadm --explain`) |
//! | [`dispatch`] | carrying a request out against a [`Control`](ktcpvs_core::Control) |
//! | [`server`] | serving a dispatcher on a socket file (mode 0600, bounded lines, timeouts) |
//! | [`remote`] | serving it over TCP to clients with a shared token (off unless opened) |
//! | [`client`] | connecting to a daemon and exchanging requests and replies |
//! | [`trust`] | who may use the socket: its directory, its file, the peer's credentials |
//! | [`handover`] | binary upgrade: passing the listening sockets to a new daemon |
//!
//! The protocol itself is documented in `docs/control-protocol.md`.

pub mod client;
pub mod dispatch;
pub mod explain;
pub mod handover;
pub mod protocol;
pub mod remote;
pub mod server;
pub mod trust;

use std::path::{Path, PathBuf};

pub use client::{ClientError, ControlClient, TCP_PREFIX};
pub use dispatch::{BoundAddr, Dispatcher};
pub use handover::{HandedListener, Handover, HandoverError, HandoverSource};
pub use protocol::{ErrorKind, ProtocolError, Reply, Request, ServiceArgs, SysctlRequest};
pub use server::{ControlServer, ServerOptions, SocketError};

/// The environment variable that names the control socket.
pub const SOCKET_ENV: &str = "KTCPVS_SOCKET";

/// The control socket path used when none is given: `$KTCPVS_SOCKET`, else
/// `control.sock` in the daemon's private directory:
/// `$XDG_RUNTIME_DIR/ktcpvs/`, else `/run/ktcpvs/` for root, else
/// `/tmp/ktcpvs-<uid>/`. The daemon creates that directory with mode
/// `0700` and refuses one that another user owns (see [`trust`]).
pub fn default_socket_path() -> PathBuf {
    socket_path_from(
        std::env::var_os(SOCKET_ENV).as_deref().map(Path::new),
        std::env::var_os("XDG_RUNTIME_DIR")
            .as_deref()
            .map(Path::new),
        trust::effective_uid(),
    )
}

/// [`default_socket_path`] for the given `$KTCPVS_SOCKET`,
/// `$XDG_RUNTIME_DIR` and effective uid (empty variables count as unset).
///
/// ```
/// use std::path::{Path, PathBuf};
/// use ktcpvs::control_socket::socket_path_from;
/// let xdg = Some(Path::new("/run/user/1000"));
/// assert_eq!(socket_path_from(None, xdg, 1000), PathBuf::from("/run/user/1000/ktcpvs/control.sock"));
/// assert_eq!(socket_path_from(None, None, 0), PathBuf::from("/run/ktcpvs/control.sock"));
/// assert_eq!(socket_path_from(None, None, 1000), PathBuf::from("/tmp/ktcpvs-1000/control.sock"));
/// assert_eq!(socket_path_from(Some(Path::new("/x.sock")), xdg, 0), PathBuf::from("/x.sock"));
/// ```
pub fn socket_path_from(socket: Option<&Path>, runtime_dir: Option<&Path>, uid: u32) -> PathBuf {
    fn set(p: Option<&Path>) -> Option<&Path> {
        p.filter(|p| !p.as_os_str().is_empty())
    }
    if let Some(p) = set(socket) {
        return p.to_path_buf();
    }
    let dir = match set(runtime_dir) {
        Some(dir) => dir.join("ktcpvs"),
        None if uid == 0 => PathBuf::from("/run/ktcpvs"),
        None => PathBuf::from(format!("/tmp/ktcpvs-{uid}")),
    };
    dir.join("control.sock")
}
