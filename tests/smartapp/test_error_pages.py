"""Every error page: the app's header, no markup artefacts, a next step, and a reference that is
the request id of the matching log line."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest
from django.test import Client

from smartapp.logging import RequestIdFilter
from smartapp.models import Launch
from smartapp.session import new_handle, remember_launch

REFERENCE = re.compile(r"Reference: <code>([^<]+)</code>")


class _Lines(logging.Handler):
    """Log records as the console handler sees them: with the request id the filter adds."""

    def __init__(self):
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.lines: list[tuple[str, str, str]] = []

    def emit(self, record):
        self.lines.append((record.request_id, record.name, record.getMessage()))


@pytest.fixture
def log_lines():
    handler = _Lines()
    loggers = [logging.getLogger(), logging.getLogger("django")]  # `django` does not propagate
    for logger in loggers:
        logger.addHandler(handler)
    previous = logging.getLogger("django.request").level
    logging.getLogger("django.request").setLevel(logging.WARNING)
    try:
        yield handler.lines
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        logging.getLogger("django.request").setLevel(previous)


def _check_page(response, log_lines, status: int, next_step: str) -> str:
    html = response.content.decode()
    assert response.status_code == status, html[:500]
    assert 'class="site-header"' in html and "SMART Dashboard</a>" in html  # the app's header
    assert "`" not in html  # no markdown artefacts
    assert next_step in html
    match = REFERENCE.search(html)
    assert match, "no Reference on the page"
    reference = match.group(1)
    assert reference == response["X-Request-ID"]
    assert any(rid == reference for rid, _, _ in log_lines), (reference, log_lines)
    return reference


@pytest.mark.django_db
def test_it_gives_the_invalid_launch_page_a_reference_logged_with_its_cause(client, ehr, log_lines):
    response = client.get("/launch", {"iss": "", "launch": "x"})
    reference = _check_page(response, log_lines, 400, "Start again")
    assert "no valid iss parameter" in response.content.decode()
    own_lines = [msg for rid, name, msg in log_lines if rid == reference and name == "smartapp.views"]
    assert own_lines == ["error page 400 'Invalid launch' (ehr=None, kind=-)"]


@pytest.mark.django_db
def test_it_gives_the_session_ended_page_a_reference(client, log_lines):
    response = client.get("/c/not-a-launch-of-this-session/")
    _check_page(response, log_lines, 401, "open the app again from your EHR")


@pytest.mark.django_db
def test_it_gives_the_clinical_message_page_a_reference_and_a_way_back(client, ehr, log_lines):
    launch = Launch.objects.create(
        handle=new_handle(), ehr=ehr, kind=Launch.Kind.EHR, access_token="t", patient_id="pat-1",
        scope="launch patient/*.rs",
    )  # fmt: skip
    session = client.session
    remember_launch(SimpleNamespace(session=session), launch)
    session.save()
    response = client.get(f"/c/{launch.handle}/p/pat-2/")
    _check_page(response, log_lines, 403, "Back to the summary")


@pytest.mark.django_db
def test_it_answers_an_unknown_page_with_the_apps_404(client, log_lines):
    response = client.get("/no-such-page/")
    _check_page(response, log_lines, 404, "Go to the start page")


@pytest.mark.django_db
def test_it_answers_a_bad_host_with_the_apps_400(client, log_lines):
    response = client.get("/", HTTP_HOST="attacker.example")
    _check_page(response, log_lines, 400, "Start again")


@pytest.mark.django_db
def test_it_answers_a_refusal_with_the_apps_403(settings, log_lines):
    settings.ROOT_URLCONF = "tests.smartapp.error_urls"
    response = Client().get("/forbidden/")
    _check_page(response, log_lines, 403, "ask your administrator")


@pytest.mark.django_db
def test_it_answers_a_crash_with_the_apps_500_and_logs_the_traceback_under_its_reference(
    settings, log_lines
):
    settings.ROOT_URLCONF = "tests.smartapp.error_urls"
    response = Client(raise_request_exception=False).get("/boom/")
    reference = _check_page(response, log_lines, 500, "contact your administrator")
    assert "boom for the 500 page test" not in response.content.decode()  # no internals shown
    assert any(rid == reference and name == "django.request" for rid, name, _ in log_lines)


@pytest.mark.django_db
def test_it_signs_out_with_the_header_and_a_way_back(client):
    response = client.post("/logout")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="site-header"' in html
    assert "Back to the start page" in html


@pytest.mark.django_db
def test_it_answers_a_form_without_its_csrf_token_with_the_apps_page(log_lines):
    response = Client(enforce_csrf_checks=True).post("/logout")
    reference = _check_page(response, log_lines, 403, "reload the page and try again")
    assert any(rid == reference and "CSRF" in message for rid, _, message in log_lines)
