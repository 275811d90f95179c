//! Criterion micro-benchmark of one full proxied request over loopback: a
//! keep-alive client sends a small GET and reads the whole response, once
//! straight to the backend (the baseline) and once through the engine for
//! each dispatch mode (layer 4, decided on the first request, decided on
//! every request). The ratio of each proxied round trip to the direct one
//! is the latency the engine adds. Results are recorded in
//! `docs/benchmarks.md` ("Engine micro-benchmarks").
//!
//! Everything is real and self-contained: a `Control` with a small
//! "first available server" scheduler written against the core traits, a
//! keep-alive HTTP/1.1 backend on `std::net` threads, the engine with one
//! worker on 127.0.0.1:0, and a client socket. All of it is stopped and
//! joined before the benchmark returns.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ktcpvs_core::{
    Command, Control, Dispatch, Endpoint, PickRequest, Picker, Scheduler, SchedulerError,
    SchedulerRegistry, Selection, ServiceSpec, VirtualService,
};
use ktcpvs_net::{Engine, EngineHandle};

/// The request every client sends.
const REQUEST: &[u8] =
    b"GET /html/index.html HTTP/1.1\r\nHost: bench\r\nUser-Agent: criterion\r\nAccept: */*\r\n\r\n";

/// The backend's fixed answer.
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n";

/// How long any socket in this benchmark may block before it is an error,
/// so a broken engine fails the run instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A scheduler that picks the first available, not excluded server, with
/// the dispatch mode it was made with.
struct First {
    name: &'static str,
    dispatch: Dispatch,
}

struct FirstPicker;

impl Picker for FirstPicker {
    fn pick(&self, s: &dyn VirtualService, r: &PickRequest<'_>) -> Option<Selection> {
        (0..s.server_count())
            .find(|&i| s.server(i).is_available() && !r.is_excluded(i))
            .map(Selection::server)
    }
}

impl Scheduler for First {
    fn name(&self) -> &str {
        self.name
    }
    fn dispatch(&self) -> Dispatch {
        self.dispatch
    }
    fn build(&self, _: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        Ok(Box::new(FirstPicker))
    }
}

/// The benchmarked services: (service and scheduler name, dispatch mode).
const SERVICES: [(&str, Dispatch); 3] = [
    ("l4", Dispatch::Connection),
    ("http", Dispatch::FirstRequest),
    ("phttp", Dispatch::EachRequest),
];

/// A keep-alive HTTP/1.1 backend answering every request head with
/// [`RESPONSE`]; one thread per connection.
struct Backend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the backend");
        let addr = listener.local_addr().expect("backend address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let acceptor = std::thread::spawn(move || {
            let mut connections = Vec::new();
            for stream in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                if let Ok(stream) = stream {
                    connections.push(std::thread::spawn(move || serve(stream)));
                }
            }
            connections
        });
        Backend {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Stops accepting and joins every connection thread (each ends when
    /// its peer closes, or after [`IO_TIMEOUT`] of silence). Returns how
    /// many connections it accepted.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Release);
        // Wake the blocked accept; the acceptor sees the flag and returns.
        drop(TcpStream::connect(self.addr));
        let Some(acceptor) = self.acceptor.take() else {
            return 0;
        };
        let connections = acceptor.join().expect("acceptor thread");
        // The wake-up connection is not among them: the acceptor stops on it.
        let accepted = connections.len();
        for connection in connections {
            connection.join().expect("backend connection thread");
        }
        accepted
    }
}

/// Answers each request head on `stream` until the peer closes.
fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let mut buf = [0u8; 4096];
    let mut filled = 0;
    loop {
        match stream.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        // Answer every complete head in the buffer (requests carry no body).
        while let Some(end) = find_head_end(&buf[..filled]) {
            if stream.write_all(RESPONSE).is_err() {
                return;
            }
            buf.copy_within(end..filled, 0);
            filled -= end;
        }
        if filled == buf.len() {
            return;
        }
    }
}

/// The length of the head at the start of `buf` (through CRLF CRLF), if
/// it is complete.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A keep-alive client connection and its reusable read buffer.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Client {
            stream,
            buf: vec![0; 4096],
        }
    }

    /// Sends [`REQUEST`] and reads one whole response; returns its status
    /// and body length.
    fn round_trip(&mut self) -> (u16, usize) {
        self.stream.write_all(REQUEST).expect("send the request");
        let mut filled = 0;
        loop {
            let n = match self.stream.read(&mut self.buf[filled..]) {
                Ok(0) => panic!("connection closed mid-response"),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("read the response: {e}"),
            };
            filled += n;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head_len = match response.parse(&self.buf[..filled]) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => continue,
                Err(e) => panic!("malformed response: {e}"),
            };
            let body_len = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                .expect("a Content-Length");
            let status = response.code.expect("a status");
            // One response at a time on this connection: nothing follows it.
            match filled.cmp(&(head_len + body_len)) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return (status, body_len),
                std::cmp::Ordering::Greater => panic!("bytes after the response"),
            }
        }
    }
}

/// A control with one service per entry of [`SERVICES`], each on
/// 127.0.0.1:0 with `backend` as its only server, all started.
fn control(backend: SocketAddr) -> Control {
    let registry = Arc::new(SchedulerRegistry::new());
    for (name, dispatch) in SERVICES {
        registry
            .register(Arc::new(First { name, dispatch }))
            .expect("register the scheduler");
    }
    let control = Control::new(registry);
    for (name, _) in SERVICES {
        let spec = ServiceSpec {
            listen: Some(Endpoint {
                host: "127.0.0.1".into(),
                port: Some(0),
            }),
            scheduler: Some(name.into()),
            ..Default::default()
        };
        control
            .execute(Command::AddService {
                name: name.into(),
                spec,
            })
            .expect("add the service");
        control
            .execute(Command::AddServer {
                service: name.into(),
                server: Endpoint {
                    host: backend.ip().to_string(),
                    port: Some(backend.port()),
                },
                weight: Some(1),
            })
            .expect("add the server");
    }
    control
        .execute(Command::Start { service: None })
        .expect("start the services");
    control
}

/// Times one keep-alive round trip to `addr` as benchmark `name`, after
/// checking that the round trip really reaches the backend.
fn bench_round_trip(c: &mut Criterion, name: &str, addr: SocketAddr) {
    let mut client = Client::connect(addr);
    assert_eq!(
        client.round_trip(),
        (200, 13),
        "{name}: the backend answers"
    );
    c.benchmark_group("proxy/keepalive_round_trip")
        .bench_function(name, |b| b.iter(|| client.round_trip()));
}

fn bench_proxy(c: &mut Criterion) {
    let backend = Backend::start();
    let engine: EngineHandle = Engine::builder(control(backend.addr))
        .workers(1)
        .start()
        .expect("start the engine");
    bench_round_trip(c, "direct", backend.addr);
    for (name, _) in SERVICES {
        let addr = engine.local_addr(name).expect("the service listens");
        bench_round_trip(c, name, addr);
    }
    engine.shutdown(Duration::from_secs(1));
    engine.wait().expect("the engine stops cleanly");
    // One per client connection at most if the engine reuses its backend
    // connections; far more means it reconnected per request.
    let accepted = backend.stop();
    eprintln!("backend connections accepted over the whole run: {accepted}");
}

criterion_group!(benches, bench_proxy);
criterion_main!(benches);
