//! # ktcpvs-net
//!
//! The relay engine of **ktcpvs**: worker threads with one `mio` event loop
//! each, accepting on the listeners of every running virtual service and
//! relaying to the real servers its scheduler picks, at layer 4 (a byte
//! tunnel) or at layer 7 (HTTP/1.1 content switching, per connection or
//! per request; HTTP/2 clients too, each stream switched on its own to
//! HTTP/1.1 real servers).
//!
//! A host program needs [`Engine`] (start it over a
//! [`Control`](ktcpvs_core::Control)), [`EngineHandle`] (stop it, find a
//! service's bound address) and [`EngineError`]; [`http`] is the sans-I/O
//! HTTP/1.x framing the engine is built on, usable on its own; [`http2`]
//! the HTTP/2-to-HTTP/1.1 downgrade and dechunking checks, also sans-I/O;
//! [`tls::RustlsLoader`] is what a host registers so that services with
//! certificates terminate TLS; and [`raise_open_file_limit`] is what a host
//! should call at start.
//!
//! Inside, the layers import one way only, from the socket up:
//!
//! | layer | modules | what lives there |
//! |---|---|---|
//! | framing | [`http`], [`http2`] | parse, validate and rewrite heads; body framing; an HTTP/2 header list checked and written as HTTP/1.1 (no I/O) |
//! | certificates | [`tls`] | certificate files to rustls server configurations (control path) |
//! | I/O | `token`, `throttle`, `io::conn`, `io::buffer`, `io::splice`, `io::tls`, `io::memory`, `timer` | poller tokens; a socket (or an HTTP/2 stream's in-memory end) with its readiness and byte counts; pooled buffers; kernel pipes; TLS under a client socket; deadlines |
//! | upstream | `upstream::pool`, `upstream::connect` | backend connections and their idle pools; choosing, connecting, passive health |
//! | session | `session`, `session::tunnel`, `session::http`, `session::h2` | one client connection: the layer-4 tunnel, the HTTP/1.x session, the HTTP/2 session (the engine's own frame layer in the worker loop, one HTTP/1.x session per stream) |
//! | worker | `worker`, `listener`, `resource` | one thread's event loop; listening sockets and `maxclients`; local exhaustion |
//! | engine | [`engine`] | start, reconfigure, stop |
//!
//! The engine reads configuration only from the core's
//! [`Control`](ktcpvs_core::Control) snapshot and meets schedulers only
//! through the core traits. `docs/engine.md` explains the threading model,
//! the state machines and the import graph; `docs/embedding.md` shows a
//! host program.

#![warn(missing_docs)]

pub mod access_log;
pub mod engine;
pub mod error;
pub mod http;
pub mod http2;
pub(crate) mod io;
pub(crate) mod listener;
pub(crate) mod nap;
pub mod proxy_protocol;
pub(crate) mod resource;
pub(crate) mod session;
pub mod stats;
pub(crate) mod throttle;
pub(crate) mod timer;
pub mod tls;
pub(crate) mod token;
pub(crate) mod upstream;
pub(crate) mod worker;

pub use engine::{Engine, EngineBuilder, EngineHandle, EngineObserver, ListeningSocket};
pub use error::EngineError;
pub use resource::raise_open_file_limit;
pub use stats::WorkerSnapshot;
