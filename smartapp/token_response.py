"""A token endpoint's answer, validated: the fields the app uses, or a `TokenError`/`TokenResponseError`.

Required fields must be right (access_token, Bearer, expires_in, the patient id); optional hints
that are unusable (tenant, intent, smart_style_url, encounter, fhirContext, malformed scope
values) are dropped with a warning rather than failing the sign-in.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#response-5
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from smartapp import safety, scopes
from smartapp.protocol import FormReply, OAuthError, TokenError, TokenResponseError

logger = logging.getLogger(__name__)

# When a server omits expires_in (RFC 6749 only RECOMMENDS it) assume a short life: refreshing
# early costs one request, using a dead token costs a failed page. A FHIR 401 forces a refresh anyway.
DEFAULT_EXPIRES_IN = 300


@dataclass
class TokenResponse:
    """A validated token response: the fields the app uses; unknown extra keys are ignored."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str = ""
    id_token: str = ""
    patient: str = ""
    encounter: str = ""
    fhir_context: list[Any] = field(default_factory=list)
    need_patient_banner: bool | None = None
    smart_style_url: str = ""
    intent: str = ""
    tenant: str = ""
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # never let a token reach a log or traceback through repr()
        return f"TokenResponse(scope={self.scope!r}, expires_in={self.expires_in}, patient={self.patient!r})"


def _error_from(response: FormReply) -> OAuthError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = body["error"][:64]
        logger.warning("token endpoint refused: HTTP %s error=%s", response.status_code, error)
        if error == "invalid_grant":
            message = "The EHR no longer accepts this authorization (invalid_grant). Please sign in again."
        elif error == "invalid_client":
            message = "The EHR did not accept the app's credentials (invalid_client)."
        else:
            message = f"The EHR refused to issue a token ({error})."
        return TokenError(message, error=error)
    logger.warning("token endpoint failed: HTTP %s without an OAuth error body", response.status_code)
    if response.status_code >= 500:
        return TokenError(f"The EHR's token service failed (HTTP {response.status_code}).")
    return TokenError(f"The EHR's token service answered HTTP {response.status_code}.")


MAX_EXPIRES_IN = 24 * 3600
# The Launch columns these hints are stored in.
MAX_STYLE_URL, MAX_INTENT, MAX_TENANT = 500, 128, 256


def _expires_in(value: Any, warnings: list[str]) -> int:
    if value is None:
        warnings.append(f"expires_in missing; assuming {DEFAULT_EXPIRES_IN} s")
        return DEFAULT_EXPIRES_IN
    if isinstance(value, bool):
        raise TokenResponseError("The EHR's token response has an invalid expires_in.")
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError) as exc:
        raise TokenResponseError("The EHR's token response has an invalid expires_in.") from exc
    if seconds <= 0:
        raise TokenResponseError("The EHR issued a token that has already expired.")
    # A token claiming to live for more than a day is treated as a day: the app re-checks then.
    return min(seconds, MAX_EXPIRES_IN)


def _optional_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TokenResponseError(f"The EHR's token response has an invalid {name}.")
    return value


def _optional_hint(body: dict[str, Any], name: str, max_length: int, warnings: list[str]) -> str:
    """An optional launch hint (tenant, intent, style URL): a bad one is dropped, not fatal.

    Dropped rather than truncated (a cut URL or tenant is a different one) and never stored with
    control characters (PostgreSQL refuses NUL in text).
    """
    value = body.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > max_length or safety.has_control_characters(value):
        warnings.append(f"{name} is not a usable string; ignored.")
        return ""
    return value


def _context_id(body: dict[str, Any], name: str) -> str:
    """A launch-context id (`patient`, `encounter`): a valid id or nothing, never truncated."""
    value = _optional_str(body, name)
    if value and not safety.FHIR_ID.match(value):
        raise TokenResponseError(f"The EHR's token response has an invalid {name} id.")
    return value


def _optional_context_id(body: dict[str, Any], name: str, warnings: list[str]) -> str:
    """Optional context (`encounter`): an invalid id drops that context, not the whole sign-in."""
    try:
        return _context_id(body, name)
    except TokenResponseError:
        warnings.append(f"{name} is not a valid FHIR id; ignored.")
        return ""


MAX_FHIR_CONTEXT_BYTES = 64 * 1024
_UNSTORABLE_ESCAPE = re.compile(r"\\u(0000|d[89a-f])", re.IGNORECASE)  # in json.dumps output


def _granted_scope(body: dict[str, Any], requested_scope: str, warnings: list[str]) -> str:
    granted = body.get("scope")
    if granted is None:
        # RFC 6749 5.1: an omitted scope means the requested scope was granted.
        return requested_scope
    if not isinstance(granted, str):
        raise TokenResponseError("The EHR's token response has an invalid scope.")
    tokens = granted.split()
    valid = [token for token in tokens if scopes.is_scope_token(token)]
    if len(valid) != len(tokens):
        warnings.append(f"{len(tokens) - len(valid)} malformed scope value(s) ignored.")
    return " ".join(valid)


def _fhir_context(body: dict[str, Any], warnings: list[str]) -> list[Any]:
    """fhirContext: extra context the dashboard does not need, so a malformed one is dropped."""
    value = body.get("fhirContext") or []
    if not isinstance(value, list):
        warnings.append("fhirContext is not a list; ignored.")
        return []
    stored = json.dumps(value)
    if len(stored) > MAX_FHIR_CONTEXT_BYTES or _UNSTORABLE_ESCAPE.search(stored):
        warnings.append("fhirContext is too large or holds a NUL or lone surrogate; ignored.")
        return []
    return value


def parse_token_response(response: FormReply, requested_scope: str) -> TokenResponse:
    """Validate a token-endpoint response; any non-conformance is a `TokenResponseError`/`TokenError`."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#response-5
    if response.status_code != 200:
        raise _error_from(response)
    try:
        body = response.json()
    except ValueError as exc:
        logger.warning("token endpoint answered 200 with a non-JSON body")
        raise TokenResponseError("The EHR's token service answered with something other than JSON.") from exc
    if not isinstance(body, dict):
        raise TokenResponseError("The EHR's token service answered with an unexpected JSON document.")
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenResponseError("The EHR's token response has no access_token.")
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenResponseError("The EHR issued a token that is not a Bearer token.")
    warnings: list[str] = []
    banner = body.get("need_patient_banner")
    result = TokenResponse(
        access_token=access_token,
        expires_in=_expires_in(body.get("expires_in"), warnings),
        scope=_granted_scope(body, requested_scope, warnings),
        refresh_token=_optional_str(body, "refresh_token"),
        id_token=_optional_str(body, "id_token"),
        patient=_context_id(body, "patient"),
        encounter=_optional_context_id(body, "encounter", warnings),
        fhir_context=_fhir_context(body, warnings),
        need_patient_banner=banner if isinstance(banner, bool) else None,
        smart_style_url=_optional_hint(body, "smart_style_url", MAX_STYLE_URL, warnings),
        intent=_optional_hint(body, "intent", MAX_INTENT, warnings),
        tenant=_optional_hint(body, "tenant", MAX_TENANT, warnings),
        warnings=warnings,
    )
    narrowed = set(requested_scope.split()) - set(result.scope.split())
    if narrowed:
        logger.info("EHR granted fewer scopes than requested; missing: %s", " ".join(sorted(narrowed)))
    for warning in warnings:
        logger.warning("token response: %s", warning)
    return result
