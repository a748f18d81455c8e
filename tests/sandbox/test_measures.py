"""Per-measure searches and Observation/$lastn over real HTTP, on the corpus and pat-brooks.

The sandbox of these tests is seeded with the fixed anchor of tests/sandbox/conftest.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.sandbox.conftest import ANCHOR
from tests.sandbox.flows import fhir, token_for

pytestmark = pytest.mark.e2e

NOW = datetime.fromisoformat(ANCHOR).replace(tzinfo=UTC)
SYSTOLIC, BP_PANEL = "http://loinc.org|8480-6", "http://loinc.org|85354-9"
VITALS = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"


@pytest.fixture(scope="module")
def clinician(sandbox) -> str:
    return token_for(sandbox, scope="openid fhirUser user/*.read")["access_token"]


def _entries(body: dict) -> list[dict]:
    return [e["resource"] for e in body.get("entry", [])]


def _when(obs: dict) -> datetime:
    return datetime.fromisoformat(obs["effectiveDateTime"]).astimezone(UTC)


def _loinc(obs: dict) -> set[str]:
    return {c["code"] for c in obs["code"]["coding"] if c["system"] == "http://loinc.org"}


def _newest(sandbox, token: str, patient: str, code: str) -> dict:
    body = fhir(sandbox, "Observation", token, patient=patient, code=code, _sort="-date", _count="1").json()
    (newest,) = _entries(body)
    return newest


def _newest_first(observations: list[dict]) -> bool:
    times = [_when(o) for o in observations]
    return times == sorted(times, reverse=True)


def test_it_ors_several_codes_sorts_newest_first_and_counts(sandbox, clinician):
    params = {"patient": "pat-ehrstyle", "code": f"{SYSTOLIC},{BP_PANEL}", "_sort": "-date", "_count": "50"}
    body = fhir(sandbox, "Observation", clinician, **params).json()
    found = _entries(body)
    assert _newest_first(found)
    assert {c for o in found for c in _loinc(o)} == {"8480-6", "85354-9"}
    alone = [
        fhir(sandbox, "Observation", clinician, patient="pat-ehrstyle", code=code, _count="0").json()["total"]
        for code in (SYSTOLIC, BP_PANEL)
    ]
    assert body["total"] == sum(alone) == len(found)
    assert all(alone)
    small = fhir(sandbox, "Observation", clinician, **{**params, "_count": "3"}).json()
    assert [o["id"] for o in _entries(small)] == [o["id"] for o in found[:3]]
    assert any(link["relation"] == "next" for link in small["link"])


def test_it_filters_by_date_prefixes_at_the_precision_given(sandbox, clinician):
    def ids(date: str) -> set[str]:
        body = fhir(
            sandbox, "Observation", clinician, patient="pat-ehrstyle", date=date, _count="1000"
        ).json()
        assert body["total"] < 1000
        return {o["id"] for o in _entries(body)}

    everything = ids("ge1900")
    older = f"lt{(NOW - timedelta(days=100)).date()}"
    body = fhir(
        sandbox, "Observation", clinician, patient="pat-ehrstyle", date=older, _sort="-date", _count="1"
    )
    month = _when(_entries(body.json())[0]).strftime("%Y-%m")  # a month with readings, not the last
    assert ids(month) and ids(f"gt{month}")
    assert ids(f"lt{month}") | ids(f"ge{month}") == everything
    assert not ids(f"lt{month}") & ids(f"ge{month}")
    assert ids(f"le{month}") == ids(f"lt{month}") | ids(month)
    assert ids(f"gt{month}") == ids(f"ge{month}") - ids(month)
    last_30 = f"ge{(NOW - timedelta(days=30)).date()}"
    recent = fhir(
        sandbox, "Observation", clinician, patient="pat-ehrstyle", date=last_30, _count="200"
    ).json()
    assert recent["total"] and all(_when(o) >= NOW - timedelta(days=30) for o in _entries(recent))


def test_it_compares_dates_with_offsets_as_instants(sandbox, clinician):
    # pat-synthea's times carry -05:00: a reading at 20:00 local is the next day in UTC.
    body = fhir(sandbox, "Observation", clinician, patient="pat-synthea", _sort="-date", _count="1").json()
    (newest,) = _entries(body)
    assert newest["effectiveDateTime"].endswith("-05:00")
    instant = _when(newest).strftime("%Y-%m-%dT%H:%M:%SZ")
    same = fhir(sandbox, "Observation", clinician, patient="pat-synthea", date=instant, _count="100").json()
    assert newest["id"] in {o["id"] for o in _entries(same)}
    later = fhir(
        sandbox, "Observation", clinician, patient="pat-synthea", date=f"gt{instant}", _count="0"
    ).json()
    assert later["total"] == 0


def test_it_pages_labs_by_category_newest_first(sandbox, clinician):
    body = fhir(
        sandbox,
        "Observation",
        clinician,
        patient="pat-synthea",
        category="laboratory",
        _sort="-date",
        _count="20",
    ).json()
    labs = _entries(body)
    assert len(labs) == 20 < body["total"]
    assert {o["category"][0]["coding"][0]["code"] for o in labs} == {"laboratory"}
    assert _newest_first(labs)


def test_it_pushes_brooks_weight_out_of_the_latest_1000_vitals(sandbox, clinician):
    page = fhir(
        sandbox, "Observation", clinician, patient="pat-brooks", category=VITALS, _sort="-date", _count="1000"
    ).json()
    assert page["total"] > 10_000
    assert not {c for o in _entries(page) for c in _loinc(o)} & {"29463-7", "8302-2", "39156-5"}
    latest = _newest(sandbox, clinician, "pat-brooks", "http://loinc.org|29463-7")
    assert timedelta(days=74) < NOW - _when(latest) < timedelta(days=76)


# --- Observation/$lastn ----------------------------------------------------------------------


def _lastn(sandbox, token: str, **params) -> requests.Response:
    return fhir(sandbox, "Observation/$lastn", token, **params)


def test_it_advertises_lastn_in_the_capability_statement(sandbox):
    body = requests.get(sandbox.fhir_base + "/metadata", timeout=10).json()
    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert resources["Observation"]["operation"] == [
        {"name": "lastn", "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn"}
    ]
    assert "operation" not in resources["Condition"]


def test_it_returns_the_latest_of_each_code_however_many_readings(sandbox, clinician):
    resp = _lastn(sandbox, clinician, patient="pat-brooks", category="vital-signs")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    body = resp.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    assert body["link"][0]["url"].startswith(sandbox.fhir_base + "/Observation/$lastn?patient=pat-brooks")
    latest = {frozenset(_loinc(o)): o for o in _entries(body)}
    assert body["total"] == len(latest) == len(_entries(body))
    codes = {c for key in latest for c in key}
    assert codes == {"85354-9", "8867-4", "9279-1", "8310-5", "2708-6", "29463-7", "8302-2", "39156-5"}
    weight = latest[frozenset({"29463-7"})]
    assert timedelta(days=74) < NOW - _when(weight) < timedelta(days=76)
    newest_hr = _newest(sandbox, clinician, "pat-brooks", "http://loinc.org|8867-4")
    assert latest[frozenset({"8867-4"})]["id"] == newest_hr["id"]


def test_it_returns_max_per_code_newest_first_for_the_codes_asked(sandbox, clinician):
    body = _lastn(
        sandbox, clinician, subject="Patient/pat-synthea", code="http://loinc.org|98979-8,http://loinc.org|2164-2",
        max="3",
    ).json()  # fmt: skip
    found = _entries(body)
    by_code: dict[str, list[dict]] = {}
    for obs in found:
        by_code.setdefault(next(iter(_loinc(obs))), []).append(obs)
    assert set(by_code) == {"98979-8", "2164-2"}
    for readings in by_code.values():
        assert len(readings) == 3 and _newest_first(readings)
    assert {o["valueQuantity"]["code"] for o in by_code["2164-2"]} == {"mL/min"}


def test_it_groups_by_the_whole_code_and_filters_by_status_when_asked(sandbox, clinician):
    # SpO2 coded both 2708-6 and 59408-5 is one group; the newest potassium is cancelled.
    spo2 = _entries(_lastn(sandbox, clinician, patient="pat-synthea", code="http://loinc.org|59408-5").json())
    assert len(spo2) == 1 and _loinc(spo2[0]) == {"2708-6", "59408-5"}
    potassium = {"patient": "pat-ehrstyle", "code": "http://loinc.org|2823-3"}
    (raw,) = _entries(_lastn(sandbox, clinician, **potassium).json())
    assert raw["status"] == "cancelled"
    usable = _lastn(sandbox, clinician, **potassium, status="final,amended,corrected,preliminary").json()
    (latest,) = _entries(usable)
    assert latest["status"] == "final" and latest["valueQuantity"]["value"] == 5.6


def test_it_refuses_lastn_without_a_patient_or_with_a_bad_max(sandbox, clinician):
    for params in (
        {"category": "vital-signs"},
        {"patient": "pat-chen", "max": "0"},
        {"patient": "pat-chen", "max": "x"},
    ):
        resp = _lastn(sandbox, clinician, **params)
        assert resp.status_code == 400, params
        assert resp.json()["resourceType"] == "OperationOutcome"


def test_it_applies_the_same_auth_and_scopes_to_lastn(sandbox):
    assert (
        requests.get(sandbox.fhir_base + "/Observation/$lastn?patient=pat-chen", timeout=10).status_code
        == 401
    )
    garcia = token_for(sandbox, scope="launch/patient patient/Observation.rs")["access_token"]
    assert _entries(_lastn(sandbox, garcia, patient="pat-chen").json()) == []
    mine = _entries(_lastn(sandbox, garcia, patient="pat-garcia", category="vital-signs").json())
    assert mine and {o["subject"]["reference"] for o in mine} == {"Patient/pat-garcia"}
    read_only = token_for(sandbox, scope="launch/patient patient/Observation.r")["access_token"]
    assert _lastn(sandbox, read_only, patient="pat-garcia").status_code == 403
    vitals_only = token_for(sandbox, scope=f"launch/patient patient/Observation.rs?category={VITALS}")[
        "access_token"
    ]
    granted = _entries(_lastn(sandbox, vitals_only, patient="pat-garcia").json())
    assert granted and {o["category"][0]["coding"][0]["code"] for o in granted} == {"vital-signs"}
