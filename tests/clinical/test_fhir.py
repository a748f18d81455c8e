from __future__ import annotations

import logging
import threading

import pytest
import requests
import responses
from responses import matchers

from clinical import fhir
from clinical.fhir import client as fhir_client
from tests.clinical.conftest import BASE, TOKEN, load


def page(entries, *, total=None, next_url=None):
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    if total is not None:
        bundle["total"] = total
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def obs(i):
    return {
        "resource": {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "effectiveDateTime": "2024-03-12T14:05:00Z",
            "valueQuantity": {"value": 60 + i, "unit": "/min"},
        }
    }


def client(**kwargs):
    return fhir.FhirClient(BASE, TOKEN, session=requests.Session(), **kwargs)


@responses.activate
def test_it_sends_bearer_token_and_fhir_accept_header():
    responses.get(f"{BASE}/Patient/pat-1", json=load("patient"))
    patient = client().read("Patient", "pat-1")
    assert patient.id == "pat-1"
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/fhir+json"


@responses.activate
def test_it_parses_vendor_extra_fields_at_any_depth():
    # patient.json carries Epic-like `epicLegacyId` at the top and `epicPreferred` nested.
    responses.get(f"{BASE}/Patient/pat-1", json=load("patient"))
    patient = client().read("Patient", "pat-1")
    assert patient.name[1].family == "Jones"
    assert patient.communication[0].language.text == "English"


def test_it_rejects_structurally_invalid_resources_even_with_extras_removed():
    with pytest.raises(ValueError):
        fhir.parse_resource({"resourceType": "Observation", "status": "final", "vendorX": 1}, "Observation")


@responses.activate
def test_it_drops_invalid_elements_the_page_does_not_show_and_keeps_the_rest(caplog):
    # One malformed optional element (a bad address, a string for a CodeableConcept, a broken
    # telecom item) must not cost the clinician the whole banner.
    caplog.set_level(logging.INFO, logger="clinical.fhir.parsing")
    patient = load("patient")
    patient["maritalStatus"] = "married"
    patient["address"] = [{"line": "not a list"}, {"city": "Springfield"}]
    patient["telecom"] = [{"system": "phone", "value": "555"}, {"system": "phone", "period": "today"}]
    responses.get(f"{BASE}/Patient/pat-1", json=patient)
    read = client().read("Patient", "pat-1")
    assert read.name[1].family == "Jones" and read.birthDate is not None
    assert read.maritalStatus is None
    assert [a.city for a in read.address] == ["Springfield"]  # only the broken item went
    assert [t.value for t in read.telecom] == ["555"]
    assert "dropped: ['address', 'maritalStatus', 'telecom']" in caplog.text
    assert "Springfield" not in caplog.text and "555" not in caplog.text  # names, never values


@pytest.mark.parametrize(
    "broken", [{"birthDate": "yesterday"}, {"name": "Jones"}, {"gender": ["female"]}], ids=str
)
@responses.activate
def test_it_still_refuses_a_resource_whose_shown_elements_are_invalid(broken):
    responses.get(f"{BASE}/Patient/pat-1", json={**load("patient"), **broken})
    with pytest.raises(fhir.InvalidResponse):
        client().read("Patient", "pat-1")


@responses.activate
def test_an_entry_fhir_core_trips_on_is_skipped_not_the_whole_search():
    odd = obs(1)
    odd["resource"]["contained"] = [{"resourceType": "NoSuchType", "id": "x"}]
    responses.get(f"{BASE}/Observation", json=page([obs(0), odd, obs(2)]))
    result = client().search("Observation", {"patient": "pat-1"})
    assert [o.id for o in result.resources] == ["o0", "o2"] and result.skipped == 1


@responses.activate
def test_an_absurdly_nested_body_is_an_invalid_response_not_a_crash():
    responses.get(f"{BASE}/Patient/pat-1", body="[" * 5000, content_type="application/fhir+json")
    with pytest.raises(fhir.InvalidResponse):
        client().read("Patient", "pat-1")


@responses.activate
@pytest.mark.parametrize("sent", [True, -1, "12", 2.5])
def test_a_total_that_is_not_a_count_is_no_total(sent):
    responses.get(f"{BASE}/Observation", json=page([obs(1)], total=sent))
    assert client().search("Observation", {"patient": "pat-1"}).total is None


@responses.activate
def test_it_pages_until_the_entry_cap_and_reports_the_total():
    c = client(page_size=3, max_pages=10, max_entries=5)
    responses.get(
        f"{BASE}/Observation", json=page([obs(i) for i in range(3)], total=40, next_url=f"{BASE}/p2")
    )
    responses.get(f"{BASE}/p2", json=page([obs(i) for i in range(3, 6)], total=40, next_url=f"{BASE}/p3"))
    result = c.search("Observation", {"patient": "pat-1"})
    assert result.count == 5
    assert result.total == 40
    assert result.truncated and result.truncated_reason == "capped"
    assert len(responses.calls) == 2
    assert "_count=3" in responses.calls[0].request.url


@responses.activate
def test_it_stops_at_the_page_cap():
    c = client(page_size=2, max_pages=2, max_entries=100)
    responses.get(f"{BASE}/Observation", json=page([obs(1), obs(2)], next_url=f"{BASE}/Observation?page=2"))
    responses.get(
        f"{BASE}/Observation",
        json=page([obs(3), obs(4)], next_url=f"{BASE}/Observation?page=3"),
        match=[matchers.query_param_matcher({"page": "2"})],
    )
    result = c.search("Observation", {"patient": "pat-1"}, max_pages=2)
    assert result.pages == 2
    assert result.truncated and result.total is None


@responses.activate
@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.example.com/fhir/Observation?page=2",
        "http://ehr.example.org/fhir/Observation?page=2",  # scheme downgrade
        "https://ehr.example.org:8443/fhir/Observation?page=2",  # other port
        "https://ehr.example.org/other/Observation?page=2",  # outside the base path
        "https://ehr.example.org/fhirX/Observation",  # prefix trick
        "https://user:pw@ehr.example.org/fhir/Observation",
        "https://ehr.example.org/fhir/../admin/Observation",  # dot segments leave the base
        "https://ehr.example.org/fhir/%2e%2e/admin/Observation",
        "https://ehr.example.org/fhir/./%2E%2E/admin",
    ],
)
def test_it_refuses_a_next_link_outside_the_fhir_base(foreign):
    responses.get(f"{BASE}/Observation", json=page([obs(1)], total=9, next_url=foreign))
    result = client().search("Observation", {"patient": "pat-1"})
    assert result.count == 1
    assert result.truncated and "outside the FHIR server" in result.truncated_reason
    # Exactly one request, to the base; the token never left.
    assert [call.request.url.split("?")[0] for call in responses.calls] == [f"{BASE}/Observation"]


@responses.activate
def test_it_follows_a_relative_next_link_under_the_base():
    responses.get(f"{BASE}/Observation", json=page([obs(1)], next_url="Observation?page=2&_count=1"))
    responses.get(
        f"{BASE}/Observation",
        json=page([obs(2)]),
        match=[matchers.query_param_matcher({"page": "2", "_count": "1"})],
    )
    result = client().search("Observation", {"patient": "pat-1"})
    assert result.count == 2 and not result.truncated


@responses.activate
def test_it_detects_a_paging_loop():
    responses.get(f"{BASE}/Observation", json=page([obs(1)], next_url=f"{BASE}/loop"))
    responses.get(f"{BASE}/loop", json=page([obs(2)], next_url=f"{BASE}/loop"))
    result = client().search("Observation", {"patient": "pat-1"})
    assert result.count == 2
    assert result.truncated and "loop" in result.truncated_reason
    assert len(responses.calls) == 2


@responses.activate
def test_it_skips_and_counts_unreadable_entries():
    bad_value = {
        "resource": {"resourceType": "Observation", "status": "final", "valueQuantity": {"value": "x"}}
    }
    no_resource = {"fullUrl": "urn:x"}
    outcome = {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "warning",
                    "code": "informational",
                    "diagnostics": "Some results hidden by policy",
                }
            ],
        },
        "search": {"mode": "outcome"},
    }
    included = {"resource": {"resourceType": "Patient", "id": "pat-1"}, "search": {"mode": "include"}}
    responses.get(
        f"{BASE}/Observation", json=page([obs(1), bad_value, no_resource, outcome, included, obs(2)])
    )
    result = client().search("Observation", {"patient": "pat-1"})
    assert result.count == 2
    assert result.skipped == 2
    assert result.warnings == ("Some results hidden by policy",)


@responses.activate
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, fhir.Forbidden),
        (404, fhir.NotFound),
        (410, fhir.Gone),
        (400, fhir.BadRequest),
        (500, fhir.ServerError),
        (503, fhir.ServerError),
        (302, fhir.InvalidResponse),
    ],
)
def test_it_maps_http_errors_with_sanitised_operation_outcome_text(status, error):
    responses.get(f"{BASE}/Condition", json=load("operation_outcome_forbidden"), status=status)
    with pytest.raises(error) as caught:
        client().search("Condition", {"patient": "pat-1"})
    assert caught.value.status_code == status
    assert caught.value.diagnostics == "Access to Condition is restricted for this user"


def test_it_caps_long_diagnostics():
    body = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "x" * 5000}]}
    assert len(fhir.outcome_diagnostics(body)) == 300


@responses.activate
def test_it_reports_rate_limiting_with_retry_after():
    responses.get(f"{BASE}/Condition", status=429, headers={"Retry-After": "7"})
    with pytest.raises(fhir.RateLimited) as caught:
        client().search("Condition", {"patient": "pat-1"})
    assert caught.value.retry_after == 7 and caught.value.retryable


@responses.activate
def test_it_maps_timeouts_and_non_json():
    responses.get(f"{BASE}/Condition", body=requests.exceptions.ReadTimeout())
    with pytest.raises(fhir.Timeout):
        client().search("Condition", {"patient": "pat-1"})
    responses.get(f"{BASE}/Patient/pat-1", body="<html>login</html>", status=200)
    with pytest.raises(fhir.InvalidResponse):
        client().read("Patient", "pat-1")


@responses.activate
def test_it_refreshes_once_on_401_and_retries_with_the_new_token():
    responses.get(
        f"{BASE}/Patient/pat-1",
        status=401,
        match=[matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})],
    )
    responses.get(
        f"{BASE}/Patient/pat-1",
        json=load("patient"),
        match=[matchers.header_matcher({"Authorization": "Bearer fresh"})],
    )
    calls = []
    c = fhir.FhirClient(
        BASE, TOKEN, on_unauthorized=lambda: calls.append(1) or "fresh", session=requests.Session()
    )
    assert c.read("Patient", "pat-1").id == "pat-1"
    assert calls == [1]


@responses.activate
def test_it_gives_up_after_one_refresh():
    responses.get(f"{BASE}/Patient/pat-1", status=401)
    calls = []
    c = fhir.FhirClient(
        BASE, TOKEN, on_unauthorized=lambda: calls.append(1) or "fresh", session=requests.Session()
    )
    with pytest.raises(fhir.Unauthorized):
        c.read("Patient", "pat-1")
    with pytest.raises(fhir.Unauthorized):
        c.read("Patient", "pat-1")
    assert calls == [1]
    assert len(responses.calls) == 3  # first try, one retry, then no more refreshes


@responses.activate
def test_it_refreshes_once_when_parallel_queries_all_get_401():
    barrier = threading.Barrier(4)
    state = {"token": TOKEN}

    def callback(request):
        if request.headers["Authorization"] == f"Bearer {TOKEN}":
            return (401, {}, "")
        return (200, {}, '{"resourceType": "Bundle", "type": "searchset"}')

    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=callback)
    calls = []

    def refresh():
        calls.append(1)
        state["token"] = "fresh"
        return "fresh"

    c = fhir.FhirClient(BASE, TOKEN, on_unauthorized=refresh, session=requests.Session())

    def run():
        barrier.wait()
        return c.search("Observation", {"patient": "pat-1"})

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]


@responses.activate
def test_it_refuses_ids_that_could_change_the_path():
    with pytest.raises(fhir.BadRequest):
        client().read("Patient", "../Observation")
    assert len(responses.calls) == 0


@responses.activate
def test_it_records_one_access_per_query_without_values():
    responses.get(f"{BASE}/Patient/pat-1", json=load("patient"))
    responses.get(f"{BASE}/Condition", status=403)
    c = client()
    c.read("Patient", "pat-1")
    with pytest.raises(fhir.Forbidden):
        c.search("Condition", {"patient": "pat-1"})
    assert c.accesses == [
        fhir.Access("Patient", "read", "ok", 1, 200),
        fhir.Access("Condition", "search", "denied", None, 403),
    ]


@responses.activate
def test_it_pools_one_session_per_origin_and_refuses_cookies():
    a = fhir.session_for("https://pool.example.org/fhir")
    b = fhir.session_for("https://POOL.example.org:443/other")
    assert a is b
    assert fhir.session_for("https://pool.example.org:8443/fhir") is not a
    assert a.adapters["https://"]._pool_maxsize >= 8
    # A shared pool must not carry one user's EHR cookies into another user's requests.
    responses.get(
        "https://pool.example.org/fhir/Patient/p",
        json={"resourceType": "Patient", "id": "p"},
        headers={"Set-Cookie": "JSESSIONID=abc; Path=/; Secure"},
    )
    fhir.FhirClient("https://pool.example.org/fhir", TOKEN).read("Patient", "p")
    assert len(a.cookies) == 0


@responses.activate
def test_it_refuses_an_implausibly_large_response(monkeypatch):
    monkeypatch.setattr(fhir_client, "MAX_RESPONSE_BYTES", 10_000)
    responses.get(f"{BASE}/Observation", json=page([obs(i) for i in range(200)]))
    with pytest.raises(fhir.InvalidResponse, match="implausibly large"):
        client().search("Observation", {"patient": "pat-1"})
