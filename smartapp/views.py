"""The SMART launch endpoints: thin views over `smartapp.flow`."""

from __future__ import annotations

import logging
from functools import wraps

from django.contrib.auth import logout as auth_logout
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from smartapp import keys, security, session
from smartapp.flow import (
    MAX_ISS_PARAM,
    MAX_LAUNCH_PARAM,
    FlowError,
    authorization_error,
    begin,
    complete,
)
from smartapp.flow import ehr_for_issuer as _ehr_for_issuer
from smartapp.flow import sign_out as _sign_out
from smartapp.models import Ehr, Launch
from smartapp.safety import has_control_characters

logger = logging.getLogger(__name__)


def _head_without_effects(view):
    """GET and HEAD; HEAD answers 200 without running the flow (no state made, no code spent).

    A HEAD (a link checker, a prefetching proxy) must not use up the single-use authorization
    code or start an authorization that no browser will finish.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "HEAD":
            return HttpResponse(content_type="text/html; charset=utf-8")
        return view(request, *args, **kwargs)

    return require_safe(wrapper)


def _error(request: HttpRequest, error: FlowError) -> HttpResponse:
    # The page shows this request's id as its reference; this line carries the same id.
    ehr_id = error.ehr.pk if error.ehr else None
    logger.warning("error page %s %r (ehr=%s, kind=%s)", error.status, error.title, ehr_id, error.kind or "-")
    return render(
        request,
        "smartapp/error.html",
        {"title": error.title, "message": error.message, "ehr": error.ehr, "kind": error.kind},
        status=error.status,
    )


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """The standalone launch page: enabled EHRs, and this session's open launches."""
    launches = Launch.objects.select_related("ehr").filter(
        handle__in=session.owned_handles(request), ehr__enabled=True, iss=F("ehr__iss")
    )
    return render(
        request,
        "smartapp/home.html",
        {"ehrs": Ehr.objects.filter(enabled=True), "launches": launches.order_by("-created_at")},
    )


@never_cache
@_head_without_effects
def launch(request: HttpRequest) -> HttpResponse:
    """EHR launch: only a registered, enabled issuer gets any outbound request (SSRF)."""
    iss, launch_param = request.GET.get("iss", ""), request.GET.get("launch", "")
    if not iss or len(iss) > MAX_ISS_PARAM or has_control_characters(iss):
        return _error(
            request,
            FlowError(
                "Invalid launch", "The EHR did not say which FHIR server it is (no valid iss parameter)."
            ),
        )
    if not launch_param or len(launch_param) > MAX_LAUNCH_PARAM or has_control_characters(launch_param):
        return _error(
            request, FlowError("Invalid launch", "The EHR did not send a valid launch parameter.")
        )
    ehr = _ehr_for_issuer(iss)
    if ehr is None:
        logger.warning("launch from an unregistered or disabled issuer refused")
        return _error(
            request,
            FlowError(
                "Unknown EHR",
                "This app is not registered with the EHR that tried to launch it, or that EHR is disabled. "
                "Ask your administrator to register it.",
            ),
        )
    security.note_refused_framing(request, ehr, by_parent=True)
    try:
        return redirect(begin(request, ehr, Launch.Kind.EHR, launch=launch_param, iss=iss))
    except FlowError as error:
        return _error(request, error)


@never_cache
@_head_without_effects
def standalone(request: HttpRequest, slug: str) -> HttpResponse:
    """Standalone launch for one registered EHR (no `launch` parameter)."""
    ehr = Ehr.objects.filter(slug=slug, enabled=True).first()
    if ehr is None:
        return _error(
            request, FlowError("Unknown EHR", "There is no enabled EHR with this name.", status=404)
        )
    try:
        return redirect(begin(request, ehr, Launch.Kind.STANDALONE))
    except FlowError as error:
        return _error(request, error)


@never_cache
@_head_without_effects
def callback(request: HttpRequest) -> HttpResponse:
    """The redirect URI: state checks, code exchange, identity, then the launch's dashboard."""
    params = {key: request.GET.get(key, "") for key in ("state", "code", "error")}
    if "iss" in request.GET:
        params["iss"] = request.GET["iss"]
    try:
        if params["error"]:
            return _error(request, authorization_error(request, params))
        created = complete(request, params)
    except FlowError as error:
        return _error(request, error)
    return redirect("clinical:dashboard", created.handle)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """Revoke tokens where the EHR offers it, drop this session's launches, end the session."""
    _sign_out(request)
    auth_logout(request)  # flushes the session and rotates its key
    return render(request, "smartapp/signed_out.html")


@require_safe
def jwks(request: HttpRequest) -> HttpResponse:
    """The app's public signing keys, for EHRs that verify private_key_jwt assertions."""
    try:
        document = keys.public_jwks()
    except keys.KeyConfigurationError:
        logger.exception("signing keys are misconfigured")
        # Not an empty set an EHR would cache for an hour: a 503 it retries once keys are fixed.
        response = JsonResponse({"error": "signing keys unavailable"}, status=503)
        response["Cache-Control"] = "no-store"
        return response
    response = JsonResponse(document, content_type="application/jwk-set+json")
    response["Cache-Control"] = "public, max-age=3600"
    return response
