//! A hand-built HTTP/2 client for attack tests: frames written byte by
//! byte (RFC 9113 §4.1: a 9-byte header, then the payload), header blocks
//! encoded with HPACK literals that carry any byte (RFC 7541 §6.2.2:
//! "literal header field without indexing, new name", no Huffman), and a
//! reader thread that hands every frame the proxy sends to the test, whose
//! header blocks are decoded with the engine's own HPACK decoder.
//!
//! Nothing here refuses to send a malformed thing: that is the point (a
//! real HTTP/2 library would not let a test put CR, LF or an upper-case
//! letter in a field). The positive control test in `http2_attacks.rs`
//! checks that well-formed requests built this way are answered, so that a
//! refusal elsewhere means the proxy refused, not that the writer is wrong.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ktcpvs_net::http2::frame::Reason;
use ktcpvs_net::http2::hpack;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const INTERNAL_ERROR: u32 = 0x2;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

// Settings (RFC 9113 §6.5.2).
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The name of an error code, for messages.
pub fn code_name(code: u32) -> &'static str {
    Reason(code).name()
}

// ---------------------------------------------------------------------
// Frame writer.

/// One frame: the 9-byte header (24-bit length, type, flags, 31-bit
/// stream identifier) and `payload`.
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    assert!(len < 1 << 24, "a frame payload fits 24 bits");
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// SETTINGS with these (identifier, value) pairs.
pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(pairs.len() * 6);
    for (id, value) in pairs {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

/// SETTINGS with the ACK flag.
pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

/// HEADERS carrying `block` (END_HEADERS and END_STREAM as `flags` say).
pub fn headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    frame(HEADERS, flags, stream, block)
}

/// CONTINUATION carrying `block`.
pub fn continuation(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    frame(CONTINUATION, flags, stream, block)
}

/// DATA.
pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    frame(DATA, flags, stream, payload)
}

/// RST_STREAM with `code`.
pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// PING (or its ACK) with `opaque`.
pub fn ping(flags: u8, opaque: [u8; 8]) -> Vec<u8> {
    frame(PING, flags, 0, &opaque)
}

/// WINDOW_UPDATE of `increment` on `stream` (0: the connection).
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

// ---------------------------------------------------------------------
// HPACK encoding (RFC 7541 §5, §6).

/// An integer with an `n`-bit prefix, the prefix's other bits `first`.
pub fn hpack_int(first: u8, n: u32, mut value: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A string literal, raw (no Huffman): any byte goes as it is.
pub fn hpack_str(s: &[u8], out: &mut Vec<u8>) {
    hpack_int(0x00, 7, s.len(), out);
    out.extend_from_slice(s);
}

/// Literal header field without indexing, new name (`0x00`).
pub fn literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    hpack_str(name, out);
    hpack_str(value, out);
}

/// Literal header field with incremental indexing, new name (`0x40`):
/// the field enters the dynamic table (index 62 when it is the newest).
pub fn literal_indexed(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x40);
    hpack_str(name, out);
    hpack_str(value, out);
}

/// Indexed header field (`1xxxxxxx`).
pub fn indexed(index: usize, out: &mut Vec<u8>) {
    hpack_int(0x80, 7, index, out);
}

/// A header block of literals, in order, exactly as given.
pub fn block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        literal(name, value, &mut out);
    }
    out
}

/// The header list of a well-formed request: the four pseudo-headers
/// (`:authority` "test", `:scheme` http), then `extra`.
pub fn request_fields<'a>(
    method: &'a str,
    path: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a [u8], &'a [u8])> {
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", method.as_bytes()),
        (b":scheme", b"http"),
        (b":authority", b"test"),
        (b":path", path.as_bytes()),
    ];
    fields.extend(extra.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    fields
}

/// The header block of a well-formed request (see [`request_fields`]).
pub fn request_block(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    block(&request_fields(method, path, extra))
}

// ---------------------------------------------------------------------
// HPACK decoding, for the proxy's responses: the engine's own decoder
// (`ktcpvs_net::http2::hpack`, checked against RFC 7541 and fuzzed), with
// the shapes the tests read.

/// Decodes a Huffman-coded string (RFC 7541 §5.2).
pub fn huffman_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    hpack::huffman_decode(input, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// A decoded header list.
pub type Fields = Vec<(String, Vec<u8>)>;

/// An HPACK decoder with its dynamic table.
#[derive(Debug)]
pub struct Decoder(hpack::Decoder);

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder(hpack::Decoder::new())
    }
}

impl Decoder {
    /// Decodes one whole header block.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Fields, String> {
        let mut fields = Vec::new();
        let mut bad_name = false;
        self.0
            .decode(buf, |name, value| match std::str::from_utf8(name) {
                Ok(name) => fields.push((name.to_string(), value.to_vec())),
                Err(_) => bad_name = true,
            })
            .map_err(|e| e.to_string())?;
        if bad_name {
            return Err("a field name that is not UTF-8".into());
        }
        Ok(fields)
    }
}

// ---------------------------------------------------------------------
// Frame reader.

/// A frame the proxy sent.
#[derive(Debug, Clone)]
pub struct Frame {
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.ty {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// What the reader thread saw.
#[derive(Debug)]
enum Event {
    Frame(Frame),
    /// The connection ended: EOF (`None`) or an error.
    Closed(Option<io::ErrorKind>),
}

/// The reader thread: parses frames out of the socket and sends them on;
/// reads nothing while `paused`; ends at EOF, an error or `stop`.
fn reader(
    mut socket: TcpStream,
    tx: mpsc::Sender<Event>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if paused.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match socket.read(&mut chunk) {
            Ok(0) => {
                let _ = tx.send(Event::Closed(None));
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Event::Closed(Some(e.kind())));
                return;
            }
        }
        let mut at = 0;
        while buf.len() - at >= 9 {
            let h = &buf[at..at + 9];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            if buf.len() - at < 9 + len {
                break;
            }
            let frame = Frame {
                ty: h[3],
                flags: h[4],
                stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                payload: buf[at + 9..at + 9 + len].to_vec(),
            };
            at += 9 + len;
            if tx.send(Event::Frame(frame)).is_err() {
                return;
            }
        }
        buf.drain(..at);
    }
}

/// What the client knows of one stream.
#[derive(Debug, Default, Clone)]
pub struct StreamState {
    /// Every header block received on it (the response head, trailers).
    pub heads: Vec<Fields>,
    pub body: Vec<u8>,
    /// END_STREAM was received.
    pub ended: bool,
    /// RST_STREAM was received, with this code.
    pub reset: Option<u32>,
}

impl StreamState {
    /// The response's `:status`.
    pub fn status(&self) -> Option<u16> {
        let head = self.heads.first()?;
        let (_, v) = head.iter().find(|(n, _)| n == ":status")?;
        std::str::from_utf8(v).ok()?.parse().ok()
    }

    /// A response field's value.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.heads.first()?;
        head.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A GOAWAY received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAway {
    pub last_stream: u32,
    pub code: u32,
}

/// How a stream came out.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A whole response (END_STREAM).
    Response(StreamState),
    /// RST_STREAM with this code (a response head may have come first:
    /// h2 answers an oversized header list with 431 then resets).
    Reset(u32, StreamState),
    /// The connection went away (GOAWAY, then the end) before the stream
    /// finished; `None` when it closed with no GOAWAY.
    ConnectionClosed(Option<GoAway>),
    /// Nothing decisive within the time allowed.
    Timeout,
}

impl Outcome {
    /// The response, or a panic naming what came instead.
    pub fn response(self, what: &str) -> StreamState {
        match self {
            Outcome::Response(s) => s,
            other => panic!("{what}: expected a response, got {}", other.describe()),
        }
    }

    /// A short description for messages and reports.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Response(s) => format!("response {:?}", s.status()),
            Outcome::Reset(code, s) => format!(
                "RST_STREAM {} (after head {:?})",
                code_name(*code),
                s.status()
            ),
            Outcome::ConnectionClosed(Some(g)) => format!(
                "GOAWAY {} (last stream {})",
                code_name(g.code),
                g.last_stream
            ),
            Outcome::ConnectionClosed(None) => "closed without GOAWAY".into(),
            Outcome::Timeout => "timeout".into(),
        }
    }
}

/// One client connection speaking hand-built HTTP/2.
pub struct H2Client {
    socket: TcpStream,
    rx: Receiver<Event>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    decoder: Decoder,
    /// A header block being received: its stream and fragments.
    partial: Option<(u32, Vec<u8>)>,
    pub streams: HashMap<u32, StreamState>,
    /// The first GOAWAY received.
    pub goaway: Option<GoAway>,
    /// The connection ended (EOF or an error).
    pub closed: bool,
    /// The server's SETTINGS received (not ACKs).
    pub settings_received: Vec<Vec<(u16, u32)>>,
    pub settings_acks: usize,
    pub ping_acks: usize,
    /// Frames received, by type.
    pub frames_by_type: HashMap<u8, usize>,
    /// Whether DATA received is credited back at once (WINDOW_UPDATE on
    /// the connection and the stream); off for flow-control tests.
    pub auto_window: bool,
}

/// Read timeout of the reader thread's socket: how often it looks at its
/// pause and stop flags.
const READER_TICK: Duration = Duration::from_millis(20);

/// A plain TCP connection to `addr` with a 5-second write timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

impl H2Client {
    /// A client over `socket`, its reader thread started. Nothing is
    /// sent yet.
    pub fn over(socket: TcpStream) -> H2Client {
        let read_half = socket.try_clone().expect("clone the socket");
        read_half.set_read_timeout(Some(READER_TICK)).unwrap();
        let (tx, rx) = mpsc::channel();
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&paused), Arc::clone(&stop));
        let reader = std::thread::spawn(move || reader(read_half, tx, p, s));
        H2Client {
            socket,
            rx,
            paused,
            stop,
            reader: Some(reader),
            decoder: Decoder::default(),
            partial: None,
            streams: HashMap::new(),
            goaway: None,
            closed: false,
            settings_received: Vec::new(),
            settings_acks: 0,
            ping_acks: 0,
            frames_by_type: HashMap::new(),
            auto_window: true,
        }
    }

    /// Connects, sends the preface and SETTINGS (`ours`), waits for the
    /// proxy's SETTINGS and acknowledges them.
    pub fn handshake(addr: SocketAddr, ours: &[(u16, u32)]) -> H2Client {
        let mut c = H2Client::handshake_unacked(addr, ours);
        c.send(&settings_ack()).expect("send SETTINGS ACK");
        c
    }

    /// As [`handshake`](Self::handshake), but the proxy's SETTINGS are
    /// never acknowledged (so the proxy cannot count on its own limits).
    pub fn handshake_unacked(addr: SocketAddr, ours: &[(u16, u32)]) -> H2Client {
        let mut c = H2Client::over(connect(addr));
        let mut hello = PREFACE.to_vec();
        hello.extend_from_slice(&settings(ours));
        c.send(&hello).expect("send the preface");
        let end = Instant::now() + Duration::from_secs(5);
        while c.settings_received.is_empty() {
            assert!(
                c.pump_until(end),
                "the proxy sent no SETTINGS (closed: {}, goaway: {:?})",
                c.closed,
                c.goaway
            );
        }
        c
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.socket.write_all(bytes)
    }

    /// A second handle on the socket (to write from another thread).
    pub fn socket_clone(&self) -> TcpStream {
        self.socket.try_clone().expect("clone the socket")
    }

    /// Stops reading the socket (the kernel's buffers fill, then the
    /// proxy's writes block), until [`resume_reading`](Self::resume_reading).
    pub fn pause_reading(&mut self) {
        self.paused.store(true, Ordering::SeqCst);
        // A read under way ends within one tick.
        std::thread::sleep(READER_TICK * 3);
    }

    pub fn resume_reading(&mut self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Handles one event if one comes before `until`; `false` when none
    /// did (or the connection had already ended).
    pub fn pump_until(&mut self, until: Instant) -> bool {
        if self.closed {
            return false;
        }
        let wait = until.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok(Event::Frame(f)) => {
                self.handle(f);
                true
            }
            Ok(Event::Closed(_)) | Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// Handles every event already received, without waiting.
    pub fn drain(&mut self) {
        while self.pump_until(Instant::now()) {}
    }

    fn handle(&mut self, f: Frame) {
        *self.frames_by_type.entry(f.ty).or_default() += 1;
        match f.ty {
            DATA => {
                let st = self.streams.entry(f.stream).or_default();
                let mut payload = &f.payload[..];
                if f.flags & PADDED != 0 && !payload.is_empty() {
                    let pad = usize::from(payload[0]);
                    payload = &payload[1..payload.len().saturating_sub(pad)];
                }
                st.body.extend_from_slice(payload);
                let ended = f.flags & END_STREAM != 0;
                if ended {
                    st.ended = true;
                }
                if self.auto_window && !f.payload.is_empty() {
                    let n = f.payload.len() as u32;
                    let mut out = window_update(0, n);
                    if !ended {
                        out.extend_from_slice(&window_update(f.stream, n));
                    }
                    let _ = self.send(&out);
                }
            }
            HEADERS => {
                let mut payload = &f.payload[..];
                let mut pad = 0;
                if f.flags & PADDED != 0 && !payload.is_empty() {
                    pad = usize::from(payload[0]);
                    payload = &payload[1..];
                }
                if f.flags & PRIORITY != 0 {
                    payload = &payload[5.min(payload.len())..];
                }
                let payload = &payload[..payload.len().saturating_sub(pad)];
                if f.flags & END_STREAM != 0 {
                    self.streams.entry(f.stream).or_default().ended = true;
                }
                self.partial = Some((f.stream, payload.to_vec()));
                if f.flags & END_HEADERS != 0 {
                    self.finish_block();
                }
            }
            CONTINUATION => {
                if let Some((_, buf)) = self.partial.as_mut() {
                    buf.extend_from_slice(&f.payload);
                }
                if f.flags & END_HEADERS != 0 {
                    self.finish_block();
                }
            }
            RST_STREAM => {
                let code = f.error_code().unwrap_or(u32::MAX);
                self.streams.entry(f.stream).or_default().reset = Some(code);
            }
            SETTINGS if f.flags & ACK != 0 => self.settings_acks += 1,
            SETTINGS => {
                let pairs = f
                    .payload
                    .chunks_exact(6)
                    .map(|c| {
                        (
                            u16::from_be_bytes([c[0], c[1]]),
                            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                        )
                    })
                    .collect();
                self.settings_received.push(pairs);
            }
            PING if f.flags & ACK != 0 => self.ping_acks += 1,
            PING => {
                let mut opaque = [0u8; 8];
                opaque.copy_from_slice(&f.payload[..8.min(f.payload.len())]);
                let _ = self.send(&ping(ACK, opaque));
            }
            GOAWAY => {
                let last = f.payload.get(..4).map_or(0, |b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                });
                if self.goaway.is_none() {
                    self.goaway = Some(GoAway {
                        last_stream: last,
                        code: f.error_code().unwrap_or(u32::MAX),
                    });
                }
            }
            _ => {}
        }
    }

    fn finish_block(&mut self) {
        let Some((stream, block)) = self.partial.take() else {
            return;
        };
        let fields = self
            .decoder
            .decode(&block)
            .unwrap_or_else(|e| panic!("the proxy's header block does not decode: {e}"));
        self.streams.entry(stream).or_default().heads.push(fields);
    }

    /// What became of `stream`, waiting up to `timeout`.
    pub fn outcome(&mut self, stream: u32, timeout: Duration) -> Outcome {
        let until = Instant::now() + timeout;
        loop {
            if let Some(st) = self.streams.get(&stream) {
                if let Some(code) = st.reset {
                    return Outcome::Reset(code, st.clone());
                }
                if st.ended {
                    return Outcome::Response(st.clone());
                }
            }
            if self.closed {
                return Outcome::ConnectionClosed(self.goaway);
            }
            if let Some(g) = self.goaway {
                // A stream the GOAWAY says was never processed is over.
                if stream > g.last_stream {
                    return Outcome::ConnectionClosed(Some(g));
                }
            }
            if !self.pump_until(until) && Instant::now() >= until {
                return Outcome::Timeout;
            }
        }
    }

    /// Sends a PING and waits for its ACK (or the connection's end):
    /// `true` when the ACK came. Every frame the proxy sent before the ACK
    /// has been handled by then.
    pub fn ping_roundtrip(&mut self, timeout: Duration) -> bool {
        let before = self.ping_acks;
        if self.send(&ping(0, *b"ktcpvs!!")).is_err() {
            return false;
        }
        let until = Instant::now() + timeout;
        while self.ping_acks == before {
            if !self.pump_until(until) && (self.closed || Instant::now() >= until) {
                return false;
            }
        }
        true
    }

    /// Waits until the connection ends, up to `timeout`: `true` if it did.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while !self.closed {
            if !self.pump_until(until) && Instant::now() >= until {
                return false;
            }
        }
        true
    }

    /// Sends a whole request on `stream` (HEADERS, then DATA when `body`
    /// is given) and waits for what became of it.
    pub fn request(
        &mut self,
        stream: u32,
        block: &[u8],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Outcome {
        let mut out = match body {
            None => headers(stream, END_HEADERS | END_STREAM, block),
            Some(_) => headers(stream, END_HEADERS, block),
        };
        if let Some(b) = body {
            out.extend_from_slice(&data(stream, END_STREAM, b));
        }
        if self.send(&out).is_err() {
            self.drain();
        }
        self.outcome(stream, timeout)
    }

    /// `GET path` on `stream`.
    pub fn get(&mut self, stream: u32, path: &str) -> Outcome {
        let block = request_block("GET", path, &[]);
        self.request(stream, &block, None, Duration::from_secs(5))
    }
}

impl Drop for H2Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}
