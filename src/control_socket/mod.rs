//! The control socket: a small, versioned, line-oriented text protocol on
//! a Unix domain socket, through which `tcpvsadm` (or `socat`, or any host
//! tool) reconfigures a running balancer.
//!
//! | module | what lives there |
//! |---|---|
//! | [`protocol`] | the wire format: [`Request`] and [`Reply`], parse and format, the version |
//! | [`dispatch`] | carrying a request out against a [`Control`](ktcpvs_core::Control) |
//! | [`server`] | serving a dispatcher on a socket file (mode 0600, bounded lines, timeouts) |
//! | [`client`] | connecting to a daemon and exchanging requests and replies |
//!
//! The protocol itself is documented in `docs/control-protocol.md`.

pub mod client;
pub mod dispatch;
pub mod protocol;
pub mod server;

use std::path::PathBuf;

pub use client::{ClientError, ControlClient};
pub use dispatch::{BoundAddr, Dispatcher};
pub use protocol::{ErrorKind, ProtocolError, Reply, Request, ServiceArgs, SysctlRequest};
pub use server::{ControlServer, ServerOptions, SocketError};

/// The environment variable that names the control socket.
pub const SOCKET_ENV: &str = "KTCPVS_SOCKET";

/// The control socket path used when none is given: `$KTCPVS_SOCKET`, else
/// `$XDG_RUNTIME_DIR/ktcpvs.sock`, else `/tmp/ktcpvs-<uid>.sock`.
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("ktcpvs.sock");
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/tmp/ktcpvs-{uid}.sock"))
}
