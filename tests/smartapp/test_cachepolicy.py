"""One cache-failure policy: each use of the shared cache says what an outage means for it."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from django.db.utils import OperationalError, ProgrammingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from smartapp import cachepolicy

OUTAGES = [
    RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    RedisTimeoutError("Timeout reading from socket"),
    ProgrammingError('relation "smartapp_cache" does not exist'),
    OperationalError("server closed the connection unexpectedly"),
    ConnectionResetError(104, "Connection reset by peer"),
]
OPEN_USES = [u for u in cachepolicy.USES if not u.fail_closed]
CLOSED_USES = [u for u in cachepolicy.USES if u.fail_closed]


class BrokenCache:
    """A cache backend whose every call fails the way `error` says."""

    def __init__(self, error: BaseException):
        self.error = error
        self.calls = 0

    def _fail(self, *args, **kwargs):
        self.calls += 1
        raise self.error

    get = set = add = delete = _fail


@pytest.fixture(autouse=True)
def _fresh_log_state():
    cachepolicy._failing.clear()
    yield
    cachepolicy._failing.clear()


# --- The policy ---------------------------------------------------------------------------------


def test_it_declares_every_use():
    names = {u.name for u in cachepolicy.USES}
    assert {"discovery", "JWKS", "CSP origins", "style", "refresh lock", "state single-use"} <= names
    assert {u.name for u in CLOSED_USES} == {"refresh lock", "state single-use"}
    assert all(u.outage for u in cachepolicy.USES)


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("use", OPEN_USES, ids=lambda u: u.name)
def test_it_works_without_the_cache_where_it_can(use, error):
    with mock.patch("smartapp.cachepolicy.cache", BrokenCache(error)):
        assert cachepolicy.get(use, "k") is None  # a miss: compute or fetch anew
        cachepolicy.set(use, "k", 1, 10)  # skipped
        assert cachepolicy.add(use, "k", 1, 10) is True
        cachepolicy.delete(use, "k")


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("use", CLOSED_USES, ids=lambda u: u.name)
def test_it_fails_closed_where_going_on_could_do_harm(use, error):
    with mock.patch("smartapp.cachepolicy.cache", BrokenCache(error)):
        for call in (
            lambda: cachepolicy.get(use, "k"),
            lambda: cachepolicy.set(use, "k", 1, 10),
            lambda: cachepolicy.add(use, "k", 1, 10),
        ):
            with pytest.raises(cachepolicy.CacheUnavailable):
                call()
        cachepolicy.delete(use, "k")  # a key that cannot be deleted expires by itself
        cachepolicy.release(use, "k", "owner")


@pytest.mark.parametrize("use", cachepolicy.USES, ids=lambda u: u.name)
def test_it_never_takes_a_bug_for_an_outage(use):
    with mock.patch("smartapp.cachepolicy.cache", BrokenCache(TypeError("cannot pickle"))):
        with pytest.raises(TypeError):
            cachepolicy.get(use, "k")
        with pytest.raises(TypeError):
            cachepolicy.delete(use, "k")


def test_it_logs_an_outage_once_per_use_and_its_end(caplog, db):
    caplog.set_level(logging.WARNING, logger="smartapp.cachepolicy")
    with mock.patch("smartapp.cachepolicy.cache", BrokenCache(OUTAGES[0])):
        for _ in range(5):
            cachepolicy.get(cachepolicy.STYLE, "k")
            cachepolicy.get(cachepolicy.JWKS, "k")
    down = [r for r in caplog.records if "cache unavailable" in r.getMessage()]
    assert len(down) == 2  # one per use, not one per call
    assert "style hints anew" in down[0].getMessage()
    cachepolicy.get(cachepolicy.STYLE, "k")  # the real cache works again
    assert any("available again for style" in r.getMessage() for r in caplog.records)


def test_it_releases_a_lock_only_for_its_owner(db):
    from django.core.cache import cache

    cache.set("lock", "someone-else", 30)
    cachepolicy.release(cachepolicy.REFRESH_LOCK, "lock", "me")
    assert cache.get("lock") == "someone-else"
    cachepolicy.release(cachepolicy.REFRESH_LOCK, "lock", "someone-else")
    assert cache.get("lock") is None


def test_it_keeps_the_callers_transaction_usable_when_the_cache_table_fails(settings, ehr):
    # PostgreSQL refuses every later query of a transaction in which one failed (.ci/postgres-tests
    # runs this there): the failed cache query is confined to a savepoint.
    from django.db import transaction

    from smartapp.models import Ehr

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "no_such_table"}
    }
    with transaction.atomic():  # as in the admin: saving an EHR invalidates the CSP origins
        cachepolicy.delete(cachepolicy.CSP_ORIGINS, "k")
        cachepolicy.set(cachepolicy.CSP_ORIGINS, "k", 1, 10)
        assert cachepolicy.add(cachepolicy.STYLE, "k", 1, 10) is True
        assert Ehr.objects.filter(pk=ehr.pk).exists()
