"""Attach the launch a request is for (`request.smart`) and keep its access token fresh."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from smartapp import security, session
from smartapp.flow import revoke_and_delete
from smartapp.models import Launch
from smartapp.tokens import LockUnavailable, RefreshError, refresh_access_token

logger = logging.getLogger(__name__)


# What the 503 says when an expired token could not be renewed, by whose failure.
_EHR_NOT_ANSWERING = (
    "The EHR is not answering",
    "The EHR could not renew the app's access just now. Your launch is kept; try again in a moment.",
)
_UNAVAILABLE_LOCK = (
    "Cannot renew access just now",
    "The app cannot renew its access to the EHR just now. Your launch is kept; try again in a moment.",
)


class SmartHttpRequest(HttpRequest):
    smart: Launch | None


class LaunchContextMiddleware:
    """For any view taking a `handle` kwarg: resolve it to this session's launch and refresh it.

    A handle this session does not own, or a launch that can no longer be refreshed, gets the
    "session ended" page (standalone: a re-authorize link; EHR launch: relaunch from the EHR).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.smart = None
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        handle = view_kwargs.get("handle")
        if handle is None:
            return None
        launch = session.launch_for(request, handle)
        if launch is not None and not launch.usable:
            # Disabled, or its iss moved: the token must not reach whatever the EHR row now names.
            session.disown(request, handle)
            revoke_and_delete([launch])
            launch = None
        if launch is None:
            return render(request, "smartapp/session_ended.html", {"reason": "unknown"}, status=401)
        security.note_refused_framing(request, launch.ehr)
        if launch.refresh_token and launch.expires_within(settings.SMART_REFRESH_SKEW_SECONDS):
            try:
                launch = refresh_access_token(launch)
            except RefreshError as exc:
                failed = self._refresh_failed(request, launch, exc)
                if failed is not None:
                    return failed
        request.smart = launch
        return None

    @staticmethod
    def _refresh_failed(request: HttpRequest, launch: Launch, exc: RefreshError) -> HttpResponse | None:
        """A dead grant ends the launch; an EHR failing for now costs nothing while the token lasts."""
        if exc.final:
            logger.info("refresh refused; launch cleared (ehr=%s)", launch.ehr_id)
            session.forget_launch(request, launch.handle)
            return render(
                request,
                "smartapp/session_ended.html",
                {"reason": "refresh_failed", "ehr": launch.ehr, "kind": launch.kind},
                status=401,
            )
        if not launch.expires_within(0):
            logger.info("refresh failed for now; using the current token (ehr=%s)", launch.ehr_id)
            return None
        logger.info("refresh failed for now and the token has expired; launch kept (ehr=%s)", launch.ehr_id)
        title, message = _UNAVAILABLE_LOCK if isinstance(exc, LockUnavailable) else _EHR_NOT_ANSWERING
        response = render(
            request,
            "smartapp/error.html",
            {
                "title": title,
                "message": message,
                "retry_url": request.get_full_path(),
                "ehr": launch.ehr,
                "kind": launch.kind,
            },
            status=503,
        )
        response["Retry-After"] = str(settings.SMART_REFRESH_BACKOFF_SECONDS)
        return response
