"""Calls to an EHR's token and revocation endpoints: code exchange, refresh, revocation.

One retry after a glitch that is not a refusal; `longest_token_call()` bounds how long a call may
take at worst (the refresh lock in `smartapp.tokens` is sized from it).

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#obtain-access-token
"""

from __future__ import annotations

import logging
import time

from smartapp import scopes, transport
from smartapp.client_auth import client_auth
from smartapp.discovery import SmartConfig
from smartapp.models import Ehr
from smartapp.protocol import FormReply, OAuthError, TokenResponseError, post_form
from smartapp.token_response import TokenResponse, parse_token_response

logger = logging.getLogger(__name__)

TOKEN_RETRY_DELAY = 0.3  # seconds


def _worth_one_retry(response: FormReply) -> bool:
    """A 5xx, or a 400 that carries no RFC 6749 error code: a glitch, not a refusal."""
    if response.status_code >= 500:
        return True
    if response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and isinstance(body.get("error"), str))


def _token_call(ehr: Ehr, config: SmartConfig, grant: dict[str, str]) -> FormReply:
    """POST a grant to the token endpoint, with one retry after a glitch that is not a refusal.

    Field lesson (Epic): token endpoints occasionally fail without an OAuth error. The retry
    carries a fresh client assertion; a code or refresh token the first call consumed just gets
    invalid_grant.
    """
    fields, headers = client_auth(ehr, config, config.token_endpoint)
    response = post_form(config.token_endpoint, {**grant, **fields}, headers)
    if _worth_one_retry(response):
        logger.info(
            "token endpoint answered HTTP %s without an OAuth error; retrying once", response.status_code
        )
        time.sleep(TOKEN_RETRY_DELAY)
        fields, headers = client_auth(ehr, config, config.token_endpoint)
        response = post_form(config.token_endpoint, {**grant, **fields}, headers)
    return response


def longest_token_call() -> float:
    """Seconds a token call may take at worst: two attempts at the transport's deadline, and the pause."""
    return 2 * transport.longest_call() + TOKEN_RETRY_DELAY


def exchange_code(
    ehr: Ehr, config: SmartConfig, *, code: str, code_verifier: str, redirect_uri: str, requested_scope: str
) -> TokenResponse:
    """Swap an authorization code for tokens (with PKCE and the EHR's client authentication)."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#obtain-access-token
    grant = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    result = parse_token_response(_token_call(ehr, config, grant), requested_scope)
    if scopes.needs_patient(result.scope) and not result.patient:
        raise TokenResponseError("The EHR did not say which patient this launch is for.")
    return result


def refresh(ehr: Ehr, config: SmartConfig, *, refresh_token: str, granted_scope: str) -> TokenResponse:
    """Use a refresh token (same client authentication as the code exchange)."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#refresh-access-token
    grant = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return parse_token_response(_token_call(ehr, config, grant), granted_scope)


def revoke(ehr: Ehr, config: SmartConfig, *, token: str, hint: str) -> bool:
    """Revoke one token where the EHR offers revocation; failures are logged, never raised."""
    # Reference: https://www.rfc-editor.org/rfc/rfc7009#section-2.1
    if not config.revocation_endpoint or not token:
        return False
    try:
        fields, headers = client_auth(ehr, config, config.revocation_endpoint)
        response = post_form(
            config.revocation_endpoint, {"token": token, "token_type_hint": hint, **fields}, headers
        )
    except OAuthError as exc:
        logger.warning("token revocation failed for ehr=%s: %s", ehr.pk, exc)
        return False
    if response.status_code != 200:
        logger.warning("token revocation for ehr=%s answered HTTP %s", ehr.pk, response.status_code)
        return False
    return True
