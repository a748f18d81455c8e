"""A Redis (or cache table) outage never yields a 500: pages work without the cache where they can,
and say 503 with a retry link where going on could do harm (refresh lock, sign-in's state marker).
The same with a real Redis: tests/faults."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from smartapp import cachepolicy
from tests.clinical.helpers import register_all
from tests.reliability.conftest import ISS, TOKEN, token_body
from tests.smartapp.conftest import WELL_KNOWN
from tests.smartapp.test_cachepolicy import BrokenCache


@pytest.fixture
def outage():
    """The shared cache is down (Redis stopped) for the whole test."""
    broken = BrokenCache(RedisConnectionError("Connection refused"))
    cachepolicy._failing.clear()
    with mock.patch("smartapp.cachepolicy.cache", broken):
        yield broken
    cachepolicy._failing.clear()


@pytest.fixture
def launch(make_launch, own):
    item = make_launch(smart_style_url="https://ehr.example.org/style/smart-style.json")
    own(item)
    return item


def _url(launch) -> str:
    return reverse("clinical:dashboard", kwargs={"handle": launch.handle})


def test_it_shows_the_dashboard_during_an_outage(client, mocked, launch, outage):
    register_all(mocked)
    mocked.get("https://ehr.example.org/style/smart-style.json", json={"color_background": "#eeeeee"})
    response = client.get(_url(launch))
    assert response.status_code == 200 and "Clinical summary" in response.content.decode()
    assert "frame-ancestors https://ehr.example.org" in response["Content-Security-Policy"]  # from the DB
    assert outage.calls  # it did try the cache


def test_it_refreshes_nothing_without_the_lock_and_says_so(client, mocked, make_launch, own, outage):
    expired = make_launch(refresh_token="rt-1", expires_at=timezone.now() - timedelta(seconds=1))
    own(expired)
    mocked.get(WELL_KNOWN, json={"authorization_endpoint": f"{ISS}/authorize", "token_endpoint": TOKEN})
    response = client.get(_url(expired))
    assert response.status_code == 503 and response["Retry-After"]
    html = response.content.decode()
    assert f'href="{_url(expired)}"' in html
    # The app's cache is down, not the EHR: the page must not blame the EHR.
    assert "Cannot renew access just now" in html and "The EHR is not answering" not in html
    assert not any(call.request.url == TOKEN for call in mocked.calls)  # no unlocked refresh


def test_it_uses_a_still_valid_token_when_the_lock_is_unavailable(client, mocked, make_launch, own, outage):
    launch = make_launch(refresh_token="rt-1", expires_at=timezone.now() + timedelta(seconds=30))
    own(launch)
    mocked.get(WELL_KNOWN, json={"authorization_endpoint": f"{ISS}/authorize", "token_endpoint": TOKEN})
    register_all(mocked)
    assert client.get(_url(launch)).status_code == 200
    assert not any(call.request.url == TOKEN for call in mocked.calls)


def test_it_launches_with_discovery_fetched_anew(client, smart_ehr, outage):
    for _ in range(2):
        response = client.get("/launch", {"iss": ISS, "launch": "L1"})
        assert response.status_code == 302


def test_it_completes_no_sign_in_without_the_state_marker(client, smart_ehr, mocked, outage):
    start = client.get("/launch", {"iss": ISS, "launch": "L1"})
    state = dict(p.split("=", 1) for p in start["Location"].split("?", 1)[1].split("&"))["state"]
    mocked.post(TOKEN, json=token_body())
    response = client.get("/callback", {"code": "c", "state": state})
    assert response.status_code == 503
    assert "Sign-in unavailable" in response.content.decode()
    assert not any(call.request.url == TOKEN for call in mocked.calls)  # the code is not spent


def test_it_shows_a_panel_error_for_an_unexpected_refresh_failure(client, mocked, make_launch, own, caplog):
    launch = make_launch(refresh_token="rt-1", expires_at=timezone.now() + timedelta(hours=1))
    own(launch)
    register_all(mocked, patient=401)
    with mock.patch("clinical.views.tokens.force_refresh", side_effect=RuntimeError("a bug")):
        response = client.get(_url(launch), headers={"X-Request-ID": "req-cache-policy-1"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Could not display" in html and "no longer accepts" not in html
    logged = [r for r in caplog.records if "failed: RuntimeError" in r.getMessage()]
    assert logged and logged[0].request_id == "req-cache-policy-1"
