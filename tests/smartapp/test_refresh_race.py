"""D2: a slow token endpoint and two concurrent refreshers never lose the launch.

The token endpoint is a real server on loopback that answers slowly and rotates refresh tokens
like a strict EHR: a refresh token sent twice gets invalid_grant (which would end the launch).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from smartapp import discovery, token_endpoint, tokens
from smartapp.models import Ehr, Launch
from tests.misbehaving import MisbehavingServer, json_reply
from tests.smartapp.conftest import SMART_CONFIGURATION


class RotatingTokenEndpoint:
    """Answers each refresh after `delay` s; each refresh token works once (then invalid_grant)."""

    def __init__(self, delay: float):
        self.delay = delay
        self.sent: list[str] = []
        self.used: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, request, send, stopping):
        token = parse_qs(request.body.decode())["refresh_token"][0]
        with self.lock:
            self.sent.append(token)
            reused = token in self.used
            self.used.add(token)
            number = len(self.sent)
        if stopping.wait(self.delay):
            return
        if reused:
            body, status = {"error": "invalid_grant"}, "400 Bad Request"
        else:
            body = {
                "access_token": f"AT-{number}",
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": f"RT-{number}",
                "scope": "launch/patient patient/Patient.rs",
            }
            status = "200 OK"
        json_reply(body, status=status)(request, send, stopping)


@pytest.fixture
def slow_ehr(transactional_db, settings):
    cache.clear()
    settings.SMART_HTTP_DEADLINE = 2.0
    endpoint = RotatingTokenEndpoint(delay=1.2)
    routes = {"/token": endpoint}
    with MisbehavingServer(routes) as server:
        document = {**SMART_CONFIGURATION, "token_endpoint": server.base_url + "/token"}
        document.pop("revocation_endpoint")
        routes["/fhir/.well-known/smart-configuration"] = json_reply(document)
        ehr = Ehr.objects.create(
            name="Slow", slug="slow", iss=server.base_url + "/fhir", client_id="c", client_secret="s"
        )
        launch = Launch.objects.create(
            handle="h-race",
            ehr=ehr,
            kind=Launch.Kind.STANDALONE,
            access_token="AT-0",
            refresh_token="RT-0",
            expires_at=timezone.now() - timedelta(seconds=1),  # expired: both must wait for a token
            scope="launch/patient patient/Patient.rs",
            patient_id="pat-1",
        )
        yield endpoint, launch


def _refresh_in_threads(launch: Launch, starts: list[float]) -> list[object]:
    results: list[object] = [None] * len(starts)

    def run(i: int, delay: float) -> None:
        time.sleep(delay)
        try:
            results[i] = tokens.refresh_access_token(Launch.objects.select_related("ehr").get(pk=launch.pk))
        except tokens.RefreshError as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, d)) for i, d in enumerate(starts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_refreshers_and_a_slow_token_endpoint_send_the_refresh_token_once(slow_ehr):
    endpoint, launch = slow_ehr
    discovery.discover(launch.ehr)  # discovery cached, as on a warm instance
    results = _refresh_in_threads(launch, [0.0, 0.3])
    assert endpoint.sent == ["RT-0"]
    assert [getattr(r, "access_token", r) for r in results] == ["AT-1", "AT-1"]
    stored = Launch.objects.get(pk=launch.pk)
    assert (stored.access_token, stored.refresh_token) == ("AT-1", "RT-1")


def test_a_lock_that_expires_under_a_live_refresh_does_not_send_the_token_again(slow_ehr, monkeypatch):
    endpoint, launch = slow_ehr
    discovery.discover(launch.ehr)
    # A stalled holder: its lock runs out while its token call is still waiting for the EHR.
    monkeypatch.setattr(tokens, "lock_seconds", lambda: 1)
    monkeypatch.setattr(tokens, "claim_seconds", lambda: 30)
    results = _refresh_in_threads(launch, [0.0, 1.1])
    assert endpoint.sent == ["RT-0"]
    assert [getattr(r, "access_token", r) for r in results] == ["AT-1", "AT-1"]
    assert Launch.objects.filter(pk=launch.pk).exists()


def test_the_lock_outlives_the_longest_token_call(settings):
    settings.SMART_HTTP_DEADLINE = 7.5
    assert tokens.lock_seconds() >= 2 * (7.5 + 1) + token_endpoint.TOKEN_RETRY_DELAY
    assert tokens.claim_seconds() > tokens.lock_seconds() > tokens.wait_seconds()


def test_a_token_response_that_arrived_is_used_even_if_parsing_runs_past_the_deadline(slow_ehr, monkeypatch):
    endpoint, launch = slow_ehr
    discovery.discover(launch.ehr)
    parse = token_endpoint.parse_token_response

    def slow_parse(*args, **kwargs):
        time.sleep(1.0)  # 1.2 s answer + 1 s parsing > the 2 s deadline
        return parse(*args, **kwargs)

    monkeypatch.setattr(token_endpoint, "parse_token_response", slow_parse)
    refreshed = tokens.refresh_access_token(Launch.objects.select_related("ehr").get(pk=launch.pk))
    assert refreshed.access_token == "AT-1" and endpoint.sent == ["RT-0"]
    assert json.dumps(endpoint.sent)


class _FlakyUpdates:
    """Launch updates fail `failures` times (a database restarting), then go through."""

    def __init__(self, failures: int):
        self.failures = failures
        self.real = Launch.objects.filter

    def __call__(self, *args, **kwargs):
        queryset = self.real(*args, **kwargs)
        flaky = self

        class Query:
            def update(self, **values):
                if flaky.failures > 0:
                    flaky.failures -= 1
                    from django.db import OperationalError

                    raise OperationalError("the database system is shutting down")
                return queryset.update(**values)

        return Query()


def test_new_tokens_are_stored_through_a_short_database_outage(slow_ehr, monkeypatch):
    endpoint, launch = slow_ehr
    discovery.discover(launch.ehr)
    monkeypatch.setattr(tokens, "STORE_ATTEMPTS", (0.05, 0.05, 0.05, 0.05))
    monkeypatch.setattr(Launch.objects, "filter", _FlakyUpdates(failures=2))
    refreshed = tokens.refresh_access_token(launch)
    monkeypatch.undo()
    assert refreshed.access_token == "AT-1" and endpoint.sent == ["RT-0"]
    stored = Launch.objects.get(pk=launch.pk)
    assert (stored.access_token, stored.refresh_token) == ("AT-1", "RT-1")


def test_a_spent_refresh_token_is_never_sent_again_when_its_successor_could_not_be_stored(
    slow_ehr, monkeypatch
):
    endpoint, launch = slow_ehr
    discovery.discover(launch.ehr)
    monkeypatch.setattr(tokens, "STORE_ATTEMPTS", (0.05,))
    monkeypatch.setattr(Launch.objects, "filter", _FlakyUpdates(failures=10))
    with pytest.raises(tokens.RefreshError) as failed:
        tokens.refresh_access_token(launch)
    monkeypatch.undo()
    assert not failed.value.final  # kept: the app says "try again", the launch is not ended
    cache.delete(tokens._failure_key(launch))  # past the backoff, as a later request would be
    again = Launch.objects.select_related("ehr").get(pk=launch.pk)
    with pytest.raises(tokens.RefreshError):
        tokens.refresh_access_token(again)  # the claim on RT-0 still holds: not sent twice
    assert endpoint.sent == ["RT-0"]
