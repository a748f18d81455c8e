"""Against a real FHIR server, with $lastn switched off: one search per vital sign still finds
every measure (the path for EHRs that do not offer Observation/$lastn)."""

from __future__ import annotations

import re

import pytest

from clinical.queries import VITAL_QUERIES
from tests.stack import Browser, start_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def per_measure_stack(tmp_path_factory):
    with start_stack(tmp_path_factory.mktemp("per-measure"), app_env={"FHIR_USE_LASTN": "False"}) as running:
        yield running


def test_a_high_volume_patients_rare_measures_are_found_by_per_measure_searches(per_measure_stack):
    per_measure_stack.sandbox.reset_stats()
    page = Browser(per_measure_stack).standalone_launch(patient="pat-brooks")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert re.search(r"Weight \d+\.\d kg", text) and "Height" in text and "BMI" in text
    assert "History and charts show the latest 100 readings of Blood pressure, Heart rate" in text
    # one search per vital-sign measure (plus the category page and the labs), not two $lastn
    observation_requests = per_measure_stack.sandbox.stats()["fhir"]["by_type"].get("Observation", 0)
    assert observation_requests >= len(VITAL_QUERIES) + 2
