"""Refresh: a refused, rotated, unreachable or misbehaving refresh ends the launch cleanly (the
"session ended" page, 401, the launch deleted) or keeps it working; never a 500, never a leak."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from smartapp import session, token_endpoint, tokens
from smartapp.models import Launch
from tests.clinical.helpers import register_all
from tests.reliability.conftest import (
    ACCESS,
    REFRESH,
    REFRESH_BACKOFF,
    TOKEN,
    assert_no_secrets,
    expire_launches,
    launch_tokens,
    token_body,
)

E2E = pytest.mark.e2e


@pytest.fixture
def expired(smart_ehr, make_launch, own):
    launch = make_launch(
        access_token=ACCESS, refresh_token=REFRESH, expires_at=timezone.now() - timedelta(seconds=1)
    )
    own(launch)
    return launch


def _url(launch) -> str:
    return reverse("clinical:dashboard", kwargs={"handle": launch.handle})


def _refresh_forms(mocked) -> list[dict[str, str]]:
    return [
        {k: v[0] for k, v in parse_qs(call.request.body).items()}
        for call in mocked.calls
        if call.request.url == TOKEN
    ]


REFUSALS = [
    pytest.param({"status": 400, "json": {"error": "invalid_grant"}}, id="invalid_grant"),
    pytest.param({"status": 401, "json": {"error": "invalid_client"}}, id="invalid_client"),
    pytest.param(
        {"status": 200, "json": token_body(access_token="new", patient="someone-else")},
        id="patient-switch",
    ),
]
OUTAGES = [
    pytest.param({"body": requests.ConnectionError()}, id="network-failure"),
    pytest.param({"body": requests.ReadTimeout()}, id="timeout"),
    pytest.param({"status": 500, "body": "<html>"}, id="500"),
    pytest.param({"status": 503, "json": {"error": "temporarily_unavailable"}}, id="unavailable"),
    pytest.param({"status": 200, "body": "not json"}, id="not-json"),
]


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(token_endpoint, "TOKEN_RETRY_DELAY", 0)


@pytest.mark.parametrize("mock", REFUSALS)
def test_it_ends_the_launch_when_the_ehr_refuses_the_refresh(client, mocked, expired, caplog, mock):
    mocked.add("POST", TOKEN, **mock)
    response = client.get(_url(expired))
    html = response.content.decode()
    assert response.status_code == 401
    assert "The EHR no longer accepts this app" in html
    assert "Please open the app again from your EHR." in html  # an EHR launch: relaunch there
    assert not Launch.objects.filter(pk=expired.pk).exists()
    assert expired.handle not in client.session[session.LAUNCHES_KEY]
    assert len(_refresh_forms(mocked)) == 1
    assert_no_secrets(html, caplog.text)


@pytest.mark.parametrize("mock", OUTAGES)
def test_it_keeps_an_expired_launch_through_an_ehr_outage(client, mocked, expired, caplog, mock):
    mocked.add("POST", TOKEN, **mock)
    response = client.get(_url(expired))
    html = response.content.decode()
    assert response.status_code == 503 and response["Retry-After"]
    assert "The EHR is not answering" in html and f'href="{_url(expired)}"' in html
    assert Launch.objects.filter(pk=expired.pk).exists()  # nothing lost: the next try may work
    assert expired.handle in client.session[session.LAUNCHES_KEY]
    assert_no_secrets(html, caplog.text)
    assert client.get(_url(expired)).status_code == 503  # within the backoff: the EHR is not asked
    assert len(_refresh_forms(mocked)) <= 2  # one call (and its retry), not one per page load
    cache.delete(tokens._failure_key(expired))  # the backoff has passed
    mocked.replace("POST", TOKEN, json=token_body(access_token="at-2", refresh_token="rt-2", patient="pat-1"))
    register_all(mocked)
    assert client.get(_url(expired)).status_code == 200  # the EHR is back: same launch, new token
    assert Launch.objects.get(pk=expired.pk).access_token == "at-2"


@pytest.mark.parametrize("mock", OUTAGES)
def test_it_uses_a_still_valid_token_through_an_ehr_outage(client, mocked, smart_ehr, make_launch, own, mock):
    launch = make_launch(
        access_token=ACCESS, refresh_token=REFRESH, expires_at=timezone.now() + timedelta(seconds=30)
    )  # inside the refresh skew, not yet expired
    own(launch)
    mocked.add("POST", TOKEN, **mock)
    register_all(mocked)
    response = client.get(_url(launch))
    assert response.status_code == 200
    fhir_calls = [call for call in mocked.calls if call.request.url.startswith(f"{smart_ehr.iss}/Patient")]
    assert fhir_calls and all(c.request.headers["Authorization"] == f"Bearer {ACCESS}" for c in fhir_calls)


def test_it_uses_the_rotated_refresh_token_and_never_the_old_one(client, mocked, expired, caplog):
    mocked.post(TOKEN, json=token_body(access_token="at-2", refresh_token="rt-2", patient="pat-1"))
    register_all(mocked)
    assert client.get(_url(expired)).status_code == 200
    Launch.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    mocked.replace("POST", TOKEN, json=token_body(access_token="at-3", refresh_token="rt-3", patient="pat-1"))
    assert client.get(_url(expired)).status_code == 200
    assert [form["refresh_token"] for form in _refresh_forms(mocked)] == [REFRESH, "rt-2"]
    stored = Launch.objects.get(pk=expired.pk)
    assert (stored.access_token, stored.refresh_token) == ("at-3", "rt-3")
    assert_no_secrets(caplog.text, extra=["at-2", "rt-2", "at-3", "rt-3"])


def test_it_uses_an_expired_token_without_refresh_token_until_the_ehr_refuses(
    client, mocked, make_launch, own
):
    launch = make_launch(refresh_token="", expires_at=timezone.now() - timedelta(seconds=1))
    own(launch)
    register_all(mocked, patient=401, vitals=401, labs=401, conditions=401, encounter=401)
    response = client.get(_url(launch))
    assert response.status_code == 200
    assert "The EHR no longer accepts this session&#x27;s access" in response.content.decode()
    assert not any(call.request.url == TOKEN for call in mocked.calls)
    # Without a refresh token nothing is discovered or written to the cache: a query thread's
    # cache write would wait on the test transaction's SQLite lock (20 s, then swallowed by
    # Django's database cache).
    assert not any("/.well-known/" in call.request.url for call in mocked.calls)


# --- End to end: the sandbox refuses or fails the refresh --------------------------------------


def _launched(browser):
    page = browser.standalone_launch(patient="pat-garcia")
    assert page.status_code == 200 and "/c/" in page.url
    return page.url


@E2E
def test_it_ends_a_launch_whose_refresh_token_the_ehr_revoked(rbrowser, rstack, leaks):
    url = _launched(rbrowser)
    leaks.collect()
    rstack.sandbox.set_faults(rstack.client_id, revoke_refresh_tokens=True)
    expire_launches(rstack)
    page = rbrowser.get(url)
    assert page.status_code == 401
    assert "Sign in to Sandbox EHR again" in page.text  # standalone: a re-authorize link
    again = rbrowser.get(url)
    assert again.status_code == 401 and "not part of your current session" in again.text
    leaks.check(page.text)


@E2E
def test_it_keeps_a_launch_while_the_token_endpoint_fails_with_500(rbrowser, rstack, leaks):
    url = _launched(rbrowser)
    leaks.collect()
    rstack.sandbox.set_faults(rstack.client_id, token_status=500)
    expire_launches(rstack)
    page = rbrowser.get(url)
    assert page.status_code == 503
    assert "The EHR is not answering" in page.text
    rstack.sandbox.reset_faults(rstack.client_id)
    time.sleep(REFRESH_BACKOFF + 0.2)  # the app does not ask a failing EHR again within the backoff
    again = rbrowser.get(url)
    assert again.status_code == 200 and "/c/" in again.url  # the same launch, refreshed
    leaks.check(page.text + again.text)


@E2E
def test_it_rotates_the_refresh_token_and_the_old_one_is_dead(rbrowser, rstack, leaks):
    url = _launched(rbrowser)
    handle = url.rstrip("/").rsplit("/", 1)[-1]
    old_access, old_refresh = launch_tokens(rstack, handle)
    leaks.collect()
    rstack.sandbox.reset_stats()
    expire_launches(rstack)
    page = rbrowser.get(url)
    assert page.status_code == 200 and "Garcia" in page.text
    assert rstack.sandbox.stats()["token"].get("refresh_token") == 1
    new_access, new_refresh = launch_tokens(rstack, handle)
    assert new_access != old_access and new_refresh not in ("", old_refresh)
    replay = requests.post(
        rstack.sandbox.token_url,
        data={"grant_type": "refresh_token", "refresh_token": old_refresh},
        auth=(rstack.client_id, rstack.client_secret),
        timeout=10,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    leaks.check(page.text)
