"""Without an encounter in the launch, a hospital stay in progress is found by search: it sets
the vital-sign charts' window (since admission) and is named on the page. Optional, never an error."""

from __future__ import annotations

from datetime import date

import requests
import responses
from responses import matchers

from clinical import fhir
from clinical.dashboard import build_dashboard
from tests.clinical.conftest import ALL_SCOPES, BASE, TOKEN, load
from tests.clinical.helpers import register_all

STAY_QUERY = {"patient": "pat-1", "status": "in-progress", "_count": "10"}


def encounter(eid: str, code: str, start: str, **extra) -> dict:
    e = load("encounter")
    e.update(id=eid, period={"start": start}, **extra)
    e["class"] = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code}
    return e


def searchset(*resources) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def build(scopes=ALL_SCOPES):
    client = fhir.FhirClient(BASE, TOKEN, session=requests.Session())
    return build_dashboard(client, "pat-1", "", set(scopes.split()), today=date(2024, 3, 12))


def stay_calls():
    return [c for c in responses.calls if c.request.url.startswith(f"{BASE}/Encounter?")]


@responses.activate
def test_the_newest_inpatient_stay_in_progress_is_found():
    register_all(responses)
    bundle = searchset(
        encounter("clinic", "AMB", "2024-03-12T08:00:00Z"),  # a clinic visit left open: not a stay
        encounter("old-stay", "IMP", "2024-02-01T08:00:00Z"),
        encounter("stay", "IMP", "2024-03-09T22:15:00Z"),
        encounter("other", "IMP", "2024-03-11T08:00:00Z", subject={"reference": "Patient/someone-else"}),
    )
    responses.get(f"{BASE}/Encounter", json=bundle, match=[matchers.query_param_matcher(STAY_QUERY)])
    d = build()
    assert d.encounter.found and d.encounter.inpatient and d.encounter_id == ""
    assert d.encounter.start.value.isoformat() == "2024-03-09T22:15:00+00:00"
    assert len(stay_calls()) == 1


@responses.activate
def test_no_stay_a_failed_search_or_no_grant_leave_no_encounter_and_no_error():
    register_all(responses)
    responses.get(f"{BASE}/Encounter", json=searchset(encounter("clinic", "AMB", "2024-03-12T08:00:00Z")))
    assert build().encounter.state.status == "absent"
    failing = load("operation_outcome_forbidden")
    responses.replace(responses.GET, f"{BASE}/Encounter", status=500, json=failing)
    d = build()
    assert d.encounter.state.status == "absent" and not d.encounter.found
    assert d.vitals.state.ok and d.labs.state.ok
    calls = len(stay_calls())
    without = " ".join(s for s in ALL_SCOPES.split() if not s.startswith("patient/Encounter"))
    assert build(without).encounter.state.status == "absent" and len(stay_calls()) == calls  # not asked
