//! The access log: one line per HTTP request (and per layer-4
//! connection), written by a thread of its own so that a slow disk never
//! blocks a worker.
//!
//! Workers format a line into a buffer taken from a shared free list and
//! push it onto a bounded lock-free queue (`crossbeam-queue`'s
//! `ArrayQueue`: a well-kept bounded MPMC queue, which `std` lacks); when
//! the queue is full the line is dropped and counted, never waited for.
//! The writer thread drains the queue into its file (or stderr) and gives
//! the buffers back, so a warmed-up log allocates nothing per request.
//! [`AccessLog::reopen`] makes the writer open its file again (after
//! logrotate moved it). The format is the runtime setting `access_log`:
//! 0 off, 1 `common`, 2 `json`, switchable live.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// The process's standard error.
    Stderr,
    /// A file, appended to (created if missing).
    File(PathBuf),
}

/// The line formats, as the `access_log` setting numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache's common log format, then `key=value` fields.
    Common,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// The format the `access_log` setting selects (`None`: off).
    pub fn of_setting(value: u64) -> Option<Format> {
        match value {
            1 => Some(Format::Common),
            2 => Some(Format::Json),
            _ => None,
        }
    }
}

/// Capacity of a fresh line buffer.
const LINE: usize = 512;

/// How long the writer sleeps between batches while lines come in: it is
/// not woken per line (a wake-up per request would cost each request a
/// context switch), so lines are written in batches of this period's
/// traffic. A queue half full wakes it at once.
const BATCH: Duration = Duration::from_millis(20);

/// How long the writer sleeps when it found nothing to write.
const IDLE: Duration = Duration::from_millis(200);

struct Inner {
    queue: ArrayQueue<Vec<u8>>,
    free: ArrayQueue<Vec<u8>>,
    dropped: AtomicU64,
    written: AtomicU64,
    reopen: AtomicBool,
    stop: AtomicBool,
    /// Lines queued beyond which a worker wakes the writer.
    high_water: usize,
    writer: parking_lot::Mutex<Option<std::thread::Thread>>,
}

/// A running access log: a cheap handle for the engine's workers and the
/// host program (reopen, counters). The writer stops, flushing what is
/// queued, when the last handle is dropped.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
    _writer: Arc<WriterThread>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("queued", &self.inner.queue.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// Joins the writer when the last handle goes.
struct WriterThread {
    inner: Arc<Inner>,
    handle: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.inner.writer.lock().as_ref() {
            t.unpark();
        }
        if let Some(h) = self.handle.lock().take() {
            let _ = h.join();
        }
    }
}

impl AccessLog {
    /// Opens `sink` and starts the writer, with room for `capacity` lines
    /// in flight (at least 16).
    pub fn start(sink: Sink, capacity: usize) -> io::Result<AccessLog> {
        let capacity = capacity.max(16);
        let mut out = open(&sink)?;
        let inner = Arc::new(Inner {
            queue: ArrayQueue::new(capacity),
            free: ArrayQueue::new(capacity),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            high_water: capacity / 2,
            writer: parking_lot::Mutex::new(None),
        });
        let shared = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("ktcpvs-access-log".into())
            .spawn(move || {
                *shared.writer.lock() = Some(std::thread::current());
                write_loop(&shared, &sink, &mut out);
            })?;
        Ok(AccessLog {
            _writer: Arc::new(WriterThread {
                inner: Arc::clone(&inner),
                handle: parking_lot::Mutex::new(Some(handle)),
            }),
            inner,
        })
    }

    /// Makes the writer open its file again before its next line (for
    /// log rotation: the old file was moved away).
    pub fn reopen(&self) {
        self.inner.reopen.store(true, Ordering::SeqCst);
        if let Some(t) = self.inner.writer.lock().as_ref() {
            t.unpark();
        }
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Lines written.
    pub fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }

    /// An empty line buffer (reused when one is free).
    pub(crate) fn buffer(&self) -> Vec<u8> {
        self.inner
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(LINE))
    }

    /// Gives a buffer back unused.
    pub(crate) fn recycle(&self, mut line: Vec<u8>) {
        line.clear();
        let _ = self.inner.free.push(line);
    }

    /// Queues a finished line; when the queue is full it is dropped and
    /// counted.
    pub(crate) fn submit(&self, line: Vec<u8>) {
        match self.inner.queue.push(line) {
            Ok(()) => {
                // Only a filling queue wakes the writer early: one atomic
                // load per line otherwise.
                if self.inner.queue.len() == self.inner.high_water {
                    if let Some(t) = self.inner.writer.lock().as_ref() {
                        t.unpark();
                    }
                }
            }
            Err(line) => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                self.recycle(line);
            }
        }
    }
}

fn open(sink: &Sink) -> io::Result<Box<dyn Write + Send>> {
    Ok(match sink {
        Sink::Stderr => Box::new(io::stderr()),
        Sink::File(path) => Box::new(io::BufWriter::with_capacity(
            64 * 1024,
            OpenOptions::new().create(true).append(true).open(path)?,
        )),
    })
}

fn write_loop(inner: &Inner, sink: &Sink, out: &mut Box<dyn Write + Send>) {
    loop {
        if inner.reopen.swap(false, Ordering::SeqCst) {
            let _ = out.flush();
            match open(sink) {
                Ok(fresh) => *out = fresh,
                Err(e) => log::error!("access log: cannot reopen {sink:?}: {e}"),
            }
        }
        let mut wrote = 0u64;
        while let Some(mut line) = inner.queue.pop() {
            if out.write_all(&line).is_ok() {
                wrote += 1;
            }
            line.clear();
            let _ = inner.free.push(line);
        }
        if wrote > 0 {
            let _ = out.flush();
            inner.written.fetch_add(wrote, Ordering::Relaxed);
        }
        if inner.stop.load(Ordering::SeqCst) {
            if inner.queue.is_empty() {
                let _ = out.flush();
                return;
            }
            continue;
        }
        if !inner.reopen.load(Ordering::SeqCst) {
            std::thread::park_timeout(if wrote > 0 { BATCH } else { IDLE });
        }
    }
}

/// One request (or layer-4 connection) as logged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub time: SystemTime,
    pub client: SocketAddr,
    pub service: &'a str,
    /// The rule that routed it, by position.
    pub rule: Option<usize>,
    /// The real server, when one was reached.
    pub server: Option<SocketAddr>,
    /// `METHOD TARGET HTTP/x.y`; empty at layer 4.
    pub request_line: &'a [u8],
    /// The status sent; 0 when none (layer 4, or cut before a response).
    pub status: u16,
    /// Bytes from and to the client.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub total: Duration,
    pub retries: u32,
    /// How it ended: `done`, `proxy` (the proxy answered), `aborted`.
    pub end: &'a str,
}

impl Record<'_> {
    /// Appends the line (with its newline) to `out`.
    pub fn write(&self, format: Format, out: &mut Vec<u8>) {
        match format {
            Format::Common => self.write_common(out),
            Format::Json => self.write_json(out),
        }
    }

    fn write_common(&self, out: &mut Vec<u8>) {
        let (date, time) = civil(self.time);
        let _ = write!(
            out,
            "{} - - [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] \"",
            self.client.ip(),
            date.2,
            MONTHS[usize::from(date.1 - 1)],
            date.0,
            time.0,
            time.1,
            time.2
        );
        for &b in self.request_line {
            // The request line was parsed: no control bytes, but a quote
            // would end the field.
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.extend_from_slice(b"\" ");
        if self.status == 0 {
            out.push(b'-');
        } else {
            let _ = write!(out, "{}", self.status);
        }
        let _ = write!(out, " {} service={} rule=", self.bytes_out, self.service);
        match self.rule {
            Some(r) => {
                let _ = write!(out, "{r}");
            }
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" server=");
        match self.server {
            Some(s) => {
                let _ = write!(out, "{s}");
            }
            None => out.push(b'-'),
        }
        let _ = write!(out, " bytes_in={} connect_ms=", self.bytes_in);
        write_ms(out, self.connect);
        out.extend_from_slice(b" first_byte_ms=");
        write_ms(out, self.first_byte);
        out.extend_from_slice(b" total_ms=");
        write_ms(out, Some(self.total));
        let _ = writeln!(out, " retries={} end={}", self.retries, self.end);
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        let (date, time) = civil(self.time);
        let millis = self
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_millis());
        let _ = write!(
            out,
            "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z\",\"client\":\"{}\",\"service\":",
            date.0, date.1, date.2, time.0, time.1, time.2, self.client
        );
        json_string(out, self.service.as_bytes());
        out.extend_from_slice(b",\"rule\":");
        match self.rule {
            Some(r) => {
                let _ = write!(out, "{r}");
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"server\":");
        match self.server {
            Some(s) => {
                let _ = write!(out, "\"{s}\"");
            }
            None => out.extend_from_slice(b"null"),
        }
        let mut parts = self.request_line.splitn(3, |&b| b == b' ');
        for key in ["method", "target", "protocol"] {
            let _ = write!(out, ",\"{key}\":");
            json_string(out, parts.next().unwrap_or(b""));
        }
        let _ = write!(
            out,
            ",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"connect_ms\":",
            self.status, self.bytes_in, self.bytes_out
        );
        write_ms_or_null(out, self.connect);
        out.extend_from_slice(b",\"first_byte_ms\":");
        write_ms_or_null(out, self.first_byte);
        out.extend_from_slice(b",\"total_ms\":");
        write_ms_or_null(out, Some(self.total));
        let _ = writeln!(
            out,
            ",\"retries\":{},\"end\":\"{}\"}}",
            self.retries, self.end
        );
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `d` in milliseconds with three decimals, or `-`.
fn write_ms(out: &mut Vec<u8>, d: Option<Duration>) {
    match d {
        Some(d) => {
            let us = d.as_micros();
            let _ = write!(out, "{}.{:03}", us / 1000, us % 1000);
        }
        None => out.push(b'-'),
    }
}

/// `d` in milliseconds with three decimals, or `null`.
fn write_ms_or_null(out: &mut Vec<u8>, d: Option<Duration>) {
    match d {
        Some(_) => write_ms(out, d),
        None => out.extend_from_slice(b"null"),
    }
}

/// `bytes` as a JSON string (lossy UTF-8, escaped).
fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// The UTC date `(year, month, day)` and time `(hour, minute, second)` of
/// `t` (Howard Hinnant's days-to-civil algorithm).
fn civil(t: SystemTime) -> ((i64, u8, u8), (u8, u8, u8)) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        (year, month, day),
        (
            (rem / 3600) as u8,
            (rem % 3600 / 60) as u8,
            (rem % 60) as u8,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &[u8]) -> Record<'_> {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(1_795_994_192) + Duration::from_millis(7),
            client: "10.1.2.3:5555".parse().unwrap(),
            service: "web",
            rule: Some(1),
            server: Some("10.0.0.2:80".parse().unwrap()),
            request_line: line,
            status: 200,
            bytes_in: 80,
            bytes_out: 1234,
            connect: Some(Duration::from_micros(1500)),
            first_byte: Some(Duration::from_micros(2250)),
            total: Duration::from_micros(3001),
            retries: 0,
            end: "done",
        }
    }

    #[test]
    fn the_common_format_is_apaches_then_key_values() {
        let mut out = Vec::new();
        record(b"GET /a\"b HTTP/1.1").write(Format::Common, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "10.1.2.3 - - [29/Nov/2026:23:16:32 +0000] \"GET /a\\\"b HTTP/1.1\" 200 1234 service=web rule=1 server=10.0.0.2:80 bytes_in=80 connect_ms=1.500 first_byte_ms=2.250 total_ms=3.001 retries=0 end=done\n"
        );
    }

    #[test]
    fn the_json_format_is_one_valid_object() {
        let mut out = Vec::new();
        record(b"GET /a\"b\\c HTTP/1.1").write(Format::Json, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("}\n"));
        assert!(
            text.starts_with("{\"time\":\"2026-11-29T23:16:32.007Z\",\"client\":\"10.1.2.3:5555\""),
            "{text}"
        );
        assert!(text.contains("\"target\":\"/a\\\"b\\\\c\""), "{text}");
        assert!(text.contains("\"connect_ms\":1.500"), "{text}");
    }

    #[test]
    fn civil_dates_agree_with_known_days() {
        assert_eq!(civil(UNIX_EPOCH), ((1970, 1, 1), (0, 0, 0)));
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(civil(leap).0, (2000, 2, 29));
    }

    #[test]
    fn a_stuck_writer_makes_lines_drop_and_count_never_block() {
        // The sink is a FIFO whose reader reads nothing until told: the
        // writer blocks on a full pipe, as on a stuck disk.
        let fifo = std::env::temp_dir().join(format!("ktcpvs-al-{}.fifo", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let path = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut f = std::fs::File::open(path).unwrap();
            wait.recv().unwrap();
            let mut all = String::new();
            std::io::Read::read_to_string(&mut f, &mut all).unwrap();
            all.lines().count() as u64
        });
        let log = AccessLog::start(Sink::File(fifo.clone()), 64).unwrap();
        let start = std::time::Instant::now();
        let line = [b'x'; 199];
        for _ in 0..20_000 {
            let mut out = log.buffer();
            out.extend_from_slice(&line);
            out.push(b'\n');
            log.submit(out);
        }
        let took = start.elapsed();
        let dropped = log.dropped();
        go.send(()).unwrap();
        drop(log);
        let read = reader.join().unwrap();
        let _ = std::fs::remove_file(&fifo);
        assert!(
            took < Duration::from_secs(2),
            "submitting blocked: {took:?}"
        );
        assert!(dropped > 10_000, "only {dropped} dropped");
        assert_eq!(read + dropped, 20_000);
    }
}
