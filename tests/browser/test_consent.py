"""What the person sees when they refuse the app, or grant it only part of what it asks."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.flows import GARCIA, GARCIA_BANNER, expect_dashboard, standalone_launch

pytestmark = pytest.mark.browser


def test_it_says_access_was_denied_and_offers_to_try_again(recorder, stack):
    page = recorder.new_page()
    standalone_launch(page, stack, patient=GARCIA, action="Deny")

    expect(page.get_by_role("heading", name="Sign-in did not complete")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Access was not granted")
    assert recorder.statuses("/callback") == [403]
    assert page.url.startswith(stack.app.base_url + "/callback?")

    # The retry link goes back through the EHR's authorization (already signed in there).
    page.get_by_role("link", name="Try signing in to Sandbox EHR again").click()
    expect(page.get_by_role("heading", name="Choose a patient")).to_be_visible()


def test_it_says_which_panel_is_not_authorized_when_a_scope_is_unticked(recorder, stack):
    page = recorder.new_page()
    standalone_launch(page, stack, patient=GARCIA, untick=("patient/Condition.rs",))

    expect_dashboard(page, GARCIA_BANNER)
    problems = page.locator("#panel-problems")
    expect(problems.get_by_role("status")).to_have_text("Not authorized: patient/Condition.rs not granted.")
    expect(problems).not_to_contain_text("Hypertensive disorder")
    # The panels whose scopes were granted still show data.
    expect(page.locator("#panel-vitals")).to_contain_text("Blood pressure")
