//! A small blocking HTTP/1.1 test client over std::net with read timeouts,
//! which reads responses with exact framing (Content-Length, chunked,
//! close-delimited, no body for HEAD/1xx/204/304).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Asserts that the body is `n` bytes and that the backend's
    /// `X-Checksum` is that of `pattern(n)` (the backend's `/length/N`,
    /// `/chunked/N` and `/close/N` answers).
    pub fn assert_pattern_body(&self, n: usize) {
        assert_eq!(self.body.len(), n);
        assert_eq!(
            self.header("x-checksum").unwrap(),
            super::checksum(&super::pattern(n)).to_string()
        );
    }
}

/// One client connection, over a plain socket unless `S` says otherwise
/// (a TLS stream).
pub struct Client<S = TcpStream> {
    pub reader: BufReader<S>,
    /// The `Host` that [`get`](Self::get) sends.
    pub host: String,
}

/// A connected socket with 5-second read and write timeouts.
pub fn connect_timed(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::over(connect_timed(addr))
    }
}

impl<S: Read + Write> Client<S> {
    /// A client over an established stream.
    pub fn over(stream: S) -> Client<S> {
        Client {
            reader: BufReader::new(stream),
            host: "test".to_string(),
        }
    }

    pub fn stream(&mut self) -> &mut S {
        self.reader.get_mut()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream().write_all(bytes).unwrap();
    }

    /// Sends `GET target` (keep-alive) and reads the response.
    pub fn get(&mut self, target: &str) -> io::Result<Response> {
        let req = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream().write_all(req.as_bytes())?;
        self.read_response(false)
    }

    /// Reads one response; `head_request` when it answers a HEAD.
    pub fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a response",
            ));
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if self.reader.read_line(&mut h)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed in head",
                ));
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status < 200 || status == 204 || status == 304 {
            return Ok(resp);
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size)?;
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad chunk size {size:?}"),
                    )
                })?;
                if size == 0 {
                    let mut end = String::new();
                    loop {
                        end.clear();
                        self.reader.read_line(&mut end)?;
                        if end.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = resp.body.len();
                resp.body.resize(start + size, 0);
                self.reader.read_exact(&mut resp.body[start..])?;
                let mut crlf = [0u8; 2];
                self.reader.read_exact(&mut crlf)?;
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
            resp.body.resize(len, 0);
            self.reader.read_exact(&mut resp.body)?;
        } else {
            self.reader.read_to_end(&mut resp.body)?;
        }
        Ok(resp)
    }

    /// Reads until the proxy closes (bounded by the read timeout).
    pub fn read_to_close(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader.read_to_end(&mut out)?;
        Ok(out)
    }
}
