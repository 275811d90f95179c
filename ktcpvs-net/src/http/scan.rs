//! Finding where a head ends, before tokenising it.
//!
//! `httparse` accepts a bare LF as a line end and has no size limits; this
//! scanner runs first over the buffered bytes and enforces both: every LF
//! must follow a CR, the first line and the whole head must fit their
//! limits, and the field count must stay under its cap. It also skips the
//! empty lines RFC 9112 §2.2 lets a server ignore before a request line.

/// Where a head ends, once it is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The head is complete.
    Complete {
        /// Bytes from the start of the buffer through the final CRLF CRLF.
        head_len: usize,
        /// Bytes of empty lines (CRLF) before the first line.
        leading: usize,
    },
    /// More bytes are needed; nothing seen so far breaks a rule.
    Partial,
}

/// Limits the scanner enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanLimits {
    /// Longest first line, not counting its CRLF.
    pub first_line: usize,
    /// Largest head, everything included.
    pub head: usize,
    /// Most field lines.
    pub fields: usize,
}

/// A rule the scanned bytes break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// The first line is longer than its limit.
    FirstLineTooLong,
    /// The head is larger than its limit.
    HeadTooLarge,
    /// The head has more field lines than the limit.
    TooManyFields,
    /// A line ends in LF without CR, at this offset.
    BareLf(usize),
}

/// Scans `buf` for the end of a head (an empty line).
pub(crate) fn scan_head(buf: &[u8], limits: ScanLimits) -> Result<Scan, ScanError> {
    let mut leading = 0;
    while buf[leading..].starts_with(b"\r\n") {
        leading += 2;
        if leading > limits.head {
            return Err(ScanError::HeadTooLarge);
        }
    }
    let mut line_start = leading;
    let mut first_line = true;
    let mut fields = 0usize;
    let mut pos = leading;
    while let Some(off) = memchr::memchr(b'\n', &buf[pos..]) {
        let lf = pos + off;
        if lf == 0 || buf[lf - 1] != b'\r' {
            return Err(ScanError::BareLf(lf));
        }
        let line_len = lf - 1 - line_start;
        if first_line {
            if line_len > limits.first_line {
                return Err(ScanError::FirstLineTooLong);
            }
            first_line = false;
        } else if line_len == 0 {
            if lf + 1 > limits.head {
                return Err(ScanError::HeadTooLarge);
            }
            return Ok(Scan::Complete {
                head_len: lf + 1,
                leading,
            });
        } else {
            fields += 1;
            if fields > limits.fields {
                return Err(ScanError::TooManyFields);
            }
        }
        if lf + 1 > limits.head {
            return Err(ScanError::HeadTooLarge);
        }
        line_start = lf + 1;
        pos = lf + 1;
    }
    // No further line end: the tail is an unfinished line.
    let tail = &buf[line_start..];
    let tail_len = tail.len() - usize::from(tail.last() == Some(&b'\r'));
    if first_line && tail_len > limits.first_line {
        return Err(ScanError::FirstLineTooLong);
    }
    if buf.len() >= limits.head {
        // The end of the head is not within `buf`, so the head is longer
        // than `buf`, hence than the limit.
        return Err(ScanError::HeadTooLarge);
    }
    Ok(Scan::Partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: ScanLimits = ScanLimits {
        first_line: 16,
        head: 64,
        fields: 3,
    };

    #[test]
    fn finds_the_end_of_a_head() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(
            scan_head(head, L),
            Ok(Scan::Complete {
                head_len: 27,
                leading: 0
            })
        );
        for cut in 0..27 {
            assert_eq!(scan_head(&head[..cut], L), Ok(Scan::Partial), "cut {cut}");
        }
    }

    #[test]
    fn skips_leading_empty_lines() {
        assert_eq!(
            scan_head(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", L),
            Ok(Scan::Complete {
                head_len: 22,
                leading: 4
            })
        );
    }

    #[test]
    fn rejects_bare_lf_anywhere() {
        assert_eq!(scan_head(b"\n", L), Err(ScanError::BareLf(0)));
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\n", L),
            Err(ScanError::BareLf(14))
        );
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\nA: b\n", L),
            Err(ScanError::BareLf(20))
        );
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\n\n", L),
            Err(ScanError::BareLf(16))
        );
    }

    #[test]
    fn enforces_limits() {
        assert_eq!(
            scan_head(b"GET /0123456789ab", L),
            Err(ScanError::FirstLineTooLong)
        );
        assert_eq!(scan_head(b"GET /0123456789a\r", L), Ok(Scan::Partial));
        assert_eq!(
            scan_head(b"GET /0123456789ab\r\n", L),
            Err(ScanError::FirstLineTooLong)
        );
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n", L),
            Err(ScanError::TooManyFields)
        );
        let big = [b"GET / HTTP/1.1\r\nA: ".as_slice(), &[b'x'; 60]].concat();
        assert_eq!(scan_head(&big, L), Err(ScanError::HeadTooLarge));
        // Exactly at the limit is accepted.
        let mut exact = b"GET / HTTP/1.1\r\nA: ".to_vec();
        exact.resize(60, b'x');
        exact.extend_from_slice(b"\r\n\r\n");
        assert_eq!(exact.len(), 64);
        assert_eq!(
            scan_head(&exact, L),
            Ok(Scan::Complete {
                head_len: 64,
                leading: 0
            })
        );
        assert_eq!(scan_head(&exact[..63], L), Ok(Scan::Partial));
        let mut over = exact[..62].to_vec();
        over.extend_from_slice(b"xx");
        assert_eq!(scan_head(&over, L), Err(ScanError::HeadTooLarge));
    }
}
