"""Summaries from exported resources: the dashboard's rules, merged idempotently."""

from __future__ import annotations

from decimal import Decimal

import pytest

from population.models import PatientSummary
from population.summary import Summarizer, parse_when

LOINC = "http://loinc.org"


def _patient(pid="p1", **extra):
    return {"resourceType": "Patient", "id": pid, "name": [{"given": ["Ada"], "family": "King"}], **extra}


def _obs(code, when, pid="p1", status="final", **value):
    return {
        "resourceType": "Observation",
        "id": f"{code}-{when}",
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        **value,
    }


def _bp(when, sys, dia, pid="p1", status="final"):
    components = [
        {
            "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
            "valueQuantity": {"value": sys, "code": "mm[Hg]"},
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
            "valueQuantity": {"value": dia, "code": "mm[Hg]"},
        },
    ]
    return _obs("85354-9", when, pid, status, component=components)


def _q(value, unit):
    return {"valueQuantity": {"value": value, "code": unit, "unit": unit}}


def _condition(cid, status="active", pid="p1"):
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"code": status}]},
        "subject": {"reference": f"Patient/{pid}"},
    }


def _summary(ehr, resources, *, full=True) -> PatientSummary:
    summarizer = Summarizer()
    for resource in resources:
        summarizer.add(resource)
    summarizer.save(ehr, "g", full=full)
    return PatientSummary.objects.get(ehr=ehr, group_id="g", patient_id="p1")


def test_it_takes_the_latest_bp_and_judges_control(ehr):
    row = _summary(
        ehr, [_patient(birthDate="1950-02-03"), _bp("2024-01-01", 150, 95), _bp("2024-06-01", 128, 82)]
    )
    assert (row.bp_systolic, row.bp_diastolic, row.bp_controlled) == (Decimal(128), Decimal(82), True)
    assert row.bp_at == parse_when("2024-06-01")
    assert row.name == "Ada King" and str(row.birth_date) == "1950-02-03"


def test_140_over_anything_is_not_controlled(ehr):
    assert _summary(ehr, [_patient(), _bp("2024-06-01", 140, 80)]).bp_controlled is False
    assert _summary(ehr, [_bp("2024-07-01", 130, 90)], full=False).bp_controlled is False


def test_separate_systolic_and_diastolic_readings_make_a_bp(ehr):
    row = _summary(
        ehr,
        [
            _patient(),
            _obs("8480-6", "2024-05-01T10:00:00Z", **_q(165, "mm[Hg]")),
            _obs("8462-4", "2024-05-01T10:00:00Z", **_q(99, "mm[Hg]")),
        ],
    )
    assert (row.bp_systolic, row.bp_diastolic, row.bp_controlled) == (Decimal(165), Decimal(99), False)


def test_cancelled_and_entered_in_error_readings_are_ignored(ehr):
    row = _summary(
        ehr, [_patient(), _bp("2024-01-01", 120, 70), _bp("2024-06-01", 190, 120, status="entered-in-error")]
    )
    assert row.bp_systolic == Decimal(120)


def test_hba1c_in_percent_only(ehr):
    row = _summary(
        ehr,
        [
            _patient(),
            _obs("4548-4", "2024-01-01", **_q(9.4, "%")),
            _obs("4548-4", "2024-03-01", **_q(60, "mmol/mol")),
        ],
    )
    assert row.hba1c == Decimal("9.40")


def test_problems_are_counted_and_resolved_idempotently(ehr):
    row = _summary(ehr, [_patient(), _condition("c1"), _condition("c2"), _condition("c3", "resolved")])
    assert row.active_problems == 2
    row = _summary(ehr, [_condition("c1"), _condition("c1")], full=False)  # the same resource twice
    assert row.active_problems == 2
    row = _summary(ehr, [_condition("c2", "resolved")], full=False)
    assert (row.active_problems, row.problem_ids) == (1, ["c1"])


def test_the_last_encounter_skips_cancelled_ones(ehr):
    encounters = [
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "subject": {"reference": "Patient/p1"},
            "period": {"start": "2023-05-01"},
        },
        {
            "resourceType": "Encounter",
            "id": "e2",
            "status": "cancelled",
            "subject": {"reference": "Patient/p1"},
            "period": {"start": "2024-05-01"},
        },
    ]
    assert _summary(ehr, [_patient(), *encounters]).last_encounter_at == parse_when("2023-05-01")


def test_an_older_reading_in_a_later_run_does_not_win(ehr):
    _summary(ehr, [_patient(), _bp("2024-06-01", 128, 82)])
    row = _summary(ehr, [_bp("2023-01-01", 170, 100)], full=False)
    assert row.bp_systolic == Decimal(128)


def test_a_full_run_drops_patients_who_left_the_group(ehr):
    _summary(ehr, [_patient(), _patient("p2")])
    summarizer = Summarizer()
    summarizer.add(_patient())
    summarizer.save(ehr, "g", full=True)
    assert list(PatientSummary.objects.values_list("patient_id", flat=True)) == ["p1"]


def test_running_twice_writes_no_duplicate_rows(ehr):
    resources = [_patient(), _bp("2024-06-01", 128, 82), _condition("c1")]
    _summary(ehr, resources)
    _summary(ehr, resources)
    assert PatientSummary.objects.count() == 1


@pytest.mark.parametrize(
    ("value", "year"), [("2004", 2004), ("2004-03", 2004), ("2004-03-02T10:00:00+02:00", 2004)]
)
def test_partial_dates(value, year):
    assert parse_when(value).year == year
    assert parse_when("yesterday") is None
