//! The `wlc` scheduler and its picker: weighted least-connection over all
//! of a service's servers, the layer-4 scheduler of the original
//! (`tcp_vs_wlc.c`).
//!
//! The comparison is delegated to [`least_connection`] from the core, which
//! compares `active / weight` by cross-multiplication exactly as IPVS does
//! (no division, no floats), so every scheduler of the project breaks ties
//! and skips servers the same way.

use ktcpvs_core::error::SchedulerError;
use ktcpvs_core::scheduler::{
    least_connection, Dispatch, PickRequest, Picker, Scheduler, Selection,
};
use ktcpvs_core::view::VirtualService;

/// The `wlc` scheduler: weighted least-connection, layer 4.
///
/// * Every server of the service is a candidate; rules are ignored.
/// * The server with the lowest `active_connections / weight` wins,
///   compared by cross-multiplication in 128-bit integers.
/// * A server with weight 0 (quiesced), an unhealthy server and a server in
///   [`PickRequest::exclude`] (a failed connect being retried) are skipped.
///   When no server is left the picker answers `None` ("no server"), and
///   the engine falls back to the service's `redirect` or refuses.
/// * **Ties** go to the server with the lowest index, which is the server
///   added earliest (the engine keeps servers in the order they were
///   added). The original gave ties to the most recently added server, an
///   artefact of its head-inserted lists; the earliest is stable across a
///   configuration reload.
///
/// Active-connection counts are read live at every pick from
/// [`RealServer::active_connections`](ktcpvs_core::view::RealServer::active_connections),
/// which the engine keeps in per-server atomics that survive rebuilds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wlc;

impl Wlc {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "wlc";
}

impl Scheduler for Wlc {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::Connection
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        Ok(Box::new(WlcPicker {
            servers: service.server_count(),
        }))
    }

    fn description(&self) -> &str {
        "weighted least-connection over all servers (layer 4, reads nothing)"
    }
}

/// The picker built by [`Wlc`] for one version of a service.
///
/// It remembers only how many servers the service had when it was built;
/// everything else (weight, health, load) is read live. Picking allocates
/// nothing and takes no lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WlcPicker {
    servers: usize,
}

impl WlcPicker {
    /// How many servers the service had when this picker was built.
    pub fn server_count(&self) -> usize {
        self.servers
    }
}

impl Picker for WlcPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        // Never index past the service we are handed, even if it is not the
        // one we were built from.
        let count = self.servers.min(service.server_count());
        least_connection((0..count).map(|i| (i, service.server(i))), request.exclude)
            .map(Selection::server)
    }
}
