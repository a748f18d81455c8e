"""The FHIR domain errors, and the server's OperationOutcome text made fit to show.

Callers catch these, never `requests` or transport errors: each says what an audit record and
the page should make of a failed query (`outcome`, `retryable`).
"""

from __future__ import annotations

import re
from typing import Any

# Audit outcomes: the values of smartapp.models.AuditEvent.Outcome (kept as strings so this
# module stays free of the ORM).
OUTCOME_OK = "ok"
OUTCOME_DENIED = "denied"
OUTCOME_NOT_FOUND = "not_found"
OUTCOME_ERROR = "error"
OUTCOME_TIMEOUT = "timeout"
_DIAGNOSTICS_MAX = 300
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


class FhirError(Exception):
    """A FHIR request failed; `diagnostics` is the server's OperationOutcome text (sanitised)."""

    outcome = OUTCOME_ERROR
    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None, diagnostics: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.diagnostics = diagnostics

    def __str__(self) -> str:
        return f"{self.message}: {self.diagnostics}" if self.diagnostics else self.message


class Unauthorized(FhirError):
    outcome = OUTCOME_DENIED


class Forbidden(FhirError):
    outcome = OUTCOME_DENIED


class NotFound(FhirError):
    outcome = OUTCOME_NOT_FOUND


class Gone(NotFound):
    pass


class BadRequest(FhirError):
    """4xx other than the above: the server refused the query itself."""


class RateLimited(FhirError):
    retryable = True

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(FhirError):
    retryable = True


class Unreachable(ServerError):
    """No HTTP response at all (DNS, connection refused, TLS)."""


class Timeout(FhirError):
    outcome = OUTCOME_TIMEOUT
    retryable = True


class InvalidResponse(FhirError):
    """The server answered, but not with the FHIR JSON we asked for."""

    retryable = True


class RefusedURL(FhirError):
    """The FHIR base breaks the outbound URL rule (smartapp.safety): nothing was sent."""


def sanitize_text(text: Any, limit: int = _DIAGNOSTICS_MAX) -> str:
    """Server text made safe to show and log: a string, no control characters, length-capped."""
    if not isinstance(text, str):
        return ""
    text = _CONTROL_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def outcome_diagnostics(body: Any) -> str:
    """The human-readable text of an OperationOutcome (diagnostics or details.text of its issues)."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    parts: list[str] = []
    issues = body.get("issue")
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (details.get("text") if isinstance(details, dict) else None)
        if isinstance(text, str) and text.strip():
            parts.append(text)
    return sanitize_text("; ".join(parts))
