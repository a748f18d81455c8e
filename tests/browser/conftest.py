"""Fixtures for the browser tests: one stack, one Chromium, a fresh BrowserContext per test.

The stack is the e2e one (tests/stack.py): the sandbox EHR on http://127.0.0.1:PORT and the app
on http://localhost:PORT, two different sites, with the app's production settings (DEBUG off,
Secure + SameSite=None + Partitioned cookies, CSP frame-ancestors). Chromium is Debian's
(/usr/bin/chromium, `make browser-deps`); Playwright never downloads a browser here.

Fixtures are package-scoped: one Playwright, one browser and one stack for the whole browser
suite (these tests are the only users), torn down as soon as its last test ends. Session scope
would keep Chromium and two servers alive for the rest of the run, and Playwright's sync API
keeps an asyncio loop running in the main thread, which makes Django refuse ORM calls
(SynchronousOnlyOperation) in any database test that ran after it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.recorder import Recorder
from tests.stack import Stack, start_stack

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("BROWSER_TESTS_CHROMIUM", "/usr/bin/chromium")
# Without the networking switches Chromium calls Google services at start-up (refused here).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # Block unpartitioned third-party cookies (as Safari, Firefox and Chrome's opt-out do), so the
    # EHR-launch test proves the app's Partitioned (CHIPS) cookies, whatever Chromium's default.
    "--test-third-party-cookie-phaseout",
]
ACTION_TIMEOUT_MS = 15_000  # generous for a loaded 2-core machine, yet bounded
NAVIGATION_TIMEOUT_MS = 20_000
expect.set_options(timeout=ACTION_TIMEOUT_MS)


@pytest.fixture(scope="package")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("browser-stack")) as running:
        yield running


@pytest.fixture(scope="package")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: run `make browser-deps` (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def recorder(request, chromium, stack, artifacts) -> Iterator[Recorder]:
    """A fresh browser profile (context) that records every request and response.

    On teardown it saves a screenshot of the final page, then checks what every test must hold:
    no 5xx anywhere, no script error or CSP violation in any page, and no token or authorization
    code in a URL the app's origin was asked for.
    """
    stack.sandbox.reset_faults()
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    rec = Recorder(context, app_origin=stack.app.base_url)
    try:
        yield rec
        rec.screenshot(artifacts / f"{_safe(request.node.name)}.png")
        rec.assert_clean()
    finally:
        try:
            context.close()
        finally:
            stack.sandbox.reset_faults()


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)
