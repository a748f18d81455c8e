"""What a person does in the sandbox EHR and the app, as Playwright steps on a page or frame."""

from __future__ import annotations

import re

from playwright.sync_api import Frame, FrameLocator, Page, expect

from tests.stack import DEMO_PASSWORD, Stack

# Patients as the sandbox's pages list them (given family) and as the app's banner shows them.
GARCIA = "Maria Elena Garcia"
GARCIA_BANNER = "Garcia, Maria Elena"
CHEN = "James Chen"
CHEN_BANNER = "Chen, James"


def sign_in(where: Page | Frame | FrameLocator, username: str = "dr.smith") -> None:
    """Answer the sandbox's sign-in page."""
    expect(where.get_by_role("heading", name="Sign in")).to_be_visible()
    where.get_by_label("Username").fill(username)
    where.get_by_label("Password").fill(DEMO_PASSWORD)
    where.get_by_role("button", name="Sign in").click()


def pick_patient(page: Page, name: str) -> None:
    expect(page.get_by_role("heading", name="Choose a patient")).to_be_visible()
    page.get_by_label(name, exact=True).check()
    page.get_by_role("button", name="Continue").click()


def consent(page: Page, action: str = "Approve", untick: tuple[str, ...] = ()) -> None:
    """The sandbox's consent page: untick some scopes, then Approve or Deny."""
    expect(page.get_by_role("heading", name=re.compile(r"^Authorize "))).to_be_visible()
    for scope in untick:
        # Each box is labelled in words, with the raw scope beside it: find it by the raw scope.
        page.locator(f'input[name="scope"][value="{scope}"]').uncheck()
    page.get_by_role("button", name=action, exact=True).click()


def standalone_launch(
    page: Page,
    stack: Stack,
    patient: str = GARCIA,
    action: str = "Approve",
    untick: tuple[str, ...] = (),
    signed_in: bool = False,
) -> None:
    """From the app's home page through the sandbox's sign-in, patient picker and consent."""
    page.goto(stack.app.base_url + "/")
    page.get_by_role("link", name="Sandbox EHR", exact=True).click()
    if not signed_in:
        sign_in(page)
    pick_patient(page, patient)
    consent(page, action=action, untick=untick)


def expect_dashboard(where: Page | Frame | FrameLocator, banner: str | None = None) -> None:
    """The dashboard is on screen with its panels rendered; `banner` is the patient name it shows."""
    expect(where.get_by_role("heading", name="Clinical summary")).to_be_visible()
    expect(where.locator("#panel-vitals")).to_contain_text("Blood pressure")
    expect(where.get_by_role("heading", name="Lab results")).to_be_visible()
    expect(where.get_by_role("heading", name="Problems")).to_be_visible()
    if banner is not None:
        expect(where.locator("#panel-banner .banner-name dd")).to_have_text(banner)
