"""Web hardening: no open redirect through `next` or the app's own links, CSRF on every POST,
staff-only admin, framing only by registered EHR origins, escaped patient data, sanitised styles."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from smartapp.models import Ehr, Launch
from tests.clinical.conftest import TOKEN as FHIR_TOKEN
from tests.clinical.helpers import register_all
from tests.reliability.conftest import assert_no_secrets

EVIL_NEXTS = ["https://evil.example.org/", "//evil.example.org", "/\\evil.example.org", "javascript:alert(1)"]
PASSWORD = "a-long-test-password-1"


def _user(username="staff", **flags):
    return get_user_model().objects.create_user(username, password=PASSWORD, **flags)


def _local(location: str) -> bool:
    parts = urlsplit(location)
    return (
        not parts.scheme and not parts.netloc and location.startswith("/") and not location.startswith("//")
    )


def _hrefs(html: str) -> list[str]:
    return re.findall(r'(?:href|action|src)="([^"]*)"', html)


# --- Open redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("evil", EVIL_NEXTS)
def test_it_ignores_an_offsite_next_after_admin_login(client, db, evil):
    _user(is_staff=True)
    response = client.post(
        f"/admin/login/?next={evil}", {"username": "staff", "password": PASSWORD, "next": evil}
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"  # the admin index, not a 404 at /accounts/profile/


@pytest.mark.parametrize("evil", EVIL_NEXTS[:2])
def test_it_ignores_an_offsite_next_on_admin_logout(client, db, evil):
    client.force_login(_user(is_staff=True))
    response = client.post(f"/admin/logout/?next={evil}", {"next": evil})
    assert "evil" not in response.get("Location", "")
    assert response.status_code in (200, 302)


@pytest.mark.parametrize(
    "path",
    [
        "/launch?iss=https://evil.example.org/fhir&launch=x&next=https://evil.example.org",
        "/callback?error=access_denied&state=x&error_uri=https://evil.example.org&next=//evil.example.org",
        "/callback?code=x&state=y&redirect_uri=https://evil.example.org",
        "/c/not-mine/?next=https://evil.example.org",
    ],
)
def test_it_links_only_to_its_own_pages_from_error_pages(client, mocked, ehr, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500
    html = response.content.decode()
    assert "evil.example.org" not in html
    assert all(_local(h) for h in _hrefs(html)), _hrefs(html)


# --- CSRF -----------------------------------------------------------------------------------------


def test_it_refuses_logout_without_a_csrf_token(db, ehr):
    strict = Client(enforce_csrf_checks=True)
    strict.get("/")
    response = strict.post("/logout")
    assert response.status_code == 403
    assert strict.get("/logout").status_code == 405


def test_it_refuses_logout_with_another_sessions_csrf_token(db, ehr):
    victim, attacker = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    victim.get("/admin/login/")
    attacker.get("/admin/login/")
    assert victim.cookies["csrftoken"].value != attacker.cookies["csrftoken"].value
    stolen = attacker.cookies["csrftoken"].value
    assert victim.post("/logout", {"csrfmiddlewaretoken": stolen}).status_code == 403


def test_it_refuses_admin_login_without_a_csrf_token(db):
    _user(is_staff=True)
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/admin/login/", {"username": "staff", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in strict.session


@pytest.mark.parametrize(
    ("path", "data"),
    [
        (
            "/admin/smartapp/ehr/add/",
            {"name": "Evil", "slug": "evil", "iss": "https://evil.example.org/fhir"},
        ),
        (
            "/admin/smartapp/ehr/{pk}/change/",
            {"name": "Renamed", "frame_ancestors": "https://evil.example.org"},
        ),
        ("/admin/smartapp/ehr/{pk}/delete/", {"post": "yes"}),
        ("/admin/smartapp/ehr/", {"action": "delete_selected", "_selected_action": "{pk}", "post": "yes"}),
    ],
)
def test_it_refuses_admin_writes_without_a_csrf_token(db, ehr, path, data):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(_user(is_staff=True, is_superuser=True))
    data = {k: v.format(pk=ehr.pk) for k, v in data.items()}
    response = strict.post(path.format(pk=ehr.pk), data)
    assert response.status_code == 403
    fresh = Ehr.objects.get()
    assert (fresh.name, fresh.frame_ancestors) == ("Test EHR", "https://ehr.example.org")


# --- Admin needs staff ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/smartapp/ehr/", "/admin/smartapp/launch/", "/admin/auth/user/"]
)
def test_it_sends_a_signed_in_non_staff_user_to_the_admin_login(client, db, path):
    client.force_login(_user("clinician"))  # e.g. a user created by a SMART sign-in
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_forbids_staff_without_permissions_from_ehrs_and_secrets(client, db, ehr):
    client.force_login(_user(is_staff=True))
    assert client.get("/admin/smartapp/ehr/").status_code == 403
    assert client.get(f"/admin/smartapp/ehr/{ehr.pk}/change/").status_code == 403
    assert client.post("/admin/smartapp/ehr/add/", {"name": "x"}).status_code == 403


def test_it_lets_view_only_staff_read_but_not_change_an_ehr(client, db, ehr):
    staff = _user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_ehr"))
    client.force_login(staff)
    page = client.get(f"/admin/smartapp/ehr/{ehr.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and "test-secret" not in html
    assert "stored (encrypted, never shown)" in html
    client.post(f"/admin/smartapp/ehr/{ehr.pk}/change/", {"name": "Renamed"})
    assert Ehr.objects.get().name == "Test EHR"


# --- Framing ----------------------------------------------------------------------------------------


def _frame_ancestors(response) -> str:
    policy = response["Content-Security-Policy"]
    return next(p for p in policy.split("; ") if p.startswith("frame-ancestors")).split(" ", 1)[1]


def test_it_keeps_the_policy_when_an_unregistered_origin_frames_the_dashboard(
    client, make_launch, own, mocked
):
    launch = make_launch()
    own(launch)
    register_all(mocked)
    response = client.get(
        reverse("clinical:dashboard", kwargs={"handle": launch.handle}),
        headers={
            "Referer": "https://evil.example.org/",
            "Sec-Fetch-Dest": "iframe",
            "Origin": "https://evil.example.org",
        },
    )
    assert response.status_code == 200
    assert _frame_ancestors(response) == "https://ehr.example.org"
    assert "X-Frame-Options" not in response


def test_it_drops_a_disabled_ehrs_origin_from_the_launch_pages_policy(client, ehr):
    Ehr.objects.filter(pk=ehr.pk).update(enabled=False)
    ehr.refresh_from_db()
    ehr.save()  # through the model, as the admin does, so the cached origins are invalidated
    Ehr.objects.filter(pk=ehr.pk).update(enabled=False)
    from smartapp import security

    security.invalidate_ehr_origins()
    assert _frame_ancestors(client.get("/launch?iss=x&launch=y")) == "'none'"


@pytest.mark.e2e
def test_it_lets_only_the_sandbox_frame_the_real_dashboard(rbrowser, rstack, leaks):
    page = rbrowser.standalone_launch(patient="pat-garcia")
    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors {rstack.sandbox.base_url}" in policy
    admin = rbrowser.get(rstack.app.base_url + "/admin/login/")
    assert "frame-ancestors 'none'" in admin.headers["Content-Security-Policy"]
    assert admin.headers["X-Frame-Options"] == "DENY"
    leaks.check(page.text)


# --- HTML / script in patient data ----------------------------------------------------------------


@pytest.mark.e2e
def test_it_escapes_the_sandbox_patient_with_a_script_name(rbrowser, rstack, leaks):
    page = rbrowser.standalone_launch(patient="pat-xss")
    assert page.status_code == 200, page.text[:300]
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None  # only external scripts
    leaks.check(page.text)


@pytest.mark.e2e
def test_it_escapes_the_script_name_in_an_ehr_launchs_banner_panel(rbrowser, rstack, leaks):
    page = rbrowser.ehr_launch(patient="pat-xss")
    assert page.status_code == 200, page.text[:300]
    banner = rbrowser.get(page.url + "panel/banner/?partial=1")  # the EHR shows its own banner
    assert banner.status_code == 200
    assert "<script>alert(1)" not in banner.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in banner.text
    leaks.check(page.text, banner.text)


def test_it_escapes_markup_in_condition_and_vital_codes(client, make_launch, own, mocked, fhir_json):
    launch = make_launch()
    own(launch)
    conditions = fhir_json("conditions")
    conditions["entry"][0]["resource"]["code"] = {"text": "<iframe src=//evil.example.org></iframe>"}
    vitals = fhir_json("vitals")
    vitals["entry"][0]["resource"]["code"]["text"] = "</svg><script>alert(3)</script>"
    register_all(mocked, conditions=conditions, vitals=vitals)
    html = client.get(reverse("clinical:dashboard", kwargs={"handle": launch.handle})).content.decode()
    assert "<iframe src=//evil" not in html and "<script>alert(3)" not in html
    assert "&lt;iframe" in html


# --- CSS injection through smart_style_url --------------------------------------------------------

STYLE_URL = "https://ehr.example.org/style.json"
HOSTILE_STYLES = [
    {"color_background": "#fff;}body{background:url(https://evil.example.org/x)}"},
    {"color_text": "red; --x: expression(alert(1))"},
    {"font_family_body": "Arial'; } </style><script>alert(1)</script>"},
    {"dim_border_radius": "1px;background-image:url(//evil.example.org)"},
    {"color_highlight": '"><img src=x onerror=alert(1)>'},
]


@pytest.mark.parametrize("hostile", HOSTILE_STYLES)
def test_it_drops_hostile_style_values_from_the_page(client, make_launch, own, mocked, hostile, caplog):
    launch = make_launch(smart_style_url=STYLE_URL)
    own(launch)
    register_all(mocked)
    mocked.get(STYLE_URL, json={**hostile, "color_background": hostile.get("color_background", "#fefefe")})
    response = client.get(reverse("clinical:dashboard", kwargs={"handle": launch.handle}))
    html = response.content.decode()
    assert response.status_code == 200
    for marker in ("evil.example.org", "expression(", "onerror", "alert(1)", "url("):
        assert marker not in html
    style_call = next(c for c in mocked.calls if c.request.url == STYLE_URL)
    assert "Authorization" not in style_call.request.headers  # the token is for the FHIR server only
    assert_no_secrets(html, caplog.text, extra=[FHIR_TOKEN])


def test_it_ignores_an_oversized_style_document(client, make_launch, own, mocked):
    launch = make_launch(smart_style_url=STYLE_URL)
    own(launch)
    register_all(mocked)
    mocked.get(STYLE_URL, body=json.dumps({"color_text": "#101010", "pad": "x" * 40_000}))
    html = client.get(reverse("clinical:dashboard", kwargs={"handle": launch.handle})).content.decode()
    assert "--smart-fg" not in html


def test_it_never_fetches_a_style_url_on_another_plain_http_origin(client, make_launch, own, mocked):
    launch = make_launch(smart_style_url="http://evil.example.org/style.json")
    own(launch)
    register_all(mocked)
    assert client.get(reverse("clinical:dashboard", kwargs={"handle": launch.handle})).status_code == 200
    assert not any("evil.example.org" in c.request.url for c in mocked.calls)
    assert Launch.objects.get(pk=launch.pk).smart_style_url  # kept, just not used
