"""Fault/latency injection and counters, switched at run time through /_sandbox/faults."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.sandbox.flows import exchange, fhir, standalone

pytestmark = pytest.mark.e2e

CLIENT = "fault-app"


@pytest.fixture
def faulty(sandbox):
    params, verifier, _ = standalone(sandbox, client_id=CLIENT)
    body = exchange(sandbox, params["code"], verifier, client_id=CLIENT, secret="s5").json()
    yield body
    sandbox.reset_faults(CLIENT)


def test_it_refuses_unknown_faults(sandbox):
    resp = requests.post(
        sandbox.base_url + "/_sandbox/faults", json={"client_id": CLIENT, "faults": {"nope": 1}}, timeout=5
    )
    assert resp.status_code == 400
    assert "latency_ms" in requests.get(sandbox.base_url + "/_sandbox/faults", timeout=5).json()["available"]


def test_it_adds_latency_without_serialising_requests(sandbox, faulty):
    sandbox.set_faults(CLIENT, latency_ms=600)
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: fhir(sandbox, "Patient/pat-garcia", faulty["access_token"]), range(4))
        )
    elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in results)
    # The fault's behaviour is time: each request waits 600 ms, and the four wait side by side
    # (one after another would take 2.4 s).
    assert 0.6 <= elapsed < 2.2


@pytest.mark.parametrize("status", [500, 503, 429])
def test_it_fails_fhir_requests_with_an_injected_status(sandbox, faulty, status):
    sandbox.set_faults(CLIENT, fhir_status=status, fhir_status_times=1, retry_after=7)
    failed = fhir(sandbox, "Patient/pat-garcia", faulty["access_token"])
    assert failed.status_code == status
    assert failed.json()["resourceType"] == "OperationOutcome"
    if status != 500:
        assert failed.headers["Retry-After"] == "7"
    assert fhir(sandbox, "Patient/pat-garcia", faulty["access_token"]).status_code == 200


def test_it_limits_faults_to_one_resource_type(sandbox, faulty):
    sandbox.set_faults(CLIENT, fhir_status=503, resource_type="Observation")
    assert fhir(sandbox, "Patient/pat-garcia", faulty["access_token"]).status_code == 200
    assert fhir(sandbox, "Observation", faulty["access_token"]).status_code == 503


def test_it_sends_malformed_json_and_invalid_resources(sandbox, faulty):
    sandbox.set_faults(CLIENT, malformed_json=True)
    with pytest.raises(ValueError):
        fhir(sandbox, "Patient/pat-garcia", faulty["access_token"]).json()
    sandbox.set_faults(CLIENT, invalid_resources=True)
    body = fhir(sandbox, "Patient/pat-garcia", faulty["access_token"]).json()
    from fhir.resources.R4B.patient import Patient

    with pytest.raises(ValueError):
        Patient.model_validate(body)


def test_it_loops_the_next_link(sandbox, faulty):
    sandbox.set_faults(CLIENT, looping_next=True)
    body = fhir(sandbox, "Observation", faulty["access_token"], _count="10").json()
    links = {link["relation"]: link["url"] for link in body["link"]}
    assert links["next"] == links["self"]


def test_it_makes_one_response_slow(sandbox, faulty):
    sandbox.set_faults(CLIENT, slow_ms=1500, slow_times=1)
    with pytest.raises(requests.Timeout):
        requests.get(
            sandbox.fhir_base + "/Patient/pat-garcia",
            timeout=0.5,
            headers={"Authorization": f"Bearer {faulty['access_token']}"},
        )
    # slow_times=1: the next request is answered normally, well inside the same 0.5 s timeout.
    assert (
        requests.get(
            sandbox.fhir_base + "/Patient/pat-garcia",
            timeout=0.5,
            headers={"Authorization": f"Bearer {faulty['access_token']}"},
        ).status_code
        == 200
    )


def test_it_shortens_access_tokens_and_revokes_refresh_tokens(sandbox):
    sandbox.set_faults(CLIENT, access_token_ttl=1, revoke_refresh_tokens=True)
    try:
        params, verifier, _ = standalone(sandbox, client_id=CLIENT)
        body = exchange(sandbox, params["code"], verifier, client_id=CLIENT, secret="s5").json()
        assert body["expires_in"] == 1
        time.sleep(1.2)
        assert fhir(sandbox, "Patient/pat-garcia", body["access_token"]).status_code == 401
        refresh = requests.post(
            sandbox.token_url,
            auth=(CLIENT, "s5"),
            timeout=5,
            data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        )
        assert refresh.status_code == 400
        assert refresh.json()["error"] == "invalid_grant"
    finally:
        sandbox.reset_faults(CLIENT)
    again = requests.post(
        sandbox.token_url,
        auth=(CLIENT, "s5"),
        timeout=5,
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
    )
    assert again.status_code == 400  # revoked for good, not only while the fault is on


def test_it_drops_scopes_at_consent(sandbox):
    sandbox.set_faults(CLIENT, drop_scopes=["offline_access", "patient/Condition.rs"])
    try:
        scope = "launch/patient offline_access patient/Patient.rs patient/Condition.rs"
        params, verifier, _ = standalone(sandbox, client_id=CLIENT, scope=scope)
        body = exchange(sandbox, params["code"], verifier, client_id=CLIENT, secret="s5").json()
    finally:
        sandbox.reset_faults(CLIENT)
    assert body["scope"] == "launch/patient patient/Patient.rs"
    assert "refresh_token" not in body


def test_it_fails_the_token_endpoint_on_demand(sandbox):
    sandbox.set_faults(CLIENT, token_status=503, token_status_times=1)
    try:
        params, verifier, _ = standalone(sandbox, client_id=CLIENT)
        failed = exchange(sandbox, params["code"], verifier, client_id=CLIENT, secret="s5")
        assert failed.status_code == 503
        assert failed.json()["error"] == "temporarily_unavailable"
        assert exchange(sandbox, params["code"], verifier, client_id=CLIENT, secret="s5").status_code == 200
    finally:
        sandbox.reset_faults(CLIENT)


def test_it_counts_token_calls_by_grant_type_and_fhir_requests(sandbox, faulty):
    sandbox.reset_stats()
    requests.post(
        sandbox.token_url,
        auth=(CLIENT, "s5"),
        timeout=5,
        data={"grant_type": "refresh_token", "refresh_token": faulty["refresh_token"]},
    )
    fhir(sandbox, "Patient/pat-garcia", faulty["access_token"])
    fhir(sandbox, "Observation", faulty["access_token"], _count="1")
    stats = sandbox.stats()
    assert stats["token"] == {"total": 1, "refresh_token": 1}
    assert stats["token_by_client"] == {CLIENT: {"refresh_token": 1}}
    assert stats["fhir"] == {"total": 2, "by_type": {"Patient": 1, "Observation": 1}}
    assert stats["fhir_by_client"] == {CLIENT: 2}
