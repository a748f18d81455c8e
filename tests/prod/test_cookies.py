"""Session and CSRF cookies survive a cross-site iframe: Secure, SameSite=None, Partitioned."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory


def _assert_iframe_safe(morsel) -> None:
    rendered = morsel.OutputString()
    assert morsel["secure"]
    assert morsel["samesite"] == "None"
    assert morsel["httponly"]
    assert rendered.endswith("; Partitioned")
    assert rendered.count("Partitioned") == 1


@pytest.mark.django_db
def test_it_partitions_the_csrf_cookie(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    _assert_iframe_safe(response.cookies["csrftoken"])


@pytest.mark.django_db
def test_it_partitions_the_session_cookie(client):
    get_user_model().objects.create_user("staff", password="pw-123-long-enough", is_staff=True)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "staff", "password": "pw-123-long-enough"}
    )
    assert response.status_code == 302
    _assert_iframe_safe(response.cookies["sessionid"])


@pytest.mark.django_db
def test_it_sends_partitioned_in_the_raw_set_cookie_header():
    environ = RequestFactory().get("/admin/login/").environ
    captured = {}

    def start_response(status, headers):
        captured["headers"] = headers

    response = WSGIHandler()(environ, start_response)
    response.close()
    cookies = [value.strip() for name, value in captured["headers"] if name == "Set-Cookie"]
    csrf = [value for value in cookies if value.startswith("csrftoken=")]
    assert len(csrf) == 1
    assert "SameSite=None" in csrf[0]
    assert "Secure" in csrf[0]
    assert csrf[0].endswith("; Partitioned")


@pytest.mark.django_db
def test_it_can_be_turned_off(client, settings):
    settings.SMART_PARTITIONED_COOKIES = False
    response = client.get("/admin/login/")
    assert "Partitioned" not in response.cookies["csrftoken"].OutputString()


@pytest.mark.django_db
def test_it_never_partitions_an_insecure_cookie(client, settings):
    settings.CSRF_COOKIE_SECURE = False  # CHIPS requires Secure; browsers reject it otherwise
    response = client.get("/admin/login/")
    assert "Partitioned" not in response.cookies["csrftoken"].OutputString()


@pytest.mark.django_db
def test_it_keeps_csrf_working_for_a_same_origin_post_from_inside_the_iframe():
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    get_user_model().objects.create_user("staff", password="pw-123-long-enough", is_staff=True)
    token = browser.get("/admin/login/").cookies["csrftoken"].value
    form = {"username": "staff", "password": "pw-123-long-enough", "csrfmiddlewaretoken": token}
    # The browser sends Origin: the app's own origin, even when the page is inside the EHR's iframe.
    ok = browser.post("/admin/login/", form, headers={"Origin": "http://testserver"})
    assert ok.status_code == 302
    forged = Client(enforce_csrf_checks=True).post(
        "/admin/login/", form, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
