"""Synthetic data: deterministic, valid FHIR R4 (checked with fhir.resources.R4B), edge cases present."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from functools import cache

from fhir.resources.R4B import get_fhir_model_class

from sandbox import synthetic

SEED = 20250115
ANCHOR = date(2025, 1, 15)


@cache
def _cached() -> tuple[dict, ...]:
    return tuple(synthetic.generate(SEED, ANCHOR))


def _data() -> list[dict]:
    return list(_cached())


def _effective(obs: dict) -> str:
    return obs.get("effectiveDateTime") or obs.get("effectivePeriod", {}).get("start", "")


def test_it_is_deterministic_for_a_seed_and_an_anchor():
    assert synthetic.generate(SEED, ANCHOR) == synthetic.generate(SEED, ANCHOR)
    assert synthetic.generate(1, ANCHOR) != synthetic.generate(2, ANCHOR)


def test_it_anchors_the_data_to_today_by_default():
    today = datetime.now(UTC).date()
    assert synthetic.anchor_at() == datetime(today.year, today.month, today.day, tzinfo=UTC)
    assert synthetic.anchor_at(date(2030, 6, 1)) == datetime(2030, 6, 1, tzinfo=UTC)
    moved = synthetic.generate(SEED, ANCHOR + timedelta(days=400))
    newest = max(_effective(r) for r in moved if r["resourceType"] == "Observation")
    assert newest[:10] == str(ANCHOR + timedelta(days=399))  # the last readings: the evening before
    assert newest > max(_effective(r) for r in _data() if r["resourceType"] == "Observation")


def test_it_dates_nothing_after_the_anchor():
    limit = synthetic.iso(synthetic.anchor_at(ANCHOR))
    for r in _data():
        if r["resourceType"] == "Observation":
            assert _effective(r) <= limit, r["id"]
        elif r["resourceType"] == "Encounter":
            assert r["period"]["start"] <= limit, r["id"]


def test_it_validates_a_sample_as_fhir_r4():
    resources = _data()
    rng = random.Random(7)
    sample = [r for r in resources if r["resourceType"] != "Observation" or "odd" in r["id"]]
    sample += rng.sample([r for r in resources if r["resourceType"] == "Observation"], 400)
    for res in sample:
        get_fhir_model_class(res["resourceType"]).model_validate(res)


def test_it_has_the_patients_and_edge_cases_the_app_needs():
    resources = _data()
    patients = {r["id"]: r for r in resources if r["resourceType"] == "Patient"}
    assert len(patients) >= 8
    assert {p["gender"] for p in patients.values()} >= {"female", "male"}
    per_patient = Counter(r["subject"]["reference"] for r in resources if r["resourceType"] == "Observation")
    assert per_patient["Patient/pat-brooks"] >= 10_000
    assert per_patient["Patient/pat-blank"] == 0
    assert "given" not in patients["pat-odd"]["name"][0]
    assert patients["pat-xss"]["name"][0]["given"] == ["<script>alert(1)</script>"]
    assert {r["class"]["code"] for r in resources if r["resourceType"] == "Encounter"} == {
        "AMB",
        "IMP",
        "EMER",
    }


def test_it_codes_vitals_labs_and_conditions_properly():
    resources = _data()
    bp = next(
        r
        for r in resources
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "85354-9"
    )
    assert [c["code"]["coding"][0]["code"] for c in bp["component"]] == ["8480-6", "8462-4"]
    assert bp["component"][0]["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    a1c = next(
        r
        for r in resources
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "4548-4"
    )
    assert a1c["referenceRange"][0]["high"]["value"] == 5.6
    assert a1c["interpretation"][0]["coding"][0]["code"] in {"H", "N", "L"}
    assert a1c["encounter"]["reference"].startswith("Encounter/")
    cond = next(
        r for r in resources if r["resourceType"] == "Condition" and r["id"].startswith("cond-garcia")
    )
    systems = {c["system"] for c in cond["code"]["coding"]}
    assert systems == {"http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"}
    years = {r["period"]["start"][:4] for r in resources if r["resourceType"] == "Encounter"}
    assert len(years) >= 4


def test_it_puts_brooks_rare_measures_outside_a_latest_1000_page():
    vitals = sorted(
        (
            r
            for r in _data()
            if r["resourceType"] == "Observation"
            and r["subject"]["reference"] == "Patient/pat-brooks"
            and r["category"][0]["coding"][0]["code"] == "vital-signs"
        ),
        key=_effective,
        reverse=True,
    )
    assert len(vitals) >= 10_000
    rare = {"29463-7", "8302-2", "39156-5"}
    first_rare = next(i for i, r in enumerate(vitals) if r["code"]["coding"][0]["code"] in rare)
    assert first_rare >= 2000
    latest = vitals[first_rare]
    age = synthetic.anchor_at(ANCHOR) - datetime.fromisoformat(_effective(latest))
    assert timedelta(days=60) <= age <= timedelta(days=90)
    assert {r["code"]["coding"][0]["code"] for r in vitals if _effective(r) == _effective(latest)} >= rare
    current = [r for r in vitals if r.get("encounter", {}).get("reference") == "Encounter/enc-brooks-current"]
    assert current and not {r["code"]["coding"][0]["code"] for r in current} & rare
