"""The launch flows end to end: the app and the sandbox EHR as real servers on two sites."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e


def test_it_completes_a_standalone_launch_to_the_patients_dashboard(browser, stack):
    page = browser.standalone_launch(patient="pat-garcia")
    assert page.status_code == 200, page.text[:500]
    assert re.search(rf"^{stack.app.base_url}/c/[\w-]+/$", page.url)
    assert "Garcia" in page.text
    assert "Vital signs" in page.text


def test_it_completes_an_ehr_launch_with_the_encounter_in_context(browser, stack):
    page = browser.ehr_launch(patient="pat-chen", encounter="enc-chen-current")
    assert page.status_code == 200, page.text[:500]
    assert "/c/" in page.url
    assert "This encounter" in page.text
    assert "in-progress" in page.text
