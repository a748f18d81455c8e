"""Every use of the shared cache goes through here, and each says what an outage means for it.

The cache is Redis (REDIS_URL) or the `smartapp_cache` database table, shared by all instances.
Either may fail: Redis stopped, unreachable or hung (the client times out after
SMART_CACHE_SOCKET_TIMEOUT), the table missing, the database down. Only those failures are
caught (`CACHE_ERRORS`); anything else is a bug and propagates.

Two policies:

- **work without it** (`fail_closed=False`): a failed read is a miss, a failed write is skipped.
  The caller computes or fetches the value anew; correctness never depended on the cache.
- **fail closed** (`fail_closed=True`): a failed read, write or claim raises `CacheUnavailable`,
  because going on without the cache could do harm (send one refresh token twice, accept a
  replayed sign-in). The caller turns it into a clear 503.

A failed `delete` never raises under either policy: every key has a timeout and expires by
itself. Each use logs its first failure once (a warning), then stays quiet until the cache works
for it again, so an outage does not flood the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.db import DatabaseCache
from django.db import Error as DatabaseError
from django.db import connections, router, transaction
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# What the cache backends raise when the cache itself fails: redis-py's errors (its connection
# and timeout errors wrap socket errors), any database error of the table cache, and a raw
# socket error.
CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError, DatabaseError, OSError)


class CacheUnavailable(Exception):
    """The shared cache failed, and this use does not go on without it."""


@dataclass(frozen=True)
class Use:
    name: str
    fail_closed: bool
    outage: str  # what an outage means for this use: logged once, and the docs' table


DISCOVERY = Use("discovery", False, "each launch and refresh fetches the EHR's SMART configuration anew")
DISCOVERY_FAILURE = Use(
    "discovery failure", False, "a failing EHR is asked again on every launch (no 15 s pause)"
)
JWKS = Use("JWKS", False, "each id_token check fetches the EHR's signing keys anew")
CSP_ORIGINS = Use("CSP origins", False, "each framed page reads the enabled EHRs' origins from the database")
STYLE = Use("style", False, "each dashboard fetches the EHR's style hints anew")
REFRESH_BACKOFF = Use(
    "refresh backoff", False, "a failed refresh is not remembered, so the next request may ask the EHR again"
)
REFRESH_LOCK = Use(
    "refresh lock",
    True,
    "no refresh: a still-valid token is used, an expired one gets a 503 with a retry link "
    "(an unlocked refresh could send one refresh token twice and lose the launch)",
)
STATE_USED = Use(
    "state single-use",
    True,
    "no sign-in completes: a 503 asking to start again (an unmarked state could be replayed)",
)
READINESS = Use("readiness", True, "/readyz answers 503")

# Backend-services tokens (smartapp.backend) are stored encrypted; without the cache every export
# step asks the EHR for a new one (more token requests, each with a fresh assertion), never a
# failed sync.
BACKEND_TOKEN = Use("backend token", False, "each export step asks the EHR for a new backend token")
USES = (
    DISCOVERY,
    DISCOVERY_FAILURE,
    JWKS,
    CSP_ORIGINS,
    STYLE,
    REFRESH_BACKOFF,
    REFRESH_LOCK,
    STATE_USED,
    BACKEND_TOKEN,
)

_failing: set[str] = set()
_failing_lock = threading.Lock()


def _failed(use: Use, exc: BaseException, *, may_raise: bool = True) -> None:
    with _failing_lock:
        first = use.name not in _failing
        _failing.add(use.name)
    if first:
        # The error's text (e.g. "Error 111 connecting to host:port") says enough; no traceback.
        logger.warning("cache unavailable for %s (%s: %s): %s", use.name, type(exc).__name__, exc, use.outage)
    if use.fail_closed and may_raise:
        raise CacheUnavailable(f"the shared cache is unavailable ({use.name})") from exc


def _worked(use: Use) -> None:
    if use.name in _failing:
        with _failing_lock:
            if use.name in _failing:
                _failing.discard(use.name)
                logger.warning("cache available again for %s", use.name)


@contextlib.contextmanager
def _savepoint() -> Iterator[None]:
    """Confine a failed write of the table cache to a savepoint inside a caller's transaction.

    PostgreSQL refuses every later query of a transaction in which one failed, so a missing
    cache table would otherwise break the caller's own work: an admin saving an EHR invalidates
    the CSP origins inside the admin's transaction. (Django's set and add count the table's rows
    before their own savepoint.) Reads are made outside transactions, and stay without one.
    """
    backend = caches["default"]
    if isinstance(backend, DatabaseCache):
        alias = router.db_for_write(backend.cache_model_class)
        if connections[alias].in_atomic_block:
            with transaction.atomic(using=alias):
                yield
            return
    yield


def get(use: Use, key: str) -> Any:
    """The cached value, or None (also: outage of a use that works without the cache)."""
    try:
        value = cache.get(key)
    except CACHE_ERRORS as exc:
        _failed(use, exc)
        return None
    _worked(use)
    return value


def set(use: Use, key: str, value: Any, timeout: float) -> None:
    """Store `value` for `timeout` seconds (skipped in an outage of a use that works without it)."""
    try:
        with _savepoint():
            cache.set(key, value, timeout)
    except CACHE_ERRORS as exc:
        _failed(use, exc)
        return
    _worked(use)


def add(use: Use, key: str, value: Any, timeout: float) -> bool:
    """Store `value` only if `key` is absent (atomic); True if this call stored it.

    For a use that works without the cache, an outage reads as True (nothing to conflict with).
    """
    try:
        with _savepoint():
            added = cache.add(key, value, timeout)
    except CACHE_ERRORS as exc:
        _failed(use, exc)
        return True
    _worked(use)
    return added


def delete(use: Use, key: str) -> None:
    """Drop `key`; in an outage the key expires by itself (logged once, never raised)."""
    try:
        with _savepoint():
            cache.delete(key)
    except CACHE_ERRORS as exc:
        _failed(use, exc, may_raise=False)
        return
    _worked(use)


def release(use: Use, key: str, owner: str) -> None:
    """Drop a lock `key` if `owner` still holds it; in an outage the lock expires by itself."""
    try:
        with _savepoint():
            if cache.get(key) == owner:
                cache.delete(key)
    except CACHE_ERRORS as exc:
        _failed(use, exc, may_raise=False)


_PROBE_KEY = f"smart:readyz:{socket.gethostname()}:{os.getpid()}"


def probe() -> bool:
    """Readiness: a write and a read back; False when the cache cannot hold a value now."""
    token = secrets.token_hex(8)
    try:
        set(READINESS, _PROBE_KEY, token, 60)
        return get(READINESS, _PROBE_KEY) == token
    except CacheUnavailable:
        return False
