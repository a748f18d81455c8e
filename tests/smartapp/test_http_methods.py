"""HEAD answers like GET without a body; on the launch flow it starts and completes nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from smartapp import session
from tests.smartapp.conftest import ISS


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/.well-known/jwks.json"])
def test_it_answers_head_like_get(client, ehr, path, app_keys):
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]


@pytest.mark.parametrize(
    "path", [f"/launch?iss={ISS}&launch=L1", "/standalone/test-ehr/", "/callback?state=s&code=c"]
)
def test_it_answers_head_on_the_launch_flow_without_running_it(client, mocked, ehr, path):
    response = client.head(path)
    assert response.status_code == 200 and response.content == b""
    assert not mocked.calls  # no discovery, no token exchange
    assert not client.session.get(session.PENDING_KEY)  # no pending authorization made


def test_it_still_refuses_other_methods(client, db):
    assert client.post("/readyz").status_code == 405
    assert client.put("/").status_code == 405


def test_it_lands_an_admin_login_with_a_foreign_next_on_the_admin_index(client, db):
    get_user_model().objects.create_user("staff", password="a-long-test-password-1", is_staff=True)
    response = client.post(
        "/admin/login/?next=https://evil.example.org/",
        {"username": "staff", "password": "a-long-test-password-1", "next": "https://evil.example.org/"},
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get(response["Location"]).status_code == 200
