"""Models of the sandbox EHR, defined only in the sandbox process (settings.SANDBOX_SERVER).

The main project installs the `sandbox` app for its management commands only; with no models
there (and migrations in `sandbox.db.migrations`, named only by the sandbox settings), the main
database never gets sandbox tables and `makemigrations` there finds nothing.
"""

from __future__ import annotations

from django.conf import settings

if getattr(settings, "SANDBOX_SERVER", False):
    from sandbox.store import (  # noqa: F401
        AuthCode,
        Client,
        Deletion,
        LaunchContext,
        Resource,
        SeenJti,
        SigningKey,
        Token,
        UserProfile,
    )
