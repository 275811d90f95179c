//! HTTP/2 towards clients, to HTTP/1.1 real servers: the parts that are
//! protocol logic of their own, public so that they can be fuzzed and
//! reused. [`downgrade`] checks a stream's header list and writes the
//! HTTP/1.1 head forwarded for it, refusing the downgrade smuggling forms;
//! [`dechunk`] takes chunked coding off a response body for DATA frames;
//! [`frame`] reads and writes frames and encodes response fields;
//! [`hpack`] decodes request header blocks. The
//! sessions that serve HTTP/2 connections (the frame layer driven in the
//! worker loop, one HTTP/1.1 session per stream) are the engine's own;
//! docs/http2.md describes what is served, the limits and what is
//! refused.

pub mod dechunk;
pub mod downgrade;
pub mod frame;
pub mod hpack;
