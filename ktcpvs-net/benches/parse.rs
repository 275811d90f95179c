//! Criterion micro-benchmarks of the engine's sans-I/O HTTP framing: the
//! request-head parse (`parse_request`, and `parse_request_uninit` with
//! header slots that are never filled in advance, as the engine calls it)
//! on three typical heads, the response-head parse on a typical response,
//! and `BodyState::advance` over a chunked body read in socket-sized
//! pieces. Each input is checked once before it is timed, so a figure can
//! never be the cost of an error path. Results are recorded in
//! `docs/benchmarks.md` ("Engine micro-benchmarks").

use std::hint::black_box;
use std::mem::MaybeUninit;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ktcpvs_net::http::{
    parse_request, parse_request_uninit, parse_response, BodyState, Framing, Limits, Method,
};

/// A small GET with a few headers, as a load generator or a script sends.
const SMALL_GET: &[u8] = b"GET /html/index.html HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: wrk/4.1\r\n\
Accept: */*\r\n\r\n";

/// A browser-like GET: 12 header fields, among them a long cookie.
const BROWSER_GET: &[u8] = b"GET /images/logo.png?v=20261126 HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5\r\n\
Accept-Language: en-GB,en;q=0.7,fr;q=0.3\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/html/products/index.html\r\n\
Cookie: session=4f6c1e2a9b8d7c3e5f0a1b2c3d4e5f60; theme=dark; lang=en-GB; _ga=GA1.2.1234567890.1732612345; cart=item1%2Citem7%2Citem42\r\n\
Sec-Fetch-Dest: image\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
Priority: u=5, i\r\n\r\n";

/// A form POST with a `Content-Length` body (the body is not part of the
/// parse; it follows the head in the buffer as it would after a read).
const POST: &[u8] = b"POST /cgi-bin/order HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
Content-Type: application/x-www-form-urlencoded\r\n\
Content-Length: 27\r\n\r\n\
item=42&quantity=3&gift=no";

/// A typical response head from an origin server, with a small body after.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Thu, 26 Nov 2026 12:00:00 GMT\r\n\
Server: Apache/2.4.62 (Debian)\r\n\
Last-Modified: Wed, 25 Nov 2026 08:30:00 GMT\r\n\
ETag: \"1f4-5e2a7b9c0d1e2\"\r\n\
Accept-Ranges: bytes\r\n\
Content-Length: 500\r\n\
Cache-Control: max-age=3600\r\n\
Vary: Accept-Encoding\r\n\
Keep-Alive: timeout=5, max=100\r\n\
Connection: Keep-Alive\r\n\
Content-Type: text/html; charset=UTF-8\r\n\r\n";

/// The header slots the engine lends the parsers (`max_headers`).
const SLOTS: usize = 100;

fn bench_request(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("http/parse_request");
    for (name, head) in [
        ("small_get", SMALL_GET),
        ("browser_get", BROWSER_GET),
        ("post", POST),
    ] {
        let mut slots = [httparse::EMPTY_HEADER; SLOTS];
        let (info, _) = parse_request(head, &mut slots, &limits)
            .expect("a valid head")
            .expect("a complete head");
        group.throughput(Throughput::Bytes(info.head_len as u64));
        group.bench_with_input(BenchmarkId::new("init", name), head, |b, head| {
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            b.iter(|| {
                let parsed = parse_request(black_box(head), &mut slots, &limits);
                black_box(parsed.map(|p| p.map(|(info, h)| (info.head_len, h.headers.len()))))
            })
        });
        group.bench_with_input(BenchmarkId::new("uninit", name), head, |b, head| {
            let mut slots = [const { MaybeUninit::uninit() }; SLOTS];
            b.iter(|| {
                let parsed = parse_request_uninit(black_box(head), &mut slots, &limits);
                black_box(parsed.map(|p| p.map(|(info, h)| (info.head_len, h.headers.len()))))
            })
        });
    }
    group.finish();
}

fn bench_response(c: &mut Criterion) {
    let limits = Limits::default();
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let (info, _) = parse_response(RESPONSE, &mut slots, Method::Get, &limits)
        .expect("a valid head")
        .expect("a complete head");
    assert_eq!(info.framing, Framing::Length(500));
    let mut group = c.benchmark_group("http/parse_response");
    group.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    group.bench_function("typical_200", |b| {
        b.iter(|| {
            let parsed = parse_response(black_box(RESPONSE), &mut slots, Method::Get, &limits);
            black_box(parsed.map(|p| p.map(|(info, h)| (info.status, h.headers.len()))))
        })
    });
    group.finish();
}

/// A chunked body of `chunks` chunks of `size` bytes each, with a chunk
/// extension on the first, then the last chunk and one trailer field.
fn chunked_body(chunks: usize, size: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..chunks {
        body.extend_from_slice(format!("{size:x}").as_bytes());
        if i == 0 {
            body.extend_from_slice(b";name=\"first\"");
        }
        body.extend_from_slice(b"\r\n");
        body.extend((0..size).map(|j| b'a' + (j % 26) as u8));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\nX-Checksum: 1234\r\n\r\n");
    body
}

/// Feeds `body` to a fresh tracker in `read`-byte pieces, as the engine
/// does after each socket read; returns the bytes the tracker claimed.
fn track(limits: &Limits, body: &[u8], read: usize) -> usize {
    let mut state = BodyState::new(Framing::Chunked, limits);
    let mut taken = 0;
    for piece in body.chunks(read) {
        match state.advance(piece) {
            Ok(n) => taken += n,
            Err(e) => panic!("the benchmark body is valid: {e}"),
        }
    }
    assert!(state.is_done());
    taken
}

fn bench_chunked(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("http/body_chunked");
    // Many small chunks (a streaming API), and few large ones (a file).
    for (name, chunks, size) in [("64x256B", 64, 256), ("4x16KiB", 4, 16384)] {
        let body = chunked_body(chunks, size);
        assert_eq!(track(&limits, &body, 16384), body.len());
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("advance", name), &body, |b, body| {
            b.iter(|| track(&limits, black_box(body), 16384))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_request, bench_response, bench_chunked);
criterion_main!(benches);
