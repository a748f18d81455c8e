"""Launching the app in a real browser: from the EHR's chart (cross-site iframe) and standalone."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.flows import CHEN, GARCIA, GARCIA_BANNER, expect_dashboard, sign_in, standalone_launch

pytestmark = pytest.mark.browser


def test_it_completes_an_ehr_launch_inside_the_ehrs_cross_site_iframe(recorder, stack):
    page = recorder.new_page()
    page.goto(stack.sandbox.base_url + "/ehr/")
    sign_in(page, "dr.smith")
    page.get_by_role("link", name=CHEN, exact=True).click()
    expect(page.locator(".banner")).to_contain_text(CHEN)  # the EHR's own patient banner
    page.get_by_role("link", name="SMART Dashboard", exact=True).click()

    app = page.frame_locator("iframe.app")
    expect_dashboard(app)
    encounter = app.locator("#panel-encounter")
    expect(encounter.get_by_role("heading", name="This encounter")).to_be_visible()
    expect(encounter).to_contain_text("in-progress")
    expect(encounter).to_contain_text("ongoing")
    expect(app.locator("#panel-problems")).to_contain_text("Hyperlipidemia")  # James Chen's problem list
    # The EHR shows the banner (need_patient_banner=false), so the app does not repeat it.
    expect(app.locator("#panel-banner")).to_have_count(0)
    frame = page.locator("iframe.app").element_handle().content_frame()
    assert re.fullmatch(rf"{re.escape(stack.app.base_url)}/c/[\w-]+/", frame.url), frame.url
    # The whole authorization ran in the frame: launch, EHR's authorize, callback, dashboard.
    assert recorder.statuses("/launch") == [302]
    assert recorder.statuses("/callback") == [302]
    assert urlsplit(page.url).netloc == urlsplit(stack.sandbox.base_url).netloc
    # The app's session lives in a cookie partitioned under the EHR's site (CHIPS), as set in the frame.
    session = next(c for c in recorder.context.cookies(stack.app.base_url) if c["name"] == "sessionid")
    ehr_site = "http://" + urlsplit(stack.sandbox.base_url).hostname
    assert session.get("partitionKey") == ehr_site, session.get("partitionKey")
    assert (session["secure"], session["sameSite"], session["httpOnly"]) == (True, "None", True)
    # Control: this browser blocks unpartitioned third-party cookies, so only CHIPS kept the session.
    jar = frame.evaluate(
        "() => { document.cookie = 'unpartitioned=1; Secure; SameSite=None; Path=/';"
        " document.cookie = 'partitioned=1; Secure; SameSite=None; Path=/; Partitioned';"
        " return document.cookie; }"
    )
    assert jar.split("; ") == ["partitioned=1"], jar


def test_it_completes_a_standalone_launch_to_the_chosen_patients_dashboard(recorder, stack):
    page = recorder.new_page()
    standalone_launch(page, stack, patient=GARCIA)

    expect_dashboard(page, GARCIA_BANNER)
    expect(page.locator("#panel-problems")).to_contain_text("Hypertensive disorder")
    expect(page).to_have_url(re.compile(rf"^{re.escape(stack.app.base_url)}/c/[\w-]+/$"))
    # The code came back on the /callback hop (which the fixture's URL checks then vet).
    callbacks = [u for u in recorder.app_urls() if urlsplit(u).path == "/callback"]
    assert len(callbacks) == 1 and "code=" in callbacks[0]


def test_it_explains_a_launch_from_an_unknown_issuer(recorder, stack):
    page = recorder.new_page()
    query = urlencode({"iss": "https://unknown-ehr.example.org/fhir", "launch": "abc123"})
    response = page.goto(f"{stack.app.base_url}/launch?{query}")

    assert response.status == 400
    expect(page.get_by_role("heading", name="Unknown EHR")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("This app is not registered with the EHR")
    expect(page.get_by_role("link", name="Start again")).to_be_visible()


def test_it_signs_out_from_inside_the_ehrs_frame_with_csrf_intact(recorder, stack):
    page = recorder.new_page()
    page.goto(stack.sandbox.base_url + "/ehr/")
    sign_in(page, "dr.smith")
    page.get_by_role("link", name=CHEN, exact=True).click()
    page.get_by_role("link", name="SMART Dashboard", exact=True).click()
    app = page.frame_locator("iframe.app")
    expect_dashboard(app)
    dashboard_url = page.locator("iframe.app").element_handle().content_frame().url

    app.get_by_text("About this launch").click()
    expect(app.locator(".launch-details")).to_contain_text("patient/Observation.rs")
    app.get_by_role("button", name="Sign out").click()

    # The POST carried the CSRF cookie (SameSite=None; Partitioned) and token from inside the frame.
    expect(app.get_by_role("heading", name="You are signed out")).to_be_visible()
    assert recorder.statuses("/logout") == [200]
    # The launch is gone: its dashboard URL now says the session ended.
    page.locator("iframe.app").element_handle().content_frame().goto(dashboard_url)
    expect(app.get_by_role("heading", name="Your session with the EHR has ended")).to_be_visible()
