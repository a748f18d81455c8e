"""The population page in Chromium: a real sync_population against the sandbox, then a staff user
logs in, filters, sorts, pages and follows a patient's launch link."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from smartapp import keys
from tests.browser.conftest import ARTIFACTS
from tests.net import REPO

pytestmark = pytest.mark.browser

ADMIN = ("population-admin", "population-Correct-Horse-7")
BACKEND = "population-backend"


@pytest.fixture(scope="module")
def synced(stack) -> tuple[str, str]:
    """A backend client at the sandbox, its registration in the app, one sync, a staff user."""
    private = keys.generate_private_jwks()
    public = {"keys": [k.public_jwk() for k in keys._parse(json.dumps(private), "test")]}
    stack.sandbox.register_client(
        {"client_id": BACKEND, "jwks": public, "redirect_uris": [stack.app.base_url + "/callback"]}
    )
    username, password = ADMIN
    stack.app.manage(
        "shell", "-c",
        "from django.contrib.auth import get_user_model as g; "
        "from smartapp.models import BackendRegistration, Ehr; U = g(); "
        f"U.objects.filter(username={username!r}).exists() or "
        f"U.objects.create_superuser({username!r}, '', {password!r}); "
        f"BackendRegistration.objects.get_or_create(ehr=Ehr.objects.get(slug={stack.slug!r}), "
        f"defaults=dict(client_id={BACKEND!r}, group_id='grp-htn', alg='ES384'))",
    )  # fmt: skip
    stack.sandbox.set_faults(BACKEND, bulk_retry_after=0)
    env = {**stack.app.env, "SMART_JWKS": json.dumps(private)}
    done = subprocess.run(
        [sys.executable, "manage.py", "sync_population"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"status":"succeeded"' in done.stdout
    return ADMIN


def _login(page: Page, stack, admin, path: str) -> None:
    page.goto(stack.app.base_url + path)
    page.get_by_label("Username").fill(admin[0])
    page.get_by_label("Password").fill(admin[1])
    page.get_by_role("button", name="Log in").click()


def _patient_ids(page: Page) -> list[str]:
    return page.locator("table.population-table tbody th span.muted").all_inner_texts()


def test_staff_filter_sort_and_open_a_patient(recorder, stack, synced):
    page = recorder.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    _login(page, stack, synced, "/population/")
    page.get_by_role("link", name="Hypertension clinic").click()
    expect(page.get_by_role("heading", name="Sandbox EHR: Hypertension clinic (grp-htn)")).to_be_visible()
    everyone = _patient_ids(page)
    assert {"pat-garcia", "pat-ehrstyle", "pat-synthea"} <= set(everyone)
    assert "pat-chen" not in everyone

    page.get_by_label("BP uncontrolled").check()
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"[?&]bp=1"))
    uncontrolled = _patient_ids(page)
    assert "pat-ehrstyle" in uncontrolled and set(uncontrolled) <= set(everyone)
    assert all(
        cell == "no"
        for cell in page.locator("table.population-table tbody td:nth-child(4)").all_inner_texts()
    )

    page.get_by_role("link", name="Latest BP").click()
    expect(page).to_have_url(re.compile(r"\?bp=1&sort=bp$"))
    systolics = [
        int(t.split("/")[0])
        for t in page.locator("table.population-table tbody td:nth-child(3)").all_inner_texts()
    ]
    assert systolics == sorted(systolics, reverse=True)
    page.screenshot(path=str(ARTIFACTS / "population-page.png"), full_page=True)

    first = page.locator("table.population-table tbody th a").first
    assert first.get_attribute("href") == f"/standalone/{stack.slug}/"


def test_the_page_is_not_reachable_without_a_staff_login(recorder, stack, synced):
    page = recorder.new_page()
    page.goto(stack.app.base_url + "/population/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/population/"))


def test_the_population_page_is_accessible(recorder, stack, synced):
    from tests.browser.test_accessibility import AXE, _axe, _keyboard

    page = recorder.new_page()
    _login(page, stack, synced, "/population/")
    page.get_by_role("link", name="Hypertension clinic").click()
    expect(page.get_by_role("heading", name="Sandbox EHR: Hypertension clinic (grp-htn)")).to_be_visible()
    findings: dict = {}
    _axe(page, AXE.read_text(), "population", findings)
    _keyboard(page, "population")
