//! # ktcpvs-net
//!
//! The relay engine of **ktcpvs**: worker threads with one `mio` event loop
//! each, accepting on the listeners of every running virtual service and
//! relaying to the real servers its scheduler picks, at layer 4 (a byte
//! tunnel) or at layer 7 (HTTP/1.1 content switching, per connection or
//! per request).
//!
//! | module | what lives there |
//! |---|---|
//! | [`engine`] | [`Engine`], [`EngineBuilder`], [`EngineHandle`]: start, reconfigure, stop |
//! | [`worker`] | one thread's event loop, sessions, timers and pools |
//! | [`listener`] | `SO_REUSEPORT` listening sockets and the `maxclients` gate |
//! | [`session`] | a client connection: the layer-4 tunnel and the HTTP session |
//! | [`backend_pool`] | backend connections and their per-server idle pool |
//! | [`buffer`] | the bounded per-worker buffer pool |
//! | [`resource`] | local resource exhaustion (descriptors, ports) told apart from a server's failure |
//! | [`splice`] | `zerocopy_send`: kernel pipes and `splice(2)` for bytes that need no inspection |
//! | [`timer`] | per-session deadlines in a heap with lazy cancellation |
//! | [`http`] | sans-I/O HTTP/1.x framing: parse, validate, rewrite heads, bodies |
//!
//! The engine reads configuration only from the core's
//! [`Control`](ktcpvs_core::Control) snapshot and meets schedulers only
//! through the core traits. `docs/engine.md` explains the threading model
//! and the state machines; `docs/embedding.md` shows a host program.

#![warn(missing_docs)]

pub mod backend_pool;
pub mod buffer;
pub mod engine;
pub mod error;
pub mod http;
pub mod listener;
pub mod resource;
pub mod session;
pub mod splice;
pub mod timer;
pub mod worker;

pub use engine::{Engine, EngineBuilder, EngineHandle};
pub use error::EngineError;
