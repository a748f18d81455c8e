"""The SMART protocol's errors and its two HTTP exchanges with an EHR, over the one transport.

`get_json` (discovery, CapabilityStatement, JWKS) and `post_form` (token, revocation) read the
whole answer, size-capped, within the transport's deadline, and turn the transport's errors into
an `OAuthError` whose message is fit to show a user; secrets, codes and tokens never appear in
messages or logs. `discovery`, `authorize`, `client_auth`, `token_response`, `token_endpoint` and
`identity` build on this module.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from smartapp import transport

logger = logging.getLogger(__name__)

# --- Errors ---------------------------------------------------------------------------------


class OAuthError(Exception):
    """Something went wrong talking to the EHR; `str(exc)` is safe to show a user."""

    status = 502


class DiscoveryError(OAuthError):
    """The EHR's SMART configuration could not be fetched or is unusable."""


class ConfigurationError(OAuthError):
    """The EHR and this app have no compatible way to authorize (PKCE, client auth, keys)."""


class TransportError(OAuthError):
    """The EHR could not be reached in time."""


class TokenError(OAuthError):
    """The token endpoint refused the request (`error` holds the RFC 6749 code when given)."""

    def __init__(self, message: str, error: str = ""):
        super().__init__(message)
        self.error = error


class TokenResponseError(OAuthError):
    """The token endpoint answered, but not with a usable token response."""


# --- HTTP (through smartapp.transport) --------------------------------------------------------

# Discovery documents, CapabilityStatements and JWKS are small; a CapabilityStatement of a large
# server can reach a few hundred KB.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


# A token response holds a few tokens, an id_token and some context: far below this.
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024


def get_json(url: str, accept: str = "application/json") -> dict[str, Any]:
    """GET a JSON document (discovery, CapabilityStatement, JWKS); no redirects, size-capped."""
    try:
        reply = transport.fetch("GET", url, headers={"Accept": accept}, limit=MAX_DOCUMENT_BYTES)
    except transport.RefusedURL as exc:
        raise DiscoveryError(f"The app does not fetch this address: {exc}") from exc
    except transport.Timeout as exc:
        raise TransportError("The EHR did not answer in time.") from exc
    except transport.TooLarge as exc:
        raise DiscoveryError("The EHR's document is implausibly large.") from exc
    except transport.OutboundError as exc:
        raise TransportError("The EHR could not be reached.") from exc
    if reply.status_code != 200:
        raise DiscoveryError(f"The EHR answered HTTP {reply.status_code}.")
    try:
        data = loads(reply.body)
    except ValueError as exc:
        raise DiscoveryError("The EHR answered with something other than JSON.") from exc
    if not isinstance(data, dict):
        raise DiscoveryError("The EHR answered with an unexpected JSON document.")
    return data


@dataclass(frozen=True)
class FormReply:
    """A token or revocation endpoint's answer, read whole (size-capped) before anything parses it."""

    status_code: int
    body: bytes

    def json(self) -> Any:
        return loads(self.body)  # a ValueError for anything but JSON


def post_form(url: str, data: dict[str, str], headers: dict[str, str]) -> FormReply:
    """POST a form; the whole call, headers and body, ends within the transport's deadline.

    The answer is returned once it has arrived whole, and parsed after the call is over: a
    token response already received is never thrown away because the clock ran on meanwhile.
    """
    try:
        reply = transport.fetch(
            "POST",
            url,
            data=data,
            headers={"Accept": "application/json", **headers},
            limit=MAX_TOKEN_RESPONSE_BYTES,
        )
    except transport.RefusedURL as exc:
        raise ConfigurationError(f"The app does not send credentials to this address: {exc}") from exc
    except transport.Timeout as exc:
        raise TransportError("The EHR's token service did not answer in time.") from exc
    except transport.TooLarge as exc:
        logger.warning("token endpoint answered with more than %d bytes; refused", MAX_TOKEN_RESPONSE_BYTES)
        message = "The EHR's token service answered with an implausibly large response."
        raise TokenResponseError(message) from exc
    except transport.OutboundError as exc:
        raise TransportError("The EHR's token service could not be reached.") from exc
    return FormReply(reply.status_code, reply.body)


def loads(body: bytes | str) -> Any:
    """json.loads, with a ValueError (not a RecursionError) for absurdly nested input."""
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
