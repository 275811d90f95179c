//! Request traces: the access-log formats the engine writes
//! (`ktcpvs_net::access_log`, see `docs/observability.md`), plain
//! `METHOD TARGET [HOST]` lines, and a generator for tests.
//!
//! Parsing is strict: the first line that is not exactly what the format
//! says fails the whole trace, with its file and line number. Every HTTP
//! request is checked by the engine's own request parser
//! ([`ktcpvs_net::http::parse_request`]), so a trace holds only requests
//! the engine would have handed a scheduler.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ktcpvs_core::scheduler::{Header, RequestHead};
use ktcpvs_net::http::{parse_request, Limits};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// The `Host` a simulated HTTP/1.1 request carries when its trace line
/// names none (the access logs do not record it).
pub const DEFAULT_HOST: &str = "localhost";

/// How the lines of a trace are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceFormat {
    /// Decided by the first line that is neither blank nor a `#` comment:
    /// `{` starts a JSON access log, ` - - [` marks a common one, anything
    /// else is plain.
    #[default]
    Auto,
    /// The access log's `common` format (`access_log = 1`).
    Common,
    /// The access log's `json` format (`access_log = 2`).
    Json,
    /// `METHOD TARGET [HOST]`, one request a line; blank lines and lines
    /// starting with `#` are skipped.
    Plain,
}

impl FromStr for TraceFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(TraceFormat::Auto),
            "common" => Ok(TraceFormat::Common),
            "json" => Ok(TraceFormat::Json),
            "plain" => Ok(TraceFormat::Plain),
            other => Err(format!(
                "unknown trace format {other:?} (auto, common, json or plain)"
            )),
        }
    }
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line is not what its format says; nothing of the trace is used.
    #[error("{file}:{line}: {reason}")]
    Line {
        /// The file, or `<trace>` for a text given in memory.
        file: String,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The trace holds no request.
    #[error("{0}: the trace holds no request")]
    Empty(String),
    /// A generator setting is out of range.
    #[error("cannot generate a trace: {0}")]
    Generate(String),
}

/// One request (or layer-4 connection) of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRequest {
    /// Its line in the trace (from 1; 0 for a generated request).
    pub line: usize,
    /// When it arrived, in microseconds since the Unix epoch, if the
    /// trace says (the common format has whole seconds).
    pub time_us: Option<u64>,
    /// The client's address, if the trace says (port 0 when the format
    /// has only the IP).
    pub client: Option<SocketAddr>,
    /// The request, or `None` for a layer-4 connection (a common or JSON
    /// line with an empty request line).
    pub http: Option<HttpRequest>,
}

/// The parts of an HTTP request a scheduler may look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method token.
    pub method: String,
    /// The request target as sent (origin or absolute form).
    pub target: String,
    /// The minor HTTP version (0 or 1).
    pub version: u8,
    /// The `Host`, when the trace names one.
    pub host: Option<String>,
}

impl HttpRequest {
    /// Writes the request head the engine would have read into `buf`
    /// (cleared first): the request line, a `Host` field (the request's,
    /// else `default_host` on HTTP/1.1) and the empty line.
    pub fn write_head(&self, default_host: &str, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(self.method.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(self.target.as_bytes());
        buf.extend_from_slice(if self.version == 0 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
        let host = self
            .host
            .as_deref()
            .or((self.version == 1).then_some(default_host));
        if let Some(host) = host {
            buf.extend_from_slice(b"Host: ");
            buf.extend_from_slice(host.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        buf.extend_from_slice(b"\r\n");
    }

    /// Parses the head [`write_head`](Self::write_head) writes with the
    /// engine's parser and hands `f` the [`RequestHead`] a picker would
    /// get; an error names why the engine would refuse the request.
    pub fn with_head<T>(
        &self,
        default_host: &str,
        buf: &mut Vec<u8>,
        f: impl FnOnce(&RequestHead<'_>) -> T,
    ) -> Result<T, String> {
        self.write_head(default_host, buf);
        let mut slots = [Header {
            name: "",
            value: b"",
        }; 4];
        match parse_request(buf, &mut slots, &Limits::default()) {
            Ok(Some((_, head))) => Ok(f(&head)),
            Ok(None) => Err("incomplete request head".to_string()),
            Err(e) => Err(format!("the engine would refuse this request: {e}")),
        }
    }
}

/// A whole trace, in the order of its lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The requests.
    pub requests: Vec<TraceRequest>,
    /// What it was read from (a path, `<trace>` or `<generated>`).
    pub source: String,
}

impl Trace {
    /// Reads and parses the trace file `path` (see [`Trace::parse`]).
    pub fn read(path: &Path, format: TraceFormat) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Trace::parse(&text, &path.display().to_string(), format)
    }

    /// Parses a trace; `source` names it in errors. Fails on the first
    /// bad line, naming it.
    ///
    /// ```
    /// use ktcpvs::sim::{Trace, TraceFormat};
    /// let trace = Trace::parse("GET /a\nPOST /b example.org\n", "<t>", TraceFormat::Auto)?;
    /// assert_eq!(trace.requests.len(), 2);
    /// let err = Trace::parse("GET /a\nGET\n", "t.txt", TraceFormat::Plain).unwrap_err();
    /// assert!(err.to_string().starts_with("t.txt:2: "), "{err}");
    /// # Ok::<(), ktcpvs::sim::TraceError>(())
    /// ```
    pub fn parse(text: &str, source: &str, format: TraceFormat) -> Result<Trace, TraceError> {
        let format = match format {
            TraceFormat::Auto => detect(text),
            other => other,
        };
        let mut requests = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if line.trim().is_empty() || (format == TraceFormat::Plain && line.starts_with('#')) {
                continue;
            }
            let parsed = match format {
                TraceFormat::Common => parse_common(line),
                TraceFormat::Json => parse_json(line),
                _ => parse_plain(line),
            };
            let request = parsed
                .and_then(|mut r| {
                    r.line = number;
                    check(&r).map(|()| r)
                })
                .map_err(|reason| TraceError::Line {
                    file: source.to_string(),
                    line: number,
                    reason,
                })?;
            requests.push(request);
        }
        if requests.is_empty() {
            return Err(TraceError::Empty(source.to_string()));
        }
        Ok(Trace {
            requests,
            source: source.to_string(),
        })
    }

    /// Generates `spec.requests` requests `GET` of `spec.template` with
    /// `{key}` replaced by `k0` … `k<keys-1>`, keys drawn uniformly with
    /// the seeded generator: the same spec gives the same trace.
    ///
    /// ```
    /// use ktcpvs::sim::{GenerateSpec, Trace};
    /// let spec = GenerateSpec { requests: 100, keys: 10, ..GenerateSpec::default() };
    /// let a = Trace::generate(&spec)?;
    /// assert_eq!(a, Trace::generate(&spec)?);
    /// assert!(a.requests[0].http.as_ref().unwrap().target.starts_with("/users/k"));
    /// # Ok::<(), ktcpvs::sim::TraceError>(())
    /// ```
    pub fn generate(spec: &GenerateSpec) -> Result<Trace, TraceError> {
        if spec.requests == 0 || spec.keys == 0 {
            return Err(TraceError::Generate(
                "requests and keys must be at least 1".to_string(),
            ));
        }
        if !spec.template.contains("{key}") {
            return Err(TraceError::Generate(format!(
                "the template {:?} has no {{key}}",
                spec.template
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let mut requests = Vec::with_capacity(spec.requests);
        for _ in 0..spec.requests {
            let key = rng.gen_range(0..spec.keys);
            let request = TraceRequest {
                line: 0,
                time_us: None,
                client: None,
                http: Some(HttpRequest {
                    method: "GET".to_string(),
                    target: spec.template.replace("{key}", &format!("k{key}")),
                    version: 1,
                    host: None,
                }),
            };
            check(&request).map_err(TraceError::Generate)?;
            requests.push(request);
        }
        Ok(Trace {
            requests,
            source: "<generated>".to_string(),
        })
    }
}

/// What [`Trace::generate`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSpec {
    /// How many requests.
    pub requests: usize,
    /// How many distinct keys they draw from.
    pub keys: usize,
    /// The target, with `{key}` where the key goes.
    pub template: String,
    /// The generator's seed.
    pub seed: u64,
}

impl Default for GenerateSpec {
    /// 10,000 requests over 1,000 keys of `/users/{key}/profile`, seed 1.
    fn default() -> Self {
        GenerateSpec {
            requests: 10_000,
            keys: 1_000,
            template: "/users/{key}/profile".to_string(),
            seed: 1,
        }
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceFormat::Auto => "auto",
            TraceFormat::Common => "common",
            TraceFormat::Json => "json",
            TraceFormat::Plain => "plain",
        })
    }
}

/// The format of a trace by its first meaningful line.
fn detect(text: &str) -> TraceFormat {
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'));
    match first {
        Some(l) if l.starts_with('{') => TraceFormat::Json,
        Some(l) if l.contains(" - - [") => TraceFormat::Common,
        _ => TraceFormat::Plain,
    }
}

/// Checks that the engine would accept the request.
fn check(request: &TraceRequest) -> Result<(), String> {
    match &request.http {
        Some(http) => http.with_head(DEFAULT_HOST, &mut Vec::new(), |_| ()),
        None => Ok(()),
    }
}

/// `METHOD TARGET [HOST]`.
fn parse_plain(line: &str) -> Result<TraceRequest, String> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let (method, target, host) = match fields.as_slice() {
        [m, t] => (*m, *t, None),
        [m, t, h] => (*m, *t, Some(h.to_string())),
        _ => return Err(format!("expected METHOD TARGET [HOST], got {line:?}")),
    };
    Ok(TraceRequest {
        line: 0,
        time_us: None,
        client: None,
        http: Some(HttpRequest {
            method: method.to_string(),
            target: target.to_string(),
            version: 1,
            host,
        }),
    })
}

/// `METHOD TARGET HTTP/1.x` from a log, or `None` for the empty request
/// line of a layer-4 connection.
fn request_line(method: &str, target: &str, protocol: &str) -> Result<Option<HttpRequest>, String> {
    if method.is_empty() && target.is_empty() && protocol.is_empty() {
        return Ok(None);
    }
    let version = match protocol {
        "HTTP/1.0" => 0,
        "HTTP/1.1" => 1,
        other => return Err(format!("protocol {other:?} is not HTTP/1.0 or HTTP/1.1")),
    };
    Ok(Some(HttpRequest {
        method: method.to_string(),
        target: target.to_string(),
        version,
        host: None,
    }))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, the
/// inverse of the access log's).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the epoch of a checked UTC date and time.
fn epoch_us(date: (i64, u32, u32), time: (u32, u32, u32), micros: u32) -> Result<u64, String> {
    let (y, mo, d) = date;
    let (h, mi, s) = time;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err("date or time out of range".to_string());
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    u64::try_from(secs)
        .map(|s| s * 1_000_000 + u64::from(micros))
        .map_err(|_| "a time before 1970".to_string())
}

/// A decimal number of exactly `digits` digits.
fn number(text: &str, digits: usize) -> Result<u32, String> {
    if text.len() != digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected {digits} digits, got {text:?}"));
    }
    text.parse().map_err(|e| format!("{text:?}: {e}"))
}

/// `29/Nov/2026:23:16:32 +0000`.
fn common_time(text: &str) -> Result<u64, String> {
    let bad = || format!("malformed time {text:?}");
    let (stamp, zone) = text.split_once(' ').ok_or_else(bad)?;
    if zone != "+0000" {
        return Err(bad());
    }
    let parts: Vec<&str> = stamp.split(['/', ':']).collect();
    let [day, month, year, h, m, s] = parts.as_slice() else {
        return Err(bad());
    };
    let month = MONTHS.iter().position(|n| n == month).ok_or_else(bad)? as u32 + 1;
    epoch_us(
        (i64::from(number(year, 4)?), month, number(day, 2)?),
        (number(h, 2)?, number(m, 2)?, number(s, 2)?),
        0,
    )
}

/// `2026-11-29T23:16:32.007Z`.
fn json_time(text: &str) -> Result<u64, String> {
    let bad = || format!("malformed time {text:?}");
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, clock) = body.split_once('T').ok_or_else(bad)?;
    let (clock, millis) = clock.split_once('.').ok_or_else(bad)?;
    let date: Vec<&str> = date.split('-').collect();
    let clock: Vec<&str> = clock.split(':').collect();
    let ([y, mo, d], [h, mi, s]) = (date.as_slice(), clock.as_slice()) else {
        return Err(bad());
    };
    epoch_us(
        (i64::from(number(y, 4)?), number(mo, 2)?, number(d, 2)?),
        (number(h, 2)?, number(mi, 2)?, number(s, 2)?),
        number(millis, 3)? * 1000,
    )
}

/// The request line of a common-format line, unescaped, and the rest after
/// its closing quote.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                _ => return Err("a backslash that escapes neither '\"' nor '\\'".to_string()),
            },
            c => out.push(c),
        }
    }
    Err("the request line has no closing quote".to_string())
}

/// A `-` or a value of `T`.
fn dash_or<T: FromStr>(text: &str) -> Result<Option<T>, String> {
    if text == "-" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("malformed value {text:?}"))
}

/// A milliseconds figure with three decimals, as the log writes them.
fn millis(text: &str) -> Result<(), String> {
    match text.split_once('.') {
        Some((whole, frac))
            if !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && frac.len() == 3
                && frac.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(())
        }
        _ => Err(format!("malformed milliseconds {text:?}")),
    }
}

/// The fields after the request line of a common-format line:
/// `STATUS BYTES service=… rule=… server=… bytes_in=… connect_ms=…
/// first_byte_ms=… total_ms=… retries=… end=…`.
fn common_fields(rest: &str) -> Result<(), String> {
    let fields: Vec<&str> = rest.split(' ').collect();
    let [status, bytes, kv @ ..] = fields.as_slice() else {
        return Err("missing status and bytes".to_string());
    };
    dash_or::<u16>(status)?;
    bytes
        .parse::<u64>()
        .map_err(|_| format!("malformed byte count {bytes:?}"))?;
    const KEYS: [&str; 9] = [
        "service",
        "rule",
        "server",
        "bytes_in",
        "connect_ms",
        "first_byte_ms",
        "total_ms",
        "retries",
        "end",
    ];
    if kv.len() != 9 {
        return Err(format!("expected 9 key=value fields, got {}", kv.len()));
    }
    for (field, key) in kv.iter().zip(KEYS) {
        let value = field
            .strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .ok_or_else(|| format!("expected {key}=…, got {field:?}"))?;
        match key {
            "service" if value.is_empty() => return Err("empty service".to_string()),
            "rule" => drop(dash_or::<usize>(value)?),
            "server" => drop(dash_or::<SocketAddr>(value)?),
            "bytes_in" | "retries" => drop(dash_or::<u64>(value)?.ok_or("missing count")?),
            "connect_ms" | "first_byte_ms" if value != "-" => millis(value)?,
            "total_ms" => millis(value)?,
            "end" if !matches!(value, "done" | "proxy" | "aborted" | "closed") => {
                return Err(format!("unknown end {value:?}"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A line of the `common` access-log format.
fn parse_common(line: &str) -> Result<TraceRequest, String> {
    let (ip, rest) = line
        .split_once(" - - [")
        .ok_or("expected 'IP - - [TIME] \"REQUEST\" …'")?;
    let ip: IpAddr = ip.parse().map_err(|_| format!("malformed client {ip:?}"))?;
    let (time, rest) = rest.split_once("] \"").ok_or("malformed time field")?;
    let time_us = common_time(time)?;
    let (request, rest) = quoted(rest)?;
    let rest = rest
        .strip_prefix(' ')
        .ok_or("expected a space after the request")?;
    common_fields(rest)?;
    let mut parts = request.splitn(3, ' ');
    let (m, t, p) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    Ok(TraceRequest {
        line: 0,
        time_us: Some(time_us),
        client: Some(SocketAddr::new(ip, 0)),
        http: request_line(m, t, p)?,
    })
}

/// One line of the `json` access-log format; every field the log writes
/// must be there, and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the fields are read to be checked
struct JsonLine {
    time: String,
    client: SocketAddr,
    service: String,
    #[serde(deserialize_with = "nullable")]
    rule: Option<usize>,
    #[serde(deserialize_with = "nullable")]
    server: Option<SocketAddr>,
    method: String,
    target: String,
    protocol: String,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    #[serde(deserialize_with = "nullable")]
    connect_ms: Option<f64>,
    #[serde(deserialize_with = "nullable")]
    first_byte_ms: Option<f64>,
    total_ms: f64,
    retries: u32,
    end: String,
}

/// A field that must be present, as a value or `null` (an `Option` field
/// alone would take a missing one for `null`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// A line of the `json` access-log format.
fn parse_json(line: &str) -> Result<TraceRequest, String> {
    let record: JsonLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if !matches!(record.end.as_str(), "done" | "proxy" | "aborted" | "closed") {
        return Err(format!("unknown end {:?}", record.end));
    }
    Ok(TraceRequest {
        line: 0,
        time_us: Some(json_time(&record.time)?),
        client: Some(record.client),
        http: request_line(&record.method, &record.target, &record.protocol)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON: &str = "127.0.0.1 - - [29/Nov/2026:23:16:32 +0000] \"GET /a\\\"b HTTP/1.1\" 200 1234 service=web rule=0 server=10.0.0.10:80 bytes_in=80 connect_ms=0.412 first_byte_ms=1.250 total_ms=1.480 retries=0 end=done";
    const JSON: &str = r#"{"time":"2026-11-29T23:16:32.007Z","client":"127.0.0.1:52514","service":"web","rule":0,"server":"10.0.0.10:80","method":"GET","target":"/images/a.png","protocol":"HTTP/1.1","status":200,"bytes_in":80,"bytes_out":1234,"connect_ms":0.412,"first_byte_ms":1.250,"total_ms":1.480,"retries":0,"end":"done"}"#;

    #[test]
    fn common_lines_parse_as_the_log_writes_them() {
        let t = Trace::parse(COMMON, "x", TraceFormat::Auto).unwrap();
        let r = &t.requests[0];
        assert_eq!(r.time_us, Some(1_795_994_192_000_000));
        assert_eq!(r.client, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(r.http.as_ref().unwrap().target, "/a\"b");
        let l4 = "10.1.2.3 - - [29/Nov/2026:23:16:32 +0000] \"\" - 0 service=db rule=- server=10.0.0.1:3306 bytes_in=5 connect_ms=0.100 first_byte_ms=- total_ms=9.000 retries=0 end=closed";
        let t = Trace::parse(l4, "x", TraceFormat::Common).unwrap();
        assert_eq!(t.requests[0].http, None);
    }

    #[test]
    fn json_lines_parse_as_the_log_writes_them() {
        let t = Trace::parse(JSON, "x", TraceFormat::Auto).unwrap();
        let r = &t.requests[0];
        assert_eq!(r.time_us, Some(1_795_994_192_007_000));
        assert_eq!(r.client, Some("127.0.0.1:52514".parse().unwrap()));
        assert_eq!(r.http.as_ref().unwrap().version, 1);
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let cases = [
            (
                format!("{COMMON}\n{}", COMMON.replace("end=done", "end=x")),
                2,
            ),
            (
                format!("{COMMON}\n\n{}", COMMON.replace("+0000", "+0100")),
                3,
            ),
            (COMMON.replace(" retries=0", ""), 1),
            (JSON.replace(",\"end\":\"done\"", ""), 1),
            (JSON.replace("\"rule\":0,", ""), 1),
            (JSON.replace("\"end\"", "\"extra\":1,\"end\""), 1),
            (
                format!("{JSON}\n{}", JSON.replace("/images/a.png", "/a b")),
                2,
            ),
            ("GET /ok\nGET /a b c d".to_string(), 2),
            ("GET no-slash".to_string(), 1),
        ];
        for (text, line) in cases {
            match Trace::parse(&text, "f", TraceFormat::Auto) {
                Err(TraceError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn dates_round_trip_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 951_782_400 / 86_400);
    }
}
