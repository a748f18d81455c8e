"""Every outbound HTTP call of the app: discovery, JWKS, token, refresh, revocation, FHIR, style.

One place decides how the app talks to an EHR:

- a pooled `requests.Session` per origin (keep-alive, no per-user state), that refuses cookies,
  never follows redirects, ignores proxy variables and ~/.netrc (a call goes to the checked
  address, with only the credentials the caller put in it) and never retries by itself;
- the URL rule of `smartapp.safety` on every call (https; http loopback for dev/tests only; for
  public-only URLs every resolved address public, and the connection made to a checked address);
- timeouts from settings: `SMART_HTTP_CONNECT_TIMEOUT` per connect, `SMART_HTTP_READ_TIMEOUT` per
  read, and `SMART_HTTP_DEADLINE`, a **total wall-clock deadline** on each response;
- a size cap on every body (`TooLarge` past it; nothing more is read);
- domain errors: `Timeout`, `Unreachable`, `TooLarge`, `RefusedURL`;
- one hook for timing (`observer` gets an `Exchange` once the call is over).

How the deadline holds whatever the server does (late headers, a Content-Length body trickled a
byte a second, a chunked trickle, a server that never closes): a per-read socket timeout cannot do
it (every trickled byte resets it), and checking the clock between chunks cannot either
(`iter_content` yields a chunk only once it is complete). So a watchdog thread holds each call's
deadline and, when it passes, shuts the call's socket down (`shutdown(SHUT_RDWR)` on the socket
object; a closed socket object has no fd, so it can never hit a reused one). Any read blocked on
it returns at once, and the read error is reported as `Timeout`. The connection is then closed,
never put back in the pool. The phases before a socket exists are bounded too: DNS runs on a
small thread pool and is waited for only until the deadline; connect (and the whole TLS
handshake, which CPython bounds as one operation) gets min(connect timeout, time left). A body
that arrived whole is returned even if the deadline passes meanwhile: only a read that fails
(or a close-delimited body cut by the watchdog) is a timeout.

Reference: https://urllib3.readthedocs.io/en/stable/reference/urllib3.connection.html
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import http.cookiejar
import itertools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from smartapp import safety
from smartapp.safety import RefusedURL

logger = logging.getLogger(__name__)

__all__ = [
    "Body",
    "Exchange",
    "OutboundError",
    "RefusedURL",
    "Reply",
    "Timeout",
    "TooLarge",
    "Unreachable",
    "fetch",
    "longest_call",
    "session_for",
    "stream",
]

READ_CHUNK = 64 * 1024
# A watchdog shutdown, the DNS wait and the last read return within milliseconds of the deadline;
# this bounds how late a call can end all the same (scheduling on a loaded host).
DEADLINE_SLACK = 1.0


# --- Errors ---------------------------------------------------------------------------------


class OutboundError(Exception):
    """A call failed below HTTP semantics; `str(exc)` is safe to show (no URL path, no secrets)."""

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class Timeout(OutboundError):
    """No complete answer within the connect/read timeouts or the total deadline."""


class Unreachable(OutboundError):
    """No HTTP answer at all: DNS, connection refused or reset, TLS."""


class TooLarge(OutboundError):
    """The body passed the caller's size cap (nothing more was read)."""


# --- Settings -------------------------------------------------------------------------------


def total_deadline() -> float:
    """Seconds one call may take end to end, headers and body (`SMART_HTTP_DEADLINE`)."""
    return float(settings.SMART_HTTP_DEADLINE)


def longest_call(deadline: float | None = None) -> float:
    """The longest a call with this deadline can take, slack for the watchdog included."""
    return (total_deadline() if deadline is None else deadline) + DEADLINE_SLACK


# --- The watchdog ---------------------------------------------------------------------------


class _Call:
    """One call in flight: its deadline, the connection it is on, and whether it ran out."""

    __slots__ = ("conn", "deadline", "done", "expired")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.conn: HTTPConnection | None = None
        self.done = False
        self.expired = False

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)


class _Watchdog:
    """Shuts a call's socket down when its deadline passes (one daemon thread per process)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Call]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, call: _Call) -> None:
        with self._cond:
            heapq.heappush(self._heap, (call.deadline, next(self._seq), call))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="smart-http-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def finish(self, call: _Call) -> None:
        """The call is over: from now on its deadline touches nothing (its entry is dropped lazily)."""
        with self._cond:
            call.done = True

    def attach(self, conn: HTTPConnection) -> None:
        """`conn` now serves the calling thread's call (or none): only that call may shut it down."""
        call = getattr(_local, "call", None)
        with self._cond:
            conn._smart_call = call  # type: ignore[attr-defined]
            if call is not None:
                call.conn = conn
                if call.expired:
                    _shutdown(conn)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _deadline, _seq, call = heapq.heappop(self._heap)
                    if not call.done:
                        call.expired = True
                        if call.conn is not None and getattr(call.conn, "_smart_call", None) is call:
                            _shutdown(call.conn)
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


def _shutdown(conn: HTTPConnection) -> None:
    sock = conn.sock
    if sock is None:
        return
    # socket.socket's own shutdown, also for an SSLSocket (whose override would drop its TLS state
    # under the reading thread): the blocked recv returns, the TLS layer sees EOF. OSError: closed.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_local = threading.local()
_watchdog = _Watchdog()


# --- DNS with a deadline --------------------------------------------------------------------

_resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="smart-dns")


def _reset_after_fork() -> None:
    """A forked worker has none of the parent's threads: start its own watchdog and resolvers."""
    global _watchdog, _resolver
    _watchdog = _Watchdog()
    _resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="smart-dns")


os.register_at_fork(after_in_child=_reset_after_fork)


def _resolve(host: str, port: int, *, public_only: bool) -> list[tuple[int, str]]:
    """Resolve (and judge) host:port, waiting for DNS no longer than the current call may last."""
    if safety.literal_addresses(host):
        return safety.resolve(host, port, public_only=public_only)  # no DNS involved
    call = getattr(_local, "call", None)
    future = _resolver.submit(safety.resolve, host, port, public_only=public_only)
    try:
        return future.result(timeout=call.remaining() if call is not None else None)
    except FutureTimeout:
        raise TimeoutError(f"resolving {host} took too long") from None


# --- Connections, pools, sessions -----------------------------------------------------------


class _WatchedConnectionMixin:
    """Resolves through `_resolve` (bounded, and judged when public_only) and joins the watchdog."""

    public_only = False

    def _new_conn(self) -> socket.socket:
        try:
            pairs = _resolve(self._dns_host, self.port, public_only=self.public_only)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Resolving {self.host} timed out") from exc
        except safety.UnresolvableHost as exc:
            raise NameResolutionError(self.host, self, socket.gaierror(str(exc))) from exc
        call = getattr(_local, "call", None)
        error: Exception | None = None
        for _family, address in pairs:
            timeout = self.timeout
            if call is not None:
                left = call.remaining()
                timeout = min(timeout, left) if isinstance(timeout, int | float) else left
            try:
                # The address checked above, never a second lookup: no DNS-rebinding gap. The TLS
                # layer still uses self.host (the name) for SNI and certificate verification, and
                # http.client uses it for the Host header.
                return urllib3.util.connection.create_connection(
                    (address, self.port),
                    timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                error = ConnectTimeoutError(self, f"Connection to {self.host} timed out")
                error.__cause__ = exc
            except OSError as exc:
                error = NewConnectionError(self, f"Failed to establish a new connection: {exc}")
        raise error or NewConnectionError(self, "No address to connect to")

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watchdog.attach(self)  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection: connect() is not called again
            _watchdog.attach(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    pass


class _PublicHTTPConnection(_HTTPConnection):
    public_only = True


class _PublicHTTPSConnection(_HTTPSConnection):
    public_only = True


def _pool_classes(public_only: bool) -> dict[str, type]:
    http_cls = _PublicHTTPConnection if public_only else _HTTPConnection
    https_cls = _PublicHTTPSConnection if public_only else _HTTPSConnection
    return {
        "http": type("WatchedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_cls}),
        "https": type("WatchedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_cls}),
    }


class _Adapter(HTTPAdapter):
    """requests' adapter with the watched (and, for public-only sessions, judged) connections."""

    def __init__(self, *, public_only: bool, **kwargs: Any):
        self.public_only = public_only
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.public_only)


def new_session(*, public_only: bool = False) -> requests.Session:
    """A session with the transport's rules (tests use it to add a CA; callers use `session_for`)."""
    session = requests.Session()
    session.trust_env = False  # no proxy variables, no ~/.netrc credentials added to a call
    # Cookies are refused: a shared jar would carry one user's EHR cookies into another's request.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    pool = max(int(getattr(settings, "FHIR_MAX_WORKERS", 8)) * 2, 16)
    adapter = _Adapter(public_only=public_only, pool_connections=4, pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


_sessions: dict[tuple[str, bool], requests.Session] = {}
_sessions_lock = threading.Lock()


def origin(url: str) -> str:
    """scheme://host:port, lower-cased, with the default port spelled out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        port = -1
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def session_for(url: str, *, public_only: bool = False) -> requests.Session:
    """One keep-alive pool per origin (and rule), shared by every request and thread."""
    key = (origin(url), public_only)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = new_session(public_only=public_only)
        return session


# --- Calls ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One finished call, for timing hooks: perf_counter() start and end, and how it ended."""

    method: str
    origin: str
    status_code: int | None
    started: float
    ended: float
    outcome: str  # "ok" (an HTTP answer, any status), "timeout", "unreachable", "too_large", "refused"


class Body:
    """An open response: status and headers, and a size-capped, deadline-bound `read()`.

    File-like enough for a streaming parser (`read(n)`); `read_all()` for the whole body.
    """

    def __init__(self, response: requests.Response, call: _Call, limit: int):
        self.status_code = response.status_code
        self.headers = response.headers
        self._raw = response.raw
        self._call = call
        self._limit = limit
        self._size = 0
        self._eof = False
        self._close_delimited = self._raw.length_remaining is None and not self._raw.chunked

    @property
    def bytes_read(self) -> int:
        return self._size

    def read(self, size: int = READ_CHUNK) -> bytes:
        if self._eof:
            return b""
        if size is None or size < 0:
            return self.read_all()
        if size == 0:  # a parser probing the stream's type (ijson does)
            return b""
        try:
            data = self._raw.read(size, decode_content=True)
        except Exception as exc:
            raise _translate(exc, self._call, self.status_code) from exc
        if not data:
            self._eof = True
            if self._close_delimited and self._call.expired:
                # The watchdog's shutdown looks like the server closing: the body may be cut.
                raise Timeout("the answer did not arrive in time", status_code=self.status_code)
            return b""
        self._size += len(data)
        if self._size > self._limit:
            raise TooLarge("the answer is implausibly large", status_code=self.status_code)
        return data

    def read_all(self) -> bytes:
        chunks = []
        while chunk := self.read(READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)


def _translate(exc: BaseException, call: _Call, status: int | None = None) -> BaseException:
    """A library or socket error as a transport error (a timeout stays a timeout)."""
    if isinstance(exc, OutboundError | RefusedURL):
        return exc
    if call.expired:
        return Timeout("the answer did not arrive in time", status_code=status)
    if _is_timeout(exc):
        return Timeout("no answer in time", status_code=status)
    if isinstance(
        exc, requests.RequestException | urllib3.exceptions.HTTPError | http.client.HTTPException | OSError
    ):
        return Unreachable("could not be reached", status_code=status)
    return exc


def _is_timeout(exc: BaseException) -> bool:
    # urllib3's NewConnectionError (refused, unreachable) subclasses ConnectTimeoutError for
    # history's sake: it is no timeout. requests already tells them apart (ConnectTimeout).
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError)


_OUTCOMES = {Timeout: "timeout", Unreachable: "unreachable", TooLarge: "too_large", RefusedURL: "refused"}


@contextmanager
def stream(
    method: str,
    url: str,
    *,
    limit: int,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | bytes | None = None,
    params: Mapping[str, str] | None = None,
    deadline: float | None = None,
    timeout: tuple[float, float] | None = None,
    public_only: bool = False,
    session: requests.Session | None = None,
    observer: Callable[[Exchange], None] | None = None,
) -> Iterator[Body]:
    """Send one request and yield its open `Body`; the deadline covers everything until the block ends.

    The URL is checked first (`RefusedURL`, nothing sent). `deadline`: seconds for the whole call
    (default `SMART_HTTP_DEADLINE`); `timeout`: (connect, read) seconds (default from settings).
    A body left unread is not drained: its connection is closed.
    """
    started = time.perf_counter()
    status: int | None = None
    outcome = "ok"
    call = _Call(time.monotonic() + (total_deadline() if deadline is None else deadline))
    response: requests.Response | None = None
    previous = getattr(_local, "call", None)
    try:
        safety.check_url(url, public_only=public_only)
        _watchdog.add(call)
        _local.call = call
        remaining = max(call.remaining(), 0.001)
        connect, read = timeout or (settings.SMART_HTTP_CONNECT_TIMEOUT, settings.SMART_HTTP_READ_TIMEOUT)
        try:
            response = (session or session_for(url, public_only=public_only)).request(
                method,
                url,
                headers=dict(headers or {}),
                data=data,
                params=params,
                timeout=(min(connect, remaining), min(read, remaining)),
                allow_redirects=False,  # a redirect is an answer for the caller to judge, never followed
                stream=True,
            )
        except Exception as exc:
            raise _translate(exc, call) from exc
        status = response.status_code
        yield Body(response, call, limit)
    except (OutboundError, RefusedURL) as exc:
        outcome = next(name for cls, name in _OUTCOMES.items() if isinstance(exc, cls))
        raise
    finally:
        _local.call = previous
        _watchdog.finish(call)  # before close(): the watchdog must not touch a pooled connection
        if response is not None:
            response.close()
        if observer is not None:
            observer(Exchange(method, origin(url), status, started, time.perf_counter(), outcome))
        if outcome not in ("ok", "refused"):
            logger.info(
                "outbound %s %s: %s after %.0f ms",
                method,
                origin(url),
                outcome,
                (time.perf_counter() - started) * 1000,
            )


@dataclass(frozen=True)
class Reply:
    """A whole (size-capped) answer, read before anything parses it."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """json.loads, with a ValueError (not a RecursionError) for absurdly nested input."""
        try:
            return json.loads(self.body)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc


def fetch(method: str, url: str, *, limit: int, **kwargs: Any) -> Reply:
    """`stream` and read the whole body: the answer, complete, or an `OutboundError`/`RefusedURL`."""
    with stream(method, url, limit=limit, **kwargs) as body:
        content = body.read_all()
        return Reply(body.status_code, body.headers, content)
