//! Line framing: the bounded line reader [`read_line`] (the only I/O in
//! the protocol module) and the dot-stuffing of the configuration text that
//! follows `load` ([`stuff_line`], [`unstuff_line`]).

use std::io::BufRead;

use super::{ProtocolError, END_OF_TEXT};

/// Escapes one line of `load` text for the wire (a leading `.` is doubled).
pub fn stuff_line(line: &str) -> String {
    if line.starts_with('.') {
        format!(".{line}")
    } else {
        line.to_string()
    }
}

/// What one line of `load` text means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLine<'a> {
    /// A line of the text (unescaped).
    Line(&'a str),
    /// The terminating `.`.
    End,
}

/// Reads one wire line of `load` text.
pub fn unstuff_line(line: &str) -> TextLine<'_> {
    if line == END_OF_TEXT {
        TextLine::End
    } else if let Some(rest) = line.strip_prefix('.') {
        TextLine::Line(rest)
    } else {
        TextLine::Line(line)
    }
}

/// Outcome of [`read_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A complete line (its `\n` and any `\r` before it removed).
    Line(String),
    /// End of stream before any byte of a new line.
    Eof,
}

/// Reads one `\n`-terminated line of at most `max` bytes. The limit is
/// checked against each buffered chunk before it is copied, so a peer that
/// never sends a newline costs at most `max` bytes of memory. A line that
/// exceeds the limit is consumed up to its newline (or end of stream) and
/// reported as [`ProtocolError::LineTooLong`], so the next line can be read.
pub fn read_line<R: BufRead>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Result<LineRead, ProtocolError>> {
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            if line.is_empty() && !too_long {
                return Ok(Ok(LineRead::Eof));
            }
            break;
        }
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long && line.len() + chunk.len() > max {
            too_long = true;
            line = Vec::new();
        }
        if !too_long {
            line.extend_from_slice(chunk);
        }
        let used = found.unwrap_or(available.len());
        reader.consume(used);
        if found.is_some() {
            break;
        }
    }
    if too_long {
        return Ok(Err(ProtocolError::LineTooLong { max }));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8(line)
        .map(LineRead::Line)
        .map_err(|_| ProtocolError::NotUtf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_text_dot_stuffing_round_trips() {
        for line in ["", ".", "..", ".hidden", "Virtual web {", " . "] {
            let wire = stuff_line(line);
            assert_eq!(unstuff_line(&wire), TextLine::Line(line), "{line:?}");
        }
        assert_eq!(unstuff_line("."), TextLine::End);
    }

    #[test]
    fn bounded_reader_refuses_long_lines_and_recovers() {
        let long = "x".repeat(100);
        let input = format!("short\r\n{long}\nnext\nlast-without-newline");
        let mut r = std::io::BufReader::with_capacity(8, input.as_bytes());
        assert_eq!(
            read_line(&mut r, 50).unwrap(),
            Ok(LineRead::Line("short".into()))
        );
        assert_eq!(
            read_line(&mut r, 50).unwrap(),
            Err(ProtocolError::LineTooLong { max: 50 })
        );
        assert_eq!(
            read_line(&mut r, 50).unwrap(),
            Ok(LineRead::Line("next".into()))
        );
        assert_eq!(
            read_line(&mut r, 50).unwrap(),
            Ok(LineRead::Line("last-without-newline".into()))
        );
        assert_eq!(read_line(&mut r, 50).unwrap(), Ok(LineRead::Eof));
        let mut bad = std::io::BufReader::new(&b"\xff\xfe\n"[..]);
        assert_eq!(
            read_line(&mut bad, 50).unwrap(),
            Err(ProtocolError::NotUtf8)
        );
    }
}
