"""What a new user and an admin see first, at the sizes they use: the admin's EHR list and form at
1280 px, and the start, error, consent and chart pages on a laptop (1024×700) and a phone (390×844).
Screenshots land in test-artifacts/browser/first-hour/ for people to look at."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS
from tests.browser.flows import GARCIA, sign_in

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "first-hour"
ADMIN = ("first-hour-admin", "first-hour-Correct-Horse-9")
SIZES = {"laptop": (1024, 700), "phone": (390, 844)}


@pytest.fixture(scope="module")
def admin_user(stack) -> tuple[str, str]:
    username, password = ADMIN
    stack.app.manage(
        "shell", "-c",
        "from django.contrib.auth import get_user_model as g; U = g(); "
        f"U.objects.filter(username={username!r}).exists() or "
        f"U.objects.create_superuser({username!r}, '', {password!r})",
    )  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    return ADMIN


def _admin_login(page: Page, stack, admin_user, path: str) -> None:
    page.goto(stack.app.base_url + path)
    page.get_by_label("Username").fill(admin_user[0])
    page.get_by_label("Password").fill(admin_user[1])
    page.get_by_role("button", name="Log in").click()


def _overflow(page: Page, selector: str = "html") -> int:
    """How many CSS pixels the element's content sticks out sideways (0 when it fits)."""
    script = "(sel) => { const el = document.querySelector(sel); return el.scrollWidth - el.clientWidth; }"
    return page.evaluate(script, selector)


def test_it_fits_the_admin_ehr_list_and_groups_its_form_at_1280_px(recorder, stack, admin_user):
    page = recorder.new_page()
    page.set_viewport_size({"width": 1280, "height": 800})
    _admin_login(page, stack, admin_user, "/admin/smartapp/ehr/")
    expect(page.get_by_role("heading", name="Select EHR to change")).to_be_visible()
    page.screenshot(path=str(SHOTS / "admin-ehr-list-1280.png"), full_page=True)
    assert _overflow(page, "#changelist .results") <= 0, "the EHR list is wider than its column"
    headers = [h.strip().lower() for h in page.locator("#result_list thead th").all_inner_texts()]
    assert headers[1:] == ["name", "issuer (fhir base url)", "client auth", "enabled", "status"]
    badge = page.locator("#result_list td.field-status .ehr-badge")
    expect(badge).to_be_visible()
    assert badge.bounding_box()["x"] + badge.bounding_box()["width"] <= 1280

    page.get_by_role("link", name="Sandbox EHR").click()
    expect(page.get_by_role("heading", name="Change EHR")).to_be_visible()
    page.screenshot(path=str(SHOTS / "admin-ehr-form-1280.png"), full_page=True)
    legends = [t.strip() for t in page.locator("fieldset h2").all_inner_texts()]
    for group in ("Identity", "Client authentication", "Scopes", "Embedding", "Discovery (read-only)"):
        assert group in legends, legends
    for field in ("name", "slug", "iss", "client_id", "auth_method", "client_secret", "ehr_launch_scope",
                  "standalone_scope", "frame_ancestors"):  # fmt: skip
        expect(page.locator(f"#id_{field}_helptext")).not_to_be_empty()
    assert _overflow(page) <= 0


@pytest.mark.parametrize("size", SIZES)
def test_it_lays_out_the_first_pages_on_a_laptop_and_a_phone(recorder, stack, size):
    width, height = SIZES[size]
    page = recorder.new_page()
    page.set_viewport_size({"width": width, "height": height})

    shots = {
        "start": stack.app.base_url + "/",
        "error": stack.app.base_url + "/launch?iss=&launch=x",
        "not-found": stack.app.base_url + "/no-such-page/",
    }
    for name, url in shots.items():
        page.goto(url)
        page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)
        assert _overflow(page) <= 0, f"{name} scrolls sideways at {width} px"

    page.goto(stack.sandbox.base_url + "/ehr/")
    sign_in(page)
    page.goto(stack.sandbox.base_url + "/ehr/patients/pat-odd/")
    expect(page.get_by_text("Feels dizzy when standing up quickly")).to_be_visible()
    page.screenshot(path=str(SHOTS / f"sandbox-chart-{size}.png"), full_page=True)

    page.goto(f"{stack.app.base_url}/standalone/{stack.slug}/")
    page.get_by_label(GARCIA, exact=True).check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name=re.compile("^Authorize "))).to_be_visible()
    page.screenshot(path=str(SHOTS / f"sandbox-consent-{size}.png"), full_page=True)
    assert _overflow(page) <= 0, f"the consent page scrolls sideways at {width} px"
