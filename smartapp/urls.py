"""Root URLconf: admin, the SMART launch endpoints (namespace `smartapp`), probes, dashboard."""

from django.contrib import admin
from django.urls import include, path

from smartapp import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("smartapp.launch_urls")),
    path("", include("clinical.urls")),
]

# A database outage is a 503 with a retry link; any other uncaught error stays a 500.
handler500 = "smartapp.outage.server_error"
