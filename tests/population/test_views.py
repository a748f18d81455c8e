"""The population page: staff only, filters, sorting, pagination, launch links."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from population.models import PatientSummary, SyncRun

URL = "/population/test-ehr/grp-htn/"


@pytest.fixture
def rows(ehr):
    now = timezone.now()
    SyncRun.objects.create(ehr=ehr, group_id="grp-htn", status="succeeded")
    made = []
    for i, (sys, dia, a1c, seen_days) in enumerate(
        [
            (150, 95, Decimal("9.5"), 30),
            (120, 75, Decimal("6.1"), 400),
            (138, 88, None, None),
            (160, 100, Decimal("7"), 10),
        ]
    ):
        made.append(
            PatientSummary.objects.create(
                ehr=ehr,
                group_id="grp-htn",
                patient_id=f"p{i}",
                name=f"Patient {i}",
                birth_date=date(1950 + i, 1, 1),
                bp_systolic=sys,
                bp_diastolic=dia,
                bp_at=now - timedelta(days=5),
                bp_controlled=sys < 140 and dia < 90,
                hba1c=a1c,
                last_encounter_at=now - timedelta(days=seen_days) if seen_days else None,
            )
        )
    return made


def _ids(response) -> list[str]:
    import re

    return re.findall(r'<span class="muted">(p\d+)</span>', response.content.decode())


def test_it_needs_a_staff_login(client, rows):
    assert client.get(URL).status_code == 302
    user = get_user_model().objects.create_user("clinician", password="x")
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_it_lists_the_group_with_launch_links(admin_client, rows):
    response = admin_client.get(URL)
    assert response.status_code == 200
    content = response.content.decode()
    assert _ids(response) == ["p0", "p1", "p2", "p3"]
    assert 'href="/standalone/test-ehr/"' in content
    assert "150/95" in content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"bp": "1"}, ["p0", "p3"]),
        ({"a1c": "1"}, ["p0"]),
        ({"unseen": "1"}, ["p1", "p2"]),
        ({"bp": "1", "a1c": "1"}, ["p0"]),
    ],
)
def test_filters(admin_client, rows, query, expected):
    assert _ids(admin_client.get(URL, query)) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("bp", ["p3", "p0", "p2", "p1"]),
        ("a1c", ["p0", "p3", "p1", "p2"]),
        ("seen", ["p2", "p1", "p0", "p3"]),
        ("age", ["p0", "p1", "p2", "p3"]),
        ("nonsense", ["p0", "p1", "p2", "p3"]),
    ],
)
def test_sorting(admin_client, rows, sort, expected):
    assert _ids(admin_client.get(URL, {"sort": sort})) == expected


def test_pagination_keeps_filters_and_sort(admin_client, ehr, rows, monkeypatch):
    from population import views

    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    response = admin_client.get(URL, {"bp": "1", "sort": "bp"})
    content = response.content.decode()
    assert _ids(response) == ["p3"]
    assert "?bp=1&amp;sort=bp&amp;page=2" in content
    assert _ids(admin_client.get(URL, {"bp": "1", "sort": "bp", "page": "2"})) == ["p0"]


def test_unknown_groups_are_404(admin_client, rows):
    assert admin_client.get("/population/test-ehr/nope/").status_code == 404
    assert admin_client.get("/population/nope/grp-htn/").status_code == 404


def test_the_index_lists_groups(admin_client, rows):
    content = admin_client.get("/population/").content.decode()
    assert 'href="/population/test-ehr/grp-htn/"' in content


def _words(response) -> str:
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", response.content.decode()))


def test_the_run_history_says_what_was_deleted_and_what_went_wrong(admin_client, ehr, rows):
    SyncRun.objects.create(
        ehr=ehr,
        group_id="grp-htn",
        status="succeeded",
        resources=340,
        patients=9,
        deleted=12,
        issues={"error": {"not-found": 2, "processing": 1}, "warning": {"informational": 4}},
    )
    response = admin_client.get(URL)
    text = _words(response)
    assert (
        "succeeded, incomplete: 340 resources read, 9 patients updated. 12 resources deleted in the EHR "
        "were removed; the EHR reported 3 errors (2 not-found, 1 processing): this run may be incomplete; "
        "the EHR also sent 4 warnings." in text
    )
    assert "(succeeded, incomplete)." in text  # the latest run, above the table
    assert '<strong class="flag-bad">incomplete</strong>' in response.content.decode()
    assert "incomplete" in _words(admin_client.get("/population/"))


def test_a_clean_run_and_a_failed_one_in_the_history(admin_client, ehr, rows):
    SyncRun.objects.create(
        ehr=ehr, group_id="grp-htn", status="succeeded", resources=1, patients=1, deleted=1
    )
    SyncRun.objects.create(
        ehr=ehr, group_id="grp-htn", status="failed", errors="The export failed (HTTP 500)."
    )
    text = _words(admin_client.get(URL))
    assert "failed: The export failed (HTTP 500)." in text
    assert "succeeded: 1 resource read, 1 patient updated. 1 resource deleted in the EHR was removed." in text
    assert "incomplete" not in text
    assert "incomplete" not in _words(admin_client.get("/population/"))


@pytest.mark.parametrize(
    ("fields", "words", "incomplete"),
    [
        ({}, "", False),
        ({"issues": {"warning": {"informational": 1}}}, "The EHR sent 1 warning", False),
        ({"issues": {"information": {"informational": 3}}}, "", False),
        (
            {"issues": {"fatal": {"exception": 1}, "error": {"exception": 1, "too-costly": 1}}},
            "The EHR reported 3 errors (2 exception, 1 too-costly): this run may be incomplete",
            True,
        ),
        (
            {"deleted": 2, "deleted_skipped": 1},
            "2 resources deleted in the EHR were removed; 1 deletion entry could not be read: "
            "this run may be incomplete",
            True,
        ),
        (
            {"issue_lines_skipped": 2},
            "2 lines of the EHR's error files could not be read: this run may be incomplete",
            True,
        ),
    ],
)
def test_outcome_words(ehr, fields, words, incomplete):
    run = SyncRun(ehr=ehr, status="succeeded", **fields)
    assert (run.outcome_words(), run.incomplete) == (words, incomplete)
    assert not SyncRun(ehr=ehr, status="failed", **fields).incomplete
