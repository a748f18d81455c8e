"""The cache policy against a real Redis that stops and starts: no error reaches the caller where
the app works without the cache, a clear CacheUnavailable where it fails closed, no hang, and the
client reconnects on its own when Redis is back."""

from __future__ import annotations

import time

import pytest

from smartapp import cachepolicy
from tests.services import Redis

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = Redis(tmp_path_factory.mktemp("redis-policy")).start()
    yield server
    server.close()


@pytest.fixture
def redis_cache(settings, redis_server):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
    cachepolicy._failing.clear()
    yield redis_server
    if redis_server.process.poll() is not None:
        redis_server.start()


def test_it_uses_redis_while_it_runs(redis_cache):
    cachepolicy.set(cachepolicy.STYLE, "style:k", {"a": "b"}, 30)
    assert cachepolicy.get(cachepolicy.STYLE, "style:k") == {"a": "b"}
    assert cachepolicy.add(cachepolicy.REFRESH_LOCK, "lock:k", "me", 30) is True
    assert cachepolicy.add(cachepolicy.REFRESH_LOCK, "lock:k", "other", 30) is False  # held
    cachepolicy.release(cachepolicy.REFRESH_LOCK, "lock:k", "me")
    assert cachepolicy.get(cachepolicy.REFRESH_LOCK, "lock:k") is None
    assert cachepolicy.probe()


def test_it_follows_each_uses_policy_while_redis_is_down_and_recovers(redis_cache):
    cachepolicy.get(cachepolicy.STYLE, "warm")  # a pooled connection exists before the outage
    redis_cache.stop()
    started = time.monotonic()
    assert cachepolicy.get(cachepolicy.STYLE, "style:k") is None
    cachepolicy.set(cachepolicy.DISCOVERY, "discovery:k", {"x": 1}, 30)
    cachepolicy.delete(cachepolicy.CSP_ORIGINS, "csp:k")
    with pytest.raises(cachepolicy.CacheUnavailable):
        cachepolicy.add(cachepolicy.REFRESH_LOCK, "lock:k", "me", 30)
    with pytest.raises(cachepolicy.CacheUnavailable):
        cachepolicy.add(cachepolicy.STATE_USED, "state:k", 1, 30)
    cachepolicy.release(cachepolicy.REFRESH_LOCK, "lock:k", "me")
    assert not cachepolicy.probe()
    assert time.monotonic() - started < 5  # refused at once, never a hang
    redis_cache.start()
    assert cachepolicy.add(cachepolicy.REFRESH_LOCK, "lock:k2", "me", 30) is True  # reconnected
    assert cachepolicy.probe()


def test_it_times_out_on_a_hung_redis_instead_of_holding_the_thread(redis_cache):
    import os
    import signal

    cachepolicy.get(cachepolicy.STYLE, "warm")
    os.kill(redis_cache.process.pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        started = time.monotonic()
        assert cachepolicy.get(cachepolicy.STYLE, "style:k") is None
        with pytest.raises(cachepolicy.CacheUnavailable):
            cachepolicy.add(cachepolicy.REFRESH_LOCK, "lock:k", "me", 30)
        assert time.monotonic() - started < 4  # SMART_CACHE_SOCKET_TIMEOUT (1 s) per call
    finally:
        os.kill(redis_cache.process.pid, signal.SIGCONT)
    assert cachepolicy.probe()
