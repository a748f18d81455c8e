"""A launch over time: silent token refresh, a revoked refresh token, two tabs in one browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.flows import (
    CHEN,
    CHEN_BANNER,
    GARCIA,
    GARCIA_BANNER,
    consent,
    expect_dashboard,
    pick_patient,
    standalone_launch,
)

pytestmark = pytest.mark.browser

# Seconds. Any TTL under SMART_REFRESH_SKEW_SECONDS (60) makes every page load refresh, so the
# test waits only until the sandbox itself would refuse the token.
TOKEN_TTL = 2


def _refresh_grants(stack) -> int:
    return stack.sandbox.stats()["token_by_client"].get(stack.client_id, {}).get("refresh_token", 0)


def test_it_refreshes_an_expired_access_token_without_showing_a_sign_in(recorder, stack):
    stack.sandbox.set_faults(stack.client_id, access_token_ttl=TOKEN_TTL)
    page = recorder.new_page()
    standalone_launch(page, stack, patient=GARCIA)
    expect_dashboard(page, GARCIA_BANNER)
    dashboard_url = page.url

    stack.sandbox.reset_stats()
    page.wait_for_timeout(TOKEN_TTL * 1000 + 300)  # the latest access token has now expired
    seen = len(recorder.requests)
    page.reload()

    expect_dashboard(page, GARCIA_BANNER)
    assert page.url == dashboard_url
    assert _refresh_grants(stack) >= 1
    # Only the app was visited: no trip to the EHR's sign-in or authorization pages.
    visited = [r.url for r in recorder.requests[seen:]]
    assert visited and all(url.startswith(stack.app.base_url + "/") for url in visited), visited


def test_it_explains_a_revoked_refresh_token_and_signs_in_again(recorder, stack):
    stack.sandbox.set_faults(stack.client_id, access_token_ttl=TOKEN_TTL)
    page = recorder.new_page()
    standalone_launch(page, stack, patient=GARCIA)
    expect_dashboard(page, GARCIA_BANNER)

    stack.sandbox.set_faults(stack.client_id, merge=True, revoke_refresh_tokens=True)
    page.wait_for_timeout(TOKEN_TTL * 1000 + 300)
    response = page.reload()

    assert response.status == 401
    expect(page.get_by_role("heading", name="Your session with the EHR has ended")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("no longer accepts this app's access")

    # The way back: sign in again through the EHR's authorization, to a working dashboard.
    stack.sandbox.reset_faults(stack.client_id)
    page.get_by_role("link", name="Sign in to Sandbox EHR again").click()
    pick_patient(page, GARCIA)  # still signed in at the EHR: no password asked
    consent(page)
    expect_dashboard(page, GARCIA_BANNER)
    assert recorder.server_errors() == []


def test_it_keeps_each_tabs_patient_across_reloads(recorder, stack):
    first = recorder.new_page()
    standalone_launch(first, stack, patient=GARCIA)
    expect_dashboard(first, GARCIA_BANNER)

    second = recorder.new_page()  # same browser profile, same cookies
    standalone_launch(second, stack, patient=CHEN, signed_in=True)
    expect_dashboard(second, CHEN_BANNER)
    assert first.url != second.url

    for _ in range(2):
        first.reload()
        second.reload()
        expect_dashboard(first, GARCIA_BANNER)
        expect_dashboard(second, CHEN_BANNER)
