//! HTTP/2 through the real programs, with real clients: `nghttp` sends
//! several streams on one connection and each is switched by the rules on
//! its own; curl speaks h2c with prior knowledge and h2 by ALPN over TLS
//! (and HTTP/1.1 where HTTP/2 is off or asked for by `Upgrade`); large
//! uploads and downloads keep every byte through flow control, with and
//! without a declared length; `h2load` keeps streams going while the
//! daemon stops, and none fails (GOAWAY first, streams in flight finish).
//! curl, nghttp and h2load are installed by `.ci/run`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The `n` bytes a download of `n` is made of.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// A real HTTP/1.1 server for byte-exact transfers, one request per
/// connection: a request with a body (`Content-Length` or chunked) is
/// answered `LENGTH HASH` of what it received; `GET /bytes/N` sends N
/// pattern bytes with `Content-Length`, `GET /chunked/N` the same bytes
/// chunked; anything else answers its own path.
struct ByteServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl ByteServer {
    fn start() -> ByteServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(conn) = conn {
                    std::thread::spawn(move || {
                        let _ = serve_bytes(conn);
                    });
                }
            }
        });
        ByteServer { addr, stop }
    }
}

impl Drop for ByteServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Serves one request on `conn`.
fn serve_bytes(conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let target = head[0].split(' ').nth(1).unwrap_or("/").to_string();
    let field = |name: &str| {
        head.iter().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut out = conn;
    let (len, hash) = if let Some(n) = field("content-length") {
        let n: usize = n.parse().unwrap();
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
        (n, fnv(FNV_START, &body))
    } else if field("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let (mut len, mut hash) = (0, FNV_START);
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim_end(), 16).unwrap();
            if n == 0 {
                let mut end = String::new();
                reader.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            hash = fnv(hash, &chunk[..n]);
            len += n;
        }
        (len, hash)
    } else if let Some(n) = target.strip_prefix("/bytes/") {
        let body = pattern(n.parse().unwrap());
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        return out.write_all(&body);
    } else if let Some(n) = target.strip_prefix("/chunked/") {
        let body = pattern(n.parse().unwrap());
        out.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )?;
        for chunk in body.chunks(70_000) {
            write!(out, "{:x};ext=1\r\n", chunk.len())?;
            out.write_all(chunk)?;
            out.write_all(b"\r\n")?;
        }
        return out.write_all(b"0\r\nx-trailer: t\r\n\r\n");
    } else {
        let body = format!("bytes {target}\n");
        return write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    let body = format!("{len} {hash:016x}\n");
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A configuration of one service named `name` on `port` switching
/// `/images/` to r1, `/html/` to r2, `/bytes` and `/chunked` and uploads
/// (`/up`) to `bytes`, the rest to r3; `extra` lines are added.
fn site(
    name: &str,
    port: u16,
    servers: &[ktcpvs::demo::NamedHttpServer],
    bytes: SocketAddr,
    extra: &str,
) -> String {
    let (r1, r2, r3) = (
        servers[0].local_addr(),
        servers[1].local_addr(),
        servers[2].local_addr(),
    );
    format!(
        "Virtual {name} {{\n    listen = 127.0.0.1:{port}\n    scheduler = http\n{extra}\
         \n    server = {r1} 1\n    server = {r2} 1\n    server = {r3} 1\n    server = {bytes} 1\n\
         \n    rule = pattern \"^/images/.*\" use server {r1}\
         \n    rule = pattern \"^/html/.*\" use server {r2}\
         \n    rule = pattern \"^/(bytes|chunked|up)\" use server {bytes}\
         \n    rule = pattern \".*\" use server {r3}\n}}\n"
    )
}

/// A self-signed certificate for `h2.test` in `dir` (`h2.pem`, `h2.key`).
fn certificate(dir: &TempDir) -> std::path::PathBuf {
    let cert = rcgen::generate_simple_self_signed(vec!["h2.test".to_string()]).unwrap();
    std::fs::write(dir.join("h2.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("h2.key"), cert.signing_key.serialize_pem()).unwrap();
    dir.join("h2.pem")
}

/// Runs a client program; its stdout, or what it said on failure.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Process::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{program} {args:?}: {}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Starts a daemon on the configuration `conf` and its services, and
/// waits until `url` answers over h2c.
fn daemon_with(dir: &TempDir, conf: &str) -> Daemon {
    daemon_with_args(dir, conf, &[])
}

/// [`daemon_with`], with more arguments for ktcpvsd.
fn daemon_with_args(dir: &TempDir, conf: &str, args: &[&str]) -> Daemon {
    let file = dir.join("h2.conf");
    std::fs::write(&file, conf).unwrap();
    let mut all = vec!["-f", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let daemon = Daemon::start(&all);
    daemon.adm_ok(&["--start"]);
    daemon
}

#[test]
fn streams_on_one_connection_are_each_switched_by_the_rules() {
    let dir = TempDir::new("h2route");
    let servers = three_servers();
    let bytes = ByteServer::start();
    let port = free_port();
    let admin = format!("127.0.0.1:{}", free_port());
    let log = dir.join("access.log");
    let daemon = daemon_with_args(
        &dir,
        &site("web", port, &servers, bytes.addr, "    http2 = on"),
        &["--admin", &admin, "--access-log", log.to_str().unwrap()],
    );
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    assert!(
        eventually(200, || run(
            "curl",
            &["-sS", "--http2-prior-knowledge", &url("/")]
        )
        .is_ok()),
        "{}",
        daemon.log_text()
    );
    // nghttp sends all its URLs as concurrent streams of one connection.
    let paths = [
        "/images/a.png",
        "/html/b.html",
        "/c",
        "/images/d",
        "/html/e",
        "/f",
    ];
    let urls: Vec<String> = paths.iter().map(|p| url(p)).collect();
    let mut args = vec!["-v"];
    args.extend(urls.iter().map(String::as_str));
    let out = run("nghttp", &args).unwrap();
    assert_eq!(out.matches("] Connected").count(), 1, "{out}");
    for (path, server) in paths.iter().zip(["r1", "r2", "r3", "r1", "r2", "r3"]) {
        let body = format!("{server} GET {path}\n");
        assert!(out.contains(&body), "{body:?} missing from:\n{out}");
    }
    // The streams were in flight together: their HEADERS all left before
    // the first response came.
    let first_response = out.find("recv (stream_id=").unwrap();
    assert_eq!(
        out[..first_response].matches("; Open new stream").count(),
        paths.len(),
        "{out}"
    );
    // The same through h2load: many streams per connection, all answered.
    let load = run(
        "h2load",
        &["-n", "600", "-c", "3", "-m", "20", &url("/html/x")],
    )
    .unwrap();
    assert!(
        load.contains("600 succeeded, 0 failed, 0 errored"),
        "{load}"
    );
    assert!(load.contains("status codes: 600 2xx"), "{load}");
    // Counted as HTTP/2, logged one line per stream with its protocol.
    let stats = daemon.adm_ok(&["-L", "--stats"]);
    assert!(
        stats.contains("h2_connections=5 h2_requests=607 h2_streams_refused=0"),
        "{stats}"
    );
    let metrics = run("curl", &["-sS", &format!("http://{admin}/metrics")]).unwrap();
    for sample in [
        "ktcpvs_service_protocol_requests_total{service=\"web\",protocol=\"h2\"} 607",
        "ktcpvs_service_protocol_requests_total{service=\"web\",protocol=\"http/1.x\"} 0",
        "ktcpvs_service_h2_connections_total{service=\"web\"} 5",
    ] {
        assert!(metrics.contains(sample), "{sample} missing:\n{metrics}");
    }
    assert!(
        eventually(100, || std::fs::read_to_string(&log)
            .is_ok_and(|l| l.matches(" HTTP/2.0\" 200 ").count() == 607)),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"GET /images/a.png HTTP/2.0\" 200 "),
        "{text}"
    );
}

#[test]
fn curl_speaks_h2c_and_h2_by_alpn_and_http11_where_http2_is_off() {
    let dir = TempDir::new("h2curl");
    let cert = certificate(&dir);
    let servers = three_servers();
    let bytes = ByteServer::start();
    let (plain, tls, plain_off, tls_off) = (free_port(), free_port(), free_port(), free_port());
    let certificate_line = "    certificate = h2.pem key h2.key\n";
    let conf = [
        site("plain", plain, &servers, bytes.addr, "    http2 = on"),
        site(
            "tls",
            tls,
            &servers,
            bytes.addr,
            &format!("    http2 = on\n{certificate_line}"),
        ),
        site("plainoff", plain_off, &servers, bytes.addr, ""),
        site("tlsoff", tls_off, &servers, bytes.addr, certificate_line),
    ]
    .concat();
    let daemon = daemon_with(&dir, &conf);
    let version = "%{http_version}\n";
    let h2c = |port: u16, path: &str| {
        run(
            "curl",
            &[
                "-sS",
                "--max-time",
                "5",
                "--http2-prior-knowledge",
                "-w",
                version,
                &format!("http://127.0.0.1:{port}{path}"),
            ],
        )
    };
    assert!(
        eventually(200, || h2c(plain, "/").is_ok()),
        "{}",
        daemon.log_text()
    );
    assert_eq!(h2c(plain, "/images/a").unwrap(), "r1 GET /images/a\n2\n");
    // `Upgrade: h2c` is not taken: the request is served as HTTP/1.1.
    let upgrade = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "5",
            "--http2",
            "-w",
            version,
            &format!("http://127.0.0.1:{plain}/html/b"),
        ],
    )
    .unwrap();
    assert_eq!(upgrade, "r2 GET /html/b\n1.1\n");
    // Without http2 a preface is no request; turned on live, the next
    // connection speaks it.
    assert!(h2c(plain_off, "/").is_err());
    daemon.adm_ok(&["-E", "-i", "plainoff", "--http2", "on"]);
    assert_eq!(h2c(plain_off, "/html/c").unwrap(), "r2 GET /html/c\n2\n");
    let listing = daemon.adm_ok(&["-L", "-i", "plainoff"]);
    assert!(listing.contains("    http2 = on\n"), "{listing}");
    daemon.adm_ok(&["-E", "-i", "plainoff", "--http2", "off"]);
    assert!(h2c(plain_off, "/").is_err());
    let https = |port: u16, extra: &[&str], paths: &[&str]| {
        let resolve = format!("h2.test:{port}:127.0.0.1");
        let mut args = vec![
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-w",
            version,
        ];
        args.extend_from_slice(extra);
        let urls: Vec<String> = paths
            .iter()
            .map(|p| format!("https://h2.test:{port}{p}"))
            .collect();
        args.extend(urls.iter().map(String::as_str));
        run("curl", &args)
    };
    assert!(
        eventually(200, || https(tls, &[], &["/"]).is_ok()),
        "{}",
        daemon.log_text()
    );
    // Three requests, one connection (curl multiplexes them on it).
    assert_eq!(
        https(tls, &[], &["/images/1", "/html/2", "/3"]).unwrap(),
        "r1 GET /images/1\n2\nr2 GET /html/2\n2\nr3 GET /3\n2\n"
    );
    assert_eq!(
        https(tls, &["--http1.1"], &["/x"]).unwrap(),
        "r3 GET /x\n1.1\n"
    );
    // A TLS listener without http2 offers only http/1.1 by ALPN.
    assert_eq!(
        https(tls_off, &[], &["/images/y"]).unwrap(),
        "r1 GET /images/y\n1.1\n"
    );
}

#[test]
fn large_uploads_and_downloads_keep_every_byte() {
    let dir = TempDir::new("h2bytes");
    let cert = certificate(&dir);
    let servers = three_servers();
    let bytes = ByteServer::start();
    let (plain, tls) = (free_port(), free_port());
    let conf = [
        site("plain", plain, &servers, bytes.addr, "    http2 = on"),
        site(
            "tls",
            tls,
            &servers,
            bytes.addr,
            "    http2 = on\n    certificate = h2.pem key h2.key\n",
        ),
    ]
    .concat();
    let daemon = daemon_with(&dir, &conf);
    let resolve = format!("h2.test:{tls}:127.0.0.1");
    let curl = |extra: &[&str], url: &str| {
        let mut args = vec![
            "-sS",
            "--max-time",
            "30",
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &resolve,
        ];
        if url.starts_with("http:") {
            args.push("--http2-prior-knowledge");
        }
        args.extend_from_slice(extra);
        args.push(url);
        run("curl", &args)
    };
    let base = [
        format!("http://127.0.0.1:{plain}"),
        format!("https://h2.test:{tls}"),
    ];
    assert!(
        eventually(200, || curl(&[], &format!("{}/", base[0])).is_ok()),
        "{}",
        daemon.log_text()
    );
    let upload = pattern(8 << 20);
    let file = dir.join("upload.bin");
    std::fs::write(&file, &upload).unwrap();
    let expected = format!("{} {:016x}\n", upload.len(), fnv(FNV_START, &upload));
    let at_file = format!("@{}", file.display());
    for base in &base {
        // A declared length (Content-Length to the server, checked
        // against the DATA frames).
        let sent = curl(&["--data-binary", &at_file], &format!("{base}/up"))
            .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log_text()));
        assert_eq!(sent, expected, "{base}");
        // No length (`-T -` from a pipe): chunked to the server.
        let piped =
            Process::new("sh")
                .arg("-c")
                .arg(format!(
                "cat {} | curl -sS --max-time 30 --cacert {} --resolve {resolve} {} -T - {base}/up",
                file.display(),
                cert.display(),
                if base.starts_with("http:") { "--http2-prior-knowledge" } else { "" },
            ))
                .output()
                .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&piped.stdout),
            expected,
            "{base}: {}",
            String::from_utf8_lossy(&piped.stderr)
        );
        for path in ["bytes", "chunked"] {
            let out = dir.join("download.bin");
            let n = 16 << 20;
            let got = curl(
                &["-o", out.to_str().unwrap(), "-w", "%{http_version}"],
                &format!("{base}/{path}/{n}"),
            )
            .unwrap();
            assert_eq!(got, "2", "{base}/{path}");
            let body = std::fs::read(&out).unwrap();
            assert_eq!(body.len(), n, "{base}/{path}");
            assert!(body == pattern(n), "{base}/{path}: bytes differ");
        }
    }
    // Concurrent large streams on one connection share its window.
    let url = format!("{}/bytes/3000000", base[0]);
    let load = run("h2load", &["-n", "12", "-c", "1", "-m", "6", &url]).unwrap();
    assert!(load.contains("12 succeeded, 0 failed, 0 errored"), "{load}");
}

/// One frame: type, flags, stream, payload.
type Frame = (u8, u8, u32, Vec<u8>);

/// Writes one frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads one frame, or `None` at the end of the connection.
fn read_frame(conn: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 9];
    conn.read_exact(&mut head).ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let mut payload = vec![0; len];
    conn.read_exact(&mut payload).ok()?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some((head[3], head[4], stream, payload))
}

/// What one client that opens streams until it is told to stop saw.
#[derive(Debug, Default)]
struct Tally {
    /// Streams answered 200 whole.
    complete: u32,
    /// Streams reset by the proxy, or cut by the connection's end,
    /// among those the proxy took (at most the GOAWAY's last stream).
    failed: Vec<u32>,
    /// Streams the GOAWAY said were not taken (the client may retry).
    not_taken: u32,
    /// The last stream the GOAWAY named, if one came.
    goaway: Option<u32>,
}

/// An HTTP/2 client (frames built here, h2c with prior knowledge) that
/// keeps 10 `GET path` streams in flight on one connection, and opens no
/// new one once a GOAWAY came, until the connection ends or `limit`.
fn keep_streams(addr: SocketAddr, authority: &str, path: &str, limit: Duration) -> Tally {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    conn.write_all(&out).unwrap();
    // A literal field without indexing, new name (RFC 7541 §6.2.2).
    let field = |block: &mut Vec<u8>, name: &str, value: &str| {
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    };
    let mut block = Vec::new();
    field(&mut block, ":method", "GET");
    field(&mut block, ":scheme", "http");
    field(&mut block, ":authority", authority);
    field(&mut block, ":path", path);
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let mut open: std::collections::BTreeMap<u32, bool> = Default::default();
    let mut next = 1u32;
    loop {
        while tally.goaway.is_none() && open.len() < 10 && started.elapsed() < limit {
            // HEADERS, END_STREAM | END_HEADERS.
            if conn.write_all(&frame(1, 0x5, next, &block)).is_err() {
                break;
            }
            open.insert(next, false);
            next += 2;
        }
        if open.is_empty() && (tally.goaway.is_some() || started.elapsed() >= limit) {
            break;
        }
        let Some((kind, flags, stream, payload)) = read_frame(&mut conn) else {
            break;
        };
        match kind {
            // HEADERS: `:status: 200` is static entry 8, sent indexed.
            1 => {
                let ok = payload.first() == Some(&0x88);
                if let Some(seen) = open.get_mut(&stream) {
                    *seen = ok;
                }
                if flags & 1 != 0 {
                    open.remove(&stream);
                    if ok {
                        tally.complete += 1;
                    } else {
                        tally.failed.push(stream);
                    }
                }
            }
            // DATA: the connection's window is given back (each stream's
            // own is far larger than its response).
            0 if !payload.is_empty() => {
                let n = payload.len() as u32;
                conn.write_all(&frame(8, 0, 0, &n.to_be_bytes()))
                    .unwrap_or(());
                if flags & 1 != 0 {
                    if open.remove(&stream) == Some(true) {
                        tally.complete += 1;
                    } else {
                        tally.failed.push(stream);
                    }
                }
            }
            0 if flags & 1 != 0 => {
                if open.remove(&stream) == Some(true) {
                    tally.complete += 1;
                } else {
                    tally.failed.push(stream);
                }
            }
            // RST_STREAM.
            3 => {
                open.remove(&stream);
                tally.failed.push(stream);
            }
            // SETTINGS (not an ACK): acknowledged; PING: answered.
            4 if flags & 1 == 0 => conn.write_all(&frame(4, 1, 0, &[])).unwrap_or(()),
            6 if flags & 1 == 0 => conn.write_all(&frame(6, 1, 0, &payload)).unwrap_or(()),
            // GOAWAY: streams above its last one were not taken.
            7 => {
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                    & 0x7fff_ffff;
                tally.goaway = Some(last);
                let above: Vec<u32> = open.range(last + 1..).map(|(s, _)| *s).collect();
                for s in above {
                    open.remove(&s);
                    tally.not_taken += 1;
                }
            }
            _ => {}
        }
    }
    // Streams still open when the connection ended were cut.
    tally.failed.extend(open.keys());
    tally
}

#[test]
fn a_stop_sends_goaway_and_no_stream_fails() {
    let dir = TempDir::new("h2stop");
    let servers = three_servers();
    let bytes = ByteServer::start();
    let port = free_port();
    let mut daemon = daemon_with(
        &dir,
        &site("web", port, &servers, bytes.addr, "    http2 = on"),
    );
    let url = format!("http://127.0.0.1:{port}/html/load");
    assert!(
        eventually(200, || run(
            "curl",
            &["-sS", "--http2-prior-knowledge", &url]
        )
        .is_ok()),
        "{}",
        daemon.log_text()
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                keep_streams(addr, "web.test", "/html/load", Duration::from_secs(8))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    let mut child = daemon.take_child();
    terminate(&child);
    let status = wait_bounded(&mut child, Duration::from_secs(15)).expect("ktcpvsd stops");
    assert!(status.success(), "{status}: {}", daemon.log_text());
    for client in clients {
        let tally = client.join().unwrap();
        assert!(tally.goaway.is_some(), "no GOAWAY: {tally:?}");
        assert!(tally.failed.is_empty(), "{tally:?}\n{}", daemon.log_text());
        assert!(tally.complete > 50, "{tally:?}");
    }
}
