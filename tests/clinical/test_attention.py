"""The "Needs attention" strip as rendered: what it counts, names and says when nothing is flagged."""

from __future__ import annotations

import re
from datetime import date, timedelta

from django.template.loader import render_to_string
from django.utils import timezone

from clinical.labs import build_labs
from clinical.panels import Banner, Dashboard, EncounterPanel, MeasuresPanel, PanelState, ProblemsPanel
from clinical.readings import Person
from clinical.vitals import build_vitals
from tests.clinical.test_readings import obs

ADULT = Person(date(1960, 4, 18), "male")


def strip(labs=(), vitals=(), person=ADULT) -> str:
    ok = PanelState("ok")
    d = Dashboard(
        "p",
        "",
        Banner(ok),
        EncounterPanel(PanelState("absent")),
        MeasuresPanel(ok, tuple(vitals)),
        MeasuresPanel(ok, tuple(labs)),
        ProblemsPanel(ok),
        person=person,
    )
    html = render_to_string("clinical/_attention.html", {"d": d})
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def ago(days: int) -> str:
    return (timezone.now() - timedelta(days=days)).strftime("%Y-%m-%dT10:00:00Z")


def test_it_counts_and_names_the_latest_labs_nothing_judged_kidney_first():
    labs = build_labs(
        [
            obs("2093-3", ago(28), 190, ucum="mg/dL"),  # cholesterol
            obs("2160-0", ago(28), 2.2721891592574606, ucum="mg/dL"),  # creatinine
            obs("33914-3", ago(28), 37.2, ucum="mL/min/{1.73_m2}"),  # eGFR
        ],
        "",
        ADULT,
    )
    vitals = build_vitals([obs("8480-6", ago(28), 157, ucum="mm[Hg]")], "", ADULT)
    text = strip(labs, vitals)
    assert "Needs attention (1 flagged · 3 not judged)" in text and "Blood pressure 157" in text
    named = text.split("no range or flag for")[1]
    order = [named.index(t) for t in ("Creatinine 2.27 mg/dL", "eGFR 37", "Total cholesterol 190")]
    assert order == sorted(order)


def test_a_long_list_of_unjudged_labs_names_eight_and_counts_the_rest():
    codes = ["2160-0", "33914-3", "2951-2", "2823-3", "2075-0", "1963-8", "3094-0", "17861-6", "2345-7"]
    codes.append("4548-4")
    labs = build_labs([obs(code, ago(3), 5, ucum="mg/dL") for code in codes], "", ADULT)
    text = strip(labs)
    assert "10 not judged" in text and "and 2 more in Lab results below" in text


def test_only_old_labs_are_said_to_be_old_rather_than_reassuring():
    labs = build_labs([obs("718-7", ago(800), 12.1, ucum="g/dL", referenceRange=[])], "", ADULT)
    text = strip(labs)
    assert "No current lab results: every latest result is older than 365 days" in text
    assert "not judged" not in text  # a stale value is not listed as if current
