"""WSGI entry point (gunicorn smartapp.wsgi)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartapp.settings")
application = get_wsgi_application()


def _settle() -> None:
    """Load what the first requests would load, then put the startup objects out of the GC's reach.

    The process holds ~100k long-lived objects (Django, the FHIR models). A full collection walks
    all of them: 20-45 ms pauses every dozen or so dashboard loads. gc.freeze() moves them to a
    permanent generation; measured on the dashboard, p99 went from 78 to 34 ms.
    Reference: https://docs.python.org/3/library/gc.html#gc.freeze
    """
    from django.template.loader import get_template
    from django.urls import reverse

    from clinical import fhir

    reverse("smartapp:home")  # loads the URLconf, which imports every view module
    fhir.load_models()
    for name in ("clinical/dashboard.html", "clinical/panel.html", "smartapp/error.html"):
        get_template(name)  # compiled once into the cached loader
    gc.collect()
    gc.freeze()


_settle()
