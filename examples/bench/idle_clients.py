#!/usr/bin/env python3
"""idle_clients.py - the idle-connection client of scenarios 4 and 12.

Opens N connections to HOST:PORT, sends one GET on each and reads its whole
response, then keeps every connection open and idle. When all are done it
writes "ok=<n> failed=<m>" (and up to five "# <count>x <reason>" lines) to
RESULT_FILE and sleeps (at most HOLD seconds) until killed, so the caller can
read the proxy's resident memory while the connections are held.

Modes (--mode):
  h1      plain HTTP/1.1 keep-alive (scenario 4)
  tls-h1  TLS with ALPN http/1.1, then the same HTTP/1.1 request
  h2      TLS with ALPN h2: the connection preface, an empty SETTINGS, one
          HEADERS frame (stream 1, END_STREAM) whose fields are HPACK
          literals without indexing; the server's SETTINGS are acknowledged
          and frames are read until stream 1 ends. The response's first
          field must be :status (indexed, or a literal; the status must be
          200).
TLS modes do not verify the certificate.

Usage: idle_clients.py HOST PORT N PATH RESULT_FILE [HOLD] [--mode h1|tls-h1|h2]
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20


def read_response(sock):
    """Reads one HTTP/1.1 response; returns its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    return status


def frame(kind, flags, stream, payload=b""):
    """One HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    """An HPACK literal field without indexing, new name, no Huffman coding
    (names and values here are shorter than 127 bytes)."""
    name, value = name.encode(), value.encode()
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


class Frames:
    """Reads whole frames from a socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def take(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before stream 1 ended")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def next(self):
        head = self.take(9)
        length = int.from_bytes(head[:3], "big")
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        return head[3], head[4], stream, self.take(length)


# RFC 7541 appendix B: the Huffman codes of the digits ('0'-'2' 5 bits, '3'-'9' 6 bits).
HUFFMAN_DIGITS = {(5, 0): "0", (5, 1): "1", (5, 2): "2", **{(6, 0x19 + d): str(3 + d) for d in range(7)}}


def first_status(block):
    """The :status of a response header block, when it is its first field:
    0x88 (static entry 8, `:status: 200`) or a literal whose name is one of
    the static :status entries (8-14), its value plain or Huffman-coded."""
    if block[:1] == b"\x88":
        return 200
    first = block[0] if block else -1
    index = first & 0x3F if first & 0xC0 == 0x40 else first & 0x0F if first & 0xE0 == 0 else 0
    if not 8 <= index <= 14 or len(block) < 2:
        raise ConnectionError(f"response does not start with :status (HPACK byte {block[:1].hex()})")
    size, huffman = block[1] & 0x7F, block[1] & 0x80
    value = block[2:2 + size]
    if not huffman:
        return int(value)
    bits = "".join(f"{b:08b}" for b in value)
    digits, pos = "", 0
    while pos + 5 <= len(bits) and len(digits) < 3:
        for n in (5, 6):
            d = HUFFMAN_DIGITS.get((n, int(bits[pos:pos + n], 2)))
            if d is not None:
                digits, pos = digits + d, pos + n
                break
        else:
            raise ConnectionError(f"response :status not three digits (HPACK {block[:2 + size].hex()})")
    return int(digits)


def h2_exchange(sock, authority, path):
    """One GET on stream 1 over an HTTP/2 connection; returns its status
    (200, or raises)."""
    block = (literal(":method", "GET") + literal(":scheme", "https")
             + literal(":authority", authority) + literal(":path", path))
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    frames, status = Frames(sock), None
    while True:
        kind, flags, stream, payload = frames.next()
        if kind == SETTINGS and not flags & ACK:
            sock.sendall(frame(SETTINGS, ACK, 0))
        elif kind == GOAWAY:
            code = int.from_bytes(payload[4:8], "big") if len(payload) >= 8 else -1
            raise ConnectionError(f"GOAWAY error code {code}")
        elif kind == RST_STREAM and stream == 1:
            raise ConnectionError(f"RST_STREAM error code {int.from_bytes(payload[:4], 'big')}")
        elif kind == HEADERS and stream == 1:
            if status is None:
                start = 1 if flags & PADDED else 0
                start += 5 if flags & PRIORITY else 0
                status = first_status(payload[start:])
            if flags & END_STREAM:
                return status
        elif kind == DATA and stream == 1 and flags & END_STREAM:
            if status is None:
                raise ConnectionError("DATA before HEADERS")
            return status


def main():
    ap = argparse.ArgumentParser(description="hold N idle client connections")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("path")
    ap.add_argument("result_file")
    ap.add_argument("hold", type=float, nargs="?", default=120.0)
    ap.add_argument("--mode", choices=["h1", "tls-h1", "h2"], default="h1")
    a = ap.parse_args()
    ctx = None
    if a.mode != "h1":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2" if a.mode == "h2" else "http/1.1"])
    authority = f"{a.host}:{a.port}"
    request = f"GET {a.path} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    held, failed, reasons = [], 0, {}
    for _ in range(a.count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect((a.host, a.port))
            if ctx is not None:
                sock = ctx.wrap_socket(sock)   # no SNI, as for curl and wrk to an address
                want = "h2" if a.mode == "h2" else "http/1.1"
                got = sock.selected_alpn_protocol()
                if got != want:
                    raise ConnectionError(f"ALPN {got!r}, not {want}")
            if a.mode == "h2":
                status = h2_exchange(sock, authority, a.path)
            else:
                sock.sendall(request)
                status = read_response(sock)
            if status != 200:
                raise ConnectionError(f"status {status}")
            held.append(sock)
        except (OSError, ValueError, IndexError) as e:
            failed += 1
            reasons[str(e)] = reasons.get(str(e), 0) + 1
            sock.close()
    with open(a.result_file + ".tmp", "w") as f:
        f.write(f"ok={len(held)} failed={failed}\n")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]:
            f.write(f"# {n}x {reason}\n")
    os.rename(a.result_file + ".tmp", a.result_file)
    time.sleep(a.hold)
    for sock in held:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
