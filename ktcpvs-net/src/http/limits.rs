//! The size limits that bound every head the framing module reads.
//!
//! They live apart from the parsers because the engine builds them once per
//! configuration snapshot (from [`Settings`]) and hands the same value to
//! [`parse_request`](super::parse_request),
//! [`parse_response`](super::parse_response) and
//! [`BodyState::new`](super::BodyState::new).

use ktcpvs_core::Settings;

/// Size limits for request and response heads (and chunked trailers).
///
/// The defaults match the runtime settings' defaults, in line with HAProxy
/// and nginx: an 8 KiB request line, a 16 KiB head, 100 header fields.
///
/// ```
/// use ktcpvs_net::http::Limits;
/// let limits = Limits::default();
/// assert_eq!((limits.max_request_line, limits.max_header_size, limits.max_headers), (8192, 16384, 100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest request line accepted, in bytes, not counting its CRLF.
    /// A longer one is answered 414. Response status lines are bounded only
    /// by [`max_header_size`](Self::max_header_size).
    pub max_request_line: usize,
    /// The largest head accepted, in bytes, from the first byte to the final
    /// CRLF CRLF included. A larger one is answered 431 (502 for a
    /// response). It also bounds the trailer section of a chunked body.
    pub max_header_size: usize,
    /// The most header fields in one head (and trailer fields in one chunked
    /// body). More are answered 431 (502 for a response). Callers must lend
    /// at least this many [`httparse::Header`] slots to the parsers.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_header_size: 16384,
            max_headers: 100,
        }
    }
}

impl Limits {
    /// The limits set by the runtime settings `max_request_line`,
    /// `max_header_size` and `max_headers`.
    ///
    /// ```
    /// use ktcpvs_core::Settings;
    /// use ktcpvs_net::http::Limits;
    /// assert_eq!(Limits::from_settings(&Settings::default()), Limits::default());
    /// ```
    pub fn from_settings(settings: &Settings) -> Self {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Limits {
            max_request_line: size(settings.max_request_line()),
            max_header_size: size(settings.max_header_size()),
            max_headers: size(settings.max_headers()),
        }
    }
}
