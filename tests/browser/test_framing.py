"""The app may be framed by its registered EHRs only (CSP frame-ancestors, enforced by Chromium)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.flows import sign_in
from tests.static_server import serve_bytes

pytestmark = pytest.mark.browser

PROBE_CLIENT = "framing-probe"


def _framing_page(src: str) -> bytes:
    return f'<!doctype html><title>Framer</title><iframe id="app" src="{src}"></iframe>'.encode()


@pytest.fixture
def third_origin(stack) -> Iterator[str]:
    """A page on an origin no EHR registered (127.0.0.1, another free port) that frames the app."""
    with serve_bytes(_framing_page(stack.app.base_url + "/"), "text/html; charset=utf-8") as url:
        yield url


def _frame_of(page):
    return page.locator("#app, iframe.app").element_handle().content_frame()


def _wait_for_frame_url(page, prefix: str, timeout_s: float = 15.0) -> str:
    """The iframe's URL once it starts with `prefix` (Chromium swaps a refused frame's document)."""
    deadline = time.monotonic() + timeout_s
    url = _frame_of(page).url
    while not url.startswith(prefix) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
        url = _frame_of(page).url
    return url


def test_it_refuses_to_be_framed_by_an_unregistered_origin(recorder, stack, third_origin):
    home = stack.app.base_url + "/"
    recorder.expected_console.append("frame-ancestors")
    page = recorder.new_page()
    with page.expect_response(home) as answered:
        page.goto(third_origin + "/")
    assert answered.value.status == 200
    policy = answered.value.headers["content-security-policy"]
    assert f"frame-ancestors {stack.sandbox.base_url}" in policy
    assert third_origin not in policy

    # Chromium refuses the app's document and shows its error page instead: none of the app renders.
    assert _wait_for_frame_url(page, "chrome-error://").startswith("chrome-error://")
    expect(page.frame_locator("#app").get_by_role("heading", name="SMART Dashboard")).to_have_count(0)
    expect(page.frame_locator("#app").get_by_role("link", name="Sandbox EHR")).to_have_count(0)
    # ...and says why: the CSP, not anything else, refused it.
    assert any("frame-ancestors" in line and "blocked" in line for line in recorder.console), recorder.console

    # Positive control, same browser and same app page: the registered EHR's origin (another real
    # loopback server) frames it. A sandbox "app" whose launch URL is the app's home page puts it
    # in the chart's app tab, exactly as the EHR frames the real launch.
    stack.sandbox.register_client(
        {
            "client_id": PROBE_CLIENT,
            "client_secret": "framing-probe-secret",
            "redirect_uris": [stack.app.base_url + "/callback"],
            "launch_url": home,
            "name": "Framing probe",
        }
    )
    page.goto(stack.sandbox.base_url + "/ehr/")
    sign_in(page)
    page.goto(f"{stack.sandbox.base_url}/ehr/patients/pat-chen/?app={PROBE_CLIENT}")
    expect(page.frame_locator("iframe.app").get_by_role("heading", name="SMART Dashboard")).to_be_visible()
    assert _frame_of(page).url.startswith(home + "?iss=")
