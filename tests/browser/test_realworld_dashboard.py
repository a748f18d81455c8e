"""The dashboard on real-world-shaped data (sandbox/corpus.py), as a clinician sees it.

At the EHR iframe's size (1024×700) and a phone (390×844): no horizontal scroll, flags visible,
no machine-precision number, UCUM annotation, SNOMED semantic tag or LOINC long name in the
visible text, lab groups titled by the EHR's reports where it sends them. Screenshots of both
sizes (the page, the whole page and the labs panel) land in test-artifacts/browser/realworld/
to be looked at.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.flows import standalone_launch

SIZES = {"iframe": (1024, 700), "phone": (390, 844)}
PATIENTS = {
    "pat-synthea": "Dwight645 Elbert Kuhlman481",
    "pat-ehrstyle": "Carmen L Reyes",
    "pat-child": "Mila Lindqvist",
    "pat-brooks": "Walter Brooks",
}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
# What the eye reads: the exact values kept for screen readers (.visually-hidden) are left out.
VISIBLE_TEXT = """() => {
  const main = document.querySelector("main").cloneNode(true);
  main.querySelectorAll(".visually-hidden, title, desc").forEach((n) => n.remove());
  document.body.appendChild(main);
  const text = main.innerText;
  main.remove();
  return text;
}"""
# The lab groups' first titles: by report (pat-ehrstyle, pat-synthea), else by category.
LAB_GROUPS = {
    "pat-synthea": ["Basic metabolic panel", "Kidney", "Diabetes", "Lipid panel", "CBC"],
    "pat-ehrstyle": ["Basic Metabolic Panel", "Potassium", "Hemoglobin A1C", "CBC with differential"],
    "pat-child": ["Chemistry", "Hematology"],
    "pat-brooks": ["Kidney", "Electrolytes"],
}
LOINC_LONG_NAME = re.compile(r"\d{4} panel|- Serum or Plasma|- Blood\b|\[[A-Z][a-z]+/volume\]")
LONG_DECIMAL = re.compile(r"\d+\.\d{4,}")
SEMANTIC_TAG = re.compile(r"\((disorder|finding|procedure|situation|observable entity|qualifier value)\)")


@pytest.mark.parametrize("patient", list(PATIENTS))
def test_it_shows_real_world_data_readably_at_iframe_and_phone_sizes(recorder, stack, artifacts, patient):
    page = recorder.new_page()
    standalone_launch(page, stack, patient=PATIENTS[patient])
    expect(page.get_by_role("heading", name="Clinical summary")).to_be_visible()
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        page.evaluate("window.scrollTo(0, 0)")  # a reload keeps the last size's scroll position
        expect(page.get_by_role("heading", name="Needs attention")).to_be_visible()
        overflow = page.evaluate(OVERFLOW)
        assert overflow <= 0, f"{patient} scrolls sideways by {overflow}px at {size}"
        text = page.evaluate(VISIBLE_TEXT)
        long = LONG_DECIMAL.search(text)
        assert long is None, text[max(long.start() - 150, 0) : long.end() + 30]
        assert "{" not in text and not SEMANTIC_TAG.search(text)
        assert not LOINC_LONG_NAME.search(text), LOINC_LONG_NAME.search(text).group(0)
        titles = page.locator("#panel-labs table.labs > caption .group-title")
        expected = LAB_GROUPS[patient]
        assert titles.all_inner_texts()[: len(expected)] == expected
        for title in titles.all():  # each group title readable whole, on screen's width
            box = title.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        folder = artifacts / "realworld"
        folder.mkdir(exist_ok=True)
        page.screenshot(path=str(folder / f"{patient}-{size}.png"))
        page.screenshot(path=str(folder / f"{patient}-{size}-full.png"), full_page=True)
        # The labs panel cut from the whole page: an element shot scrolls, and the sticky
        # banner would then cover the panel's rows.
        labs = page.locator("#panel-labs").bounding_box()
        assert labs is not None
        page.screenshot(path=str(folder / f"{patient}-{size}-labs.png"), full_page=True, clip=labs)


def test_the_first_screen_holds_the_strip_the_latest_vitals_and_the_problems(recorder, stack):
    page = recorder.new_page()
    page.set_viewport_size({"width": 1024, "height": 700})
    standalone_launch(page, stack, patient=PATIENTS["pat-ehrstyle"])
    strip = page.locator(".attention")
    expect(strip.locator(".flag").first).to_be_visible()
    expect(strip).to_contain_text("Potassium")
    expect(strip).to_contain_text("Blood pressure")  # labs first, then flagged vitals
    # A standalone launch has no encounter in context: the admission going on is found.
    expect(page.locator("#panel-encounter h2")).to_contain_text("Current stay")
    expect(page.locator("#panel-trends figcaption").first).not_to_contain_text("12 months")
    for locator in (strip, page.locator("#panel-vitals h2"), page.locator("#panel-problems h2")):
        box = locator.bounding_box()
        assert box is not None and box["y"] < 700, "not on the first screen"
