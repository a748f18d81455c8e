"""A user-level launch (no patient in context): search the EHR, then open a patient's dashboard."""

from __future__ import annotations

import re

import pytest

from smartapp.models import DASHBOARD_RESOURCES, DEFAULT_STANDALONE_SCOPE

pytestmark = pytest.mark.e2e

USER_SCOPE = "openid fhirUser online_access " + " ".join(f"user/{t}.rs" for t in DASHBOARD_RESOURCES)


@pytest.fixture
def user_level_scopes(stack):
    """Switch the registered EHR's standalone scopes to user-level ones for one test."""

    def set_scope(scope: str) -> None:
        stack.app.manage(
            "register_ehr", "--name", "Sandbox EHR", "--iss", stack.sandbox.fhir_base,
            "--client-id", stack.client_id, "--standalone-scope", scope,
        )  # fmt: skip

    set_scope(USER_SCOPE)
    yield
    set_scope(DEFAULT_STANDALONE_SCOPE)


def test_it_searches_for_a_patient_and_opens_their_dashboard(browser, stack, user_level_scopes):
    landing = browser.standalone_launch()
    assert landing.status_code == 200
    assert "This launch has no patient in context" in landing.text
    handle = re.search(r"/c/([\w-]+)/", landing.url).group(1)

    results = browser.get(f"{stack.app.base_url}/c/{handle}/patients/", params={"q": "Garcia"})
    assert results.status_code == 200
    link = re.search(r'href="(/c/[\w-]+/p/pat-garcia/)"', results.text)
    assert link, results.text[:2000]

    dashboard = browser.get(stack.app.base_url + link.group(1))
    assert dashboard.status_code == 200
    assert "Garcia, Maria Elena" in dashboard.text
    assert "Vital signs" in dashboard.text
