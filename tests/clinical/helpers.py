"""Register the dashboard's FHIR queries with `responses`."""

from __future__ import annotations

from responses import matchers

from tests.clinical.conftest import BASE, load

EMPTY = {"resourceType": "Bundle", "type": "searchset", "total": 0}


def category(code: str):
    return [matchers.query_param_matcher({"category": code}, strict_match=False)]


METADATA = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "kind": "instance",
    "fhirVersion": "4.0.1",
}


def register_all(
    rsps, *, patient=None, encounter=None, vitals=None, labs=None, conditions=None, metadata=METADATA
):
    """Each argument: None → the fixture; a dict → that JSON; an int → that status; an exception → raised."""

    def add(url, value, default, match=()):
        if value is None:
            value = load(default)
        if isinstance(value, int):
            rsps.get(url, status=value, json=load("operation_outcome_forbidden"), match=list(match))
        elif isinstance(value, Exception):
            rsps.get(url, body=value, match=list(match))
        else:
            rsps.get(url, json=value, match=list(match))

    rsps.get(f"{BASE}/metadata", json=metadata)  # no $lastn: the per-measure searches
    add(f"{BASE}/Patient/pat-1", patient, "patient")
    add(f"{BASE}/Encounter/enc-1", encounter, "encounter")
    add(f"{BASE}/Observation", vitals, "vitals", category("vital-signs"))
    add(f"{BASE}/Observation", labs, "labs", category("laboratory"))
    add(f"{BASE}/Condition", conditions, "conditions")
