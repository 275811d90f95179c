#!/usr/bin/env python3
"""sick_backend.py - scenario 10's sick backend: a small keep-alive HTTP/1.1
server (asyncio, real sockets) that answers every GET with a fixed 200 page
the size of the backend nginx's, made slow or failing on purpose.

  --delay-ms N       every traffic response waits N ms before it is written
  --fail-percent P   about P % of traffic responses are 500 (drawn at random)

Two paths are not traffic and never slow or fail: `/health` (200 "ok", for
the proxies' active checks) and `/__count` (200 "served=N failed=M": the
traffic responses so far and how many of them were 500). On SIGTERM or
SIGINT it prints the same counts to stdout (its log) and exits.

Bounded: at most --max-conns connections (more are closed at once), request
heads of at most 16 KiB (else the connection is closed), request bodies
read and dropped. It is used only where its rate stays far below what it
can serve (examples/bench/scenarios.sh, scenario 10, measures that first).

Usage: sick_backend.py PORT [--delay-ms N] [--fail-percent P] [--max-conns N]
"""
import argparse
import asyncio
import random
import signal
import sys

MAX_HEAD = 16384
PAGE = b"<html><body>" + b"x" * 300 + b"</body></html>\n\n"   # as the backend's index.html


def response(status, reason, body, close):
    head = (f"HTTP/1.1 {status} {reason}\r\nServer: sick\r\nContent-Type: text/html\r\n"
            f"Content-Length: {len(body)}\r\nX-Backend: sick\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n")
    return head.encode() + body


class Counts:
    served = 0
    failed = 0
    conns = 0


class Http(asyncio.Protocol):
    def __init__(self, args, loop):
        self.args, self.loop = args, loop
        self.buf = b""
        self.skip = 0          # request body bytes still to drop
        self.transport = None
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport
        Counts.conns += 1
        if Counts.conns > self.args.max_conns:
            transport.abort()

    def connection_lost(self, exc):
        Counts.conns -= 1
        self.closing = True

    def data_received(self, data):
        self.buf += data
        while True:
            if self.skip:
                n = min(self.skip, len(self.buf))
                self.buf, self.skip = self.buf[n:], self.skip - n
                if self.skip:
                    return
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.transport.abort()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            self.request(head)

    def request(self, head):
        lines = head.split(b"\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            self.transport.abort()
            return
        target, version = parts[1], parts[2]
        close = version == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"connection":
                close = b"close" in value if version != b"HTTP/1.0" else b"keep-alive" not in value
            elif name == b"content-length" and value.isdigit():
                self.skip = int(value)
        if target == b"/health":
            self.send(response(200, "OK", b"ok\n", close), close)
        elif target == b"/__count":
            text = f"served={Counts.served} failed={Counts.failed}\n".encode()
            self.send(response(200, "OK", text, close), close)
        else:
            Counts.served += 1
            if random.random() * 100 < self.args.fail_percent:
                Counts.failed += 1
                out = response(500, "Internal Server Error", b"failed\n", close)
            else:
                out = response(200, "OK", PAGE, close)
            if self.args.delay_ms > 0:   # equal delays keep responses in request order
                self.loop.call_later(self.args.delay_ms / 1000, self.send, out, close)
            else:
                self.send(out, close)

    def send(self, out, close):
        if self.closing:
            return
        self.transport.write(out)
        if close:
            self.closing = True
            self.transport.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("port", type=int)
    p.add_argument("--delay-ms", type=float, default=0)
    p.add_argument("--fail-percent", type=float, default=0)
    p.add_argument("--max-conns", type=int, default=4096)
    args = p.parse_args()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(lambda: Http(args, loop), "127.0.0.1", args.port, backlog=1024))
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"# sick backend on 127.0.0.1:{args.port}: delay {args.delay_ms} ms, "
          f"{args.fail_percent} % 500", flush=True)
    loop.run_until_complete(stop)
    server.close()
    print(f"served={Counts.served} failed={Counts.failed}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
