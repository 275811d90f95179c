//! WebSocket end to end through the proxy: a real client (tungstenite)
//! upgrades through an HTTP service to a real echo server (tungstenite's
//! `accept` in a thread); text and binary messages, small and large, come
//! back intact, with `zerocopy_send` off and on, and the close handshake
//! passes through.

mod support;

use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use ktcpvs_core::ServiceSpec;
use support::*;
use tungstenite::Message;

/// A WebSocket echo server for one connection: every data message is sent
/// back; a close is answered (tungstenite does that) and ends the thread.
fn echo_server() -> (std::net::SocketAddr, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        let mut echoed = 0;
        loop {
            match ws.read() {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    ws.send(m).unwrap();
                    echoed += 1;
                }
                Ok(_) => {}
                Err(_) => return echoed,
            }
        }
    });
    (addr, thread)
}

#[test]
fn websocket_echo_through_the_proxy() {
    for zerocopy in ["0", "1"] {
        let (backend, server) = echo_server();
        let control = control();
        set(&control, "zerocopy_send", zerocopy);
        add_service(&control, "ws", "phttp", ServiceSpec::default());
        add_server(&control, "ws", backend);
        add_rule(&control, "ws", "/chat.*", backend);
        start(&control, "ws");
        let engine = run(control);

        let addr = engine.addr("ws");
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (mut ws, response) =
            tungstenite::client(format!("ws://{addr}/chat/room1"), stream).unwrap();
        assert_eq!(response.status().as_u16(), 101);

        let big = pattern(3 << 20);
        let messages = vec![
            Message::Text("hello".into()),
            Message::Binary(vec![0, 1, 2, 255]),
            Message::Binary(big.clone()),
            Message::Text("x".repeat(100_000)),
        ];
        for m in &messages {
            ws.send(m.clone()).unwrap();
            let back = loop {
                match ws.read().unwrap() {
                    m @ (Message::Text(_) | Message::Binary(_)) => break m,
                    _ => continue,
                }
            };
            match (m, &back) {
                (Message::Binary(a), Message::Binary(b)) => {
                    assert_eq!(checksum(a), checksum(b), "zerocopy_send={zerocopy}")
                }
                _ => assert_eq!(m, &back, "zerocopy_send={zerocopy}"),
            }
        }
        ws.close(None).unwrap();
        // Read until the server's close reply has come through.
        loop {
            match ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("close handshake failed: {e}"),
            }
        }
        assert_eq!(server.join().unwrap(), messages.len());
    }
}
