"""A 10,000-observation patient: the page caps what it fetches and says so (timing lives in bench/)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from tests.clinical.conftest import BASE
from tests.clinical.helpers import register_all

TOTAL = 10_000
NEWEST = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)


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
            "effectiveDateTime": (NEWEST - timedelta(hours=i)).isoformat(),  # newest first, as asked
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


def _dashboard_of_10k_patient(make_launch, own, observation_pages) -> str:
    """An owned launch whose EHR serves `observation_pages` for Observation; its dashboard URL."""
    launch = make_launch()
    own(launch)
    register_all(responses)
    responses.remove(responses.GET, f"{BASE}/Observation")
    responses.remove(responses.GET, f"{BASE}/Observation")
    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=observation_pages)
    return f"/c/{launch.handle}/"


@pytest.mark.django_db
@responses.activate
def test_it_caps_a_10k_observation_patient_and_says_what_it_capped(client, make_launch, own):
    response = client.get(_dashboard_of_10k_patient(make_launch, own, _pages))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("Showing the latest 1000 of 10000.") == 1  # labs: one capped category search
    # vital signs are asked for per measure, one page each: the latest is right, nothing paged
    assert "History and charts show the latest 100 readings of Heart rate." in html


@pytest.mark.django_db
@responses.activate
def test_it_does_not_call_a_capped_page_the_latest_when_the_ehr_ignored_the_sort(client, make_launch, own):
    def unsorted_pages(request):
        status, headers, body = _pages(request)
        bundle = json.loads(body)
        random.Random(7).shuffle(bundle["entry"])  # a server that ignores _sort=-date
        return status, headers, json.dumps(bundle)

    html = client.get(_dashboard_of_10k_patient(make_launch, own, unsorted_pages)).content.decode()
    assert "Showing the latest" not in html
    assert html.count("did not return them newest first, so some recent results may be missing") == 2
