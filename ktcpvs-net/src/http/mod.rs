//! HTTP/1.x framing, sans I/O: strict request-head validation, head
//! rewriting, response-head interpretation and body framing (Content-Length
//! countdown and chunked validation while streaming).
//!
//! Nothing here touches a socket or a clock, so every rule is unit-tested on
//! raw bytes, split at every offset. The engine calls these functions on
//! the bytes it has buffered; they only borrow those bytes and the header
//! slots the engine lends, and allocate nothing (the writers append to a
//! caller-owned `Vec`).
//!
//! | item | what it does |
//! |---|---|
//! | [`parse_request`] | validates a request head per RFC 9112 and the smuggling rules; `Ok(None)` means "need more bytes"; errors carry the status to answer (400, 414, 431) |
//! | [`write_request_head`] | the head to forward: hop-by-hop fields and those named in `Connection` removed (never the framing fields or `Host`), `X-Forwarded-For`/`Forwarded` added on request, `Connection: close` added when asked |
//! | [`parse_response`] | reads a response head and decides its body framing given the request method (HEAD, 1xx/204/304, 101, close-delimited); refuses one whose `Connection` names its framing fields |
//! | [`write_response_head`] | the head to return to the client, hop-by-hop fields removed, an extra line (scheduler stamp) inserted |
//! | [`plan_response_head`] | the one decision on a response head: verbatim, spliced ([`close_splice`]) or rewritten |
//! | [`close_splice`] | when a response head needs only `Connection: close` added (or swapped for its `Connection: keep-alive`): where to cut the received head, so it is sent as slices around [`CONNECTION_CLOSE_LINE`] instead of rewritten |
//! | [`write_error_response`] | the engine's own complete error responses (400, 408, 413, 414, 431, 5xx) |
//! | [`BodyState`] | how much of a body remains over forwarded bytes; chunked bodies validated, not de-chunked |
//!
//! A request's life through this module:
//!
//! 1. [`parse_request`] on the buffered bytes until it returns a head (or
//!    an error: write [`write_error_response`]`(e.status())`, close).
//! 2. The scheduler picks with the [`RequestHead`](ktcpvs_core::RequestHead).
//! 3. Forward `buf[..info.head_len]` as is when
//!    [`can_forward_request_verbatim`], else [`write_request_head`].
//! 4. [`BodyState::new`]`(info.framing)`, then forward exactly the counts
//!    [`BodyState::advance`] returns until [`BodyState::is_done`]; the rest
//!    of the buffer is the next pipelined request.
//! 5. The same for the response with [`parse_response`], which needs the
//!    request's [`Method`].

mod body;
pub mod headers;
mod limits;
mod request;
pub(crate) use request::is_host_delimiter;
pub(crate) use response::split_own_response_head;
mod response;
mod rewrite;
mod scan;

pub use body::{
    BodyError, BodyState, ChunkedDecoder, Framing, MAX_CHUNK_EXTENSION, MAX_CHUNK_SIZE_DIGITS,
};
pub use limits::Limits;
pub use request::{
    parse_request, parse_request_uninit, Method, RequestError, RequestInfo, TargetForm,
};
pub use response::{
    parse_response, parse_response_uninit, FieldLine, ResponseError, ResponseHead, ResponseInfo,
};
pub use rewrite::{
    can_forward_request_verbatim, can_forward_response_verbatim, close_splice, plan_response_head,
    reason_phrase, write_error_response, write_fixed_response, write_request_head,
    write_response_head, CloseSplice, ForwardOptions, ResponsePlan, CONNECTION_CLOSE_LINE,
    CONTINUE_RESPONSE,
};

#[cfg(test)]
mod tests;
