"""A misbehaving HTTP server on loopback: late headers, trickled bodies, connections never closed.

Each route is a function `(request, send, stopping) -> None` that writes raw bytes with `send`;
`stopping` is set when the server shuts down, so a trickle ends with the test. Routes record the
requests they saw (`server.requests`), so a test can assert that nothing was sent.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.net import free_port


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Send = Callable[[bytes], None]
Route = Callable[[Request, Send, threading.Event], None]


@dataclass
class MisbehavingServer:
    routes: dict[str, Route]
    tls: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)
        self._stopping = threading.Event()
        self._listener = socket.create_server((self.host, self.port))
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(5)
            reader = conn.makefile("rb")
            while not self._stopping.is_set():
                line = reader.readline()
                if not line:
                    return
                method, path, _version = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", "0") or 0))
                request = Request(method, path, headers, body)
                self.requests.append(request)
                route = self.routes.get(path.split("?", 1)[0])
                if route is None:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                route(request, conn.sendall, self._stopping)
        except (OSError, ValueError):
            pass  # the client went away (as a timed-out client does)
        finally:
            conn.close()


# --- Routes -----------------------------------------------------------------------------------


def _sleep(seconds: float, stopping: threading.Event) -> bool:
    """Sleep unless the server stops; True if it is stopping."""
    return stopping.wait(seconds)


def json_reply(document: object, *, delay: float = 0.0, status: str = "200 OK") -> Route:
    """A well-formed JSON answer, sent whole after `delay` seconds."""
    body = json.dumps(document).encode()

    def route(request: Request, send: Send, stopping: threading.Event) -> None:
        if _sleep(delay, stopping):
            return
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        send(head.encode() + body)

    return route


def late_headers(seconds: float = 30.0) -> Route:
    """Says nothing for `seconds`."""

    def route(request: Request, send: Send, stopping: threading.Event) -> None:
        _sleep(seconds, stopping)

    return route


def trickled_headers(interval: float = 0.2) -> Route:
    """The status line and headers one byte at a time: a per-read timeout never fires."""

    def route(request: Request, send: Send, stopping: threading.Event) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 10_000:
            send(bytes([byte]))
            if _sleep(interval, stopping):
                return

    return route


def content_length_trickle(length: int = 72, interval: float = 0.2) -> Route:
    """`Content-Length: 72`, then one byte per `interval` (D1's FHIR search)."""

    def route(request: Request, send: Send, stopping: threading.Event) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        send(head.encode())
        for _ in range(length):
            if _sleep(interval, stopping):
                return
            send(b" ")

    return route


def chunked_trickle(interval: float = 0.2) -> Route:
    """A chunked body of one-byte chunks that never ends."""

    def route(request: Request, send: Send, stopping: threading.Event) -> None:
        send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        while not _sleep(interval, stopping):
            send(b"1\r\n \r\n")

    return route


def never_closes() -> Route:
    """A close-delimited body (no length, not chunked) that starts and then never ends."""

    def route(request: Request, send: Send, stopping: threading.Event) -> None:
        send(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"a": ')
        _sleep(60, stopping)

    return route


class Elapsed:
    """`with Elapsed() as t: ...; t.seconds`"""

    def __enter__(self) -> Elapsed:
        self.started = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self.started
