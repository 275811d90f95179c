//! Chunked transfer coding taken off a response body, for its HTTP/2
//! DATA frames: a byte-level push decoder over the HTTP/1.1 response a
//! stream's session wrote (whose chunk framing the engine validated as it
//! relayed it from the server). Strict all the same: anything but
//! `HEXDIG+ [; ext] CRLF data CRLF … 0 CRLF trailers CRLF` is an error
//! (the stream is reset). Trailer fields are skipped. Allocation-free: the
//! caller's buffer is written, nothing else.
//!
//! ```
//! use ktcpvs_net::http2::dechunk::Dechunker;
//! let mut d = Dechunker::new();
//! let mut out = Vec::new();
//! let body = b"5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n";
//! assert_eq!(d.decode(body, &mut out, usize::MAX), Ok(body.len()));
//! assert_eq!((out.as_slice(), d.is_done()), (&b"hello"[..], true));
//! assert!(Dechunker::new().decode(b"5\nhello", &mut out, 64).is_err());
//! ```

/// A decoder of one chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dechunker(Dechunk);

impl Default for Dechunker {
    fn default() -> Self {
        Dechunker::new()
    }
}

impl Dechunker {
    /// A decoder at the start of a body.
    pub fn new() -> Dechunker {
        Dechunker(Dechunk::new())
    }

    /// Whether the whole body (through the trailer section) was read.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// Decodes from `input`, appending chunk data to `out` until `out`
    /// holds `max` bytes; returns how many input bytes were used (the
    /// rest is for a later call, or follows the body).
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<usize, DechunkError> {
        self.0.decode(input, out, max)
    }
}

/// Where the decoder is in the chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dechunk {
    /// Reading a chunk size (`digits` read so far).
    Size { value: u64, digits: u8 },
    /// Skipping a chunk extension, up to CR.
    Extension { value: u64 },
    /// CR seen after the size line: LF next.
    SizeLf { value: u64 },
    /// This many data bytes of the current chunk are left.
    Data(u64),
    /// CR after a chunk's data.
    DataCr,
    /// LF after a chunk's data.
    DataLf,
    /// In the trailer section; `empty`: at the start of a line.
    Trailers { empty: bool },
    /// CR seen in the trailer section.
    TrailersLf { empty: bool },
    /// The last chunk and the trailer section were read.
    Done,
}

/// A malformed chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct DechunkError;

impl Dechunk {
    /// A decoder at the start of a body.
    fn new() -> Dechunk {
        Dechunk::Size {
            value: 0,
            digits: 0,
        }
    }

    /// Whether the whole body was read.
    fn is_done(self) -> bool {
        self == Dechunk::Done
    }

    /// See [`Dechunker::decode`].
    fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<usize, DechunkError> {
        let mut i = 0;
        while i < input.len() {
            if let Dechunk::Data(left) = *self {
                let room = max.saturating_sub(out.len());
                if room == 0 {
                    break;
                }
                let n = (input.len() - i)
                    .min(room)
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[i..i + n]);
                i += n;
                *self = if left == n as u64 {
                    Dechunk::DataCr
                } else {
                    Dechunk::Data(left - n as u64)
                };
                continue;
            }
            if *self == Dechunk::Done {
                break;
            }
            *self = self.step(input[i])?;
            i += 1;
        }
        Ok(i)
    }

    /// One byte outside chunk data.
    fn step(self, b: u8) -> Result<Dechunk, DechunkError> {
        Ok(match (self, b) {
            (Dechunk::Size { value, digits }, _) if b.is_ascii_hexdigit() => {
                let d = u64::from((b as char).to_digit(16).ok_or(DechunkError)?);
                if digits >= 16 {
                    return Err(DechunkError);
                }
                Dechunk::Size {
                    value: value.checked_mul(16).ok_or(DechunkError)? + d,
                    digits: digits + 1,
                }
            }
            (Dechunk::Size { value, digits }, b';') if digits > 0 => Dechunk::Extension { value },
            (Dechunk::Size { value, digits }, b'\r') if digits > 0 => Dechunk::SizeLf { value },
            (Dechunk::Extension { value }, b'\r') => Dechunk::SizeLf { value },
            (Dechunk::Extension { .. }, b'\n') => return Err(DechunkError),
            (Dechunk::Extension { value }, _) => Dechunk::Extension { value },
            (Dechunk::SizeLf { value: 0 }, b'\n') => Dechunk::Trailers { empty: true },
            (Dechunk::SizeLf { value }, b'\n') => Dechunk::Data(value),
            (Dechunk::DataCr, b'\r') => Dechunk::DataLf,
            (Dechunk::DataLf, b'\n') => Dechunk::Size {
                value: 0,
                digits: 0,
            },
            (Dechunk::Trailers { empty }, b'\r') => Dechunk::TrailersLf { empty },
            (Dechunk::Trailers { .. }, b'\n') => return Err(DechunkError),
            (Dechunk::Trailers { .. }, _) => Dechunk::Trailers { empty: false },
            (Dechunk::TrailersLf { empty: true }, b'\n') => Dechunk::Done,
            (Dechunk::TrailersLf { empty: false }, b'\n') => Dechunk::Trailers { empty: true },
            _ => return Err(DechunkError),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), DechunkError> {
        let mut d = Dechunk::new();
        let mut out = Vec::new();
        let mut at = 0;
        while at < input.len() && !d.is_done() {
            let end = (at + step).min(input.len());
            let used = d.decode(&input[at..end], &mut out, usize::MAX)?;
            if used == 0 {
                break;
            }
            at += used;
        }
        Ok((out, d.is_done()))
    }

    #[test]
    fn chunks_decode_whatever_the_split() {
        let body =
            b"5;name=\"v\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-t: 1\r\n\r\n";
        for step in 1..body.len() {
            let (out, done) = decode_all(body, step).unwrap();
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz");
            assert!(done);
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"\r\n"[..],
            b"5\nhello\r\n",
            b"5\r\nhelloX\r\n",
            b"g\r\n",
            b"11111111111111111\r\n",
            b"0\r\nx\n\r\n",
            b"5;e\n",
            b" 5\r\n",
        ] {
            assert!(
                decode_all(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn output_stops_at_the_limit() {
        let mut d = Dechunk::new();
        let mut out = Vec::new();
        let used = d
            .decode(b"a\r\n0123456789\r\n0\r\n\r\n", &mut out, 4)
            .unwrap();
        assert_eq!(out, b"0123");
        assert_eq!(used, 7);
        assert_eq!(d, Dechunk::Data(6));
    }
}
