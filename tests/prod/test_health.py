"""Probes are cheap and reachable over plain HTTP behind a TLS proxy; other pages are not."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def behind_proxy(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    return Client()  # a fresh client loads the middleware with these settings


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_it_answers_probes_over_plain_http(behind_proxy, path):
    response = behind_proxy.get(path)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
def test_it_redirects_other_pages_to_https_unless_the_proxy_says_https(behind_proxy):
    redirected = behind_proxy.get("/admin/login/")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/admin/login/"
    assert behind_proxy.get("/admin/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 200


@pytest.mark.django_db(transaction=True)  # as served: no test transaction around the request
def test_it_answers_probes_without_touching_the_database_more_than_needed(
    client, settings, django_assert_num_queries, django_assert_max_num_queries
):
    with django_assert_num_queries(0):
        assert client.get("/healthz").status_code == 200
    # The table cache: SELECT 1, then one row written and read back.
    with django_assert_max_num_queries(7):
        assert client.get("/readyz").status_code == 200
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with django_assert_num_queries(1):  # Redis (or any non-database cache): SELECT 1 only
        assert client.get("/readyz").status_code == 200


def test_it_never_caches_probes(client, db):
    response = client.get("/healthz")
    assert "no-cache" in response["Cache-Control"]
    assert "Set-Cookie" not in response
    assert not response.cookies
