"""An outage of the database (or of the cache) shows a 503 page with a retry link, not a 500.

Django turns any uncaught exception into `handler500`; this handler looks at the exception being
handled and answers the ones that mean "a backing service is down for now" with a 503 and a
Retry-After. Anything else is a bug and stays Django's 500. The page is rendered without the
request's context processors: they would read the session, from the database that is down.
"""

from __future__ import annotations

import sys

from django.db.utils import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from redis.exceptions import RedisError

from smartapp import errors

# OperationalError: the server is down, restarting or refusing connections; InterfaceError: the
# connection broke under us. A RedisError reaching here is a cache use outside smartapp.cachepolicy.
OUTAGE_ERRORS = (OperationalError, InterfaceError, RedisError)
RETRY_AFTER_SECONDS = 5
# A retry of these would replay a single-use value (the authorization code) and show it in the page.
_NO_RETRY_VIEWS = {"smartapp:callback"}


def is_outage(exc: BaseException | None) -> bool:
    """Whether `exc` (or an exception it was raised from) means a backing service is down."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OUTAGE_ERRORS):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _retry_url(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if request.method not in ("GET", "HEAD") or (match is not None and match.view_name in _NO_RETRY_VIEWS):
        return ""
    return request.get_full_path()


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """handler500: a 503 with a retry link for an outage, Django's own 500 for anything else."""
    if not is_outage(sys.exc_info()[1]):
        return errors.server_error(request)
    html = render_to_string(
        "smartapp/error.html",
        {
            "title": "Temporarily unavailable",
            "message": "The app cannot reach its database or cache just now. Nothing was lost; "
            "try again in a moment.",
            "retry_url": _retry_url(request),
            "request": request,  # its request_id, the page's reference; no context processors
        },
    )
    response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response
