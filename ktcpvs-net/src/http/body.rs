//! Message bodies: how a body is delimited ([`Framing`]) and a streaming
//! tracker over the forwarded bytes ([`BodyState`]).
//!
//! A chunked body is validated while it streams and forwarded unchanged
//! (no de-chunking): the decoder is a byte-level state machine over the
//! chunk-size lines, extensions and trailer section, and skips chunk data
//! in bulk. Sizes use checked arithmetic and at most 16 hex digits; the
//! extensions of one chunk line and the trailer section have length caps.
//! Nothing is allocated.

use super::headers::{is_field_value_byte, is_tchar};
use super::limits::Limits;

/// The longest extension part of one chunk-size line, from the first `;`
/// to the CR, in bytes.
pub const MAX_CHUNK_EXTENSION: usize = 4096;

/// The most hex digits in a chunk size (leading zeros included): 16
/// digits cover every `u64`.
pub const MAX_CHUNK_SIZE_DIGITS: u8 = 16;

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`, through the last chunk and trailers.
    Chunked,
    /// Everything until the server closes the connection (responses only).
    CloseDelimited,
}

/// A malformed chunked body. For a request body the engine answers 400 (if
/// nothing of the response was sent yet); for a response body it cuts the
/// client connection. Either way it forwards no byte after the last count
/// [`BodyState::advance`] returned.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// A byte that cannot appear in a chunk size (it must be `1*HEXDIG`
    /// followed by `;` or CRLF; no whitespace, no sign).
    #[error("invalid byte {byte:#04x} in chunk size")]
    ChunkSize {
        /// The offending byte.
        byte: u8,
    },
    /// A chunk size of more than 16 hex digits.
    #[error("chunk size longer than {MAX_CHUNK_SIZE_DIGITS} hex digits")]
    ChunkSizeTooLong,
    /// A chunk extension that is not `;token[=token|quoted-string]`.
    #[error("invalid byte {byte:#04x} in chunk extension")]
    ChunkExtension {
        /// The offending byte.
        byte: u8,
    },
    /// Chunk extensions longer than [`MAX_CHUNK_EXTENSION`].
    #[error("chunk extensions longer than {MAX_CHUNK_EXTENSION} bytes")]
    ChunkExtensionTooLong,
    /// A bare LF where CRLF was expected.
    #[error("bare LF in chunked framing")]
    BareLf,
    /// Something other than CRLF after a chunk-size line's CR or after a
    /// chunk's data.
    #[error("expected CRLF, found byte {byte:#04x}")]
    MissingCrlf {
        /// The offending byte.
        byte: u8,
    },
    /// A trailer field breaking the field grammar (a name that is not a
    /// token, whitespace before the colon, a control character in a value).
    #[error("invalid byte {byte:#04x} in trailer field")]
    TrailerField {
        /// The offending byte.
        byte: u8,
    },
    /// A trailer line starting with whitespace (obsolete line folding).
    #[error("obsolete line folding in trailer section")]
    TrailerObsFold,
    /// A trailer section larger than [`Limits::max_header_size`].
    #[error("trailer section larger than {limit} bytes")]
    TrailerTooLarge {
        /// The limit.
        limit: usize,
    },
    /// More trailer fields than [`Limits::max_headers`].
    #[error("more than {limit} trailer fields")]
    TooManyTrailers {
        /// The limit.
        limit: usize,
    },
    /// [`BodyState::advance`] was called again after it reported an error.
    #[error("body framing already failed")]
    AfterError,
}

/// Where a chunked body is, byte by byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size; `digits` read so far.
    Size { size: u64, digits: u8 },
    /// After `;`: the first byte of an extension name.
    ExtNameStart { size: u64 },
    /// Inside an extension name.
    ExtName { size: u64 },
    /// After `=`: the first byte of an extension value.
    ExtValueStart { size: u64 },
    /// Inside a token extension value.
    ExtToken { size: u64 },
    /// Inside a quoted-string extension value.
    ExtQuoted { size: u64 },
    /// After a backslash inside a quoted string.
    ExtQuotedPair { size: u64 },
    /// After the closing quote of a quoted string.
    ExtAfterQuoted { size: u64 },
    /// After the CR that ends a chunk-size line.
    SizeLf { size: u64 },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// After chunk data: expecting CR.
    DataCr,
    /// After chunk data and CR: expecting LF.
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerLineStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// After the CR that ends a trailer field line.
    TrailerLf,
    /// After the CR of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
    /// An error was reported.
    Failed,
}

/// A streaming validator of a chunked body. Its counters are reset at the
/// line they bound. The counters and caps are `u32`: every session carries
/// two decoders, and the caps (head size and field count limits) are far
/// below 4 GiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedDecoder {
    /// Where the body is.
    state: Chunk,
    /// Extension bytes of the current chunk-size line (from its first `;`).
    extension_len: u32,
    /// Bytes of the trailer section so far (its final CRLF excluded).
    trailer_len: u32,
    /// Trailer fields so far.
    trailer_fields: u32,
    /// Cap on `trailer_len`.
    max_trailer_len: u32,
    /// Cap on `trailer_fields`.
    max_trailer_fields: u32,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new(limits: &Limits) -> Self {
        let cap = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        ChunkedDecoder {
            state: Chunk::Size { size: 0, digits: 0 },
            extension_len: 0,
            trailer_len: 0,
            trailer_fields: 0,
            max_trailer_len: cap(limits.max_header_size),
            max_trailer_fields: cap(limits.max_headers),
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Validates as much of `input` as belongs to the body; see
    /// [`BodyState::advance`].
    pub fn advance(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                Chunk::Done => return Ok(pos),
                Chunk::Failed => return Err(BodyError::AfterError),
                Chunk::Data { remaining } => {
                    let available = (input.len() - pos) as u64;
                    let take = remaining.min(available);
                    // `take <= available`, which came from a usize.
                    pos += take as usize;
                    self.state = match remaining - take {
                        0 => Chunk::DataCr,
                        left => Chunk::Data { remaining: left },
                    };
                }
                _ => {
                    let byte = input[pos];
                    match self.step(byte) {
                        Ok(next) => self.state = next,
                        Err(e) => {
                            self.state = Chunk::Failed;
                            return Err(e);
                        }
                    }
                    pos += 1;
                }
            }
        }
        match self.state {
            Chunk::Failed => Err(BodyError::AfterError),
            _ => Ok(pos),
        }
    }

    /// The state after `byte`, in any state but `Data`, `Done`, `Failed`.
    fn step(&mut self, byte: u8) -> Result<Chunk, BodyError> {
        use Chunk::*;
        if byte == b'\n' && !matches!(self.state, SizeLf { .. } | DataLf | TrailerLf | EndLf) {
            return Err(BodyError::BareLf);
        }
        match self.state {
            Size { size, digits } => self.size_byte(size, digits, byte),
            ExtNameStart { .. }
            | ExtName { .. }
            | ExtValueStart { .. }
            | ExtToken { .. }
            | ExtQuoted { .. }
            | ExtQuotedPair { .. }
            | ExtAfterQuoted { .. } => self.extension_step(byte),
            SizeLf { size } => match byte {
                b'\n' if size == 0 => {
                    self.trailer_len = 0;
                    self.trailer_fields = 0;
                    Ok(TrailerLineStart)
                }
                b'\n' => Ok(Data { remaining: size }),
                _ => Err(BodyError::MissingCrlf { byte }),
            },
            DataCr => match byte {
                b'\r' => Ok(DataLf),
                _ => Err(BodyError::MissingCrlf { byte }),
            },
            DataLf => match byte {
                b'\n' => Ok(Size { size: 0, digits: 0 }),
                _ => Err(BodyError::MissingCrlf { byte }),
            },
            TrailerLineStart | TrailerName | TrailerValue | TrailerLf | EndLf => {
                self.trailer_step(byte)
            }
            Data { .. } | Done | Failed => Ok(self.state),
        }
    }

    /// A byte of the hex chunk size (`digits` read so far make `size`).
    fn size_byte(&mut self, size: u64, digits: u8, byte: u8) -> Result<Chunk, BodyError> {
        use Chunk::*;
        match hex_value(byte) {
            Some(v) => {
                if digits >= MAX_CHUNK_SIZE_DIGITS {
                    return Err(BodyError::ChunkSizeTooLong);
                }
                let size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(v)))
                    .ok_or(BodyError::ChunkSizeTooLong)?;
                Ok(Size {
                    size,
                    digits: digits + 1,
                })
            }
            None if digits == 0 => Err(BodyError::ChunkSize { byte }),
            None => match byte {
                b';' => {
                    self.extension_len = 0;
                    self.extension_byte(ExtNameStart { size })
                }
                b'\r' => Ok(SizeLf { size }),
                _ => Err(BodyError::ChunkSize { byte }),
            },
        }
    }

    /// A byte of the chunk extensions: `;token[=token|quoted-string]`.
    fn extension_step(&mut self, byte: u8) -> Result<Chunk, BodyError> {
        use Chunk::*;
        let quoted_text = |b: u8| matches!(b, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff);
        match self.state {
            ExtNameStart { size } if is_tchar(byte) => self.extension_byte(ExtName { size }),
            ExtName { .. } | ExtToken { .. } if is_tchar(byte) => self.extension_byte(self.state),
            ExtName { size } if byte == b'=' => self.extension_byte(ExtValueStart { size }),
            ExtValueStart { size } if is_tchar(byte) => self.extension_byte(ExtToken { size }),
            ExtValueStart { size } if byte == b'"' => self.extension_byte(ExtQuoted { size }),
            ExtQuoted { size } => match byte {
                b'"' => self.extension_byte(ExtAfterQuoted { size }),
                b'\\' => self.extension_byte(ExtQuotedPair { size }),
                b if quoted_text(b) => self.extension_byte(self.state),
                _ => Err(BodyError::ChunkExtension { byte }),
            },
            ExtQuotedPair { size } if quoted_text(byte) => self.extension_byte(ExtQuoted { size }),
            ExtName { size } | ExtToken { size } | ExtAfterQuoted { size } => match byte {
                b';' => self.extension_byte(ExtNameStart { size }),
                b'\r' => Ok(SizeLf { size }),
                _ => Err(BodyError::ChunkExtension { byte }),
            },
            _ => Err(BodyError::ChunkExtension { byte }),
        }
    }

    /// A byte of the trailer section, or of the final empty line.
    fn trailer_step(&mut self, byte: u8) -> Result<Chunk, BodyError> {
        use Chunk::*;
        match self.state {
            TrailerLineStart => match byte {
                b'\r' => Ok(EndLf),
                b' ' | b'\t' => Err(BodyError::TrailerObsFold),
                b if is_tchar(b) => self.trailer_byte(TrailerName),
                _ => Err(BodyError::TrailerField { byte }),
            },
            TrailerName => match byte {
                b':' => self.trailer_byte(TrailerValue),
                b if is_tchar(b) => self.trailer_byte(TrailerName),
                _ => Err(BodyError::TrailerField { byte }),
            },
            TrailerValue => match byte {
                b'\r' => self.trailer_byte(TrailerLf),
                b if is_field_value_byte(b) => self.trailer_byte(TrailerValue),
                _ => Err(BodyError::TrailerField { byte }),
            },
            TrailerLf => match byte {
                b'\n' => {
                    self.trailer_fields += 1;
                    if self.trailer_fields > self.max_trailer_fields {
                        return Err(BodyError::TooManyTrailers {
                            limit: self.max_trailer_fields as usize,
                        });
                    }
                    self.trailer_byte(TrailerLineStart)
                }
                _ => Err(BodyError::MissingCrlf { byte }),
            },
            EndLf => match byte {
                b'\n' => Ok(Done),
                _ => Err(BodyError::MissingCrlf { byte }),
            },
            _ => Ok(self.state),
        }
    }

    /// Counts one chunk-extension byte against the cap.
    fn extension_byte(&mut self, next: Chunk) -> Result<Chunk, BodyError> {
        self.extension_len += 1;
        if self.extension_len as usize > MAX_CHUNK_EXTENSION {
            Err(BodyError::ChunkExtensionTooLong)
        } else {
            Ok(next)
        }
    }

    /// Counts one trailer byte against the cap.
    fn trailer_byte(&mut self, next: Chunk) -> Result<Chunk, BodyError> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer_len {
            Err(BodyError::TrailerTooLarge {
                limit: self.max_trailer_len as usize,
            })
        } else {
            Ok(next)
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// How much of a body remains, tracked over the bytes the engine forwards.
///
/// ```
/// use ktcpvs_net::http::{BodyState, Framing, Limits};
/// let mut body = BodyState::new(Framing::Chunked, &Limits::default());
/// let wire = b"3;name=\"v\"\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\nGET / HTTP/1.1\r\n";
/// let n = body.advance(wire).unwrap();
/// assert!(body.is_done());
/// assert!(wire[n..].starts_with(b"GET"));
///
/// let mut body = BodyState::new(Framing::Length(4), &Limits::default());
/// assert_eq!(body.advance(b"ab").unwrap(), 2);
/// assert_eq!(body.advance(b"cdef").unwrap(), 2);
/// assert!(body.is_done());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyState {
    /// A `Content-Length` body with this many bytes still to come (never
    /// 0: a finished body is [`BodyState::Done`]).
    Length {
        /// Bytes still to come.
        remaining: u64,
    },
    /// A chunked body being validated.
    Chunked(ChunkedDecoder),
    /// A body that ends when the server closes; never done.
    CloseDelimited,
    /// The body is complete (or there was none).
    Done,
}

impl BodyState {
    /// The tracker for a body framed by `framing`. `limits` bounds a
    /// chunked body's trailer section.
    pub fn new(framing: Framing, limits: &Limits) -> Self {
        match framing {
            Framing::None | Framing::Length(0) => BodyState::Done,
            Framing::Length(remaining) => BodyState::Length { remaining },
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::new(limits)),
            Framing::CloseDelimited => BodyState::CloseDelimited,
        }
    }

    /// Takes the next bytes read after what was already counted. Returns
    /// how many of `input`'s first bytes belong to this body (validated, to
    /// forward as they are); the rest belong to the next message. A return
    /// smaller than `input.len()` implies [`is_done`](Self::is_done).
    /// Once an error is returned, the body is broken for good.
    pub fn advance(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        match self {
            BodyState::Length { remaining } => {
                let take = (*remaining).min(input.len() as u64);
                *remaining -= take;
                if *remaining == 0 {
                    *self = BodyState::Done;
                }
                // `take <= input.len()`.
                Ok(take as usize)
            }
            BodyState::Chunked(decoder) => {
                let n = decoder.advance(input)?;
                if decoder.is_done() {
                    *self = BodyState::Done;
                }
                Ok(n)
            }
            BodyState::CloseDelimited => Ok(input.len()),
            BodyState::Done => Ok(0),
        }
    }

    /// Whether the whole body has been counted.
    pub fn is_done(&self) -> bool {
        matches!(self, BodyState::Done)
    }

    /// How many bytes may be forwarded next without being looked at: what
    /// a `Content-Length` body has left, unbounded for a close-delimited
    /// body, `None` for a chunked body (validated byte by byte) or a
    /// finished one.
    ///
    /// ```
    /// use ktcpvs_net::http::{BodyState, Framing, Limits};
    /// let mut body = BodyState::new(Framing::Length(10), &Limits::default());
    /// assert_eq!(body.opaque_limit(), Some(10));
    /// body.advance_opaque(10);
    /// assert!(body.is_done() && body.opaque_limit().is_none());
    /// assert!(BodyState::new(Framing::Chunked, &Limits::default()).opaque_limit().is_none());
    /// ```
    pub fn opaque_limit(&self) -> Option<u64> {
        match self {
            BodyState::Length { remaining } => Some(*remaining),
            BodyState::CloseDelimited => Some(u64::MAX),
            BodyState::Chunked(_) | BodyState::Done => None,
        }
    }

    /// Counts `n` bytes forwarded without being looked at (at most
    /// [`opaque_limit`](Self::opaque_limit)).
    pub fn advance_opaque(&mut self, n: u64) {
        if let BodyState::Length { remaining } = self {
            *remaining = remaining.saturating_sub(n);
            if *remaining == 0 {
                *self = BodyState::Done;
            }
        }
    }

    /// Whether the body ends only when the server closes the connection.
    pub fn is_close_delimited(&self) -> bool {
        matches!(self, BodyState::CloseDelimited)
    }
}
