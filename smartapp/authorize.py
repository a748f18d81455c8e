"""The authorization request: PKCE, which scopes to ask for, and the authorize URL.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#obtain-authorization-code
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from smartapp import scopes
from smartapp.discovery import SmartConfig
from smartapp.models import Ehr

logger = logging.getLogger(__name__)

# RFC 6749 4.1.2.1 error codes, with what to tell the user.
AUTHORIZATION_ERRORS = {
    "access_denied": "Access was not granted. You (or the EHR) declined the app's request.",
    "invalid_scope": "The EHR did not accept the data access the app asked for.",
    "invalid_request": "The EHR rejected the sign-in request as malformed.",
    "unauthorized_client": "The EHR does not allow this app to sign in this way.",
    "unsupported_response_type": "The EHR does not support the app's sign-in method.",
    "server_error": "The EHR had an internal error while signing you in.",
    "temporarily_unavailable": "The EHR's sign-in service is temporarily unavailable.",
}


def code_challenge(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA256(verifier)) without padding."""
    # Reference: https://www.rfc-editor.org/rfc/rfc7636#section-4.2
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_code_verifier() -> str:
    """A 86-character verifier (512 bits) from the CSPRNG; RFC 7636 allows 43-128."""
    return secrets.token_urlsafe(64)


def scopes_for(requested: str, config: SmartConfig) -> str:
    """The scope string to send: v2 as configured, or v1 for an EHR that does not advertise v2.

    v1 when the EHR lists permission-v1 without permission-v2, or when its configuration came
    from the CapabilityStatement (a SMART v1-era server) and does not list permission-v2.
    """
    v1_only = config.has("permission-v1") or config.source == "metadata"
    if v1_only and not config.has("permission-v2"):
        return scopes.as_v1(requested)
    return " ".join(requested.split())


def verifiable_scopes(requested: list[str], config: SmartConfig) -> list[str]:
    """Without a jwks_uri no id_token can be verified, so identity is not asked for at all.

    Asking would make every launch fail at the callback; without it the launch still works,
    with no signed-in user (the admin's "Check configuration" names the missing jwks_uri).
    """
    if config.jwks_uri or not set(scopes.IDENTITY_SCOPES) & set(requested):
        return requested
    logger.warning("the EHR publishes no jwks_uri; launching without openid/fhirUser")
    return [scope for scope in requested if scope not in scopes.IDENTITY_SCOPES]


@dataclass(frozen=True)
class AuthorizationRequest:
    """A ready authorize redirect plus what the callback must remember (kept server-side)."""

    url: str = field(repr=False)  # carries the nonce
    state: str = field(default="")
    code_verifier: str = field(default="", repr=False)
    nonce: str = field(default="", repr=False)
    scope: str = ""


def build_authorization(
    ehr: Ehr,
    config: SmartConfig,
    *,
    scope: str,
    redirect_uri: str,
    launch: str | None = None,
    aud: str | None = None,
) -> AuthorizationRequest:
    """The authorize URL (GET) with state, PKCE S256, aud and, for EHR launch, `launch`.

    `aud` is the `iss` exactly as the EHR sent it on an EHR launch (the registered issuer otherwise).
    """
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#obtain-authorization-code
    state = secrets.token_urlsafe(32)  # 256 bits; the IG asks for at least 122
    verifier = new_code_verifier()
    nonce = secrets.token_urlsafe(32) if "openid" in scope.split() else ""
    params = {
        "response_type": "code",
        "client_id": ehr.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "aud": aud or ehr.iss,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if launch is not None:
        params["launch"] = launch
    if nonce:
        params["nonce"] = nonce
    parts = urlsplit(config.authorization_endpoint)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return AuthorizationRequest(url=url, state=state, code_verifier=verifier, nonce=nonce, scope=scope)
