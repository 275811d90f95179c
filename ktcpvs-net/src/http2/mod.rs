//! HTTP/2 towards clients, to HTTP/1.1 real servers. What lives here so
//! far is the part every HTTP/2 front end needs whatever frame layer
//! drives it: [`downgrade`], which checks a stream's header list and
//! writes the HTTP/1.1 head forwarded for it, refusing the downgrade
//! smuggling forms. The frame layer, flow control and the engine's
//! sessions for HTTP/2 connections are not built yet (docs/compat.md).

pub mod downgrade;
