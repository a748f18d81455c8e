"""Asymmetric client authentication end to end: the sandbox verifies the app's signed assertions
against the app's own JWKS URL, on the code exchange and on refresh."""

from __future__ import annotations

import pytest

from tests.stack import Browser, start_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def jwt_stack(tmp_path_factory):
    with start_stack(tmp_path_factory.mktemp("jwt-stack"), auth_method="private_key_jwt") as running:
        yield running


def test_it_launches_and_refreshes_with_private_key_jwt(jwt_stack):
    # Tokens that expire at once make the next page load refresh with a fresh client assertion.
    jwt_stack.sandbox.set_faults(jwt_stack.client_id, access_token_ttl=1)
    browser = Browser(jwt_stack)
    page = browser.standalone_launch(patient="pat-garcia")
    assert page.status_code == 200, page.text[:500]
    assert "Garcia, Maria Elena" in page.text
    reloaded = browser.get(page.url)
    assert reloaded.status_code == 200
    assert "Garcia, Maria Elena" in reloaded.text
    grants = jwt_stack.sandbox.stats()["token_by_client"][jwt_stack.client_id]
    assert grants.get("authorization_code") == 1
    assert grants.get("refresh_token", 0) >= 1
