//! Socket I/O below every relay: the connection type with its readiness
//! flags and byte counts, the pooled buffers bytes wait in, and `splice(2)`
//! through kernel pipes for bytes that need no inspection.
//!
//! | module | what lives there |
//! |---|---|
//! | [`conn`] | `Conn`: a socket, what the poller reported about it, the bytes it moved |
//! | [`memory`] | `MemoryEnd`: one HTTP/2 stream's request and response as HTTP/1.1 bytes |
//! | [`buffer`] | `Buffer` and the bounded per-worker `BufferPool` it returns to when dropped |
//! | [`splice`] | `KernelPipe`: socket → pipe → socket without copying to user space |
//! | [`tls`] | `TlsLayer`: rustls between a client socket and the relays |

pub(crate) mod buffer;
pub(crate) mod conn;
pub(crate) mod memory;
pub(crate) mod splice;
pub(crate) mod tls;
