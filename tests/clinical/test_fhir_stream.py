"""D5: a search page is streamed, and entries past the entry cap are never parsed.

Every test runs both ways a page is read: decoded whole (a page of ordinary size) and as
events (a page over SMALL_PAGE, or one the whole-body decoder refuses).
"""

from __future__ import annotations

import io
import json

import pytest
import requests
import responses

from clinical import fhir
from clinical.fhir import bundles
from clinical.fhir import client as fhir_client
from tests.clinical.conftest import BASE, TOKEN
from tests.clinical.test_fhir import obs, page


@pytest.fixture(autouse=True, params=["whole", "events"])
def reading(request, monkeypatch):
    if request.param == "events":
        monkeypatch.setattr(bundles, "SMALL_PAGE", 0)
    return request.param


def client(**kwargs):
    return fhir.FhirClient(BASE, TOKEN, session=requests.Session(), **kwargs)


@pytest.fixture
def parsed(monkeypatch):
    """Counts the resources the client parses (validates) and the entries it builds from JSON."""
    counts = {"resources": 0, "entries": 0}
    parse, build = fhir_client.memo.parse, bundles._sort_entry

    def counting_parse(*args, **kwargs):  # every match goes through the memo first
        counts["resources"] += 1
        return parse(*args, **kwargs)

    def counting_build(*args, **kwargs):
        counts["entries"] += 1
        return build(*args, **kwargs)

    # patched where they are looked up: the client parses, the page reader sorts entries
    monkeypatch.setattr(fhir_client.memo, "parse", counting_parse)
    monkeypatch.setattr(bundles, "_sort_entry", counting_build)
    return counts


@responses.activate
def test_entries_past_the_cap_of_a_huge_page_are_never_parsed(parsed):
    # total and link before the entries, as HAPI, Epic and the sandbox send them
    huge = {"resourceType": "Bundle", "type": "searchset", "total": 20_000}
    huge["link"] = [{"relation": "next", "url": f"{BASE}/Observation?page=2"}]
    huge["entry"] = [obs(i) for i in range(20_000)]
    responses.get(f"{BASE}/Observation", body=json.dumps(huge), content_type="application/fhir+json")
    result = client(max_entries=50).search("Observation", {"patient": "pat-1"})
    assert result.count == 50 and result.truncated and result.truncated_reason == "capped"
    assert result.total == 20_000 and result.pages == 1
    assert parsed == {"resources": 50, "entries": 50}
    assert len(responses.calls) == 1  # capped: the next page is not asked for


@responses.activate
def test_the_cap_spans_pages(parsed):
    first = page([obs(i) for i in range(30)], next_url=f"{BASE}/Observation?page=2")
    second = page([obs(i) for i in range(30, 60)])
    responses.get(f"{BASE}/Observation?page=2", json=second)
    responses.get(f"{BASE}/Observation", json=first)
    result = client(max_entries=40).search("Observation", {"patient": "pat-1"})
    assert [o.id for o in result.resources] == [f"o{i}" for i in range(40)]
    assert result.truncated and parsed["resources"] == 40


@responses.activate
def test_links_and_resource_type_after_the_entries_are_still_read():
    bundle = {"entry": [obs(0)], "link": [{"relation": "next", "url": f"{BASE}/Observation?p=2"}]}
    bundle["resourceType"] = "Bundle"
    responses.get(f"{BASE}/Observation?p=2", json=page([obs(1)]))
    responses.get(f"{BASE}/Observation", json=bundle)
    result = client().search("Observation", {"patient": "pat-1"})
    assert [o.id for o in result.resources] == ["o0", "o1"] and result.pages == 2


def test_outcomes_and_includes_do_not_count_towards_the_cap():
    entries = [
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "partial"}]}},
        {"resource": {"resourceType": "Patient", "id": "p"}, "search": {"mode": "include"}},
        obs(0),
        obs(1),
    ]
    result = bundles.read_page(io.BytesIO(json.dumps(page(entries)).encode()), "Observation", 2)
    assert [m["id"] for m in result.matches] == ["o0", "o1"] and not result.more
    assert result.warnings == ["partial"]


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"resourceType": "OperationOutcome"}', b'{"resourceType": "Bundle", "entry": [', b"\x00"],
)
def test_anything_but_a_bundle_is_refused(body):
    with pytest.raises((ValueError, fhir.InvalidResponse)):
        bundles.read_page(io.BytesIO(body), "Observation", 10)


def test_a_page_cut_off_after_the_cap_still_gives_its_entries(reading):
    # Not JSON as a whole (a server that died mid-page), but the entries within the cap are whole.
    body = json.dumps(page([obs(0), obs(1), obs(2)]))[:-40].encode()
    result = bundles.read_page(io.BytesIO(body), "Observation", 2)
    assert [m["id"] for m in result.matches] == ["o0", "o1"] and result.more


def test_nan_is_not_json_either_way():
    body = b'{"resourceType": "Bundle", "total": NaN, "entry": []}'
    with pytest.raises(ValueError):
        bundles.read_page(io.BytesIO(body), "Observation", 10)


def test_a_page_over_the_size_limit_is_read_as_events(monkeypatch):
    seen = []
    stream_page = bundles._stream_page
    monkeypatch.setattr(bundles, "_stream_page", lambda *a: seen.append(1) or stream_page(*a))
    monkeypatch.setattr(bundles, "SMALL_PAGE", 64 * 1024)
    big = page([obs(i) for i in range(2000)])
    result = bundles.read_page(io.BytesIO(json.dumps(big).encode()), "Observation", 3000)
    assert len(result.matches) == 2000 and seen == [1]
    small = bundles.read_page(io.BytesIO(json.dumps(page([obs(0)])).encode()), "Observation", 10)
    assert len(small.matches) == 1 and seen == [1]  # decoded whole: no events
