"""The dashboard over the sandbox's synthetic records: odd data, no data, hostile names, 10k rows."""

from __future__ import annotations

import os
import re

import pytest

pytestmark = pytest.mark.e2e


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_it_renders_odd_but_valid_data_without_dropping_it(browser):
    page = browser.standalone_launch(patient="pat-odd")
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "Nakamura" in text  # no given name: family name alone
    assert "No value (Asked But Unknown)" in text  # dataAbsentReason shown, not dropped
    assert "Date not recorded" in text  # missing effective date
    assert "Feels dizzy when standing up quickly" in text  # text-only code
    assert "1 entry marked entered-in-error not shown." in text


def test_it_says_what_is_missing_for_a_patient_with_no_clinical_data(browser):
    text = visible_text(browser.standalone_launch(patient="pat-blank").text)
    assert "Blank, Nora" in text
    assert "No vital signs recorded." in text
    assert "No lab results recorded." in text
    assert "No active problems recorded." in text


def test_it_escapes_a_script_in_the_patients_name(browser):
    page = browser.standalone_launch(patient="pat-xss")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_it_caps_the_10k_observation_patient_and_says_so(browser, stack):
    stack.sandbox.reset_stats()
    page = browser.standalone_launch(patient="pat-brooks")
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "History and charts show the latest 100 readings of Blood pressure, Heart rate" in text
    # the rare measures a capped page of 1000 missed are there, asked for per measure
    assert re.search(r"Weight\s+\d+\.\d kg", text) and "Height" in text and "BMI" in text
    assert "No readings recorded" not in text
    assert "Brooks, Walter" in text
    # Paging stopped at the cap instead of walking all 10,000+ rows.
    assert stack.sandbox.stats()["fhir"]["total"] < 40


def test_it_shows_readable_units(browser):
    text = visible_text(browser.standalone_launch(patient="pat-garcia").text)
    assert "mmHg" in text and "mm[Hg]" not in text
    assert "°C" in text


@pytest.mark.parametrize("patient", ["pat-synthea", "pat-ehrstyle", "pat-child", "pat-brooks", "pat-garcia"])
def test_every_measure_the_patient_has_appears_on_the_dashboard(browser, patient):
    """Whatever the volume, the latest of each known vital sign and lab the EHR holds is shown."""
    from clinical import display
    from sandbox import synthetic

    seed = int(os.environ.get("SANDBOX_SEED", "20250115"))
    expected = set()
    for resource in synthetic.generate(seed):
        if (
            resource["resourceType"] != "Observation"
            or resource["subject"]["reference"] != f"Patient/{patient}"
        ):
            continue
        if resource.get("status") in ("cancelled", "entered-in-error"):
            continue
        codes = {
            c.get("code") for c in resource["code"].get("coding", []) if c.get("system") == "http://loinc.org"
        }
        measure = display.measure_for(codes)
        if measure is not None and measure.key not in ("sys", "dia"):
            expected.add(measure.name)
    text = visible_text(browser.standalone_launch(patient=patient).text).replace("&#x27;", "'")
    assert expected, "the corpus gave this patient no known measure"
    missing = sorted(name for name in expected if name not in text)
    assert not missing, f"{patient}: {missing}"
