"""What the browser session holds: pending authorizations by state, and owned launch handles.

All session key strings live here. Tokens are never in the session itself: they are in
encrypted `Launch` rows, and the session only lists the handles of the launches it owns, so a
URL handle from another session is worthless.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from smartapp.models import Launch

PENDING_KEY = "smart_pending"
LAUNCHES_KEY = "smart_launches"


def new_handle() -> str:
    """An opaque, unguessable launch handle for the dashboard URL."""
    return secrets.token_urlsafe(24)


def add_pending(request: HttpRequest, state: str, data: dict[str, Any]) -> None:
    """Remember an authorization in flight, keyed by its state (many tabs may be in flight)."""
    pending = dict(request.session.get(PENDING_KEY, {}))
    pending[state] = {**data, "created": time.time()}
    # Keep the newest few; an abandoned tab must not grow the session without bound.
    newest = sorted(pending.items(), key=lambda item: item[1]["created"])[
        -settings.SMART_MAX_PENDING_STATES :
    ]
    request.session[PENDING_KEY] = dict(newest)


def pop_pending(request: HttpRequest, state: str) -> dict[str, Any] | None:
    """Take (and delete, so it can never be replayed) the pending authorization for `state`."""
    pending = dict(request.session.get(PENDING_KEY, {}))
    data = pending.pop(state, None)
    if data is not None:
        request.session[PENDING_KEY] = pending
    return data


def remember_launch(request: HttpRequest, launch: Launch) -> list[str]:
    """Give this session ownership of a launch; return the handles of the oldest launches it
    had to let go of (at most SMART_MAX_LAUNCHES_PER_SESSION are kept) for the caller to end."""
    handles = [h for h in request.session.get(LAUNCHES_KEY, []) if h != launch.handle]
    handles.append(launch.handle)
    request.session[LAUNCHES_KEY] = handles[-settings.SMART_MAX_LAUNCHES_PER_SESSION :]
    return handles[: -settings.SMART_MAX_LAUNCHES_PER_SESSION]


def owned_handles(request: HttpRequest) -> list[str]:
    return list(request.session.get(LAUNCHES_KEY, []))


def launch_for(request: HttpRequest, handle: str) -> Launch | None:
    """The launch behind `handle`, only if this session owns it."""
    if handle not in request.session.get(LAUNCHES_KEY, []):
        return None
    launch = Launch.objects.select_related("ehr").filter(handle=handle).first()
    if launch is not None and not launch.iss:  # inserted by an older release during a deploy
        Launch.objects.filter(pk=launch.pk, iss="").update(iss=launch.ehr.iss)
        launch.iss = launch.ehr.iss
    return launch


def disown(request: HttpRequest, handle: str) -> None:
    """Drop a handle from this session (the caller ends the launch itself)."""
    request.session[LAUNCHES_KEY] = [h for h in request.session.get(LAUNCHES_KEY, []) if h != handle]


def forget_launch(request: HttpRequest, handle: str) -> None:
    """Drop one launch (e.g. after a failed refresh) from the session and the database."""
    disown(request, handle)
    Launch.objects.filter(handle=handle).delete()
