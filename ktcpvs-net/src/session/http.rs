//! The HTTP/1.x session state machine (being written).

use std::net::SocketAddr;

use ktcpvs_core::snapshot::ServiceSnapshot;

use super::tunnel::Tunnel;
use super::{Conn, Ctx, Flow};

/// What driving an HTTP session produced.
pub enum HttpFlow {
    /// Continue, close or wait, as for any session.
    Flow(Flow),
    /// The backend switched protocols: relay bytes from now on.
    Upgrade(Tunnel),
}

/// An HTTP/1.x client connection.
#[derive(Debug)]
pub struct HttpSession {}

impl HttpSession {
    /// Starts an HTTP session on an accepted connection.
    pub fn start(_service: &ServiceSnapshot, _ctx: &mut Ctx<'_>) -> Option<HttpSession> {
        None
    }
    /// Does all the I/O it can.
    pub fn drive(
        &mut self,
        _c: &mut Conn,
        _p: SocketAddr,
        _s: &ServiceSnapshot,
        _ctx: &mut Ctx<'_>,
    ) -> HttpFlow {
        HttpFlow::Flow(Flow::Done)
    }
    /// The deadline passed.
    pub fn on_timeout(
        &mut self,
        _c: &mut Conn,
        _p: SocketAddr,
        _s: &ServiceSnapshot,
        _ctx: &mut Ctx<'_>,
    ) -> HttpFlow {
        HttpFlow::Flow(Flow::Done)
    }
    /// Whether nothing is in flight.
    pub fn is_idle(&self) -> bool {
        true
    }
    /// Releases everything.
    pub fn close(self, _ctx: &mut Ctx<'_>) {}
}
