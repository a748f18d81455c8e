"""Token refresh: success, rotation, failures, the cross-process lock, and the middleware."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from smartapp import session, token_endpoint, tokens
from smartapp.models import Launch
from tests.smartapp.conftest import TOKEN, token_body


def _launch(ehr, *, expires_in: int = 30, refresh_token: str = "RT-0", handle: str = "h-1") -> Launch:
    return Launch.objects.create(
        handle=handle,
        ehr=ehr,
        kind=Launch.Kind.STANDALONE,
        access_token="AT-0",
        refresh_token=refresh_token,
        expires_at=timezone.now() + timedelta(seconds=expires_in),
        scope="launch/patient patient/Patient.rs",
        patient_id="pat-1",
    )


def _form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_it_refreshes_and_keeps_the_rotated_refresh_token(smart_ehr, mocked):
    launch = _launch(smart_ehr)
    mocked.post(TOKEN, json=token_body(access_token="AT-1", refresh_token="RT-1", scope="patient/Patient.rs"))
    refreshed = tokens.refresh_access_token(launch)
    assert (refreshed.access_token, refreshed.refresh_token) == ("AT-1", "RT-1")
    assert refreshed.scope == "patient/Patient.rs"  # a narrower grant is honoured
    stored = Launch.objects.get(pk=launch.pk)
    assert (stored.access_token, stored.refresh_token) == ("AT-1", "RT-1")
    assert stored.refreshed_at is not None and not stored.expires_within(3000)
    token_call = next(call for call in mocked.calls if call.request.url == TOKEN)
    assert _form(token_call) == {"grant_type": "refresh_token", "refresh_token": "RT-0"}
    assert token_call.request.headers["Authorization"].startswith("Basic ")


def test_it_keeps_the_old_refresh_token_when_none_is_returned(smart_ehr, mocked):
    launch = _launch(smart_ehr)
    mocked.post(TOKEN, json=token_body(access_token="AT-1", refresh_token=None, patient=None))
    assert tokens.refresh_access_token(launch).refresh_token == "RT-0"


def test_it_does_nothing_when_the_token_is_fresh(smart_ehr, mocked):
    launch = _launch(smart_ehr, expires_in=3600)
    assert tokens.refresh_access_token(launch).access_token == "AT-0"
    assert not any(call.request.url == TOKEN for call in mocked.calls)


def test_it_force_refreshes_a_fresh_token(smart_ehr, mocked):
    launch = _launch(smart_ehr, expires_in=3600)
    mocked.post(TOKEN, json=token_body(access_token="AT-1"))
    assert tokens.force_refresh(launch).access_token == "AT-1"


def test_it_skips_a_forced_refresh_when_another_process_just_refreshed(smart_ehr, mocked):
    stale = _launch(smart_ehr, expires_in=3600)
    other = Launch.objects.get(pk=stale.pk)
    other.access_token = "AT-new"
    other.save(update_fields=["access_token"])
    assert tokens.force_refresh(stale).access_token == "AT-new"
    assert not any(call.request.url == TOKEN for call in mocked.calls)


@pytest.mark.parametrize(
    ("mock", "final"),
    [
        ({"status": 400, "json": {"error": "invalid_grant"}}, True),
        ({"status": 401, "json": {"error": "invalid_client"}}, True),
        ({"status": 400, "json": {"error": "invalid_request"}}, True),  # any refusal, not only the RFC's list
        ({"status": 400, "json": {"error": "vendor_specific_no"}}, True),
        ({"status": 200, "json": token_body(patient="someone-else")}, True),
        ({"body": requests.ConnectionError()}, False),
        ({"status": 502, "body": "<html>bad gateway</html>"}, False),
        ({"status": 503, "json": {"error": "temporarily_unavailable"}}, False),
        ({"status": 200, "body": "not json"}, False),
    ],
)
def test_it_raises_refresh_error_on_failure(smart_ehr, mocked, caplog, monkeypatch, mock, final):
    monkeypatch.setattr(token_endpoint, "TOKEN_RETRY_DELAY", 0)
    caplog.set_level(logging.DEBUG)
    launch = _launch(smart_ehr)
    mocked.add("POST", TOKEN, **mock)
    with pytest.raises(tokens.RefreshError) as raised:
        tokens.refresh_access_token(launch)
    assert raised.value.final is final  # only a refusal ends the launch; a failing EHR does not
    assert Launch.objects.get(pk=launch.pk).access_token == "AT-0"
    assert "RT-0" not in caplog.text and "test-secret" not in caplog.text


def test_it_raises_refresh_error_without_a_refresh_token(smart_ehr, mocked):
    launch = _launch(smart_ehr, refresh_token="")
    with pytest.raises(tokens.RefreshError) as raised:
        tokens.force_refresh(launch)
    assert raised.value.final
    # Nothing can renew the grant: the EHR is not asked and no lock or backoff entry is written.
    assert not mocked.calls
    assert cache.get(tokens._lock_key(launch)) is None and cache.get(tokens._failure_key(launch)) is None


def test_it_retries_a_refresh_once_after_a_glitch(smart_ehr, mocked, monkeypatch):
    monkeypatch.setattr(token_endpoint, "TOKEN_RETRY_DELAY", 0)
    mocked.add("POST", TOKEN, status=502, body="<html>bad gateway</html>")
    mocked.add("POST", TOKEN, json=token_body(access_token="AT-1", refresh_token="RT-1"))
    assert tokens.refresh_access_token(_launch(smart_ehr)).access_token == "AT-1"
    assert len([call for call in mocked.calls if call.request.url == TOKEN]) == 2


def test_it_reports_a_launch_deleted_during_its_refresh_as_gone(smart_ehr, mocked):
    launch = _launch(smart_ehr)

    def sign_out_in_another_tab(request):
        Launch.objects.filter(pk=launch.pk).delete()
        return (200, {}, json.dumps(token_body(access_token="AT-1")))

    mocked.add_callback("POST", TOKEN, callback=sign_out_in_another_tab)
    with pytest.raises(tokens.RefreshError, match="gone") as raised:
        tokens.refresh_access_token(launch)
    assert raised.value.final
    assert not Launch.objects.filter(pk=launch.pk).exists()  # not recreated by the refresh


def test_the_lock_outlives_the_slowest_refresh_and_waiters_wait_that_long(settings):
    settings.SMART_HTTP_CONNECT_TIMEOUT, settings.SMART_HTTP_READ_TIMEOUT = 3.05, 10.0
    slowest = 2 * 13.05 + token_endpoint.TOKEN_RETRY_DELAY
    assert tokens.wait_seconds() > slowest
    assert tokens.lock_seconds() > tokens.wait_seconds()


@pytest.mark.django_db(transaction=True)
def test_it_refreshes_once_for_concurrent_requests(smart_ehr, mocked):
    # Two threads, the real database cache as the lock (the same cache.add() as across processes).
    launch = _launch(smart_ehr, expires_in=-1)  # expired: the loser has no token to use meanwhile
    calls = []

    def slow_token_endpoint(request):
        calls.append(request)
        time.sleep(0.4)
        return (
            200,
            {},
            '{"access_token": "AT-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "RT-1"}',
        )

    mocked.add_callback("POST", TOKEN, callback=slow_token_endpoint)
    results, errors = [], []

    def worker():
        try:
            results.append(
                tokens.refresh_access_token(Launch.objects.select_related("ehr").get(pk=launch.pk))
            )
        except Exception as exc:  # recorded for the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    assert len(calls) == 1
    assert [r.access_token for r in results] == ["AT-1", "AT-1"]
    assert Launch.objects.get(pk=launch.pk).refresh_token == "RT-1"


def test_it_refreshes_in_the_middleware_before_the_view(client, smart_ehr, mocked):
    launch = _launch(smart_ehr)
    store = client.session
    store[session.LAUNCHES_KEY] = [launch.handle]
    store.save()
    mocked.post(TOKEN, json=token_body(access_token="AT-1", refresh_token="RT-1"))
    client.get(f"/c/{launch.handle}/")
    assert Launch.objects.get(pk=launch.pk).access_token == "AT-1"


def test_it_clears_a_launch_whose_refresh_fails(client, smart_ehr, mocked):
    launch = _launch(smart_ehr)
    store = client.session
    store[session.LAUNCHES_KEY] = [launch.handle]
    store.save()
    mocked.post(TOKEN, status=400, json={"error": "invalid_grant"})
    response = client.get(f"/c/{launch.handle}/")
    assert response.status_code == 401
    assert f"/standalone/{smart_ehr.slug}/".encode() in response.content
    assert not Launch.objects.filter(pk=launch.pk).exists()


def test_it_waits_for_another_process_and_uses_its_token(smart_ehr, mocked, monkeypatch):
    monkeypatch.setattr(tokens, "wait_seconds", lambda: 0.2)
    stale = _launch(smart_ehr, expires_in=-1)
    cache.add(tokens._lock_key(stale), "another-process", 30)  # the other process holds the lock
    winner = Launch.objects.get(pk=stale.pk)
    winner.access_token, winner.refresh_token = "AT-winner", "RT-winner"
    winner.save()
    refreshed = tokens.refresh_access_token(stale)
    assert (refreshed.access_token, refreshed.refresh_token) == ("AT-winner", "RT-winner")
    assert not any(call.request.url == TOKEN for call in mocked.calls)


def test_a_request_with_a_still_valid_token_does_not_wait_for_a_concurrent_refresh(smart_ehr, mocked):
    launch = _launch(smart_ehr, expires_in=30)  # inside the refresh skew, not expired
    cache.add(tokens._lock_key(launch), "another-process", 30)
    started = time.monotonic()
    assert tokens.refresh_access_token(launch).access_token == "AT-0"
    assert time.monotonic() - started < 0.5
    assert not any(call.request.url == TOKEN for call in mocked.calls)


def test_after_a_failed_refresh_it_does_not_ask_the_ehr_again_for_a_while(
    smart_ehr, mocked, settings, monkeypatch
):
    monkeypatch.setattr(token_endpoint, "TOKEN_RETRY_DELAY", 0)
    settings.SMART_REFRESH_BACKOFF_SECONDS = 60
    mocked.add("POST", TOKEN, status=503, body="<html>down</html>")
    launch = _launch(smart_ehr, expires_in=-1)
    for _ in range(3):
        with pytest.raises(tokens.RefreshError) as raised:
            tokens.refresh_access_token(launch)
        assert not raised.value.final
    assert len([call for call in mocked.calls if call.request.url == TOKEN]) == 2  # one call + its retry
    cache.delete(tokens._failure_key(launch))  # the backoff has passed
    mocked.replace("POST", TOKEN, json=token_body(access_token="AT-1"))
    assert tokens.refresh_access_token(launch).access_token == "AT-1"


def test_it_gives_up_when_the_lock_is_never_released(smart_ehr, mocked, monkeypatch):
    monkeypatch.setattr(tokens, "wait_seconds", lambda: 0.1)
    launch = _launch(smart_ehr, expires_in=-1)
    cache.add(tokens._lock_key(launch), "stuck-process", 30)
    with pytest.raises(tokens.RefreshError, match="timed out"):
        tokens.refresh_access_token(launch)
    assert not any(call.request.url == TOKEN for call in mocked.calls)
