"""Accessibility of the pages a new user and an admin meet, in the demo's own styles.

axe-core (the npm package, pinned in package-lock.json, installed by `make browser-deps`) runs in
each page: no serious or critical violation is allowed; the moderate and minor ones are written to
test-artifacts/a11y/ for people to read. The keyboard check tabs through each page: every link,
button and field must be reached, and must show a visible focus indicator when it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from smartapp.models import DASHBOARD_RESOURCES, DEFAULT_STANDALONE_SCOPE
from tests.browser.conftest import ARTIFACTS, REPO
from tests.browser.flows import GARCIA, GARCIA_BANNER, consent, expect_dashboard, sign_in, standalone_launch

pytestmark = pytest.mark.browser

AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
REPORTS = ARTIFACTS.parent / "a11y"
BLOCKING = {"serious", "critical"}
ADMIN = ("a11y-admin", "a11y-Correct-Horse-9")
USER_SCOPE = "openid fhirUser online_access " + " ".join(f"user/{t}.rs" for t in DASHBOARD_RESOURCES)

# Everything the keyboard can act on; hidden, disabled and inert elements excepted in the page.
_FOCUSABLE_JS = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]';
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' "' +
      (el.getAttribute('aria-label') || el.innerText || el.value || el.name || el.title ||
       el.outerHTML).trim().slice(0, 60) + '"';
  return [...document.querySelectorAll(selector)]
    .filter(el => el.tabIndex >= 0 && !el.disabled && !el.closest('[inert]')
                  && el.checkVisibility({visibilityProperty: true}))
    .map(describe);
}"""
_ACTIVE_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  const ring = style.boxShadow && style.boxShadow !== 'none';
  const describe = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' "' +
      (el.getAttribute('aria-label') || el.innerText || el.value || el.name || el.title ||
       el.outerHTML).trim().slice(0, 60) + '"';
  return {name: describe, visible: outline || ring, focusVisible: el.matches(':focus-visible')};
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE.relative_to(REPO)} is missing: run `make browser-deps` (npm ci)")
    return AXE.read_text()


@pytest.fixture(scope="module")
def report() -> Iterator[dict]:
    """Moderate and minor violations per page, written out once every page was checked."""
    found: dict[str, list[dict]] = {}
    yield found
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "axe-report.json").write_text(json.dumps(found, indent=2))
    lines = ["# axe-core: moderate and minor findings (serious and critical fail the tests)", ""]
    for page, violations in sorted(found.items()):
        lines.append(f"## {page}")
        lines += [f"- {v['impact']}: {v['id']} — {v['help']} ({v['nodes']} element(s))" for v in violations]
        lines += ["- none"] if not violations else []
        lines.append("")
    (REPORTS / "axe-report.md").write_text("\n".join(lines))


def _axe(page: Page, axe_source: str, name: str, report: dict, exclude: tuple[str, ...] = ()) -> None:
    """Run axe-core in `page` (evaluated, not a script tag: the app's CSP allows no inline script)."""
    page.evaluate(axe_source)
    context = {"exclude": [[selector] for selector in exclude]} if exclude else "document"
    results = page.evaluate(
        "async (context) => (await axe.run(context === 'document' ? document : context, "
        "{resultTypes: ['violations']})).violations",
        context,
    )
    blocking = [v for v in results if v["impact"] in BLOCKING]
    report[name] = [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": len(v["nodes"])}
        for v in results
        if v["impact"] not in BLOCKING
    ]
    assert not blocking, f"{name}: " + "; ".join(
        f"{v['impact']} {v['id']} ({v['help']}): " + ", ".join(n["target"][0] for n in v["nodes"][:5])
        for v in blocking
    )


def _keyboard(page: Page, name: str, limit: int = 250) -> None:
    """Tab through the page: every control is reached, each with a visible focus indicator."""
    wanted = page.evaluate(_FOCUSABLE_JS)
    page.evaluate("() => document.activeElement?.blur()")  # start from the top, as on landing
    reached: list[str] = []
    invisible: list[str] = []
    for _ in range(min(limit, 2 * len(wanted) + 5)):
        page.keyboard.press("Tab")
        active = page.evaluate(_ACTIVE_JS)
        if active is None:
            continue
        if reached and active["name"] == reached[0] and len(reached) >= len(wanted):
            break  # round the page once
        reached.append(active["name"])
        if not active["visible"]:
            invisible.append(active["name"])
    missing = [control for control in wanted if control not in reached]
    assert not missing, f"{name}: not reachable with Tab: {missing}"
    assert not invisible, f"{name}: no visible focus indicator on {sorted(set(invisible))}"


def _check(page: Page, axe_source: str, report: dict, name: str, **kwargs) -> None:
    page.screenshot(path=str(REPORTS / f"{name}.png"), full_page=True)
    # What hides behind a disclosure (history tables, "About this launch" and its Sign out) counts too.
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    _axe(page, axe_source, name, report, **kwargs)
    _keyboard(page, name)


@pytest.fixture(scope="module", autouse=True)
def _reports_dir() -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def admin_user(stack) -> tuple[str, str]:
    username, password = ADMIN
    stack.app.manage(
        "shell", "-c",
        "from django.contrib.auth import get_user_model as g; U = g(); "
        f"U.objects.filter(username={username!r}).exists() or "
        f"U.objects.create_superuser({username!r}, '', {password!r})",
    )  # fmt: skip
    return ADMIN


def test_it_has_no_serious_violations_on_the_start_and_error_pages(recorder, stack, axe_source, report):
    page = recorder.new_page()
    page.goto(stack.app.base_url + "/")
    expect(page.get_by_role("heading", name="SMART Dashboard")).to_be_visible()
    _check(page, axe_source, report, "start-page")

    errors = {
        "error-invalid-launch": "/launch?iss=&launch=x",
        "error-unknown-ehr": "/launch?iss=https%3A%2F%2Funknown.example.org%2Ffhir&launch=x",
        "error-session-ended": "/c/not-a-launch/",
        "error-not-found": "/no-such-page/",
    }
    for name, path in errors.items():
        page.goto(stack.app.base_url + path)
        expect(page.locator(".reference")).to_contain_text("Reference:")
        expect(page.locator(".site-header")).to_be_visible()
        _check(page, axe_source, report, name)


def _sign_out(page: Page, stack) -> None:
    page.goto(stack.app.base_url + "/")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()


def test_it_has_no_serious_violations_on_a_dashboard_and_another_patients_page(
    recorder, stack, axe_source, report
):
    page = recorder.new_page()
    standalone_launch(page, stack, patient=GARCIA)
    expect_dashboard(page, GARCIA_BANNER)
    _check(page, axe_source, report, "dashboard")

    # The one-patient launch refuses another patient: the clinical message page.
    handle = re.search(r"/c/([\w-]+)/", page.url).group(1)
    page.goto(f"{stack.app.base_url}/c/{handle}/p/pat-chen/")
    expect(page.get_by_role("link", name="Back to the summary")).to_be_visible()
    _check(page, axe_source, report, "error-other-patient")


@pytest.fixture
def user_level(stack) -> Iterator[None]:
    """The registered EHR asks for user-level scopes in standalone launch: no patient in context."""

    def set_scope(scope: str) -> None:
        stack.app.manage(
            "register_ehr", "--name", "Sandbox EHR", "--iss", stack.sandbox.fhir_base,
            "--client-id", stack.client_id, "--standalone-scope", scope,
        )  # fmt: skip

    set_scope(USER_SCOPE)
    try:
        yield
    finally:
        set_scope(DEFAULT_STANDALONE_SCOPE)


def test_it_has_no_serious_violations_on_the_patient_search_and_signed_out_page(
    recorder, stack, axe_source, report, user_level
):
    page = recorder.new_page()
    page.goto(stack.app.base_url + "/")
    page.get_by_role("link", name="Sandbox EHR", exact=True).click()
    sign_in(page)
    consent(page)
    expect(page.get_by_role("heading", name="Find a patient")).to_be_visible()
    page.get_by_label("Patient name").fill("Garcia")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name=re.compile("Garcia"))).to_be_visible()
    _check(page, axe_source, report, "patient-search")

    # Signing out is checked here rather than after the dashboard (above), whose checks already
    # take most of a test's time: the signed-out page is the same after either launch.
    _sign_out(page, stack)
    _check(page, axe_source, report, "signed-out")


def test_it_has_no_serious_violations_in_the_admin_ehr_list(recorder, stack, axe_source, report, admin_user):
    page = recorder.new_page()
    page.goto(stack.app.base_url + "/admin/smartapp/ehr/")
    page.get_by_label("Username").fill(admin_user[0])
    page.get_by_label("Password").fill(admin_user[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Select EHR to change")).to_be_visible()
    _check(page, axe_source, report, "admin-ehr-list")


def test_it_has_no_serious_violations_in_the_sandbox_chart_and_consent(recorder, stack, axe_source, report):
    """The demo's other half: the simulated EHR a new user opens first (its Sign out button too)."""
    page = recorder.new_page()
    page.goto(stack.sandbox.base_url + "/ehr/")
    sign_in(page)
    page.goto(stack.sandbox.base_url + "/ehr/patients/pat-odd/")
    expect(page.get_by_role("heading", name="Problems")).to_be_visible()
    _check(page, axe_source, report, "sandbox-chart")

    page.goto(stack.app.base_url + f"/standalone/{stack.slug}/")
    page.get_by_label(GARCIA, exact=True).check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name=re.compile("^Authorize "))).to_be_visible()
    _check(page, axe_source, report, "sandbox-consent")


def test_it_serves_a_favicon_on_both_servers(recorder, stack):
    page = recorder.new_page()
    for base in (stack.app.base_url, stack.sandbox.base_url):
        icon = page.request.get(base + "/favicon.ico")
        assert icon.status == 200, base
        assert icon.headers["content-type"].startswith("image/svg+xml"), base
