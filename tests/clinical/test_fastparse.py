"""The Observation fast path gives what full validation gives, and declines what it cannot vouch for."""

from __future__ import annotations

import contextlib
import copy

import pytest

from clinical import fastparse
from clinical.fhir import parse_resource
from sandbox.synthetic import generate

LAST_UPDATED = "2025-01-15T00:00:00Z"  # the meta the sandbox adds when it stores a resource


@pytest.fixture(scope="module")
def observations() -> list[dict]:
    """Every patient's observations, but only a slice of the 10,000 of pat-brooks (time)."""
    found, brooks = [], 0
    for r in generate(1):
        if r["resourceType"] != "Observation":
            continue
        if r.get("subject", {}).get("reference") == "Patient/pat-brooks":
            brooks += 1
            if brooks > 300:
                continue
        r.setdefault("meta", {"versionId": "1", "lastUpdated": LAST_UPDATED})  # as the sandbox serves it
        found.append(r)
    return found


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "one-bundle"])
def test_it_builds_the_same_observations_as_full_validation(observations, shared):
    fast_count = 0
    block = fastparse.shared_elements() if shared else contextlib.nullcontext()
    with block:
        fasts = [fastparse.observation(copy.deepcopy(data)) for data in observations]
    for data, fast in zip(observations, fasts, strict=True):
        full = parse_resource(copy.deepcopy(data), "Observation")
        if fast is None:
            continue
        fast_count += 1
        assert type(fast) is type(full)
        assert fast.model_dump() == full.model_dump(), data["id"]
        assert fast.effectiveDateTime == full.effectiveDateTime
    assert fast_count >= 0.95 * len(observations)  # the fast path is the common path


BASE = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
    "effectiveDateTime": "2024-03-12T14:05:00+01:00",
    "valueQuantity": {"value": 72.0, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
}


def test_it_converts_values_as_the_model_does():
    fast = fastparse.observation(copy.deepcopy(BASE))
    full = parse_resource(copy.deepcopy(BASE), "Observation")
    assert str(fast.valueQuantity.value) == "72.0" == str(full.valueQuantity.value)
    assert fast.effectiveDateTime == full.effectiveDateTime
    assert fast.effectiveDateTime.utcoffset() == full.effectiveDateTime.utcoffset()


@pytest.mark.parametrize(
    "change",
    [
        {"extension": [{"url": "http://x", "valueString": "y"}]},  # not in the fast subset
        {"effectiveDateTime": "2024-03"},  # partial date: the model keeps a string
        {"effectiveDateTime": "2024-02-31T10:00:00Z"},  # impossible date
        {"effectiveDateTime": "2024-03-12T14:05:00"},  # no time zone
        {"status": "done"},  # not a status code
        {"valueString": "x"},  # a second value[x]
        {"valueQuantity": {"value": True}},  # a boolean is not a decimal
        {"valueQuantity": {"value": "7"}},  # nor is a JSON string
        {"code": {"coding": [{"code": " padded"}]}},  # not a code
        {"code": {"coding": []}},  # empty arrays are not FHIR
        {"code": None},
        {"vendorField": 1},
        {"meta": {"lastUpdated": "2024-01-01"}},  # an instant needs a time
        {"meta": {"versionId": "1", "extension": []}},
    ],
)
def test_it_declines_what_it_cannot_vouch_for(change):
    data = {**copy.deepcopy(BASE), **change}
    assert fastparse.observation(data) is None


def test_it_declines_other_resource_types():
    assert fastparse.observation({**BASE, "resourceType": "Condition"}) is None
    assert fastparse.observation([BASE]) is None


def test_identical_elements_of_one_bundle_are_built_once():
    other = {**copy.deepcopy(BASE), "id": "o2", "valueQuantity": {**BASE["valueQuantity"], "value": 80}}
    with fastparse.shared_elements():
        first, second = fastparse.observation(copy.deepcopy(BASE)), fastparse.observation(other)
    assert first.code is second.code
    assert first.valueQuantity is not second.valueQuantity
    assert (str(first.valueQuantity.value), str(second.valueQuantity.value)) == ("72.0", "80")
    alone = fastparse.observation(copy.deepcopy(BASE))
    assert alone.code is not first.code  # nothing is kept once the block ends
    assert alone.code == first.code


@pytest.mark.parametrize(
    ("values", "expected"),
    [((72, 72.0), ["72", "72.0"]), ((1, True), ["1", None]), ((72, "72"), ["72", None])],
)
def test_sharing_tells_apart_values_that_compare_equal(values, expected):
    """1 == 1.0 == True in Python, but "72" and "72.0" are shown differently and a string is no decimal."""
    parsed = []
    with fastparse.shared_elements():
        for value in values:
            data = copy.deepcopy(BASE)
            data["valueQuantity"]["value"] = value
            parsed.append(fastparse.observation(data))
    alone = [fastparse.observation({**copy.deepcopy(BASE), "valueQuantity": {"value": v}}) for v in values]
    shown = [[p and str(p.valueQuantity.value) for p in run] for run in (parsed, alone)]
    assert shown == [expected, expected]  # a boolean or a JSON string is declined even after a valid twin


@pytest.fixture(scope="module")
def reports() -> list[dict]:
    found = [r for r in generate(1) if r["resourceType"] == "DiagnosticReport"]
    for r in found:
        r.setdefault("meta", {"versionId": "1", "lastUpdated": LAST_UPDATED})
    return found


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "one-bundle"])
def test_it_builds_the_same_reports_as_full_validation(reports, shared):
    block = fastparse.shared_elements() if shared else contextlib.nullcontext()
    with block:
        fasts = [fastparse.diagnostic_report(copy.deepcopy(data)) for data in reports]
    built = 0
    for data, fast in zip(reports, fasts, strict=True):
        full = parse_resource(copy.deepcopy(data), "DiagnosticReport")
        if fast is None:
            assert "presentedForm" in data, data["id"]  # the one shape here it leaves to the model
            continue
        built += 1
        assert type(fast) is type(full) and fast.model_dump() == full.model_dump(), data["id"]
    assert built >= 0.9 * len(reports)


REPORT = {
    "resourceType": "DiagnosticReport",
    "id": "r1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8"}]},
    "effectiveDateTime": "2024-03-12T14:05:00+01:00",
    "result": [{"reference": "Observation/o1"}],
}


@pytest.mark.parametrize(
    "change",
    [
        {"presentedForm": [{"contentType": "text/plain", "data": "eA=="}]},  # left to the model
        {"effectivePeriod": {"start": "2024-03-12"}},
        {"effectiveDateTime": "2024-03"},  # partial date
        {"status": "done"},
        {"code": None},
        {"result": []},
        {"conclusion": ""},
        {"modifierExtension": [{"url": "http://x", "valueString": "y"}]},
    ],
)
def test_the_report_fast_path_declines_what_it_cannot_vouch_for(change):
    data = {**copy.deepcopy(REPORT), **change}
    assert fastparse.diagnostic_report(data) is None
    assert fastparse.diagnostic_report(copy.deepcopy(REPORT)) is not None
