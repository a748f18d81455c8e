"""DiagnosticReport over real HTTP: search parameters, sorting, paging, scopes, references.

The sandbox of these tests is seeded with the fixed anchor of tests/sandbox/conftest.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from tests.sandbox.flows import fhir, token_for

pytestmark = pytest.mark.e2e

LAB = "http://terminology.hl7.org/CodeSystem/v2-0074|LAB"
BMP = "http://loinc.org|24321-2"


@pytest.fixture(scope="module")
def clinician(sandbox) -> str:
    return token_for(sandbox, scope="openid fhirUser user/*.read")["access_token"]


def _reports(sandbox, token: str, **params) -> list[dict]:
    resp = fhir(sandbox, "DiagnosticReport", token, **params)
    assert resp.status_code == 200, resp.text[:300]
    return [e["resource"] for e in resp.json().get("entry", [])]


def _when(report: dict) -> datetime:
    return datetime.fromisoformat(report["effectiveDateTime"].replace("Z", "+00:00")).astimezone(UTC)


def test_it_searches_lab_reports_by_patient_and_category_newest_first(sandbox, clinician):
    found = _reports(sandbox, clinician, patient="pat-ehrstyle", category=LAB, _sort="-date", _count="100")
    assert found and {r["subject"]["reference"] for r in found} == {"Patient/pat-ehrstyle"}
    times = [_when(r) for r in found]
    assert times == sorted(times, reverse=True)
    bare = _reports(sandbox, clinician, patient="pat-ehrstyle", category="LAB", _sort="-date", _count="100")
    assert [r["id"] for r in bare] == [r["id"] for r in found]  # the code without its system
    # Synthea's visit notes are DiagnosticReports too, under LOINC note categories: not LAB.
    every = _reports(sandbox, clinician, patient="pat-synthea", _count="1000")
    labs = _reports(sandbox, clinician, patient="pat-synthea", category=LAB, _count="1000")
    notes = [r for r in every if r not in labs]
    assert len(notes) == 1 and notes[0]["code"]["coding"][0]["code"] == "34117-2"
    # Labs without reports: the tidy patients other than pat-chen.
    assert _reports(sandbox, clinician, patient="pat-garcia", category=LAB) == []
    assert _reports(sandbox, clinician, patient="pat-chen", category=LAB, _count="1")


def test_it_pages_with_count_and_next_links(sandbox, clinician):
    params = {"patient": "pat-synthea", "category": LAB, "_sort": "-date"}
    first = fhir(sandbox, "DiagnosticReport", clinician, **params, _count="5").json()
    assert len(first["entry"]) == 5 and first["total"] > 5
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    token = {"Authorization": f"Bearer {clinician}"}
    second = requests.get(following, headers=token, timeout=30).json()
    ids = [e["resource"]["id"] for e in first["entry"] + second["entry"]]
    assert len(set(ids)) == 10
    assert ids == [r["id"] for r in _reports(sandbox, clinician, **params, _count="10")]


def test_it_searches_by_code_date_and_status(sandbox, clinician):
    bmps = _reports(sandbox, clinician, patient="pat-ehrstyle", code=BMP, _sort="-date")
    assert bmps and all(any(c["code"] == "24321-2" for c in r["code"]["coding"]) for r in bmps)
    newest = _when(bmps[0])
    day = newest.date().isoformat()
    on_day = _reports(sandbox, clinician, patient="pat-ehrstyle", code=BMP, date=day)
    assert {r["id"] for r in on_day} == {"eDR-admit-bmp-prelim", "eDR-admit-bmp"}
    older = _reports(sandbox, clinician, patient="pat-ehrstyle", code=BMP, date=f"lt{day}", _count="100")
    assert older and all(_when(r) < newest for r in older)
    assert [r["id"] for r in _reports(sandbox, clinician, patient="pat-ehrstyle", status="cancelled")] == [
        "eDR-admit-k-cancelled"
    ]


def test_it_reads_a_report_and_makes_its_absolute_reference_point_at_itself(sandbox, clinician):
    resp = fhir(sandbox, "DiagnosticReport/eDR-admit-troponin", clinician)
    assert resp.status_code == 200
    (ref,) = resp.json()["result"]
    assert ref["reference"].startswith(f"{sandbox.fhir_base}/Observation/e")
    observation = requests.get(ref["reference"], headers={"Authorization": f"Bearer {clinician}"}, timeout=30)
    assert observation.status_code == 200 and observation.json()["code"]["text"] == "Troponin I"
    (searched,) = _reports(sandbox, clinician, _id="eDR-admit-troponin")
    assert searched["result"] == [ref]


def test_it_needs_a_report_scope_and_keeps_to_the_patients_compartment(sandbox):
    without = token_for(sandbox, scope="launch/patient patient/Observation.rs", patient="pat-chen")
    resp = fhir(sandbox, "DiagnosticReport", without["access_token"], patient="pat-chen")
    assert resp.status_code == 403 and 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    chen = token_for(sandbox, scope="launch/patient patient/DiagnosticReport.rs", patient="pat-chen")
    mine = _reports(sandbox, chen["access_token"], category=LAB, _count="100")
    assert mine and {r["subject"]["reference"] for r in mine} == {"Patient/pat-chen"}
    assert _reports(sandbox, chen["access_token"], patient="pat-ehrstyle") == []
    assert fhir(sandbox, "DiagnosticReport/eDR-admit-bmp", chen["access_token"]).status_code == 403


def test_it_advertises_reports_in_metadata_and_discovery(sandbox):
    metadata = requests.get(f"{sandbox.fhir_base}/metadata", timeout=10).json()
    (resource,) = [r for r in metadata["rest"][0]["resource"] if r["type"] == "DiagnosticReport"]
    assert {p["name"] for p in resource["searchParam"]} >= {"patient", "category", "code", "date", "status"}
    conf = requests.get(f"{sandbox.fhir_base}/.well-known/smart-configuration", timeout=10).json()
    assert {"patient/DiagnosticReport.rs", "user/DiagnosticReport.rs"} <= set(conf["scopes_supported"])
