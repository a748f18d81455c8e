"""Every use of the shared cache, and what an outage of the cache means for each.

The cache is Redis (REDIS_URL) or the `smartapp_cache` database table. Either may fail: Redis
stopped or unreachable, the table missing or the database down. Callers never see those errors;
each use below says what a failure means for it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket

from django.core.cache import cache
from django.db import Error as DatabaseError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# What the cache backends raise when the cache itself fails: redis-py's errors (its connection
# errors wrap socket errors), any database error of the table cache, and a raw socket error.
CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError, DatabaseError, OSError)

_PROBE_KEY = f"smart:readyz:{socket.gethostname()}:{os.getpid()}"


def probe() -> bool:
    """Readiness: a write and a read back; False when the cache cannot hold a value now."""
    token = secrets.token_hex(8)
    try:
        cache.set(_PROBE_KEY, token, 60)
        return cache.get(_PROBE_KEY) == token
    except CACHE_ERRORS:
        logger.warning("readiness check: cache unavailable", exc_info=True)
        return False


# --- Backend-services access tokens (smartapp.backend) ----------------------------------------
# An outage means every export step asks the EHR for a new token (more token requests, each with
# a fresh assertion): slower, never a failed sync. The token is stored encrypted.


def backend_token_get(key: str) -> object | None:
    """A cached backend token entry, or None (also when the cache is down)."""
    try:
        return cache.get(key)
    except CACHE_ERRORS:
        logger.warning("backend token cache unavailable; asking the EHR for a new token", exc_info=True)
        return None


def backend_token_set(key: str, value: object, ttl: int) -> None:
    """Remember a backend token for `ttl` seconds; a cache outage just forgets it."""
    try:
        cache.set(key, value, ttl)
    except CACHE_ERRORS:
        logger.warning("backend token cache unavailable; token not shared", exc_info=True)


def backend_token_forget(key: str) -> None:
    """Drop a backend token the EHR refused; a cache outage has nothing to drop."""
    try:
        cache.delete(key)
    except CACHE_ERRORS:
        logger.warning("backend token cache unavailable; nothing to forget", exc_info=True)
