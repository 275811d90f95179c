#!/usr/bin/env python3
"""reconfig.py - scenario 5's control client: live reconfiguration under load.

Sends OPS reconfiguration commands, paced evenly over SECONDS, through a
proxy's control socket: a second r2 server is added, given a rule (ktcpvs) or
enabled (HAProxy), re-weighted, then taken out and removed, over and over.
Writes "ok=<n> refused=<m>" (and the first refusals) to RESULT_FILE.

Dialects:
  ktcpvs   the ktcpvs control protocol (one session: greeting line, then one
           request line per command, each answered "OK", "OK <n>" + n lines,
           or "ERR <kind> <message>"; see docs/control-protocol.md)
  haproxy  HAProxy's runtime API (one connection per command)

Usage: reconfig.py DIALECT SOCKET SERVICE EXTRA_ADDR KEEP_ADDR OPS SECONDS RESULT_FILE
  EXTRA_ADDR  the server added and removed (a second r2)
  KEEP_ADDR   the serving r2, re-weighted in between
"""
import socket
import sys
import time


def ktcpvs_cycle(service, extra, keep):
    """One add / rule / re-weight / remove cycle in the ktcpvs protocol."""
    return [
        f"add-server {service} server={extra} weight=1",
        f'add-rule {service} pattern="^/html/" server={extra}',
        f"edit-server {service} server={extra} weight=3",
        f"edit-server {service} server={keep} weight=2",
        f'delete-rule {service} pattern="^/html/" server={extra}',
        f"delete-server {service} server={extra}",
        f"edit-server {service} server={keep} weight=1",
    ]


def haproxy_cycle(_service, extra, _keep):
    """The same cycle in HAProxy's runtime API: (command, reply that means success)."""
    return [
        (f"add server r2/extra {extra} weight 1", "New server registered"),
        ("enable server r2/extra", ""),
        ("set server r2/extra weight 3", ""),
        ("set server r2/s1 weight 2", ""),
        ("disable server r2/extra", ""),
        ("del server r2/extra", "Server deleted"),
        ("set server r2/s1 weight 1", ""),
    ]


class KtcpvsSession:
    """One control-socket session speaking the ktcpvs line protocol."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        greeting = self.file.readline().decode()
        if not greeting.startswith("KTCPVS "):
            raise RuntimeError(f"not a ktcpvs control socket: {greeting!r}")

    def send(self, line):
        """Sends one request; returns None on OK, else the refusal line."""
        self.file.write(line.encode() + b"\n")
        self.file.flush()
        reply = self.file.readline().decode().rstrip("\r\n")
        if reply.startswith("OK"):
            words = reply.split()
            for _ in range(int(words[1]) if len(words) > 1 else 0):
                self.file.readline()
            return None
        return reply or "connection closed"


def haproxy_send(path, command, expect):
    """Sends one runtime-API command; returns None on success, else the reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(command.encode() + b"\n")
    reply = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    sock.close()
    text = reply.decode(errors="replace").strip()
    if (expect and expect in text) or (not expect and not text):
        return None
    return f"{command}: {text}"


def main():
    dialect, path, service, extra, keep, ops, seconds, result_file = sys.argv[1:9]
    ops, seconds = int(ops), float(seconds)
    cycle = ktcpvs_cycle if dialect == "ktcpvs" else haproxy_cycle
    commands = cycle(service, extra, keep)
    session = KtcpvsSession(path) if dialect == "ktcpvs" else None
    ok, refused, reasons = 0, 0, []
    gap = seconds / ops
    start = time.monotonic()
    for i in range(ops):
        command = commands[i % len(commands)]
        if session:
            refusal = session.send(command)
        else:
            refusal = haproxy_send(path, *command)
        if refusal is None:
            ok += 1
        else:
            refused += 1
            if len(reasons) < 5:
                reasons.append(refusal)
        delay = start + (i + 1) * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    with open(result_file, "w") as f:
        f.write(f"ok={ok} refused={refused}\n")
        for reason in reasons:
            f.write(f"# {reason}\n")


if __name__ == "__main__":
    main()
