"""Django's error handlers (400, 403, 404, 500) with the app's header and a request reference.

Django's defaults render their templates without the request, so the page could not show the
request id that the matching `django.request` log line carries. These render with it.
Reference: https://docs.djangoproject.com/en/5.2/topics/http/views/#customizing-error-views
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.csrf import requires_csrf_token

from smartapp.logging import current_request_id

logger = logging.getLogger(__name__)


@requires_csrf_token
def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "400.html", status=400)


@requires_csrf_token
def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused form (a missing or stale CSRF token): the app's page, not Django's bare one."""
    logger.warning("form refused: CSRF check failed (%s)", reason)
    return render(request, "403_csrf.html", status=403)


@requires_csrf_token
def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    try:
        return render(request, "500.html", status=500)
    except Exception:  # whatever broke the view may break the template too: still answer
        logger.exception("the 500 page could not be rendered")
        reference = escape(getattr(request, "request_id", None) or current_request_id())
        return HttpResponse(
            "<!doctype html><title>Server error</title><h1>Something went wrong in the app</h1>"
            f"<p>Reference: <code>{reference}</code></p>",
            status=500,
        )
