"""A database (or cache) outage is a 503 page with a retry link; any other error stays a 500."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db.utils import IntegrityError, InterfaceError, OperationalError
from django.test import Client
from redis.exceptions import ConnectionError as RedisConnectionError


@pytest.fixture
def browser(db) -> Client:
    return Client(raise_request_exception=False)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("connection to server failed"),
        InterfaceError("connection already closed"),
        RedisConnectionError("Error 111 connecting to redis"),
    ],
    ids=["operational", "interface", "redis"],
)
def test_it_shows_a_503_with_a_retry_link_during_an_outage(browser, error):
    with mock.patch("smartapp.views.Ehr.objects.filter", side_effect=error):
        response = browser.get("/?from=ehr")
    html = response.content.decode()
    assert response.status_code == 503
    assert response["Retry-After"] and "no-store" in response["Cache-Control"]
    assert "Temporarily unavailable" in html and 'href="/?from=ehr"' in html
    assert "Server Error (500)" not in html


def test_it_recognises_an_outage_raised_from_another_error(browser):
    def wrapped(*args, **kwargs):
        try:
            raise OperationalError("server closed the connection unexpectedly")
        except OperationalError as exc:
            raise RuntimeError("while loading EHRs") from exc

    with mock.patch("smartapp.views.Ehr.objects.filter", side_effect=wrapped):
        assert browser.get("/").status_code == 503


def test_it_offers_no_retry_of_a_callback(browser):
    # Retrying would replay the single-use code (and put it in the page).
    with mock.patch("smartapp.views.complete", side_effect=OperationalError("down")):
        response = browser.get("/callback", {"state": "s", "code": "code-canary-1"})
    html = response.content.decode()
    assert response.status_code == 503
    assert "code-canary-1" not in html and "Try again</a>" not in html


@pytest.mark.parametrize("error", [IntegrityError("duplicate key"), RuntimeError("a bug")])
def test_it_keeps_a_500_for_anything_but_an_outage(browser, error):
    with mock.patch("smartapp.views.Ehr.objects.filter", side_effect=error):
        response = browser.get("/")
    assert response.status_code == 500
