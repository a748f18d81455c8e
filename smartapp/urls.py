"""Root URLconf: admin, the SMART launch endpoints (namespace `smartapp`), probes, dashboard."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.decorators.http import require_GET
from django.views.generic.base import RedirectView

from smartapp import health


class _FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page says; send them to the static SVG."""

    permanent = False  # its static URL carries a content hash in production, which may change

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("favicon.svg")

urlpatterns = [
    path("favicon.ico", require_GET(_FaviconView.as_view()), name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("population/", include("population.urls")),
    path("", include("smartapp.launch_urls")),
    path("", include("clinical.urls")),
]

# Error pages with the app's header and the request id (Django's own render without the request).
# A database or cache outage is a 503 with a retry link; any other uncaught error stays a 500.
handler400 = "smartapp.errors.bad_request"
handler403 = "smartapp.errors.permission_denied"
handler404 = "smartapp.errors.page_not_found"
handler500 = "smartapp.outage.server_error"
