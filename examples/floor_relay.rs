//! `floor_relay`: the benchmark's floor, the cheapest a user-space proxy can
//! be on this machine. Every client connection gets its own connection to
//! one backend (`BACKEND_R2`), and bytes are relayed both ways, one read and
//! one write per chunk, on a single mio event loop: no parsing, no routing,
//! no pooling. Whatever an L7 proxy costs above this row is its own
//! overhead.
//!
//! ```text
//! LISTEN=127.0.0.1:8000 BACKEND_R2=127.0.0.1:8002 cargo run --release --example floor_relay
//! ```
//!
//! A measuring stick, not a product: no timeouts, no limits.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
const CHUNK: usize = 64 * 1024;

/// One direction's bytes read and not yet written.
#[derive(Default)]
struct Held {
    buf: Vec<u8>,
    sent: usize,
}

/// A client connection and its backend connection.
struct Pair {
    client: TcpStream,
    backend: TcpStream,
    /// Client to backend.
    up: Held,
    /// Backend to client.
    down: Held,
}

/// Moves bytes from `from` to `to` until one would block; `false` when the
/// pair is done (end of stream or an error). Bytes are written straight
/// from the shared `chunk`; only what the destination does not take is
/// kept, in `held`, so an idle pair holds no buffer.
fn pump(from: &mut TcpStream, to: &mut TcpStream, held: &mut Held, chunk: &mut [u8]) -> bool {
    loop {
        while held.sent < held.buf.len() {
            match to.write(&held.buf[held.sent..]) {
                Ok(0) => return false,
                Ok(n) => held.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        *held = Held::default();
        let n = match from.read(chunk) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let mut sent = 0;
        while sent < n {
            match to.write(&chunk[sent..n]) {
                Ok(0) => return false,
                Ok(w) => sent += w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    held.buf.extend_from_slice(&chunk[sent..n]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

fn address(var: &str) -> Result<SocketAddr, String> {
    let text = std::env::var(var).map_err(|_| format!("{var} is not set"))?;
    text.parse()
        .map_err(|e| format!("{var}={text}: not an address: {e}"))
}

fn main() -> Result<(), String> {
    let listen = address("LISTEN")?;
    let backend = address("BACKEND_R2")?;
    let fail = |what: &str, e: io::Error| format!("{what}: {e}");
    let mut poll = Poll::new().map_err(|e| fail("poll", e))?;
    let mut listener = TcpListener::bind(listen).map_err(|e| fail("bind", e))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| fail("register", e))?;
    let mut pairs: HashMap<usize, Pair> = HashMap::new();
    let mut next = 0usize;
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(fail("poll", e));
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((client, _)) = listener.accept() {
                    let Ok(backend) = TcpStream::connect(backend) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = backend.set_nodelay(true);
                    let mut pair = Pair {
                        client,
                        backend,
                        up: Held::default(),
                        down: Held::default(),
                    };
                    let both = Interest::READABLE | Interest::WRITABLE;
                    let registry = poll.registry();
                    if registry
                        .register(&mut pair.client, Token(next * 2), both)
                        .is_ok()
                        && registry
                            .register(&mut pair.backend, Token(next * 2 + 1), both)
                            .is_ok()
                    {
                        pairs.insert(next, pair);
                        next += 1;
                    }
                }
                continue;
            }
            let key = event.token().0 / 2;
            let Some(pair) = pairs.get_mut(&key) else {
                continue;
            };
            let up = pump(
                &mut pair.client,
                &mut pair.backend,
                &mut pair.up,
                &mut chunk,
            );
            let down = pump(
                &mut pair.backend,
                &mut pair.client,
                &mut pair.down,
                &mut chunk,
            );
            if !up || !down {
                pairs.remove(&key);
            }
        }
    }
}
