"""Slow clients cannot hold connections: a request head or body that does not arrive within
PORTCULLIS_CLIENT_TIMEOUT_SECONDS ends the request (408 for a body, a closed connection for a head)."""
import urllib.request
import os
import socket
import time
from pathlib import Path

from portcullis_server import read_metrics, running_server

BIN = Path(os.environ.get("PORTCULLIS_BIN", Path(__file__).resolve().parents[2] / ".build" / "debug" / "portcullis"))


def _connect(base):
    host, port = base.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    return s


def _read_all(s, limit=10.0):
    s.settimeout(limit)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except socket.timeout:
        pass
    return data


def test_slow_head_and_slow_body_are_cut_off(tmp_path):
    with running_server(BIN, tmp_path, CLIENT_TIMEOUT_SECONDS="2") as base:
        # Head trickled and never finished: the server closes the connection after ~2 s.
        s = _connect(base)
        s.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        data = _read_all(s, limit=10)
        waited = time.monotonic() - start
        s.close()
        assert data == b"" and 1.5 < waited < 6, (data, waited)

        # Complete head, body announced as 100 bytes, 10 sent: the server stops waiting after ~2 s,
        # closes the connection, and counts the request as a 408.
        s = _connect(base)
        s.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"email\": ")
        start = time.monotonic()
        data = _read_all(s, limit=10)
        waited = time.monotonic() - start
        s.close()
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
        assert 1.5 < waited < 6, waited
        metrics = read_metrics(base, timeout=5)
        assert 'portcullis_http_requests_total{method="POST",route="/v1/auth/login",status="408"} 1' in metrics

        # The server still serves everyone else.
        s = _connect(base)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(s).startswith(b"HTTP/1.1 200")
        s.close()


def _raw(base, request: bytes) -> bytes:
    s = _connect(base)
    s.sendall(request)
    data = _read_all(s, limit=5)
    s.close()
    return data


def test_header_limits(tmp_path):
    """Over 16 KiB in one header field, or over 100 fields: refused by the HTTP parser with a bare
    400 and a closed connection, before any handler runs. Within the limits: served."""
    with running_server(BIN, tmp_path) as base:
        big = _raw(base, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\nConnection: close\r\n\r\n")
        assert big.startswith(b"HTTP/1.1 400"), big[:100]
        many = _raw(base, b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
                    + b"Connection: close\r\n\r\n")
        assert many.startswith(b"HTTP/1.1 400"), many[:100]
        fine = _raw(base, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 8000 + b"\r\nConnection: close\r\n\r\n")
        assert fine.startswith(b"HTTP/1.1 200"), fine[:100]


def _read_response(s, limit: float) -> bytes:
    """One response (head and Content-Length body), or whatever arrived before `limit` seconds."""
    s.settimeout(limit)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    except socket.timeout:
        return data


def test_chunked_body_over_the_limit_is_413_at_once(tmp_path):
    """A chunked body (no Content-Length) that passes the 64 KiB limit is refused with 413 as
    soon as the limit is crossed, like one that announces its length: the client here never
    finishes its body, and the client timeout (60 s) is far beyond how long we wait (10 s), so
    the answer can only come from the size check."""
    with running_server(BIN, tmp_path, CLIENT_TIMEOUT_SECONDS="60") as base:
        for path in (b"/v1/auth/login", b"/v1/orgs"):  # anonymous, and authenticated (size before 401)
            s = _connect(base)
            s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            piece = b"a" * 8192
            for _ in range(9):  # 72 KiB, and no terminating zero-length chunk
                s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            data = _read_response(s, limit=10)
            s.close()
            assert data.startswith(b"HTTP/1.1 413"), (path, data[:300])
            assert b'"code":"payload_too_large"' in data, data[:300]

        # The server still serves everyone else.
        s = _connect(base)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(s).startswith(b"HTTP/1.1 200")
        s.close()


def test_expect_100_continue_is_answered_at_once(tmp_path):
    """`Expect: 100-continue` (RFC 9110 §10.1.1): a client waits for `100 Continue` before sending
    its body (curl gives up waiting after a second, so every such request took a second longer).
    A request refused on its head alone gets its final status instead; a body that is read gets
    `100 Continue` as soon as reading starts, and a chunked one over the limit then its 413."""
    with running_server(BIN, tmp_path, CLIENT_TIMEOUT_SECONDS="60") as base:
        head = (b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Expect: 100-continue\r\n")
        # Announced too large: 413 at once, without 100.
        s = _connect(base)
        s.sendall(head + b"Content-Length: 100000\r\n\r\n")
        data = _read_response(s, limit=10)
        s.close()
        assert data.startswith(b"HTTP/1.1 413"), data[:300]

        # Chunked: 100 Continue before any of the body is sent, then 413 once it passes the limit.
        s = _connect(base)
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        interim = _read_response(s, limit=10)
        assert interim.startswith(b"HTTP/1.1 100"), interim[:300]
        piece = b"a" * 8192
        for _ in range(9):
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        data = _read_response(s, limit=10)
        s.close()
        assert data.startswith(b"HTTP/1.1 413"), data[:300]

        # A body of the right size: 100 Continue, then the ordinary answer.
        s = _connect(base)
        body = b'{"email": "nobody@example.com", "password": "wrong password 123"}'
        s.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        interim = _read_response(s, limit=10)
        assert interim.startswith(b"HTTP/1.1 100"), interim[:300]
        s.sendall(body)
        data = _read_response(s, limit=10)
        s.close()
        assert data.startswith(b"HTTP/1.1 401"), data[:300]
