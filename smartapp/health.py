"""Liveness and readiness probes: cheap, unauthenticated, no PHI."""

from __future__ import annotations

import logging

from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from smartapp import cachepolicy

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """The database and the shared cache answer; a load balancer should route traffic here.

    The cache counts: without it (the table missing, Redis down) no refresh can be locked, so
    a launch whose token expires cannot go on.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("readiness check: database unreachable")
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    if not cachepolicy.probe():
        return JsonResponse({"status": "unavailable", "database": "ok", "cache": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok", "cache": "ok"})
