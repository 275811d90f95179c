#!/usr/bin/env python3
"""idle_clients.py - scenario 4's client: many idle keep-alive connections.

Opens N connections to HOST:PORT, sends one keep-alive GET on each and reads
its whole response (headers and Content-Length body), then keeps every
connection open and idle. When all are done it writes "ok=<n> failed=<m>"
to RESULT_FILE and sleeps (at most HOLD seconds) until killed, so the caller
can read the proxy's resident memory while the connections are held.

Usage: idle_clients.py HOST PORT N PATH RESULT_FILE [HOLD]
"""
import os
import socket
import sys
import time


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


def main():
    host, port, count, path, result_file = sys.argv[1:6]
    hold = float(sys.argv[6]) if len(sys.argv) > 6 else 120.0
    port, count = int(port), int(count)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    held, failed, reasons = [], 0, {}
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect((host, port))
            sock.sendall(request)
            status = read_response(sock)
            if status != 200:
                raise ConnectionError(f"status {status}")
            held.append(sock)
        except (OSError, ValueError, IndexError) as e:
            failed += 1
            reasons[str(e)] = reasons.get(str(e), 0) + 1
            sock.close()
    with open(result_file + ".tmp", "w") as f:
        f.write(f"ok={len(held)} failed={failed}\n")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]:
            f.write(f"# {n}x {reason}\n")
    os.rename(result_file + ".tmp", result_file)
    time.sleep(hold)
    for sock in held:
        sock.close()


if __name__ == "__main__":
    main()
