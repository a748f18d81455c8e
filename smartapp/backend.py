"""SMART Backend Services: an access token by client_credentials with a signed client assertion.

No user and no refresh token: each token comes from a fresh assertion (RS384 or ES384, signed
with the app's own key of that type, the one its JWKS URL publishes), and is shared across
processes through the cache (`smartapp.cachepolicy`) until shortly before it expires.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/backend-services.html
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from smartapp import (
    cachepolicy,
    client_auth,
    crypto,
    discovery,
    keys,
    protocol,
    safety,
    token_response,
)
from smartapp.models import BackendRegistration

logger = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXPIRY_SKEW = 30  # a cached token is dropped this many seconds before the EHR's expiry
MIN_CACHE_SECONDS = 5


class BackendError(Exception):
    """No backend token: `str(exc)` is safe to show an admin (no secrets, no tokens)."""


@dataclass(frozen=True)
class BackendToken:
    access_token: str
    expires_at: float  # epoch seconds
    scope: str
    token_endpoint: str

    def __repr__(self) -> str:  # never a token in a log or traceback
        return f"BackendToken(scope={self.scope!r}, expires_at={self.expires_at:.0f})"


def token_endpoint(reg: BackendRegistration) -> str:
    """The EHR's token endpoint: its override, else discovery (launch-only problems do not matter)."""
    ehr = reg.ehr
    if ehr.token_url_override:
        return ehr.token_url_override
    try:
        return discovery.discover(ehr).token_endpoint
    except protocol.ConfigurationError:
        # Unusable for launches (PKCE, secrets…) may still be fine for backend services.
        document, source = discovery.fetch_document(ehr)
        endpoint = discovery.evaluate(ehr, document, source).token_endpoint
    except protocol.OAuthError as exc:
        raise BackendError(f"Discovery failed: {exc}") from exc
    if not endpoint or not safety.is_secure_url(endpoint):
        raise BackendError("The EHR names no usable (https) token endpoint.")
    return endpoint


def client_assertion(reg: BackendRegistration, audience: str) -> str:
    """A one-use client assertion for the backend registration (the same rules as a launch's)."""
    try:
        return client_auth.signed_assertion(reg.client_id, audience, [reg.alg])
    except keys.KeyConfigurationError as exc:
        raise BackendError(f"The app has no {reg.alg} signing key: {exc}") from exc


def _cache_key(reg: BackendRegistration, endpoint: str) -> str:
    identity = "\n".join((reg.ehr.iss, reg.client_id, " ".join(sorted(reg.scope_list())), reg.alg, endpoint))
    return "smart:backend-token:" + hashlib.sha256(identity.encode()).hexdigest()


def _request_token(reg: BackendRegistration, endpoint: str) -> BackendToken:
    form = {
        "grant_type": "client_credentials",
        "scope": " ".join(reg.scope_list()),
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client_assertion(reg, endpoint),
    }
    try:
        # The one token-endpoint call (size cap, total deadline, answer parsed after the call).
        answer = protocol.post_form(endpoint, form, {})
    except protocol.OAuthError as exc:  # refused address, timeout, unreachable, too large
        raise BackendError(str(exc)) from exc
    try:
        parsed = token_response.parse_token_response(answer, form["scope"])
    except protocol.OAuthError as exc:
        detail = getattr(exc, "error", "")
        logger.warning("backend token refused for ehr=%s: HTTP %s %s", reg.ehr_id, answer.status_code, detail)
        raise BackendError(f"{exc} (HTTP {answer.status_code})") from exc
    return BackendToken(parsed.access_token, time.time() + parsed.expires_in, parsed.scope, endpoint)


def get_token(reg: BackendRegistration, *, use_cache: bool = True) -> BackendToken:
    """A valid backend access token: the shared cached one, or a new one (a fresh assertion)."""
    endpoint = token_endpoint(reg)
    key = _cache_key(reg, endpoint)
    if use_cache:
        cached = cachepolicy.get(cachepolicy.BACKEND_TOKEN, key)
        if isinstance(cached, dict) and cached.get("expires_at", 0) - EXPIRY_SKEW > time.time():
            try:
                return BackendToken(
                    crypto.decrypt(cached["token"]), cached["expires_at"], cached["scope"], endpoint
                )
            except (crypto.DecryptionError, KeyError):
                pass  # rotated-out key or a foreign entry: fetch a new token
    token = _request_token(reg, endpoint)
    ttl = int(token.expires_at - time.time() - EXPIRY_SKEW)
    if ttl >= MIN_CACHE_SECONDS:
        entry = {
            "token": crypto.encrypt(token.access_token),
            "expires_at": token.expires_at,
            "scope": token.scope,
        }
        cachepolicy.set(cachepolicy.BACKEND_TOKEN, key, entry, ttl)
    return token


def forget_token(reg: BackendRegistration, token: BackendToken) -> None:
    """The EHR refused this token (401): the next call gets a new one."""
    cachepolicy.delete(cachepolicy.BACKEND_TOKEN, _cache_key(reg, token.token_endpoint))


@dataclass(frozen=True)
class BackendReport:
    """What the admin's *Check configuration* shows for an EHR's backend registration."""

    registration: BackendRegistration
    ok: bool
    message: str
    scope: str = ""
    expires_in: int = 0


def check(reg: BackendRegistration) -> BackendReport:
    """Ask for a new token now (never from the cache) and report the outcome; never raises."""
    try:
        token = get_token(reg, use_cache=False)
    except BackendError as exc:
        return BackendReport(reg, ok=False, message=str(exc))
    granted = set(token.scope.split())
    missing = [s for s in reg.scope_list() if s not in granted]
    message = "Token issued." + (f" Not granted: {' '.join(missing)}." if missing else "")
    return BackendReport(reg, True, message, token.scope, int(token.expires_at - time.time()))
