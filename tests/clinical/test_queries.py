"""A dashboard request does a small, fixed number of database queries, however much data it shows."""

from __future__ import annotations

import copy

import responses
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.clinical.conftest import load
from tests.clinical.helpers import register_all

# Warm: session read, launch (+ EHR, joined), one audit insert, the CSP frame-ancestors cache.
MAX_QUERIES = 5


def _many_vitals(n: int) -> dict:
    bundle = load("vitals")
    entries = bundle["entry"]
    bundle["entry"] = [copy.deepcopy(entries[i % len(entries)]) for i in range(n)]
    for i, entry in enumerate(bundle["entry"]):
        entry["resource"]["id"] = f"v{i}"
    bundle["total"] = n
    return bundle


def _queries_for(client, launch, vitals: dict | None) -> int:
    responses.reset()
    register_all(responses, **({"vitals": vitals} if vitals else {}))
    url = reverse("clinical:dashboard", kwargs={"handle": launch.handle})
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


@responses.activate
def test_it_does_a_small_fixed_number_of_queries_per_dashboard(client, make_launch, own):
    launch = make_launch()
    own(launch)
    _queries_for(client, launch, None)  # the first request also fills caches (style, CSP origins)
    few = _queries_for(client, launch, None)
    many = _queries_for(client, launch, _many_vitals(150))
    assert few <= MAX_QUERIES
    assert many == few  # no per-row queries in the templates or the builders
