"""Structured logs: request ids, one JSON object per line, and redaction of secrets.

The JSON formatter is python-json-logger's, with redaction and plain values only. The request id
travels in a contextvar, so every record logged while a request is being served (in this thread)
carries it, and it is echoed to the client as `X-Request-ID` so a
support call can be matched to the logs. Redaction is defence in depth: code must not log
tokens in the first place, but if it does, the handler scrubs them before they are written.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger import json as jsonlogger

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_MAX_LENGTH = 64  # AuditEvent.request_id holds 64 characters.
# A caller's id is reused only if it is short and plain: no spaces, quotes or control characters
# that could forge log lines or headers.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,63}")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REDACTED = "[REDACTED]"


def current_request_id() -> str:
    """The id of the request being served, or "-" outside a request."""
    return _request_id.get()


def _incoming_request_id(request: HttpRequest) -> str | None:
    value = request.headers.get(REQUEST_ID_HEADER, "")
    if len(value) <= REQUEST_ID_MAX_LENGTH and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


class RequestIdMiddleware:
    """Give each request an id (a sane incoming X-Request-ID, else a new one) and echo it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _incoming_request_id(request) or uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    """Put the current request id on every record as `record.request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # django.request logs after the middleware chain has returned, with the request as an
            # extra; take the id from it then.
            from_request = getattr(getattr(record, "request", None), "request_id", None)
            record.request_id = from_request if isinstance(from_request, str) else current_request_id()
        return True


# --- Redaction -------------------------------------------------------------------------------
_SENSITIVE_KEYS = (
    r"access_token|refresh_token|id_token|client_secret|client_assertion|code_verifier"
    r"|password|passwd|api_key|secret"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JWTs / JWS / JWE (base64url JSON header starts with "eyJ"), anywhere in a string.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){0,3}"), REDACTED),
    # Authorization header values (Bearer, Basic, anything), as header lines, dict items or JSON.
    (
        re.compile(r"(?i)(\b(?:http_)?(?:proxy_)?authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+"),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 " + REDACTED),
    # name=value (query strings, form bodies) and "name": "value" (JSON, dict reprs).
    (
        re.compile(rf"(?i)([\"']?\b(?:{_SENSITIVE_KEYS})\b[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,;}}]+"),
        r"\1" + REDACTED,
    ),
    # Authorization codes and launch tokens: only as code=/launch= or a quoted key, so that
    # "status code: 500" stays readable.
    (re.compile(r"(?i)(\b(?:code|launch)=)[^&\s\"',;]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)([\"'](?:code|launch)[\"']\s*:\s*[\"'])[^\"']+"), r"\1" + REDACTED),
)


def redact(text: str) -> str:
    """Scrub bearer tokens, secrets, authorization codes and JWT-looking strings from text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class RedactionFilter(logging.Filter):
    """Render each record's message once, scrub it, and drop the args (they are in it now)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(str(message))
        record.args = None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, name, redact(value))
        return True


class RedactingFormatter(logging.Formatter):
    """The plain-text formatter, with tracebacks (which may quote URLs and bodies) scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return redact(super().format(record))


class JsonFormatter(jsonlogger.JsonFormatter):
    """One JSON object per line (python-json-logger): time, level, logger, message, request_id and
    plain extras; every string redacted, objects (such as Django's `request` extra) left out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s %(request_id)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger", "exc_info": "exception"})
        kwargs.setdefault("json_ensure_ascii", False)
        kwargs.setdefault("json_default", str)
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        fields = dict(log_data)
        log_data.clear()
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        log_data.update(fields)
        log_data["request_id"] = fields.get("request_id") or current_request_id()

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # Only plain values: objects such as Django's `request` extra may hold cookies.
        entry: dict[str, Any] = {}
        for name, value in log_data.items():
            if name.startswith("_"):
                continue
            if isinstance(value, str):
                entry[name] = redact(value)
            elif value is None or isinstance(value, bool | int | float):
                entry[name] = value
        return entry
