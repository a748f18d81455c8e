"""Server-Timing on the dashboard: EHR wait (union of in-flight FHIR requests) and app time."""

from __future__ import annotations

import re

import pytest
import responses
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from clinical import timing
from tests.clinical.helpers import register_all

_HEADER = re.compile(r'^fhir;dur=(\d+\.\d);desc="EHR wait", app;dur=(\d+\.\d);desc="App"$')


def test_it_counts_parallel_waits_once():
    assert timing.covered([(0.0, 0.05), (0.01, 0.06), (0.1, 0.12)]) == pytest.approx(0.08)


def test_it_formats_the_header():
    assert timing.header_value(52.345, 3.04) == 'fhir;dur=52.3;desc="EHR wait", app;dur=3.0;desc="App"'


def test_it_adds_the_header_only_when_the_view_noted_ehr_waits():
    def view(request):
        if request.path == "/with":
            timing.note_waits(request, [(1.0, 1.002)])
            timing.note_waits(request, [(1.001, 1.003)])
        return HttpResponse("ok")

    middleware = timing.ServerTimingMiddleware(view)
    factory = RequestFactory()
    assert "Server-Timing" not in middleware(factory.get("/without"))
    match = _HEADER.match(middleware(factory.get("/with"))["Server-Timing"])
    assert match and float(match.group(1)) == 3.0  # 1.000 to 1.003 s in flight, overlaps counted once


@responses.activate
def test_it_reports_ehr_wait_and_app_time_on_the_dashboard(client, make_launch, own):
    launch = make_launch()
    own(launch)
    register_all(responses)
    response = client.get(reverse("clinical:dashboard", kwargs={"handle": launch.handle}))
    assert response.status_code == 200
    match = _HEADER.match(response["Server-Timing"])
    assert match, response["Server-Timing"]
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0


@responses.activate
def test_it_reports_timing_on_a_single_panel(client, make_launch, own):
    launch = make_launch()
    own(launch)
    register_all(responses)
    url = reverse("clinical:panel", kwargs={"handle": launch.handle, "name": "labs"}) + "?partial=1"
    assert _HEADER.match(client.get(url)["Server-Timing"])
