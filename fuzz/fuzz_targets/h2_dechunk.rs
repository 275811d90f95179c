//! The HTTP/2 side's chunked-coding remover (`http2::dechunk`) against
//! the engine's chunked body validator (`BodyState`, itself fuzzed against
//! a reference in `chunked`): a body the validator finds complete after
//! `n` bytes must be complete for the remover after the same `n` bytes,
//! with as many data bytes as the chunk sizes say; and the remover must
//! give the same result fed whole, split at two points the input chooses,
//! or with its output capped.
#![no_main]

use ktcpvs_net::http::{BodyState, Framing, Limits};
use ktcpvs_net::http2::dechunk::Dechunker;
use libfuzzer_sys::fuzz_target;

/// What the remover made of `input`, fed in the pieces `cuts` makes, with
/// at most `cap` output bytes per call: (input bytes used, output, done),
/// or `None` if it refused.
fn remove(input: &[u8], cuts: &[usize], cap: usize) -> Option<(usize, Vec<u8>, bool)> {
    let mut d = Dechunker::new();
    let mut out = Vec::new();
    let mut used = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    ends.push(input.len());
    ends.sort_unstable();
    for end in ends {
        // Cap each call's output; call again while it takes input.
        while used < end && !d.is_done() {
            let max = out.len().saturating_add(cap);
            let n = d.decode(&input[used..end], &mut out, max).ok()?;
            if n == 0 {
                break;
            }
            used += n;
        }
    }
    Some((used, out, d.is_done()))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (cuts, input) = data.split_at(3);
    let cap = usize::from(cuts[2]).max(1);
    let whole = remove(input, &[], usize::MAX);
    let split = remove(input, &[usize::from(cuts[0]), usize::from(cuts[1])], usize::MAX);
    let capped = remove(input, &[], cap);
    assert_eq!(whole, split, "split at {:?}", &cuts[..2]);
    assert_eq!(whole, capped, "output capped at {cap}");
    let mut body = BodyState::new(Framing::Chunked, &Limits::default());
    if let Ok(n) = body.advance(input) {
        if body.is_done() {
            let (used, out, done) = whole.expect("a body the validator accepts is removed");
            assert!(done && used == n, "validator complete at {n}, remover at {used} ({done})");
            // The data is what the chunk sizes announce: no framing byte
            // leaks into it.
            assert!(out.len() < n);
        }
    }
});
