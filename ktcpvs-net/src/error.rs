//! The engine's error type.
//!
//! Callers may rely on the variants and their fields; the `Display` wording
//! is for people and may change.

use std::io;
use std::net::SocketAddr;

/// What can go wrong starting or running the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The operating system refused an event loop (`epoll_create`, eventfd).
    #[error("cannot create the event loop of worker {worker}: {source}")]
    Poll {
        /// The worker's number.
        worker: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A service's listening socket could not be opened.
    #[error("[{service}] cannot listen on {addr}: {source}")]
    Bind {
        /// The service's name.
        service: String,
        /// The address it should listen on.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start worker thread {worker}: {source}")]
    Spawn {
        /// The worker's number.
        worker: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A worker's event loop failed while running.
    #[error("worker {worker} stopped on an event-loop error: {source}")]
    Worker {
        /// The worker's number.
        worker: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A worker thread panicked.
    #[error("worker thread {worker} panicked")]
    WorkerPanicked {
        /// The worker's number.
        worker: usize,
    },
    /// `workers(0)` was asked for.
    #[error("an engine needs at least one worker thread")]
    NoWorkers,
}
