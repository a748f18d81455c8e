from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import requests
import responses
from django.urls import reverse

from clinical import style
from clinical.parallel import THREAD_PREFIX
from clinical.queries import VITAL_QUERIES
from smartapp.models import AuditEvent, Ehr, Launch
from tests.clinical.conftest import BASE, TOKEN, load
from tests.clinical.helpers import register_all

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def launch(make_launch, own):
    item = make_launch()
    own(item)
    return item


def url(launch, view="clinical:dashboard", **kwargs):
    return reverse(view, kwargs={"handle": launch.handle, **kwargs})


@responses.activate
def test_it_renders_the_dashboard_end_to_end(client, launch):
    register_all(responses)
    response = client.get(url(launch))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Jones, Ann Marie" in html
    assert "E12345" in html
    assert "142/91" in html and "mmHg" in html
    assert "12 Mar 2024 14:05" in html  # unambiguous date format
    assert "Critical high (HH)" in html
    assert "Clinic 4B" in html
    assert "Type 2 diabetes" in html and "Wrong chart condition" not in html
    assert '<svg class="chart"' in html and "<title id=" in html
    assert TOKEN not in html
    assert "no-store" in response["Cache-Control"]
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None  # no inline scripts (CSP)


@responses.activate
def test_it_answers_head_like_get_without_a_body(client, launch):
    register_all(responses)
    response = client.head(url(launch))
    assert response.status_code == 200 and response.content == b""
    assert response["Content-Type"].startswith("text/html")


@responses.activate
def test_it_writes_one_audit_row_per_query_without_values(client, launch):
    register_all(responses, conditions=403)
    client.get(url(launch))
    rows = list(AuditEvent.objects.order_by("resource_type", "count"))
    assert [(r.resource_type, r.interaction, r.outcome) for r in rows] == [
        ("Condition", "search", "denied"),
        ("Encounter", "read", "ok"),
        *[("Observation", "search", "ok")] * (len(VITAL_QUERIES) + 2),  # per vital measure + 2 pages
        ("Patient", "read", "ok"),
    ]
    assert all(r.patient_id == "pat-1" and r.ehr_id == launch.ehr_id for r in rows)
    # Only the text columns can carry values; numeric ids and counts are not clinical data.
    # (request_id is random hex that may contain "142" by chance: checked for shape instead.)
    text_fields = [
        f.attname
        for f in AuditEvent._meta.concrete_fields
        if f.get_internal_type() == "CharField" and f.attname != "request_id"
    ]
    assert all(re.fullmatch(r"[\w-]{1,64}", r.request_id) for r in rows)
    dumped = " ".join(str(getattr(r, name)) for r in rows for name in text_fields)
    assert "Jones" not in dumped and "142" not in dumped and TOKEN not in dumped


@responses.activate
def test_it_still_renders_when_queries_fail(client, launch):
    register_all(responses, vitals=500, conditions=403, labs=requests.exceptions.ConnectTimeout())
    response = client.get(url(launch))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Jones, Ann Marie" in html
    assert "Not authorized: the EHR refused access to the problem list." in html
    assert "Access to Condition is restricted for this user" in html
    assert "did not send lab results in time" in html
    assert reverse("clinical:panel", kwargs={"handle": launch.handle, "name": "vitals"}) in html
    assert reverse("clinical:panel", kwargs={"handle": launch.handle, "name": "labs"}) in html


@responses.activate
def test_it_retries_one_panel(client, launch):
    register_all(responses)
    response = client.get(url(launch, "clinical:panel", name="labs") + "?partial=1")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("<section") and "Potassium" in html
    # the labs search, and the patient's age and sex for age- and sex-specific ranges
    sent = sorted(c.request.url.split("?")[0] for c in responses.calls)
    assert sent == [f"{BASE}/Observation", f"{BASE}/Patient/pat-1", f"{BASE}/metadata"]
    full = client.get(url(launch, "clinical:panel", name="labs"))
    assert "<html" in full.content.decode() and "Back to the full summary" in full.content.decode()
    assert client.get(url(launch, "clinical:panel", name="secrets")).status_code == 404


@responses.activate
def test_it_escapes_hostile_names_and_codes(client, launch):
    patient = load("patient")
    patient["name"] = [
        {"use": "official", "family": "<script>alert(1)</script>", "given": ["<img src=x onerror=y>"]}
    ]
    labs = load("labs")
    labs["entry"][0]["resource"]["code"] = {"text": '"><script>alert(2)</script>'}
    register_all(responses, patient=patient, labs=labs)
    html = client.get(url(launch)).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(2)" in html


@responses.activate
def test_it_hides_the_banner_when_the_ehr_shows_one(client, make_launch, own):
    item = make_launch(need_patient_banner=False)
    own(item)
    register_all(responses)
    html = client.get(url(item)).content.decode()
    assert 'id="panel-banner"' not in html
    assert "Jones" not in html  # the EHR shows the patient; the Patient read only serves the flags


@responses.activate
def test_it_refreshes_the_token_on_401(client, launch, monkeypatch):
    register_all(responses)
    responses.replace(responses.GET, f"{BASE}/Patient/pat-1", status=401)
    responses.add(responses.GET, f"{BASE}/Patient/pat-1", json=load("patient"))
    refreshed = []

    def fake_refresh(item):
        refreshed.append(item.handle)
        item.access_token = "new-token"
        return item

    monkeypatch.setattr("smartapp.tokens.force_refresh", fake_refresh)
    html = client.get(url(launch)).content.decode()
    assert refreshed == [launch.handle]
    assert "Jones, Ann Marie" in html
    patient_calls = [c for c in responses.calls if "/Patient/" in c.request.url]
    assert [c.request.headers["Authorization"] for c in patient_calls] == [
        f"Bearer {TOKEN}",
        "Bearer new-token",
    ]


@responses.activate
def test_it_shows_session_ended_for_a_handle_this_session_does_not_own(client, make_launch):
    other = make_launch()
    response = client.get(url(other))
    assert response.status_code == 401
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    "change", [{"enabled": False}, {"iss": "https://moved.example.org/fhir"}], ids=["disabled", "moved"]
)
@responses.activate
def test_it_ends_a_launch_whose_ehr_was_disabled_or_moved(client, launch, change):
    # The token was issued for the old iss: it must not follow the EHR row to a new address, nor
    # keep working after an admin switched the EHR off.
    Ehr.objects.filter(pk=launch.ehr_id).update(**change)
    response = client.get(url(launch))
    assert response.status_code == 401
    # A disabled EHR may still be asked to revoke (at its own address); a moved one never is.
    assert all(c.request.url.startswith(BASE + "/") for c in responses.calls)
    assert "iss" not in change or len(responses.calls) == 0
    assert not Launch.objects.filter(pk=launch.pk).exists()


@responses.activate
def test_it_applies_only_safe_style_hints(client, make_launch, own):
    item = make_launch(smart_style_url="https://ehr.example.org/styles/app.json")
    own(item)
    register_all(responses)
    responses.get(
        "https://ehr.example.org/styles/app.json",
        json={
            "color_background": "#f8f8f8",
            "color_text": "red; } body { background: url(https://evil.example/x)",
            "color_highlight": "#0b5cad",
            "font_family_body": 'Roboto, "><script>alert(1)</script>',
            "dim_border_radius": "4px",
            "color_error": "expression(alert(1))",
        },
    )
    html = client.get(url(item)).content.decode()
    style = re.search(r'class="smart-app" style="([^"]*)"', html).group(1)
    assert (
        style == "--smart-accent: #0b5cad; --smart-bg: #f8f8f8; --smart-font: Roboto, sans-serif; "
        "--smart-radius: 4px"
    )
    assert "evil.example" not in html and "expression(" not in html
    style_call = next(c for c in responses.calls if "styles" in c.request.url)
    assert "Authorization" not in style_call.request.headers  # never the token


@responses.activate
def test_it_fetches_style_hints_on_the_shared_query_pool(client, make_launch, own, monkeypatch):
    """No thread pool per request (issue 14, item 7): the style fetch runs where the queries run."""
    item = make_launch(smart_style_url="https://ehr.example.org/styles/app.json")
    own(item)
    register_all(responses)
    responses.get("https://ehr.example.org/styles/app.json", json={"color_highlight": "#0b5cad"})
    seen = []
    fetch = style.fetch

    def recording_fetch(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return fetch(*args, **kwargs)

    monkeypatch.setattr(style, "fetch", recording_fetch)
    html = client.get(url(item)).content.decode()
    assert "--smart-accent: #0b5cad" in html
    assert len(seen) == 1
    # A pool thread, or the request's own thread when every pool thread was busy: never a new pool.
    assert seen[0].startswith(THREAD_PREFIX) or seen[0] == threading.current_thread().name


@responses.activate
def test_it_searches_patients_when_the_launch_has_none(client, make_launch, own):
    item = make_launch(
        patient_id="", encounter_id="", scope="openid fhirUser user/Patient.rs user/Observation.rs"
    )
    own(item)
    page = client.get(url(item))
    assert page.status_code == 200 and 'name="q"' in page.content.decode()
    responses.get(
        f"{BASE}/Patient",
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 1,
            "entry": [{"resource": load("patient")}],
        },
    )
    html = client.get(url(item, "clinical:patient_search") + "?q=Jones").content.decode()
    link = reverse("clinical:patient_dashboard", kwargs={"handle": item.handle, "patient_id": "pat-1"})
    assert link in html and "Jones, Ann Marie" in html
    assert "name=Jones" in responses.calls[0].request.url
    assert AuditEvent.objects.filter(resource_type="Patient", interaction="search", count=1).exists()


@responses.activate
def test_a_granular_patient_grant_narrows_the_patient_search(client, make_launch, own):
    item = make_launch(patient_id="", encounter_id="", scope="openid user/Patient.rs?organization=org-7")
    own(item)
    responses.get(f"{BASE}/Patient", json={"resourceType": "Bundle", "type": "searchset", "entry": []})
    assert client.get(url(item, "clinical:patient_search") + "?q=Jones").status_code == 200
    sent = responses.calls[0].request.url
    assert "name=Jones" in sent and "organization=org-7" in sent  # never more than was granted


@responses.activate
def test_it_opens_a_searched_patient_with_user_scopes_only(client, make_launch, own):
    item = make_launch(patient_id="", encounter_id="", scope="openid user/Patient.rs patient/Observation.rs")
    own(item)
    register_all(responses)
    html = client.get(
        reverse("clinical:patient_dashboard", kwargs={"handle": item.handle, "patient_id": "pat-1"})
    ).content.decode()
    assert "Jones, Ann Marie" in html
    assert "Not authorized: user/Observation.rs not granted." in html  # patient/ is not this patient
    assert set(AuditEvent.objects.values_list("patient_id", flat=True)) == {"pat-1"}


def test_it_never_switches_the_patient_of_a_patient_launch(client, launch):
    response = client.get(
        reverse("clinical:patient_dashboard", kwargs={"handle": launch.handle, "patient_id": "pat-2"})
    )
    assert response.status_code == 403


def test_it_rejects_empty_and_overlong_searches(client, make_launch, own):
    item = make_launch(patient_id="", encounter_id="", scope="user/Patient.rs")
    own(item)
    assert client.get(url(item, "clinical:patient_search") + "?q=%20%01").status_code == 400
    assert client.get(url(item, "clinical:patient_search") + "?q=" + "a" * 101).status_code == 400


def test_it_uses_no_fixed_widths_in_the_dashboard_css():
    css = (ROOT / "static" / "css" / "dashboard.css").read_text()
    fixed = re.findall(r"(?<![-\w])(?:min-|max-)?width:\s*\d{3,}px", css)
    assert fixed == []
    assert "grid-template-columns: repeat(auto-fit, minmax(min(100%" in css


def test_it_ships_no_patient_data_in_static_files():
    for path in (ROOT / "static").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="ignore")
            assert "Jones" not in text and "E12345" not in text
