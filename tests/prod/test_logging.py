"""Logs are JSON lines with a request id, and never carry tokens or secrets."""

from __future__ import annotations

import io
import json
import logging
import sys
from unittest import mock

import pytest
from django.db.utils import OperationalError

from smartapp.logging import JsonFormatter, RedactionFilter, RequestIdFilter, redact

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def _console_handler() -> logging.Handler:
    """The handler settings.LOGGING attaches to the root logger."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(handlers) == 1
    return handlers[0]


@pytest.fixture
def log_lines():
    """Capture what the configured console handler writes, as parsed JSON lines."""
    handler = _console_handler()
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        handler.setStream(previous or sys.stderr)


def test_it_generates_a_request_id_and_echoes_it(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32
    assert first != second


def test_it_keeps_a_sane_incoming_request_id(client):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.2024:abc_DEF-1"})
    assert response["X-Request-ID"] == "lb-7f3a.2024:abc_DEF-1"


@pytest.mark.parametrize(
    "incoming",
    ["x" * 65, "two words", 'quote"d', "new\\nline", "<script>", "-leading-dash", "café"],
)
def test_it_replaces_an_insane_incoming_request_id(client, incoming):
    response = client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_it_writes_one_json_object_per_line_with_the_request_id(client, log_lines):
    with mock.patch("smartapp.health.connection.cursor", side_effect=OperationalError("down")):
        response = client.get("/readyz", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 503
    lines = log_lines()
    readiness = [line for line in lines if line["logger"] == "smartapp.health"]
    assert len(readiness) == 1
    entry = readiness[0]
    assert set(entry) >= {"time", "level", "logger", "message", "request_id"}
    assert entry["level"] == "WARNING"
    assert entry["message"] == "readiness check: database unreachable"
    assert entry["request_id"] == "req-123"
    assert entry["time"].endswith("+00:00")
    # django.request logs the 503 after the middleware has returned; it still has the id.
    django_request = [line for line in lines if line["logger"] == "django.request"]
    assert [line["request_id"] for line in django_request] == ["req-123"]
    assert django_request[0]["status_code"] == 503
    assert "request" not in django_request[0]  # objects are never dumped


def test_it_redacts_what_passes_through_the_configured_handler(log_lines):
    logging.getLogger("smartapp.test").warning(
        "token response %s",
        {"access_token": "at-secret-1", "refresh_token": "rt-secret-2"},
        extra={"note": JWT},
    )
    (entry,) = log_lines()
    assert "at-secret-1" not in json.dumps(entry)
    assert "rt-secret-2" not in json.dumps(entry)
    assert JWT not in json.dumps(entry)
    assert entry["request_id"] == "-"


SECRETS = [
    ("Authorization: Bearer abc.def-ghi~jkl", "abc.def-ghi~jkl"),
    ("headers={'Authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
    ("GET /callback?code=AUTHCODE123&state=s1", "AUTHCODE123"),
    ("GET /launch?iss=https://ehr/fhir&launch=LAUNCHTOKEN9", "LAUNCHTOKEN9"),
    ('{"access_token": "tok-1", "token_type": "Bearer"}', "tok-1"),
    ("refresh_token=rt-2&grant_type=refresh_token", "rt-2"),
    ("client_secret=s3cr3t", "s3cr3t"),
    ("client_assertion=" + JWT, JWT),
    ("id_token " + JWT, JWT),
    ("{'code': 'AUTHCODE456'}", "AUTHCODE456"),
    ("code_verifier=verifier-xyz", "verifier-xyz"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_it_redacts_secrets_from_text(text, secret):
    redacted = redact(text)
    assert secret not in redacted
    assert "[REDACTED]" in redacted


@pytest.mark.parametrize(
    "text", ["FHIR search Observation returned status code: 500", "refresh failed; launch cleared (ehr=3)"]
)
def test_it_leaves_harmless_text_readable(text):
    assert redact(text) == text


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_it_redacts_messages_and_args_through_the_filter(caplog, text, secret):
    caplog.handler.addFilter(RedactionFilter())
    with caplog.at_level(logging.INFO, logger="smartapp.test"):
        logging.getLogger("smartapp.test").info("upstream said %s", text)
        logging.getLogger("smartapp.test").info(text)
    assert len(caplog.records) == 2
    assert secret not in caplog.text
    assert all(record.args is None for record in caplog.records)


def test_it_redacts_tracebacks_in_json():
    formatter = JsonFormatter()
    try:
        raise ValueError("token endpoint rejected client_secret=hunter2 and Bearer abc123")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
        )
    RequestIdFilter().filter(record)
    entry = json.loads(formatter.format(record))
    assert "ValueError" in entry["exception"]
    assert "hunter2" not in entry["exception"]
    assert "abc123" not in entry["exception"]
