"""The sandbox's request timeline (/_sandbox/stats "timeline"): what the benchmark counts waves from."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.sandbox.flows import exchange, fhir, standalone

pytestmark = pytest.mark.e2e

CLIENT = "fault-app"


def test_it_records_start_and_end_of_token_and_fhir_requests(sandbox):
    params, verifier, _ = standalone(sandbox, client_id=CLIENT)
    sandbox.reset_stats()
    token = exchange(sandbox, params["code"], verifier, client_id=CLIENT, secret="s5").json()["access_token"]
    sandbox.set_faults(CLIENT, latency_ms=150)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda path: fhir(sandbox, path, token), ["Patient/pat-garcia", "Condition"]))
    finally:
        sandbox.reset_faults(CLIENT)
    requests.get(sandbox.base_url + "/_sandbox/health", timeout=5)  # not an OAuth/FHIR path

    timeline = sandbox.stats()["timeline"]
    assert [e["kind"] for e in timeline][:1] == ["token"]
    kinds = sorted((e["kind"], e["type"]) for e in timeline[1:])
    assert kinds == [("fhir", "Condition"), ("fhir", "Patient")]
    first, second = timeline[1], timeline[2]
    for entry in (first, second):
        assert entry["status"] == 200
        assert entry["end"] - entry["start"] >= 0.15  # the injected latency is inside the interval
    assert first["start"] < second["end"] and second["start"] < first["end"]  # they overlapped


def test_it_clears_the_timeline_with_the_counters(sandbox):
    requests.get(sandbox.fhir_base + "/.well-known/smart-configuration", timeout=5)
    assert sandbox.stats()["timeline"][-1]["kind"] == "discovery"
    sandbox.reset_stats()
    assert sandbox.stats()["timeline"] == []
