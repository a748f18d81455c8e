"""Token refresh for a launch. Interface fixed here; the launch core implements it.

`refresh_access_token(launch)` refreshes with the EHR's client authentication, stores the new
(rotated) tokens on the launch, takes a cross-process lock so that concurrent requests refresh
once, and raises `RefreshError` when the EHR refuses (the caller then clears the launch).
"""

from __future__ import annotations

from smartapp.models import Launch


class RefreshError(Exception):
    """The launch can no longer be refreshed; the user must re-authorize."""


def refresh_access_token(launch: Launch) -> Launch:
    """Refresh `launch`'s access token and return the updated launch."""
    raise RefreshError("token refresh is not implemented yet")
