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
