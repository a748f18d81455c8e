"""Synthetic data: deterministic, valid FHIR R4 (checked with fhir.resources.R4B), edge cases present."""

from __future__ import annotations

import random
from collections import Counter

from fhir.resources.R4B import get_fhir_model_class

from sandbox import synthetic

SEED = 20250115


def _data() -> list[dict]:
    return synthetic.generate(SEED)


def test_it_is_deterministic_for_a_seed():
    assert _data() == _data()
    assert synthetic.generate(1) != synthetic.generate(2)


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
