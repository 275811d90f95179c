//! The chunked body decoder against a plain reference decoder written
//! straight from the grammar of RFC 9112 §7.1 (with the engine's
//! strictness: no whitespace around extensions, CRLF only, at most 16 hex
//! digits, caps on extensions and trailers), fed the input whole and split
//! at two points the input chooses. Both must agree on accept, refuse or
//! "need more", and on where the body ends.
#![no_main]

use ktcpvs_net::http::{BodyState, Framing, Limits, MAX_CHUNK_EXTENSION, MAX_CHUNK_SIZE_DIGITS};
use libfuzzer_sys::fuzz_target;

/// What a decoder made of an input.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The body ends after this many bytes.
    Complete(usize),
    /// Every byte belongs to the body, which is not over.
    Partial,
    /// The framing is broken.
    Refused,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The reference: a recursive-descent reading of the whole input.
struct Reference<'a> {
    input: &'a [u8],
    pos: usize,
    limits: Limits,
}

/// `Err(None)`: the input ended; `Err(Some(()))`: the framing is broken.
type Step<T> = Result<T, Option<()>>;

impl Reference<'_> {
    fn peek(&self) -> Step<u8> {
        self.input.get(self.pos).copied().ok_or(None)
    }
    fn next(&mut self) -> Step<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }
    fn expect(&mut self, want: u8) -> Step<()> {
        if self.next()? == want {
            Ok(())
        } else {
            Err(Some(()))
        }
    }
    fn crlf(&mut self) -> Step<()> {
        self.expect(b'\r')?;
        self.expect(b'\n')
    }

    fn body(&mut self) -> Step<usize> {
        loop {
            let size = self.chunk_size()?;
            self.extensions()?;
            self.crlf()?;
            if size == 0 {
                self.trailers()?;
                return Ok(self.pos);
            }
            let size = usize::try_from(size).map_err(|_| None)?;
            if self.input.len() - self.pos < size {
                return Err(None);
            }
            self.pos += size;
            self.crlf()?;
        }
    }

    fn chunk_size(&mut self) -> Step<u64> {
        let mut size = 0u64;
        let mut digits = 0u8;
        while let Some(v) = self.input.get(self.pos).and_then(|&b| (b as char).to_digit(16)) {
            digits += 1;
            if digits > MAX_CHUNK_SIZE_DIGITS {
                return Err(Some(()));
            }
            size = size * 16 + u64::from(v);
            self.pos += 1;
        }
        if digits == 0 {
            // Nothing at all yet is "need more"; anything else is wrong.
            self.peek()?;
            return Err(Some(()));
        }
        Ok(size)
    }

    /// `*( ";" token [ "=" ( token / quoted-string ) ] )`, capped.
    fn extensions(&mut self) -> Step<()> {
        let start = self.pos;
        let capped = |this: &Self| {
            if this.pos - start > MAX_CHUNK_EXTENSION {
                Err(Some(()))
            } else {
                Ok(())
            }
        };
        while self.peek()? == b';' {
            self.pos += 1;
            capped(self)?;
            self.token(&capped)?;
            if self.peek()? == b'=' {
                self.pos += 1;
                capped(self)?;
                if self.peek()? == b'"' {
                    self.pos += 1;
                    capped(self)?;
                    self.quoted(&capped)?;
                } else {
                    self.token(&capped)?;
                }
            }
        }
        Ok(())
    }

    fn token(&mut self, capped: &dyn Fn(&Self) -> Step<()>) -> Step<()> {
        if !is_tchar(self.peek()?) {
            return Err(Some(()));
        }
        while is_tchar(self.peek()?) {
            self.pos += 1;
            capped(self)?;
        }
        Ok(())
    }

    fn quoted(&mut self, capped: &dyn Fn(&Self) -> Step<()>) -> Step<()> {
        let text = |b: u8| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
        loop {
            let b = self.next()?;
            capped(self)?;
            match b {
                b'"' => return Ok(()),
                b'\\' => {
                    let escaped = self.next()?;
                    capped(self)?;
                    if !text(escaped) {
                        return Err(Some(()));
                    }
                }
                b if text(b) => {}
                _ => return Err(Some(())),
            }
        }
    }

    /// Field lines until an empty line; sizes and counts capped.
    fn trailers(&mut self) -> Step<()> {
        let start = self.pos;
        let mut fields = 0usize;
        let value = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
        loop {
            if self.peek()? == b'\r' {
                self.pos += 1;
                return self.expect(b'\n');
            }
            if !is_tchar(self.peek()?) {
                return Err(Some(()));
            }
            while is_tchar(self.peek()?) {
                self.pos += 1;
                self.trailer_cap(start)?;
            }
            self.expect(b':')?;
            self.trailer_cap(start)?;
            while value(self.peek()?) {
                self.pos += 1;
                self.trailer_cap(start)?;
            }
            self.expect(b'\r')?;
            self.trailer_cap(start)?;
            self.expect(b'\n')?;
            fields += 1;
            if fields > self.limits.max_headers {
                return Err(Some(()));
            }
            self.trailer_cap(start)?;
        }
    }

    fn trailer_cap(&self, start: usize) -> Step<()> {
        if self.pos - start > self.limits.max_header_size {
            Err(Some(()))
        } else {
            Ok(())
        }
    }
}

fn reference(input: &[u8], limits: Limits) -> Outcome {
    let mut r = Reference { input, pos: 0, limits };
    match r.body() {
        Ok(n) => Outcome::Complete(n),
        Err(None) => Outcome::Partial,
        Err(Some(())) => Outcome::Refused,
    }
}

/// The engine's decoder, fed `input` in the pieces `cuts` make.
fn engine(input: &[u8], cuts: &[usize], limits: &Limits) -> Outcome {
    let mut body = BodyState::new(Framing::Chunked, limits);
    let mut taken = 0;
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&input.len())) {
        if to < from {
            continue;
        }
        match body.advance(&input[from..to]) {
            Ok(n) => {
                taken += n;
                if body.is_done() {
                    return Outcome::Complete(taken);
                }
                assert_eq!(n, to - from, "a body not done took less than it was given");
            }
            Err(_) => return Outcome::Refused,
        }
        from = to;
    }
    Outcome::Partial
}

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b, small], input)) = data.split_first_chunk::<3>() else {
        return;
    };
    // Small caps sometimes, so the trailer limits are reached too.
    let limits = if small & 1 != 0 {
        Limits { max_request_line: 64, max_header_size: 64, max_headers: 2 }
    } else {
        Limits::default()
    };
    let want = reference(input, limits);
    let len = input.len().max(1);
    let mut cuts = [usize::from(a) * len / 256, usize::from(b) * len / 256];
    cuts.sort_unstable();
    assert_eq!(engine(input, &[], &limits), want, "whole input");
    assert_eq!(engine(input, &cuts, &limits), want, "split at {cuts:?}");
});
