"""The launch flow between the views and the protocol: start an authorization, finish a callback.

Views parse input and render; this module decides. Errors are `FlowError`s (a user-facing
message, an HTTP status and an optional retry link), never raw exceptions.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from smartapp import authorize, cachepolicy, discovery, identity, session, token_endpoint
from smartapp.discovery import SmartConfig
from smartapp.models import Ehr, Launch
from smartapp.protocol import OAuthError
from smartapp.token_response import TokenResponse

logger = logging.getLogger(__name__)

MAX_LAUNCH_PARAM = 2048
MAX_ISS_PARAM = 2048


@dataclass
class FlowError(Exception):
    """A launch/callback failure with what to show: title, message, status, how to retry."""

    title: str
    message: str
    status: int = 400
    ehr: Ehr | None = None
    kind: str = ""

    def __str__(self) -> str:
        return f"{self.title}: {self.message}"


def redirect_uri() -> str:
    """The exact registered redirect URI (from configuration, never the request's Host)."""
    return settings.SMART_APP_BASE_URL + reverse("smartapp:callback")


def ehr_for_issuer(iss: str) -> Ehr | None:
    """The enabled EHR registered for `iss`; only trailing slashes are normalised (no case folding)."""
    # Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#launch-app-ehr-launch
    return Ehr.objects.filter(iss=iss.rstrip("/"), enabled=True).first()


def begin(
    request: HttpRequest, ehr: Ehr, kind: str, launch: str | None = None, iss: str | None = None
) -> str:
    """Discover, build the authorize URL, remember the pending authorization; return the URL.

    For an EHR launch, `iss` is the issuer exactly as the EHR sent it (it becomes `aud`).
    """
    standalone = kind == Launch.Kind.STANDALONE
    try:
        config = discovery.discover(ehr)
    except OAuthError as exc:
        logger.warning("cannot start authorization for ehr=%s: %s", ehr.pk, exc)
        raise FlowError("Cannot reach the EHR", str(exc), status=exc.status, ehr=ehr, kind=kind) from exc
    requested = authorize.verifiable_scopes(ehr.scope_list(standalone=standalone), config)
    if not standalone and "launch" not in requested:
        requested = ["launch", *requested]  # an EHR launch means nothing without the launch scope
    scope = authorize.scopes_for(" ".join(requested), config)
    auth = authorize.build_authorization(
        ehr, config, scope=scope, redirect_uri=redirect_uri(), launch=launch, aud=iss
    )
    session.add_pending(
        request,
        auth.state,
        {
            "ehr_id": ehr.pk,
            "iss": ehr.iss,
            "kind": kind,
            "verifier": auth.code_verifier,
            "nonce": auth.nonce,
            "scope": scope,
        },
    )
    return auth.url


def _retry_target(pending: dict[str, Any] | None) -> tuple[Ehr | None, str]:
    if not pending:
        return None, ""
    return Ehr.objects.filter(pk=pending.get("ehr_id")).first(), pending.get("kind", "")


def authorization_error(request: HttpRequest, params: dict[str, str]) -> FlowError:
    """A friendly error for an `error=` redirect (RFC 6749 4.1.2.1), consuming its state."""
    pending = session.pop_pending(request, params["state"]) if params.get("state") else None
    code = params.get("error", "")
    known = authorize.AUTHORIZATION_ERRORS
    message = known.get(code, "The EHR could not complete the sign-in.")
    logger.info("authorization error from EHR: %s", code if code in known else "unknown")
    ehr, kind = _retry_target(pending)
    status = 403 if code == "access_denied" else 400
    return FlowError("Sign-in did not complete", message, status=status, ehr=ehr, kind=kind)


def _take_pending(request: HttpRequest, state: str) -> dict[str, Any]:
    if not state:
        raise FlowError("Invalid sign-in response", "The response from the EHR has no state parameter.")
    pending = session.pop_pending(request, state)
    if pending is None:
        raise FlowError(
            "Invalid sign-in response",
            "This sign-in response is unknown, was already used, or belongs to another browser session. "
            "Please start again.",
        )
    # Persist the deletion now, so a later replay of the same state finds nothing; and mark the
    # state used in the shared cache, which is atomic, so two simultaneous callbacks carrying it
    # cannot both pass (each would have loaded the session before the other saved it).
    request.session.save()
    used_key = "smart:state-used:" + hashlib.sha256(state.encode()).hexdigest()
    try:
        first_use = cachepolicy.add(cachepolicy.STATE_USED, used_key, 1, settings.SMART_STATE_MAX_AGE)
    except cachepolicy.CacheUnavailable:
        # Fail closed: without the marker two simultaneous callbacks could both pass.
        raise FlowError(
            "Sign-in unavailable",
            "The app cannot complete a sign-in just now. Please start again in a moment.",
            status=503,
        ) from None
    if not first_use:
        raise FlowError(
            "Invalid sign-in response", "This sign-in response was already used. Please start again."
        )
    if time.time() - pending.get("created", 0) > settings.SMART_STATE_MAX_AGE:
        ehr, kind = _retry_target(pending)
        raise FlowError(
            "Sign-in expired", "The sign-in took too long. Please start again.", ehr=ehr, kind=kind
        )
    return pending


def _check_response(params: dict[str, str], ehr: Ehr, config: SmartConfig, kind: str) -> str:
    """The callback's issuer (RFC 9207) and code; return the code."""
    # RFC 9207 mix-up defence: the response must come from the issuer we sent the user to.
    returned_iss = params.get("iss")
    expected = {i for i in (config.issuer, ehr.iss) if i}
    if returned_iss is not None and not any(
        hmac.compare_digest(returned_iss.encode(), i.encode()) for i in expected
    ):
        logger.warning("callback iss mismatch for ehr=%s", ehr.pk)
        raise FlowError(
            "Invalid sign-in response", "The response came from an unexpected issuer.", ehr=ehr, kind=kind
        )
    if returned_iss is None and config.iss_parameter_supported:
        raise FlowError(
            "Invalid sign-in response", "The EHR's response is missing its issuer.", ehr=ehr, kind=kind
        )
    code = params.get("code", "")
    if not code or len(code) > 4096:
        raise FlowError(
            "Invalid sign-in response",
            "The response from the EHR has no authorization code.",
            ehr=ehr,
            kind=kind,
        )
    return code


def _identify(
    request: HttpRequest, ehr: Ehr, config: SmartConfig, tokens: TokenResponse, pending: dict[str, Any]
) -> tuple[str, Any]:
    """Sign the user in from the id_token of an openid launch; (fhir_user, user), or ("", None)."""
    if "openid" not in pending["scope"].split():
        return "", None
    if not tokens.id_token:
        logger.warning("ehr=%s granted no id_token although openid was requested", ehr.pk)
        return "", None
    try:
        who = identity.sign_in(request, ehr, config, id_token=tokens.id_token, nonce=pending["nonce"])
    except OAuthError as exc:
        raise FlowError("Sign-in failed", str(exc), status=exc.status, ehr=ehr, kind=pending["kind"]) from exc
    return who.fhir_user, who.user


def _create_launch(ehr: Ehr, tokens: TokenResponse, pending: dict[str, Any], fhir_user: str, user) -> Launch:
    return Launch.objects.create(
        handle=session.new_handle(),
        ehr=ehr,
        kind=pending["kind"],
        user=user,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=timezone.now() + timedelta(seconds=tokens.expires_in),
        requested_scope=pending["scope"],
        scope=tokens.scope,
        patient_id=tokens.patient,
        encounter_id=tokens.encounter,
        fhir_user=fhir_user,  # absolute_fhir_user keeps it within the column
        fhir_context=tokens.fhir_context,
        need_patient_banner=tokens.need_patient_banner,
        smart_style_url=tokens.smart_style_url,
        intent=tokens.intent,
        tenant=tokens.tenant,
    )


def complete(request: HttpRequest, params: dict[str, str]) -> Launch:
    """Validate the callback, exchange the code, verify identity, and create the launch."""
    pending = _take_pending(request, params.get("state", ""))
    kind = pending["kind"]
    ehr = Ehr.objects.filter(pk=pending["ehr_id"], enabled=True).first()
    if ehr is None or ehr.iss != pending.get("iss"):
        raise FlowError("EHR not available", "This EHR is no longer enabled for the app.")
    try:
        config = discovery.discover(ehr)
    except OAuthError as exc:
        raise FlowError("Cannot reach the EHR", str(exc), status=exc.status, ehr=ehr, kind=kind) from exc
    code = _check_response(params, ehr, config, kind)
    try:
        tokens = token_endpoint.exchange_code(
            ehr,
            config,
            code=code,
            code_verifier=pending["verifier"],
            redirect_uri=redirect_uri(),
            requested_scope=pending["scope"],
        )
    except OAuthError as exc:
        raise FlowError("Sign-in failed", str(exc), status=exc.status, ehr=ehr, kind=kind) from exc

    owned_before = session.owned_handles(request)
    fhir_user, user = _identify(request, ehr, config, tokens, pending)
    launch = _create_launch(ehr, tokens, pending, fhir_user, user)
    if user is None:
        # No sign-in (no openid, or no id_token) means no login() to rotate the session key: do
        # it here, so a session id planted before the launch never owns its data.
        request.session.cycle_key()
    evicted = session.remember_launch(request, launch)
    if owned_before and set(owned_before).isdisjoint(session.owned_handles(request)):
        # Another user signed in on this browser: login() flushed the session, so the previous
        # user's launches are unreachable. End them at the EHR, now that the new launch is safe.
        evicted = [*owned_before, *evicted]
    if evicted:  # the session keeps its newest launches; end the oldest at the EHR too
        revoke_and_delete(list(Launch.objects.select_related("ehr").filter(handle__in=evicted)))
    return launch


def revoke_and_delete(launches: list[Launch]) -> int:
    """Ask each EHR that offers revocation to revoke the tokens, then delete the launches."""
    for launch in launches:
        if launch.iss != launch.ehr.iss:
            continue  # the EHR row now names another server: the tokens must not go there
        try:
            config = discovery.discover(launch.ehr)
        except OAuthError:
            continue
        if config.revocation_endpoint:
            token_endpoint.revoke(launch.ehr, config, token=launch.refresh_token, hint="refresh_token")
            token_endpoint.revoke(launch.ehr, config, token=launch.access_token, hint="access_token")
    Launch.objects.filter(pk__in=[launch.pk for launch in launches]).delete()
    return len(launches)


def sign_out(request: HttpRequest) -> int:
    """Revoke this session's tokens where offered and delete its launches; return how many."""
    handles = session.owned_handles(request)
    return revoke_and_delete(list(Launch.objects.select_related("ehr").filter(handle__in=handles)))
