"""Health probes are cheap, unauthenticated and honest."""

from __future__ import annotations

from unittest import mock

from django.db.utils import OperationalError


def test_it_reports_the_process_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_reports_ready_when_the_database_answers(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_it_reports_unavailable_when_the_database_fails(client, db):
    with mock.patch("smartapp.health.connection.cursor", side_effect=OperationalError("down")):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_it_reports_the_cache_ready(client, db):
    assert client.get("/readyz").json() == {"status": "ok", "database": "ok", "cache": "ok"}


def test_it_reports_unavailable_when_the_cache_table_is_missing(client, db, settings):
    # Before `createcachetable` every launch would fail: the load balancer must not route here.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "no_such_table"}
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "cache": "unavailable"}


def test_it_reports_unavailable_when_redis_is_down(client, db):
    from redis.exceptions import ConnectionError as RedisConnectionError

    with mock.patch("smartapp.cachepolicy.cache.set", side_effect=RedisConnectionError("refused")):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["cache"] == "unavailable"


def test_it_does_not_hide_a_bug_behind_a_cache_probe(client, db):
    client.raise_request_exception = True
    with mock.patch("smartapp.cachepolicy.cache.get", side_effect=TypeError("a bug")):
        try:
            client.get("/readyz")
        except TypeError:
            pass
        else:
            raise AssertionError("a programming error must not read as a cache outage")


def test_it_answers_head_like_get_without_a_body(client, db):
    for path in ("/healthz", "/readyz"):
        response = client.head(path)
        assert response.status_code == 200 and response.content == b""
