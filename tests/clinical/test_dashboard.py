from __future__ import annotations

from datetime import date

import requests
import responses

from clinical import dashboard, fhir
from clinical.dashboard import build_dashboard
from tests.clinical.conftest import ALL_SCOPES, BASE, TOKEN, load
from tests.clinical.helpers import EMPTY, category, register_all

TODAY = date(2024, 3, 12)


def build(scopes=ALL_SCOPES, **kwargs):
    client = fhir.FhirClient(BASE, TOKEN, session=requests.Session())
    granted = None if scopes is None else set(scopes.split())
    return build_dashboard(client, "pat-1", "enc-1", granted, today=TODAY, **kwargs)


@responses.activate
def test_it_builds_the_banner():
    register_all(responses)
    banner = build().banner
    assert banner.state.ok
    assert banner.name == "Jones, Ann Marie"  # the official name, not the old one
    assert banner.gender == "Female"
    assert banner.birth_date.value == date(1970, 6, 15)
    assert banner.age == "53 y"
    assert banner.mrn == "E12345"
    assert not banner.deceased


@responses.activate
def test_it_builds_the_encounter():
    register_all(responses)
    enc = build().encounter
    assert enc.encounter_class == "Ambulatory"  # the display, capitalised
    assert enc.types == ("Office visit",)
    assert enc.status == "in-progress"
    assert enc.locations == ("Clinic 4B",)
    assert enc.participants == (("Attending", "Dr. Kim Lee"),)
    assert enc.end is None


@responses.activate
def test_it_builds_vitals_with_bp_components_and_encounter_flags():
    register_all(responses)
    vitals = build().vitals
    by_key = {m.key: m for m in vitals.measures}
    assert list(by_key) == ["bp", "hr", "temp", "weight"]  # entered-in-error SpO2 left out
    bp = by_key["bp"]
    assert bp.latest.value == "142/91" and bp.latest.unit == "mmHg" and bp.latest.in_encounter
    assert [s.label for s in bp.series] == ["Systolic", "Diastolic"]
    assert [p[1] for p in bp.series[0].points] == [128.0, 142.0]  # oldest first
    hr = by_key["hr"]
    assert hr.latest.value == "88" and hr.latest.in_encounter  # absolute encounter reference
    assert not hr.history[1].in_encounter
    assert hr.history[1].unit == "/min"  # unit from the UCUM code when `unit` is missing
    assert by_key["temp"].latest.unit == "°C"
    assert by_key["weight"].latest.absent
    assert by_key["weight"].latest.value == "No value (Asked But Declined)"
    assert vitals.state.shown == 7 and not vitals.state.truncated
    # asked for per measure: the ones with no value are named, not silently absent
    assert vitals.missing == ("Respiratory rate", "SpO₂", "Height", "BMI")


@responses.activate
def test_it_builds_labs_with_flags_ranges_and_odd_values():
    register_all(responses)
    labs = {m.label: m for m in build().labs.measures}
    potassium = labs["Potassium"]
    assert potassium.latest.flag.level == "critical" and potassium.latest.flag.code == "HH"
    assert potassium.latest.reference_range == "3.5\u20135.1 mmol/L"
    assert len(potassium.history) == 2 and potassium.series[0].unit == "mmol/L"
    assert labs["Glucose"].latest.flag.level == "high"
    hgb = labs["Hemoglobin"].latest
    assert hgb.flag.level == "low" and hgb.flag.source == "range"  # no interpretation sent
    assert hgb.status_note == "preliminary"
    assert labs["Urine culture"].latest.value == "No growth"  # text-only code, coded value
    assert labs["Service comment"].latest.value == "Specimen slightly hemolyzed"
    assert labs["Service comment"].latest.when is None
    assert labs["HbA1c"].latest.value == "No value (Specimen rejected)"


@responses.activate
def test_it_orders_problems_active_first_and_drops_entered_in_error():
    register_all(responses)
    problems = build().problems
    assert [p.name for p in problems.active] == ["Type 2 diabetes", "Hypertension", "25064002"]
    assert problems.active[2].clinical_status == "not recorded" and problems.active[2].onset == "childhood"
    assert problems.active[0].verification == "provisional"
    assert [p.name for p in problems.inactive] == ["Acute viral pharyngitis"]
    assert problems.inactive[0].abatement_when.value == date(2019, 2, 20)
    assert problems.entered_in_error == 1


@responses.activate
def test_it_isolates_failing_queries_per_panel():
    register_all(responses, vitals=500, labs=requests.exceptions.ReadTimeout(), conditions=403, encounter=429)
    d = build()
    assert d.banner.state.ok
    assert d.vitals.state.status == "error" and d.vitals.state.retryable
    assert d.labs.state.status == "error" and "in time" in d.labs.state.message
    assert d.problems.state.status == "unauthorized"
    assert d.problems.state.detail == "Access to Condition is restricted for this user"
    assert d.encounter.state.status == "error" and d.encounter.state.retryable
    outcomes = sorted((a.resource_type, a.outcome) for a in d.accesses)
    vital_searches = len(dashboard.VITAL_QUERIES) + 1  # one per measure, one for other codes
    assert outcomes == [
        ("Condition", "denied"),
        ("Encounter", "error"),
        *[("Observation", "error")] * vital_searches,
        ("Observation", "timeout"),
        ("Patient", "ok"),
    ]


@responses.activate
def test_a_bug_building_one_panel_costs_only_that_panel(monkeypatch, caplog):
    """Panels are built in the wave's lanes: a crash in one builder is that panel's error."""
    register_all(responses)

    def broken(*args, **kwargs):
        raise KeyError("never shown")

    monkeypatch.setattr(dashboard, "build_labs", broken)
    d = build()
    assert d.labs.state.status == "error" and d.labs.state.message == "Could not display lab results."
    assert d.vitals.state.ok and d.vitals.measures
    assert d.banner.state.ok and d.problems.state.ok
    assert "KeyError" in caplog.text and "never shown" not in caplog.text


@responses.activate
def test_the_searches_leave_before_the_single_reads():
    """Requests of a wave leave one after another: the slow Bundle searches must not wait behind reads."""
    register_all(responses)
    build(max_workers=1)  # one lane: the order of requests is the order of the wave
    sent = [c.request.url.split("?")[0].removeprefix(BASE + "/") for c in responses.calls]
    assert sent.pop(0) == "metadata"  # what the server offers is known before the wave is planned
    searches = ["Observation"] * (len(dashboard.VITAL_QUERIES) + 2) + ["Condition"]
    assert sent == [*searches, "Encounter/enc-1", "Patient/pat-1"]


@responses.activate
def test_it_does_not_query_what_was_not_granted():
    register_all(responses)
    d = build("launch openid patient/Patient.read patient/Observation.rs")
    assert d.problems.state.status == "unauthorized"
    assert d.problems.state.message == "Not authorized: patient/Condition.rs not granted."
    assert d.encounter.state.status == "unauthorized"
    requested = {c.request.url.split("?")[0] for c in responses.calls}
    assert f"{BASE}/Condition" not in requested and f"{BASE}/Encounter/enc-1" not in requested
    assert d.banner.state.ok and d.vitals.state.ok


@responses.activate
def test_it_sends_granular_scope_restrictions_and_sorts_by_date():
    register_all(responses)
    system_code = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
    responses.get(f"{BASE}/Observation", json=load("vitals"), match=category(system_code))
    scopes = "patient/Patient.rs patient/Condition.rs patient/Encounter.rs "
    scopes += f"patient/Observation.rs?category={system_code}"
    d = build(scopes)
    assert d.vitals.state.ok
    assert d.labs.state.status == "unauthorized"
    vitals_call = next(c for c in responses.calls if "Observation" in c.request.url)
    assert "_sort=-date" in vitals_call.request.url
    assert "observation-category%7Cvital-signs" in vitals_call.request.url


@responses.activate
def test_it_narrows_the_problem_search_to_a_granular_condition_grant():
    # Servers that grant only part of Condition (SMART 2 granular scopes): the app asks for that
    # part instead of calling the whole panel "not authorized".
    register_all(responses)
    system_code = "http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item"
    scopes = "patient/Patient.rs patient/Observation.rs patient/Encounter.rs "
    scopes += f"patient/Condition.rs?category={system_code}"
    d = build(scopes)
    assert d.problems.state.ok
    condition_call = next(c for c in responses.calls if "/Condition" in c.request.url)
    assert "condition-category%7Cproblem-list-item" in condition_call.request.url


@responses.activate
def test_it_refuses_to_show_a_different_patient():
    other = load("patient")
    other["id"] = "pat-2"
    register_all(responses, patient=other)
    banner = build().banner
    assert banner.state.status == "error" and banner.name == ""


@responses.activate
def test_it_renders_an_empty_patient():
    register_all(
        responses,
        patient={"resourceType": "Patient", "id": "pat-1"},
        encounter={"resourceType": "Encounter", "id": "enc-1", "status": "planned", "class": {"code": "AMB"}},
        vitals=EMPTY,
        labs=EMPTY,
        conditions={"resourceType": "Bundle", "type": "searchset"},
    )
    d = build()
    assert d.banner.name == "Name not recorded" and d.banner.birth_date is None and d.banner.mrn == ""
    assert d.vitals.measures == () and d.labs.measures == ()
    assert d.problems.active == () and d.problems.state.ok
    assert d.encounter.encounter_class == "Ambulatory"  # a bare v3 ActCode, spelled out


@responses.activate
def test_it_handles_partial_dates_and_no_given_name():
    register_all(
        responses,
        patient={
            "resourceType": "Patient",
            "id": "pat-1",
            "name": [{"family": "Solo"}],
            "birthDate": "1990-07",
            "deceasedDateTime": "2023",
        },
    )
    banner = build().banner
    assert banner.name == "Solo"
    assert banner.birth_date.precision == "month"
    assert banner.deceased and banner.deceased_when.precision == "year"


@responses.activate
def test_it_skips_the_banner_query_when_not_requested():
    register_all(responses)
    d = build(panels=("vitals",))
    assert d.banner.state.status == "absent"
    sent = sorted(
        c.request.url.split("?")[0] for c in responses.calls if not c.request.url.endswith("/metadata")
    )
    # the Patient read serves the flags (age and sex), not a banner
    assert sent == [f"{BASE}/Observation"] * (len(dashboard.VITAL_QUERIES) + 1) + [f"{BASE}/Patient/pat-1"]


def test_a_problem_on_the_list_and_as_an_encounter_diagnosis_is_one_row_and_findings_come_last():
    from clinical.fhir import parse_resource
    from clinical.problems import build_problems

    HTN = "Essential hypertension (disorder)"

    def condition(cid, code, display, category, onset):
        return parse_resource(
            {
                "resourceType": "Condition",
                "id": cid,
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "category": [{"coding": [{"code": category}]}],
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]},
                "subject": {"reference": "Patient/pat-1"},
                "onsetDateTime": onset,
            },
            "Condition",
        )

    active, _inactive, _err = build_problems(
        (
            condition("c1", "59621000", HTN, "encounter-diagnosis", "2026-06-25"),
            condition("c2", "59621000", HTN, "problem-list-item", "2004"),
            condition("c3", "73595000", "Stress (finding)", "problem-list-item", "2026-10-01"),
            condition("c4", "44054006", "Type 2 diabetes mellitus (HCC)", "problem-list-item", "2010"),
        )
    )
    assert [p.name for p in active] == ["Type 2 diabetes mellitus", "Essential hypertension", "Stress"]
    hypertension = active[1]
    assert sorted(hypertension.categories) == ["Encounter diagnosis", "Problem list"]
    assert hypertension.onset_when.precision == "year"  # the earliest onset


LASTN_METADATA = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "kind": "instance",
    "fhirVersion": "4.0.1",
    "rest": [
        {
            "mode": "server",
            "resource": [
                {
                    "type": "Observation",
                    "operation": [
                        {
                            "name": "lastn",
                            "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
                        }
                    ],
                }
            ],
        }
    ],
}


@responses.activate
def test_where_the_server_offers_lastn_one_request_per_category_brings_every_measure():
    register_all(responses, metadata=LASTN_METADATA)
    lastn = load("vitals")
    responses.get(f"{BASE}/Observation/$lastn", json=lastn, match=[category("vital-signs")[0]])
    responses.get(f"{BASE}/Observation/$lastn", json=load("labs"), match=[category("laboratory")[0]])
    d = build()
    paths = sorted(c.request.url.split("?")[0].removeprefix(BASE + "/") for c in responses.calls)
    assert paths == [
        "Condition",
        "Encounter/enc-1",
        "Observation/$lastn",
        "Observation/$lastn",
        "Patient/pat-1",
        "metadata",
    ]
    queries = [c.request.url for c in responses.calls if "$lastn" in c.request.url]
    assert all("max=" in q and "patient=pat-1" in q for q in queries)
    assert [m.key for m in d.vitals.measures] == ["bp", "hr", "temp", "weight"]
    assert d.vitals.missing == ("Respiratory rate", "SpO₂", "Height", "BMI")
    assert "Potassium" in {m.label for m in d.labs.measures}


def test_it_reads_lastn_from_a_capability_statement_and_nothing_else():
    from clinical.capabilities import offers_lastn

    assert offers_lastn(LASTN_METADATA)
    assert not offers_lastn(
        {"resourceType": "CapabilityStatement", "rest": [{"resource": [{"type": "Patient"}]}]}
    )
    assert not offers_lastn({"rest": "junk"}) and not offers_lastn([])
