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


# --- deletions and withdrawn readings ---------------------------------------------------------------


def _encounter(eid, start, status="finished", pid="p1"):
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start},
    }


def _row(ehr, pid="p1") -> PatientSummary:
    return PatientSummary.objects.get(ehr=ehr, group_id="g", patient_id=pid)


def _incremental(ehr, resources=(), deleted=(), refreshed=None) -> tuple[Summarizer, set[str]]:
    """One incremental run: its data, its deletions, then (if asked for) the second export."""
    summarizer = Summarizer()
    for resource in resources:
        summarizer.add(resource)
    for rtype, rid in deleted:
        summarizer.delete(rtype, rid)
    withdrawn = summarizer.plan(ehr, "g")
    for resource in refreshed or ():
        summarizer.refresh(resource)
    summarizer.save(ehr, "g")
    return summarizer, withdrawn


OLD_BP, NEW_BP = _bp("2024-01-01", 150, 95), _bp("2024-06-01", 128, 82)


def test_rows_remember_the_resources_behind_their_readings(ehr):
    row = _summary(
        ehr,
        [
            _patient(),
            OLD_BP,
            NEW_BP,
            _obs("4548-4", "2024-03-01", **_q(7.1, "%")),
            _encounter("e1", "2024-02-01"),
            _encounter("e2", "2024-05-01"),
        ],
    )
    assert row.source_ids == {"bp": [NEW_BP["id"]], "hba1c": ["4548-4-2024-03-01"], "encounter": ["e2"]}


def test_a_deleted_patient_loses_its_row_and_a_second_time_changes_nothing(ehr):
    _summary(ehr, [_patient(), _patient("p2"), NEW_BP])
    summarizer, withdrawn = _incremental(ehr, deleted=[("Patient", "p1")])
    assert withdrawn == set()
    assert list(PatientSummary.objects.values_list("patient_id", flat=True)) == ["p2"]
    _incremental(ehr, deleted=[("Patient", "p1")])
    assert list(PatientSummary.objects.values_list("patient_id", flat=True)) == ["p2"]
    assert summarizer.deletions == 1


def test_a_patient_both_exported_and_deleted_gets_no_row(ehr):
    _incremental(ehr, [_patient("p3"), _bp("2024-06-01", 120, 80, pid="p3")], [("Patient", "p3")])
    assert not PatientSummary.objects.filter(patient_id="p3").exists()


def test_a_deleted_condition_leaves_the_problem_list(ehr):
    _summary(
        ehr, [_patient(), _patient("p2"), _condition("c1"), _condition("c2"), _condition("c3", pid="p2")]
    )
    _incremental(ehr, deleted=[("Condition", "c1")])  # p1 has nothing else in this run
    row = _row(ehr)
    assert (row.problem_ids, row.active_problems) == (["c2"], 1)
    assert _row(ehr, "p2").problem_ids == ["c3"]
    _incremental(ehr, deleted=[("Condition", "c1")])
    assert _row(ehr).problem_ids == ["c2"]


def test_deleting_a_reading_that_is_not_shown_changes_nothing(ehr):
    before = _summary(ehr, [_patient(), OLD_BP, NEW_BP, _encounter("e1", "2024-02-01")])
    _summarizer, withdrawn = _incremental(ehr, deleted=[("Observation", OLD_BP["id"]), ("Encounter", "e0")])
    assert withdrawn == set()  # no second export needed
    after = _row(ehr)
    assert (after.bp_systolic, after.bp_at, after.source_ids) == (
        before.bp_systolic,
        before.bp_at,
        before.source_ids,
    )


def test_a_deleted_latest_bp_is_replaced_by_the_one_before_it(ehr):
    _summary(ehr, [_patient(), OLD_BP, NEW_BP])
    _summarizer, withdrawn = _incremental(
        ehr, deleted=[("Observation", NEW_BP["id"])], refreshed=[OLD_BP, _bp("2024-01-01", 1, 1, pid="p2")]
    )
    assert withdrawn == {"p1"}
    row = _row(ehr)
    assert (row.bp_systolic, row.bp_diastolic, row.bp_controlled) == (Decimal(150), Decimal(95), False)
    assert row.bp_at == parse_when("2024-01-01")
    assert row.source_ids == {"bp": [OLD_BP["id"]]}


def test_with_no_reading_left_none_is_shown(ehr):
    a1c = _obs("4548-4", "2024-03-01", **_q(7.1, "%"))
    _summary(ehr, [_patient(), NEW_BP, a1c])
    _incremental(ehr, deleted=[("Observation", NEW_BP["id"])], refreshed=[a1c])
    row = _row(ehr)
    assert (row.bp_systolic, row.bp_at, row.bp_controlled) == (None, None, None)
    assert (row.hba1c, row.source_ids) == (Decimal("7.10"), {"hba1c": [a1c["id"]]})
    # The second export holds all of a withdrawn patient's readings: what it lacks is gone.
    _incremental(ehr, deleted=[("Observation", a1c["id"])], refreshed=[])
    assert (_row(ehr).hba1c, _row(ehr).source_ids) == (None, {})


def test_a_deleted_hba1c_and_a_deleted_last_encounter(ehr):
    a1c_old, a1c_new = (
        _obs("4548-4", "2023-01-01", **_q(9.9, "%")),
        _obs("4548-4", "2024-01-01", **_q(6.5, "%")),
    )
    e1, e2 = _encounter("e1", "2023-05-01"), _encounter("e2", "2024-05-01")
    _summary(ehr, [_patient(), a1c_old, a1c_new, e1, e2])
    _incremental(ehr, deleted=[("Observation", a1c_new["id"]), ("Encounter", "e2")], refreshed=[a1c_old, e1])
    row = _row(ehr)
    assert (row.hba1c, row.last_encounter_at) == (Decimal("9.90"), parse_when("2023-05-01"))
    assert row.source_ids == {"hba1c": [a1c_old["id"]], "encounter": ["e1"]}


def test_a_deleted_half_of_a_separate_bp_pair_withdraws_it(ehr):
    sys = _obs("8480-6", "2024-05-01T10:00:00Z", **_q(165, "mm[Hg]"))
    dia = _obs("8462-4", "2024-05-01T10:00:00Z", **_q(99, "mm[Hg]"))
    assert _summary(ehr, [_patient(), OLD_BP, sys, dia]).source_ids == {"bp": [sys["id"], dia["id"]]}
    _summarizer, withdrawn = _incremental(ehr, deleted=[("Observation", dia["id"])], refreshed=[OLD_BP, sys])
    assert withdrawn == {"p1"}
    assert _row(ehr).bp_systolic == Decimal(150)


def test_a_shown_reading_re_exported_as_entered_in_error_is_withdrawn(ehr):
    _summary(ehr, [_patient(), OLD_BP, NEW_BP])
    in_error = {**NEW_BP, "status": "entered-in-error"}
    _summarizer, withdrawn = _incremental(ehr, [in_error], refreshed=[OLD_BP, in_error])
    assert withdrawn == {"p1"}
    assert _row(ehr).bp_systolic == Decimal(150)


def test_a_reading_deleted_in_the_run_that_brought_it_is_not_shown(ehr):
    # The spec forbids listing one resource in both `output` and `deleted`; if an EHR does, the
    # deletion (applied after the data) wins.
    _summary(ehr, [_patient(), OLD_BP])
    _summarizer, withdrawn = _incremental(ehr, [NEW_BP], [("Observation", NEW_BP["id"])], refreshed=[OLD_BP])
    assert withdrawn == {"p1"}
    assert _row(ehr).bp_systolic == Decimal(150)


def test_planning_writes_nothing_and_the_same_run_twice_ends_the_same(ehr):
    _summary(ehr, [_patient(), _condition("c1"), OLD_BP, NEW_BP])
    summarizer = Summarizer()
    summarizer.delete("Observation", NEW_BP["id"])
    summarizer.delete("Condition", "c1")
    assert summarizer.plan(ehr, "g") == {"p1"}
    assert _row(ehr).bp_systolic == Decimal(128) and _row(ehr).problem_ids == ["c1"]  # untouched so far
    run = ([], [("Observation", NEW_BP["id"]), ("Condition", "c1")], [OLD_BP])
    _incremental(ehr, *run)
    first = _row(ehr)
    _incremental(ehr, *run)  # a run repeated after a failure (since did not move)
    again = _row(ehr)
    fields = ("bp_systolic", "bp_at", "hba1c", "problem_ids", "active_problems", "source_ids")
    assert [getattr(again, f) for f in fields] == [getattr(first, f) for f in fields]
    assert PatientSummary.objects.count() == 1


def test_the_second_export_counts_only_for_withdrawn_patients(ehr):
    other = {**_bp("2024-06-01", 110, 70, pid="p2"), "id": "p2-bp"}
    _summary(ehr, [_patient(), _patient("p2"), NEW_BP, other])
    _incremental(
        ehr,
        deleted=[("Observation", NEW_BP["id"])],
        refreshed=[OLD_BP, {**_bp("2025-01-01", 200, 120, pid="p2"), "id": "p2-bp2"}],
    )
    assert _row(ehr, "p2").bp_systolic == Decimal(110)


def test_deletions_count_distinct_resources_of_the_summarised_types(ehr):
    summarizer = Summarizer()
    for rtype, rid in [("Patient", "a"), ("Patient", "a"), ("Observation", "o"), ("MedicationRequest", "m")]:
        summarizer.delete(rtype, rid)
    assert summarizer.deletions == 2


def test_a_complete_full_run_rebuilds_rows_and_an_incomplete_one_merges(ehr):
    _summary(ehr, [_patient(), NEW_BP, _condition("c1"), _encounter("e2", "2024-05-01")])
    export = [_patient(), OLD_BP, _condition("c2")]  # what the EHR holds now: NEW_BP, c1, e2 are gone
    summarizer = Summarizer()
    for resource in export:
        summarizer.add(resource)
    summarizer.save(ehr, "g", full=True, complete=False)  # the EHR reported errors: keep what we had
    row = _row(ehr)
    assert (row.bp_systolic, row.problem_ids, row.last_encounter_at) == (
        Decimal(128),
        ["c1", "c2"],
        parse_when("2024-05-01"),
    )
    row = _summary(ehr, export, full=True)
    assert (row.bp_systolic, row.problem_ids, row.last_encounter_at) == (Decimal(150), ["c2"], None)
    assert row.source_ids == {"bp": [OLD_BP["id"]]}
