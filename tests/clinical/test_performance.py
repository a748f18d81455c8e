"""A 10,000-observation patient: the page caps what it fetches and says so (timing lives in bench/)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from tests.clinical.conftest import BASE
from tests.clinical.helpers import register_all

TOTAL = 10_000


def _observation(i: int, category: str) -> dict:
    code = ("8867-4", "/min") if category == "vital-signs" else (f"lab-{i % 40}", "mmol/L")
    return {
        "fullUrl": f"{BASE}/Observation/{category}-{i}",
        "resource": {
            "resourceType": "Observation",
            "id": f"{category}-{i}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code[0], "display": code[0]}]},
            "subject": {"reference": "Patient/pat-1"},
            "effectiveDateTime": f"20{10 + i % 14:02d}-0{1 + i % 9}-1{i % 9}T10:{i % 60:02d}:00Z",
            "valueQuantity": {"value": 50 + i % 40, "unit": code[1]},
            "referenceRange": [{"low": {"value": 55}, "high": {"value": 85}}],
            "epicVendorField": {"x": 1},  # every entry carries a vendor field: the slow path
        },
    }


def _pages(request):
    query = parse_qs(urlsplit(request.url).query)
    category = query.get("category", query.get("cat", ["laboratory"]))[0]
    offset = int(query.get("offset", ["0"])[0])
    count = int(query.get("_count", ["200"])[0])
    entries = [_observation(i, category) for i in range(offset, min(offset + count, TOTAL))]
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": TOTAL, "entry": entries}
    if offset + count < TOTAL:
        nxt = f"{BASE}/Observation?cat={category}&offset={offset + count}&_count={count}"
        bundle["link"] = [{"relation": "next", "url": nxt}]
    return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)


@pytest.mark.django_db
@responses.activate
def test_it_caps_a_10k_observation_patient_and_says_what_it_capped(client, make_launch, own):
    launch = make_launch()
    own(launch)
    register_all(responses)
    responses.remove(responses.GET, f"{BASE}/Observation")
    responses.remove(responses.GET, f"{BASE}/Observation")
    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=_pages)
    response = client.get(f"/c/{launch.handle}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("Showing the latest 1000 of 10000.") == 2
